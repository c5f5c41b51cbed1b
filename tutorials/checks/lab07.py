"""Lab 07 (commit): the new image is its parent plus the top layer, without the init layer's files."""

from __future__ import annotations

import os

from . import Checker
from .store import INIT_FILES, Store, container_dirs, container_named


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
