"""Lab 05 (images, parents and bases): the seed's chain, parents on disk, each layer stored once."""

from __future__ import annotations

import os

from . import Checker
from .store import Store, store_or_problem

# image -> (parent, the file its own layer adds)
CHAIN = {
    "image_0": (None, "/etc/layer"),
    "image_1": ("image_0", "/lib/libc.so"),
    "image_3": ("image_1", "/usr/bin/apt"),
    "ubuntu": ("image_3", "/etc/debian_version"),
    "mysql": ("ubuntu", "/usr/sbin/mysqld"),
    "nginx": ("ubuntu", "/usr/sbin/nginx"),
}


LAB_STORE = (
    "step 1 sets IMAGEGRAPH_ROOT=~/layerlab/lab05/store before the first imagegraph command (for an "
    "exercise: a copy of the lab's folder, and its store)"
)


def _layer_count(c: Checker, store: Store, want: int, why: str) -> None:
    layers = store.layer_ids()
    if len(layers) != want:
        c.problem(f"the store holds {len(layers)} layers, expected {want}: {why}")
    root = os.path.join(store.root, "layerfs")
    dirs = os.listdir(root) if os.path.isdir(root) else []
    if len(dirs) != want:
        c.problem(f"store/layerfs has {len(dirs)} directories, expected {want}: {why}")


def check(folder: str) -> list[str]:
    c = Checker(folder)
    store = store_or_problem(c, folder, LAB_STORE)
    if store is None:
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
    if ids:
        _layer_count(c, store, len(CHAIN), "each distinct layer is stored once however many images use it")
    left = [k.get("Name", "?").lstrip("/") for k in store.containers()]
    if left:
        c.problem(f"containers left in the store: {', '.join(left)}: the build function removes each after commit")
    return c.problems


def _parent_of(c: Checker, store: Store, child: str, parent: str) -> None:
    child_id, parent_id = store.image_id(child), store.image_id(parent)
    if child_id is None:
        c.problem(f"no image tagged {child}:latest: the exercise builds it")
    elif parent_id is not None and store.parent(child_id) != parent_id:
        c.problem(f"{child}'s parent is not {parent}: build {child} from a container of {parent} (父镜像)")


def exercise_1(folder: str) -> list[str]:
    """rmi nginx frees its own layer; rmi ubuntu only untags an image that has a child."""
    c = Checker(folder)
    store = store_or_problem(c, folder, LAB_STORE)
    if store is None:
        return c.problems
    for name in ("nginx", "ubuntu"):
        if store.image_id(name) is not None:
            c.problem(f"{name}:latest is still tagged: the exercise runs imagegraph rmi {name}")
    mysql = store.image_id("mysql")
    if mysql is None:
        c.problem("no image tagged mysql:latest: the exercise removes nginx and ubuntu only")
        return c.problems
    ubuntu = store.parent(mysql)
    if not ubuntu or not store.config(ubuntu):
        c.problem("ubuntu's image is gone: rmi of an image with a child only untags it (mysql still needs it)")
    _layer_count(c, store, 5, "nginx's own layer goes; the four below it are ubuntu's and mysql's")
    return c.problems


def exercise_2(folder: str) -> list[str]:
    """Two more children: image_2 under image_1, image_3b under image_2, two more layers."""
    c = Checker(folder)
    store = store_or_problem(c, folder, LAB_STORE)
    if store is None:
        return c.problems
    _parent_of(c, store, "image_2", "image_1")
    _parent_of(c, store, "image_3b", "image_2")
    for name, added in (("image_2", "/media/tv"), ("image_3b", "/opt/app")):
        image_id = store.image_id(name)
        if image_id is not None and not store.union(image_id).exists(added):
            c.problem(f"{name}'s rootfs has no {added}: its own layer should add it")
    _layer_count(c, store, 8, "two new layers; image_1's two are shared, not copied")
    left = [k.get("Name", "?").lstrip("/") for k in store.containers()]
    if left:
        c.problem(f"containers left in the store: {', '.join(left)}: the build function removes each after commit")
    return c.problems


def exercise_3(folder: str) -> list[str]:
    """The same directory imported again: a new image on the layer the store already has."""
    c = Checker(folder)
    store = store_or_problem(c, folder, LAB_STORE)
    if store is None:
        return c.problems
    base, other = store.image_id("image_0"), store.image_id("other_base")
    if other is None:
        c.problem("no image tagged other_base:latest: the exercise imports ./base again as other_base")
        return c.problems
    if base is not None:
        if other == base:
            c.problem("other_base has image_0's ID: import it with another message (-m 'another base')")
        layers = store.config(other).get("rootfs", {}).get("diff_ids", [])
        if layers != store.config(base).get("rootfs", {}).get("diff_ids", []):
            c.problem("other_base's layer is not image_0's: import the same ./base, unchanged")
    if store.parent(other):
        c.problem("other_base has a parent: an import makes a base image")
    _layer_count(c, store, 6, "the same files make the same layer, stored once")
    return c.problems


EXERCISES = {1: exercise_1, 2: exercise_2, 3: exercise_3}
