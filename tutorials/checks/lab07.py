"""Lab 07 (commit): the new image is its parent plus the top layer, without the init layer's files."""

from __future__ import annotations

import os

from . import Checker
from .store import INIT_FILES, Store, container_dirs, container_named, read_file, sha_hex, store_or_problem


def check(folder: str) -> list[str]:
    c = Checker(folder)
    store = Store.find(folder)
    if store is None:
        c.problem("store/ is missing: step 1 sets IMAGEGRAPH_ROOT=~/layerlab/lab07/store before importing")
        return c.problems
    base, new = store.image_id("tiny"), store.image_id("tiny-app")
    if base is None:
        c.problem("no image tagged tiny:latest: step 1 imports ./rootfs as tiny")
    if new is None:
        c.problem("no image tagged tiny-app:latest: step 3 commits container dev as tiny-app")
    if base is None or new is None:
        return c.problems
    if store.parent(new) != base:
        c.problem("tiny-app's parent is not tiny: commit a container made from tiny (its image is the parent, 父镜像)")
    below = store.config(base).get("rootfs", {}).get("diff_ids", [])
    layers = store.config(new).get("rootfs", {}).get("diff_ids", [])
    if layers[: len(below)] != below or len(layers) != len(below) + 1:
        c.problem(
            f"tiny-app has {len(layers)} layers, expected tiny's {len(below)} plus one: "
            f"commit adds exactly the top layer"
        )
        return c.problems
    base_chain = Store.chain_ids(below)[-1] if below else ""
    size = read_file(os.path.join(store.image_dir, "layerdb", "sha256", sha_hex(base_chain), "size"))
    if size != "20":
        c.problem(
            f"tiny's layer is {size or '?'} bytes, expected 20 (bin/sh and etc/os-release, 10 bytes each): "
            f"step 1 writes '#!/bin/sh' and 'NAME=tiny', each with its newline"
        )
    history = [h for h in store.config(new).get("history", []) if not h.get("empty_layer")]
    if len(history) != len(layers):
        c.problem(f"tiny-app's history has {len(history)} layer entries for {len(layers)} layers")
    top = store.diff_dirs(new)[-1]

    def rel(p: str) -> str:
        return os.path.relpath(p, folder)

    c.need_file(
        rel(top + "/etc/app.conf"),
        "the file written in the container is in the committed layer",
        "server { listen 80; }\n",
    )
    c.need_whiteout(rel(top), "etc/os-release", "the delete in the container is committed as a whiteout")
    for name in INIT_FILES:
        c.need_absent(rel(top + name), "init layer (初始化层) files belong to one container and are never committed")

    dev, prod = container_named(store, "dev"), container_named(store, "prod")
    if dev is None:
        c.problem("no container named dev: step 1 creates it from tiny")
    if prod is None:
        c.problem("no container named prod: step 5 creates it from tiny-app")
        return c.problems
    if prod.get("Image") != new:
        c.problem("container prod was not made from tiny-app: step 5 creates it from the committed image")
        return c.problems
    dirs = container_dirs(store, prod["ID"])
    if dirs is None:
        c.problem("prod's layers are missing from layerdb/mounts")
        return c.problems
    init, upper = dirs
    for d in (upper, (dev and container_dirs(store, dev["ID"]) or ("", ""))[1]):
        if d and os.path.ismount(os.path.join(os.path.dirname(d), "merged")):
            c.problem(f"{rel(os.path.join(os.path.dirname(d), 'merged'))} is still mounted: imagegraph umount it")
    view = store.union(new, extra_top=[upper, init])
    c.need_served_by(view, "/etc/app.conf", rel(top), "prod's merged view", "a new container sees the committed change")
    c.need_hidden(view, "/etc/os-release", "prod's merged view", "the committed whiteout hides the base's file")
    c.need_file(rel(init + "/etc/hostname"), "prod gets its own init layer, with its own placeholders", "")
    c.need_file(
        rel(os.path.join(store.root, "containers", prod["ID"], "hostname")),
        "prod has its own hostname, its short ID, kept beside its record",
        prod["ID"][:12] + "\n",
    )
    return c.problems


def exercise_1(folder: str) -> list[str]:
    """The same top layer committed again: no new layer, but a new image."""
    c = Checker(folder)
    store = store_or_problem(c, folder, "do the exercise in a copy of the lab's folder (cp -a ../lab07 .)")
    if store is None:
        return c.problems
    first, again = store.image_id("tiny-app"), store.image_id("tiny-app2")
    if again is None:
        c.problem("no image tagged tiny-app2:latest: the exercise commits dev again as tiny-app2")
        return c.problems
    if first is not None:
        layers = store.config(first).get("rootfs", {}).get("diff_ids", [])
        if store.config(again).get("rootfs", {}).get("diff_ids", []) != layers:
            c.problem("tiny-app2's layers are not tiny-app's: commit dev again without changing anything")
    if len(store.layer_ids()) != 2:
        c.problem(
            f"the store holds {len(store.layer_ids())} layers, expected 2: the same top layer makes the same "
            f"layer, stored once"
        )
    return c.problems


def exercise_2(folder: str) -> list[str]:
    """A write to /etc/hosts in the container is committed with the top layer."""
    c = Checker(folder)
    store = store_or_problem(c, folder, "do the exercise in a copy of the lab's folder (cp -a ../lab07 .)")
    if store is None:
        return c.problems
    leaky = store.image_id("leaky")
    if leaky is None:
        c.problem("no image tagged leaky:latest: the exercise commits dev as leaky")
        return c.problems
    top = store.diff_dirs(leaky)[-1]
    rel = os.path.relpath(top + "/etc/hosts", folder)
    if c.need_file(rel, "the changed /etc/hosts was copied into dev's top layer, so commit packs it"):
        with open(top + "/etc/hosts", encoding="utf-8", errors="replace") as f:
            if not f.read().strip():  # the init layer's placeholder is empty: any line is the student's
                c.problem(f"{rel} has no line of yours: append one through the mount before the commit")
    return c.problems


def exercise_3(folder: str) -> list[str]:
    """rm dev: its two layer directories go; tiny-app and prod stay."""
    c = Checker(folder)
    store = store_or_problem(c, folder, "do the exercise in a copy of the lab's folder (cp -a ../lab07 .)")
    if store is None:
        return c.problems
    if container_named(store, "dev") is not None:
        c.problem("container dev still exists: the exercise runs imagegraph rm dev")
    if store.image_id("tiny-app") is None:
        c.problem("no image tagged tiny-app:latest: removing the container it was committed from keeps it")
    prod = container_named(store, "prod")
    if prod is None:
        c.problem("no container named prod: the copy of the lab's folder has it")
    root = os.path.join(store.root, "layerfs")
    dirs = sorted(os.listdir(root)) if os.path.isdir(root) else []
    owned = {os.path.basename(os.path.dirname(p)) for p in store.diff_dirs(store.image_id("tiny-app") or "")}
    for container in store.containers():
        owned |= {os.path.basename(os.path.dirname(d)) for d in container_dirs(store, container["ID"]) or ()}
    extra = [d for d in dirs if d not in owned]
    if extra:
        shown = ", ".join(e[:12] + "…" for e in extra)
        c.problem(f"store/layerfs still has {shown}, which no image or container uses: rm removes dev's two layers")
    return c.problems


EXERCISES = {1: exercise_1, 2: exercise_2, 3: exercise_3}
