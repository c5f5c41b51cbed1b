"""Lab 09 (docker pull through imagegraph daemon): the pulled image and its layers in the store,
the login in the lab's docker config, the flow log of a pull that met the registry's 401, and
neither the daemon nor the registry left running.

The flow log is read as data: its lines say which hop happened, in which order; the store says
whether the layers it names are there.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from dataclasses import dataclass

from . import Checker
from .lab08 import registry_address, running_registries
from .store import Store, container_named, read_file, sha_hex

REPOSITORY = "test/hello-world"
TAG = "1.0"
HELLO = "Hello from layerlab!\n"
V2 = os.path.join("registry", "docker", "registry", "v2")


def running_daemons(folder: str) -> list[int]:
    """PIDs of `imagegraph … daemon` processes serving this lab's docker.sock."""
    sock = os.path.realpath(os.path.join(folder, "docker.sock"))
    found = []
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                args = [a.decode("utf-8", "replace") for a in f.read().split(b"\0") if a]
        except OSError:
            continue
        if "daemon" not in args or not any("imagegraph" in a for a in args):
            continue
        hosts = [args[i + 1] for i, a in enumerate(args[:-1]) if a in ("-H", "--host")]
        if any(os.path.realpath(h.removeprefix("unix://")) == sock for h in hosts):
            found.append(int(pid))
    return sorted(found)


# What a pull that met the registry's challenge leaves in the flow log, in this order.
FLOW_ORDER = [
    (
        r"^client → daemon +POST /v1\.\d+/images/create\?fromImage={name}&tag=1\.0 → postImagesCreate ",
        "the pull request",
    ),
    (r"^daemon +postImagesCreate → PullImage\({name}:1\.0", "postImagesCreate calling PullImage"),
    (r"^daemon → registry +GET http://{reg}/v2/ → 401 Unauthorized +challenge: Basic ", "the registry's 401"),
    (r"^daemon → registry +GET http://{reg}/v2/{repo}/manifests/sha256:[0-9a-f]{{64}} → 200", "the manifest"),
    (r"^daemon → registry +GET http://{reg}/v2/{repo}/blobs/sha256:[0-9a-f]{{64}} → 200", "a blob"),
    (r"^graph +layer 2/2 ", "the layers landing in the graph"),
    (r"^daemon → client +200 OK +stream ended: Status: ", "the reply stream's last status"),
]


def check(folder: str) -> list[str]:
    c = Checker(folder)
    for pid in running_daemons(folder):
        c.problem(f"imagegraph daemon (pid {pid}) still serves this lab's docker.sock: step 13 stops it (kill {pid})")
    for pid in running_registries(folder):
        c.problem(f"docker-registry (pid {pid}) still serves this lab's registry.yml: step 13 stops it (kill {pid})")
    store = Store.find(folder)
    if store is None:
        c.problem("store/ is missing: step 2 sets IMAGEGRAPH_ROOT=~/layerlab/lab09/store before starting the daemon")
        return c.problems
    reg = registry_address(folder)
    if reg is None:
        c.problem("registry.yml is missing or has no 'addr:': step 3 writes it, with the port the registry listens on")
        return c.problems
    if "htpasswd:" not in (read_file(os.path.join(folder, "registry.yml")) or ""):
        c.problem("registry.yml has no htpasswd section: this lab's registry wants a login (step 3)")
    name = f"{reg}/{REPOSITORY}"
    _check_login(c, folder, reg)
    _check_image(c, folder, store, name)
    _check_flow(c, folder, store, reg, name)
    if container_named(store, "hello") is not None:
        c.problem("container hello still exists: step 4 removes it once it is committed")
    return c.problems


def _check_login(c: Checker, folder: str, reg: str) -> None:
    path = os.path.join(folder, "docker-config", "config.json")
    rel = os.path.relpath(path, folder)
    try:
        with open(path, encoding="utf-8") as f:
            auths = json.load(f).get("auths") or {}
    except (OSError, ValueError, AttributeError):
        c.problem(f"{rel} is missing or not JSON: step 6's docker login writes it (DOCKER_CONFIG, step 2)")
        return
    entry = auths.get(reg)
    if not isinstance(entry, dict) or not entry.get("auth"):
        c.problem(f"{rel} has no credentials for {reg}: docker login files them under the registry's address")
        return
    try:
        user = base64.b64decode(entry["auth"]).decode().partition(":")[0]
    except (binascii.Error, UnicodeDecodeError):
        user = ""
    if user != "alice":
        c.problem(f"{rel}'s entry for {reg} is not alice's: its `auth` is base64 of `alice:<password>`")


def _check_image(c: Checker, folder: str, store: Store, name: str) -> None:
    tags = store.tags()
    image = tags.get(f"{name}:{TAG}")
    if image is None:
        c.problem(f"no image tagged {name}:{TAG}: step 12 pulls it back through the daemon")
        return
    digests = [ref.split("@", 1)[1] for ref, target in tags.items() if ref.startswith(name + "@") and target == image]
    link = read_file(os.path.join(folder, V2, "repositories", REPOSITORY, "_manifests", "tags", TAG, "current", "link"))
    if not digests:
        c.problem(f"{name}:{TAG} has no RepoDigest: a pulled image records the digest of the manifest it came as")
    elif link is not None and link not in digests:
        c.problem(
            f"{name}:{TAG}'s RepoDigest is not the manifest the registry's tag points at: "
            "pull it from the lab's registry"
        )
    diff_ids = store.config(image).get("rootfs", {}).get("diff_ids", [])
    if len(diff_ids) != 2:
        c.problem(f"{name}:{TAG} has {len(diff_ids)} layers, expected 2: tiny's files and the copied hello.txt")
        return
    layerdb = os.path.join(store.image_dir, "layerdb", "sha256")
    for n, chain in enumerate(Store.chain_ids(diff_ids), 1):
        cache = read_file(os.path.join(layerdb, sha_hex(chain), "cache-id"))
        files = os.path.join(store.root, "layerfs", cache or "?", "diff")
        if not cache or not os.path.isdir(files):
            c.problem(
                f"layer {n} of {name}:{TAG} has no files in store/layerfs/: its layerdb entry names a cache-id folder"
            )
        elif n == 2:
            c.need_file(
                os.path.relpath(os.path.join(files, "hello.txt"), folder), "the top layer holds the copied file", HELLO
            )


def _check_flow(c: Checker, folder: str, store: Store, reg: str, name: str) -> None:
    text = read_file(os.path.join(folder, "flow.log"))
    if not text:
        c.problem("flow.log is missing or empty: the daemon writes it (--flow, step 2); step 12 pulls once more")
        return
    lines = text.splitlines()
    pos = 0
    fields = {"name": re.escape(name), "reg": re.escape(reg), "repo": re.escape(REPOSITORY)}
    for pattern, what in FLOW_ORDER:
        rx = re.compile(pattern.format(**fields))
        found = next((i for i in range(pos, len(lines)) if rx.search(lines[i])), None)
        if found is None:
            c.problem(f"flow.log does not show {what} where a pull through the daemon puts it: pull as in step 12")
            return
        pos = found + 1
    layerdb = os.path.join(store.image_dir, "layerdb", "sha256")
    for chain in re.findall(r"layerdb/sha256/([0-9a-f]{64})/", text):
        if not os.path.isdir(os.path.join(layerdb, chain)):
            c.problem(f"flow.log says a layer went to layerdb/sha256/{chain[:12]}…, which the store does not have")
            return


# -- the exercises: each in ~/layerlab/lab09-exK, on a copy of the lab's store, with a daemon of its own


@dataclass
class _Exercise:
    c: Checker
    lab: str
    store: Store | None
    flow: list[str]


def _exercise(folder: str, needs_store: bool = True, registry: bool = False) -> _Exercise:
    """What every exercise shares: the lab's folder beside it, a copy of the store, the daemon
    (and the registry) stopped again, and the exercise's flow log."""
    c = Checker(folder)
    lab = os.path.join(os.path.dirname(os.path.abspath(folder)), "lab09")
    for pid in running_daemons(folder):
        c.problem(f"imagegraph daemon (pid {pid}) still serves this exercise's docker.sock: stop it (kill {pid})")
    if registry:
        for pid in running_registries(lab):
            c.problem(f"docker-registry (pid {pid}) still serves ../lab09/registry.yml: stop it (kill {pid})")
    store = None
    if needs_store:
        store = Store.find(folder) if os.path.isdir(os.path.join(folder, "store")) else None
        if store is None:
            c.problem("store/ is missing: the exercise works on a copy of the lab's store (cp -a ../lab09/store .)")
    flow = (read_file(os.path.join(folder, "flow.log")) or "").splitlines()
    if needs_store and not flow:
        c.problem("flow.log is missing or empty: start the exercise's daemon with --flow flow.log")
    return _Exercise(c, lab, store, flow)


def _name(ex: _Exercise) -> str | None:
    reg = registry_address(ex.lab)
    if reg is None:
        ex.c.problem("../lab09/registry.yml is missing or has no 'addr:': the exercise uses the lab's registry")
        return None
    return f"{reg}/{REPOSITORY}"


# docker command → the handler that serves it (exercise 1)
HANDLERS = {
    "docker images": ("GET", "/images/json", "getImagesJSON"),
    "docker tag": ("POST", "/images/{name}/tag", "postImagesTag"),
    "docker history": ("GET", "/images/{name}/history", "getImagesHistory"),
    "docker rmi": ("DELETE", "/images/{name}", "deleteImages"),
}


def exercise_1(folder: str) -> list[str]:
    """docker images, tag, history and rmi through the exercise's daemon: each handler in the flow log."""
    ex = _exercise(folder)
    c = ex.c
    if ex.flow:
        for command, (method, path, handler) in HANDLERS.items():
            if not any(re.search(rf"^client → daemon +{method} \S+ → {handler}\b", line) for line in ex.flow):
                c.problem(f"flow.log shows no {method} {path} → {handler}: run {command} through the exercise's daemon")
    if ex.store is not None and any(ref.split("/")[-1] == "hello:copy" for ref in ex.store.tags()):
        c.problem("hello:copy is still tagged: docker rmi hello:copy removes the tag again")
    return c.problems


def exercise_2(folder: str) -> list[str]:
    """A pull by digest: no HEAD of a tag, the manifest asked for by its digest, no tag made."""
    ex = _exercise(folder, registry=True)
    c, store = ex.c, ex.store
    name = _name(ex)
    if store is None or name is None or not ex.flow:
        return c.problems
    link = read_file(os.path.join(ex.lab, V2, "repositories", REPOSITORY, "_manifests", "tags", TAG, "current", "link"))
    if link is None:
        c.problem("the lab's registry has no tag 1.0: the lab's step 7 pushes it")
        return c.problems
    if f"{name}@{link}" not in store.tags():
        c.problem(f"the store has no {name}@{link[:19]}…: pull by the digest the registry's tag 1.0 points at")
    if f"{name}:{TAG}" in store.tags():
        c.problem(f"{name}:{TAG} is still tagged: docker rmi it first; a pull by digest makes no tag")
    if any(re.search(r"^daemon → registry +HEAD \S+/manifests/", line) for line in ex.flow):
        c.problem("flow.log shows a HEAD of a manifest: empty it (: > flow.log) before the pull by digest")
    if not any(re.search(rf"^daemon → registry +GET \S+/manifests/{re.escape(link)} → 200", line) for line in ex.flow):
        c.problem(f"flow.log shows no GET of manifest {link[:19]}… by its digest: pull by that digest")
    return c.problems


def exercise_3(folder: str) -> list[str]:
    """An unreadable X-Registry-Auth: the daemon goes on without credentials and fails itself."""
    ex = _exercise(folder, registry=True)
    c, store = ex.c, ex.store
    name = _name(ex)
    if store is None or name is None or not ex.flow:
        return c.problems
    response = read_file(os.path.join(folder, "response.txt"))
    if response is None:
        c.problem("response.txt is missing: save curl's answer (with -w 'HTTP %{http_code}\\n') to it")
    elif "no basic auth credentials" not in response or not response.endswith("HTTP 500"):
        c.problem(
            "response.txt is not the daemon's 500 'no basic auth credentials': send X-Registry-Auth: not-base64, "
            "with the image removed first"
        )
    if not any(re.search(r"^client → daemon +POST \S+/images/create\?fromImage=", line) for line in ex.flow):
        c.problem("flow.log shows no POST /images/create: send it with curl to the exercise's docker.sock")
    if any("(Basic " in line for line in ex.flow):
        c.problem("flow.log shows credentials sent to the registry: the unreadable header must have carried none")
    if f"{name}:{TAG}" in store.tags():
        c.problem(f"{name}:{TAG} is in the store: docker rmi it before the curl, which must not pull it back")
    return c.problems


def exercise_4(folder: str) -> list[str]:
    """/version asked as API 1.99, 1.40 and 1.24: too new, answered, too old."""
    from imagegraph.api import DEFAULT_VERSION, MIN_VERSION

    ex = _exercise(folder, needs_store=False)
    c = ex.c
    if not c.need_file("versions.txt", "the exercise's loop writes one 'vX: HTTP code' line per version"):
        return c.problems
    codes = dict(re.findall(r"^v(\d+\.\d+): HTTP (\d{3})$", read_file(c.path("versions.txt")) or "", re.M))
    want = {"1.99": ("400", f"is too new. Maximum supported API version is {DEFAULT_VERSION}")}
    want["1.24"] = ("400", f"is too old. Minimum supported API version is {MIN_VERSION}")
    want[MIN_VERSION] = ("200", f'"ApiVersion":"{DEFAULT_VERSION}"')
    for version, (code, text) in want.items():
        if codes.get(version) != code:
            c.problem(f"versions.txt has no 'v{version}: HTTP {code}': ask the daemon's /version as API {version}")
        body = read_file(c.path(f"v{version}.json")) or ""
        if text not in body:
            c.problem(f"v{version}.json does not hold {text!r}: it is the daemon's answer to /v{version}/version")
    return c.problems


def exercise_5(folder: str) -> list[str]:
    """The container and system routers' tables, as the daemon has them now."""
    from imagegraph.api.routes import init_routes

    c = Checker(folder)
    if not c.need_file("routes.txt", "python -m imagegraph.api.routes container system > routes.txt"):
        return c.problems
    have = read_file(c.path("routes.txt"))
    if have != "\n\n".join(init_routes(name) for name in ("container", "system")).strip():
        c.problem("routes.txt is not what python -m imagegraph.api.routes container system prints: run it again")
    return c.problems


EXERCISES = {1: exercise_1, 2: exercise_2, 3: exercise_3, 4: exercise_4, 5: exercise_5}
