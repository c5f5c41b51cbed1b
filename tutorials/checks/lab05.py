"""Lab 05 (images, parents and bases): the seed's chain, parents on disk, each layer stored once."""

from __future__ import annotations

import os

from . import Checker
from .store import Store

# image -> (parent, the file its own layer adds)
CHAIN = {
    "image_0": (None, "/etc/layer"),
    "image_1": ("image_0", "/lib/libc.so"),
    "image_3": ("image_1", "/usr/bin/apt"),
    "ubuntu": ("image_3", "/etc/debian_version"),
    "mysql": ("ubuntu", "/usr/sbin/mysqld"),
    "nginx": ("ubuntu", "/usr/sbin/nginx"),
}


def check(folder: str) -> list[str]:
    c = Checker(folder)
    store = Store.find(folder)
    if store is None:
        c.problem(
            "store/ is missing (or has no image/layerfs): step 1 sets IMAGEGRAPH_ROOT=~/layerlab/lab05/store "
            "before the first imagegraph command"
        )
        return c.problems
    ids = {}
    for name in CHAIN:
        image_id = store.image_id(name)
        if image_id is None:
            c.problem(f"no image tagged {name}:latest in the store: step 1/2 makes it")
        else:
            ids[name] = image_id
    for name, (parent, added) in CHAIN.items():
        if name not in ids:
            continue
        have = store.parent(ids[name])
        if parent is None and have:
            c.problem(f"{name} has a parent ({have[:19]}): a base image (基础镜像) is imported, not committed")
        elif parent in ids and have != ids[parent]:
            c.problem(
                f"{name}'s parent is {(have or 'none')[:19]}, expected {parent} ({ids[parent][:19]}): "
                f"{name} must be built from a container of {parent} (父镜像)"
            )
        diff_ids = store.config(ids[name]).get("rootfs", {}).get("diff_ids", [])
        if parent in ids:
            below = store.config(ids[parent]).get("rootfs", {}).get("diff_ids", [])
            if diff_ids[: len(below)] != below or len(diff_ids) != len(below) + 1:
                c.problem(
                    f"{name} has {len(diff_ids)} layers that do not start with {parent}'s {len(below)}: "
                    f"a child is its parent's layers plus exactly one of its own"
                )
        try:
            union = store.union(ids[name])
        except (OSError, ValueError) as exc:
            c.problem(f"{name}'s layers cannot be stacked ({exc}): its layer directories in store/layerfs are damaged")
            continue
        if not union.exists(added):
            c.problem(f"{name}'s rootfs has no {added}: its own layer should add it")
        sibling = "/usr/sbin/nginx" if name == "mysql" else "/usr/sbin/mysqld" if name == "nginx" else None
        if sibling and union.exists(sibling):
            c.problem(f"{name}'s rootfs has {sibling}: siblings share their parent's layers, never each other's")
    layers = store.layer_ids()
    if ids and len(layers) != len(CHAIN):
        c.problem(
            f"the store holds {len(layers)} layers, expected {len(CHAIN)}: each distinct layer is stored "
            f"once however many images use it"
        )
    cache_dirs = (
        os.listdir(os.path.join(store.root, "layerfs")) if os.path.isdir(os.path.join(store.root, "layerfs")) else []
    )
    if ids and len(cache_dirs) != len(CHAIN):
        c.problem(
            f"store/layerfs has {len(cache_dirs)} directories, expected {len(CHAIN)}: "
            f"leftover container layers (imagegraph rm the build containers)"
        )
    left = [k.get("Name", "?").lstrip("/") for k in store.containers()]
    if left:
        c.problem(f"containers left in the store: {', '.join(left)}: the build function removes each after commit")
    return c.problems
