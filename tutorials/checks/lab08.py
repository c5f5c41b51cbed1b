"""Lab 08 (pull): the pulled image, its RepoDigest, its layers stored once by ChainID, and
what pull recorded about the registry's blobs; the lab's registry is stopped.

The registry's own storage (`registry/`, Docker distribution's filesystem layout) is read too:
it says which manifest the tag points at, and which blobs it holds, without the registry running.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass

from . import Checker
from .store import Store, container_named, read_file, sha_hex

REPOSITORY = "test/hello-world"
TAG = "2.0"
HELLO = "Hello again!\n"
V2 = os.path.join("registry", "docker", "registry", "v2")


def registry_address(folder: str) -> str | None:
    """`HOST:PORT` from the lab's registry.yml (`http: addr:`)."""
    try:
        with open(os.path.join(folder, "registry.yml"), encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return None
    match = re.search(r"^\s+addr:\s*(\S+)\s*$", text, re.M)
    return match[1] if match else None


def running_registries(folder: str) -> list[int]:
    """PIDs of `docker-registry serve` processes whose config is this lab's registry.yml."""
    wanted = os.path.realpath(os.path.join(folder, "registry.yml"))
    found = []
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                args = [a.decode("utf-8", "replace") for a in f.read().split(b"\0") if a]
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            continue
        if len(args) < 3 or os.path.basename(args[0]) != "docker-registry" or "serve" not in args:
            continue
        if os.path.realpath(os.path.join(cwd, args[-1])) == wanted:
            found.append(int(pid))
    return sorted(found)


def check(folder: str) -> list[str]:
    c = Checker(folder)
    for pid in running_registries(folder):
        c.problem(f"docker-registry (pid {pid}) still serves this lab's registry.yml: step 8 stops it (kill {pid})")
    store = Store.find(folder)
    if store is None:
        c.problem("store/ is missing: step 2 sets IMAGEGRAPH_ROOT=~/layerlab/lab08/store")
        return c.problems
    reg = registry_address(folder)
    if reg is None:
        c.problem("registry.yml is missing or has no 'addr:': step 2 writes it, with the port the registry listens on")
        return c.problems
    if not c.need_dir(V2, "the registry's storage (step 2's rootdirectory); the pushed images live there"):
        return c.problems
    name = f"{reg}/{REPOSITORY}"
    tags = store.tags()
    base, image = tags.get("tiny:latest"), tags.get(f"{name}:{TAG}")
    if base is None:
        c.problem("no image tagged tiny:latest: step 6 imports ./rootfs again as tiny")
    if image is None:
        c.problem(f"no image tagged {name}:{TAG}: step 7 pulls it from the lab's registry")
        return c.problems

    # The RepoDigest: which manifest the image was pulled as, and the registry agrees.
    digests = sorted(
        ref.split("@", 1)[1] for ref, target in tags.items() if ref.startswith(name + "@") and target == image
    )
    on_registry = read_file(
        os.path.join(folder, V2, "repositories", REPOSITORY, "_manifests", "tags", TAG, "current", "link")
    )
    if not digests:
        c.problem(
            f"{name}:{TAG} has no RepoDigest ({name}@sha256:…): a pulled image records the digest "
            f"of the manifest it came from"
        )
    elif on_registry is None:
        c.problem(f"the registry has no tag {REPOSITORY}:{TAG}: step 6 pushes it")
    elif on_registry not in digests:
        c.problem(
            f"{name}:{TAG}'s RepoDigest {digests[0][:19]}… is not the manifest the registry's tag points at "
            f"({on_registry[:19]}…): pull it from the lab's registry"
        )

    # Two layers, the bottom one tiny's, each stored once under its ChainID.
    diff_ids = store.config(image).get("rootfs", {}).get("diff_ids", [])
    below = store.config(base).get("rootfs", {}).get("diff_ids", []) if base else []
    if len(diff_ids) != 2:
        c.problem(f"{name}:{TAG} has {len(diff_ids)} layers, expected 2: tiny's layer plus the committed hello.txt")
        return c.problems
    if base is not None and below != diff_ids[:1]:
        c.problem(f"{name}:{TAG}'s bottom layer is not tiny's: both come from ./rootfs, so they share one layer")
    layerdb = os.path.join(store.image_dir, "layerdb", "sha256")
    parent = None
    for n, (diff, chain) in enumerate(zip(diff_ids, Store.chain_ids(diff_ids), strict=True), 1):
        entry = os.path.join(layerdb, sha_hex(chain))
        rel = os.path.relpath(entry, folder)
        if read_file(os.path.join(entry, "diff")) != diff:
            c.problem(
                f"{rel}/diff is missing or wrong: layer {n} is stored under its ChainID, and its diff "
                f"file holds its DiffID"
            )
            continue
        if read_file(os.path.join(entry, "parent")) != parent:
            c.problem(f"{rel}/parent is not the layer below: a ChainID names a layer with everything under it")
        cache = read_file(os.path.join(entry, "cache-id"))
        files = os.path.join(store.root, "layerfs", cache or "?", "diff")
        if not cache or not os.path.isdir(files):
            c.problem(
                f"layer {n}'s files ({os.path.relpath(files, folder)}/) are missing: {rel}/cache-id "
                f"names the folder that holds them"
            )
        elif n == 2:
            c.need_file(
                os.path.relpath(os.path.join(files, "hello.txt"), folder),
                "the top layer of 2.0 holds the file committed in step 6",
                HELLO,
            )
        parent = chain

    # Nothing stored twice: every layer folder belongs to one layer (or one container).
    owners: dict[str, list[str]] = {}
    for chain in store.layer_ids():
        cache = read_file(os.path.join(layerdb, chain, "cache-id"))
        if cache:
            owners.setdefault(cache, []).append(chain)
    mounts = os.path.join(store.image_dir, "layerdb", "mounts")
    for container in os.listdir(mounts) if os.path.isdir(mounts) else []:
        for key in ("mount-id", "init-id"):
            cache = read_file(os.path.join(mounts, container, key))
            if cache:
                owners.setdefault(cache, []).append(container)
    layer_root = os.path.join(store.root, "layerfs")
    for cache in sorted(os.listdir(layer_root)) if os.path.isdir(layer_root) else []:
        if cache not in owners:
            c.problem(
                f"store/layerfs/{cache[:12]}… belongs to no layer: a layer's files stored twice (or left by "
                f"an interrupted pull); each layer is stored once, under its ChainID"
            )
        elif len(owners[cache]) > 1:
            c.problem(
                f"store/layerfs/{cache[:12]}… is the cache-id of {len(owners[cache])} layers: each layer "
                f"has its own folder"
            )

    # What pull remembered: for each layer, the blob it came as and the repository it came from.
    v2meta = os.path.join(store.image_dir, "distribution", "v2metadata-by-diffid", "sha256")
    for n, diff in enumerate(diff_ids, 1):
        try:
            with open(os.path.join(v2meta, sha_hex(diff)), encoding="utf-8") as f:
                records = json.load(f)
        except (OSError, ValueError):
            records = []
        blobs = [r.get("Digest", "") for r in records if r.get("SourceRepository") == name]
        rel = os.path.relpath(os.path.join(v2meta, sha_hex(diff)), folder)
        if not blobs:
            c.problem(
                f"{rel} has no record of layer {n}'s blob in {name}: pull (and push) record where each "
                f"layer came from, and a later push uses it to skip the upload"
            )
        elif not any(
            os.path.isfile(os.path.join(folder, V2, "blobs", "sha256", sha_hex(b)[:2], sha_hex(b), "data"))
            for b in blobs
        ):
            c.problem(f"{rel} names a blob the registry does not hold: layer {n} should come from the lab's registry")

    for container in ("hello", "hello2"):
        if container_named(store, container) is not None:
            c.problem(f"container {container} still exists: steps 4 and 7 remove it before removing its image")
    return c.problems


@dataclass
class _Exercise:
    """An exercise done in ~/layerlab/lab08-exK with a copy of the lab's store and the lab's
    registry: the checker, the store (None: a problem says so), the lab's folder, the name."""

    c: Checker
    store: Store | None
    lab: str
    name: str


def _exercise(folder: str) -> _Exercise:
    c = Checker(folder)
    lab = os.path.join(os.path.dirname(folder), "lab08")
    for pid in running_registries(lab):
        c.problem(f"docker-registry (pid {pid}) still serves the lab's registry.yml: stop it (kill {pid})")
    reg = registry_address(lab)
    store = Store.find(folder) if os.path.isdir(os.path.join(folder, "store")) else None
    if store is None:
        c.problem("store/ is missing: the exercise works on a copy of the lab's store (cp -a ../lab08/store .)")
    if reg is None:
        c.problem("../lab08/registry.yml is missing: the exercise starts the lab's registry again from it")
        store = None
    return _Exercise(c, store, lab, f"{reg}/{REPOSITORY}")


def _tag_link(lab: str, tag: str) -> str | None:
    return read_file(os.path.join(lab, V2, "repositories", REPOSITORY, "_manifests", "tags", tag, "current", "link"))


def _requests(c: Checker, rel: str) -> list[str] | None:
    """The request lines (METHOD PATH) of a registry log or a saved list of them."""
    path = c.path(rel)
    if not c.need_file(rel, "the registry's log of the exercise's pull"):
        return None
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    found = re.findall(r"\b(GET|HEAD|POST|PUT|PATCH|DELETE) (/v2/\S*)", text)
    return [f"{method} {target}" for method, target in found]


def exercise_1(folder: str) -> list[str]:
    """1.0 pulled again onto a store that has its base layer: one layer blob fetched."""
    ex = _exercise(folder)
    c, store, lab, name = ex.c, ex.store, ex.lab, ex.name
    if store is None:
        return c.problems
    image = store.tags().get(f"{name}:1.0")
    if image is None:
        c.problem(f"no image tagged {name}:1.0: pull it from the lab's registry")
        return c.problems
    link = _tag_link(lab, "1.0")
    if link and f"{name}@{link}" not in store.tags():
        c.problem(f"{name}:1.0 has no RepoDigest {link[:19]}…: pull it from the lab's registry")
    if len(store.layer_ids()) != 3:
        c.problem(
            f"the store holds {len(store.layer_ids())} layers, expected 3: the base layer is shared, "
            f"only 1.0's own layer is new"
        )
    requests = _requests(c, "registry.log")
    if requests is not None:
        blobs = [r for r in requests if "/blobs/" in r and r.startswith("GET")]
        if len(blobs) != 2:
            c.problem(
                f"registry.log shows {len(blobs)} blob downloads, expected 2 (the config and 1.0's own layer): "
                f"empty it before the pull"
            )
    return c.problems


def exercise_2(folder: str) -> list[str]:
    """1.0 pulled by its digest: no HEAD, no tag, a digest reference."""
    ex = _exercise(folder)
    c, store, lab, name = ex.c, ex.store, ex.lab, ex.name
    if store is None:
        return c.problems
    link = _tag_link(lab, "1.0")
    if link is None:
        c.problem("the lab's registry has no tag 1.0: the lab's step 3 pushes it")
        return c.problems
    if f"{name}@{link}" not in store.tags():
        c.problem(f"the store has no {name}@{link[:19]}…: pull 1.0 by the digest its tag points at")
    if store.tags().get(f"{name}:1.0"):
        c.problem(f"{name}:1.0 is tagged: a pull by digest names no tag")
    requests = _requests(c, "registry.log")
    if requests is not None:
        if any(r.startswith("HEAD") for r in requests):
            c.problem(
                "registry.log shows a HEAD request: a pull by digest needs no tag lookup (empty it before the pull)"
            )
        if f"GET /v2/{REPOSITORY}/manifests/{link}" not in requests:
            c.problem(f"registry.log shows no GET of manifest {link[:19]}…: pull by that digest")
    return c.problems


def exercise_3(folder: str) -> list[str]:
    """2.0 pulled a second time: up to date, no layer downloaded."""
    ex = _exercise(folder)
    c, store, name = ex.c, ex.store, ex.name
    if store is None:
        return c.problems
    image = store.tags().get(f"{name}:{TAG}")
    if image is None:
        c.problem(f"no image tagged {name}:{TAG}: the copy of the lab's store has it")
        return c.problems
    requests = _requests(c, "requests.txt")
    if requests is not None:
        if f"HEAD /v2/{REPOSITORY}/manifests/{TAG}" not in requests:
            c.problem(f"requests.txt has no HEAD of tag {TAG}: save the requests of a pull of {TAG}")
        blobs = {r.rsplit("/", 1)[1] for r in requests if "/blobs/" in r}
        if blobs - {image}:
            c.problem(
                "requests.txt shows a layer blob downloaded: the image was already here (its config digest is its "
                "ID), so a second pull fetches no layer"
            )
    return c.problems


EXERCISES = {1: exercise_1, 2: exercise_2, 3: exercise_3}
