"""Lab 06 (the container's layers): image layer untouched, init layer files, the top layer's changes."""

from __future__ import annotations

import os

from . import Checker
from .store import INIT_FILES, Store, container_dirs, container_named, store_or_problem


def check(folder: str) -> list[str]:
    c = Checker(folder)
    store = Store.find(folder)
    if store is None:
        c.problem("store/ is missing: step 1 sets IMAGEGRAPH_ROOT=~/layerlab/lab06/store before importing")
        return c.problems
    image_id = store.image_id("tiny")
    web = container_named(store, "web")
    if image_id is None:
        c.problem("no image tagged tiny:latest: step 1 imports ./rootfs as tiny")
    if web is None:
        c.problem("no container named web: step 1 creates it with imagegraph create --name web tiny /bin/sh")
    if image_id is None or web is None:
        return c.problems
    if web.get("Image") != image_id:
        c.problem(f"container web was made from {web.get('Image', '?')[:19]}, not tiny ({image_id[:19]})")
    image_dirs = store.diff_dirs(image_id)
    image_layer = image_dirs[-1] if image_dirs else ""

    def rel(p: str) -> str:
        return os.path.relpath(p, folder)

    c.need_file(
        rel(os.path.join(image_layer, "etc/os-release")),
        "the image's read-only layer (只读层) keeps os-release; the rm only whited it out",
        "NAME=tiny\n",
    )
    c.need_file(
        rel(os.path.join(image_layer, "etc/hosts")),
        "the image's own hosts stays in its layer, hidden by the init layer's",
        "127.0.0.1 from-the-image\n",
    )
    dirs = container_dirs(store, web["ID"])
    if dirs is None:
        c.problem("the store has no init-id/mount-id for web in layerdb/mounts: the container's layers are lost")
        return c.problems
    init, upper = dirs
    for name in INIT_FILES:
        c.need_file(rel(init + name), "create writes it into the init layer (初始化层), an empty placeholder", "")
    cdir = os.path.join(store.root, "containers", web["ID"])
    c.need_file(
        rel(os.path.join(cdir, "hostname")),
        "the container's real hostname (its short ID) lives beside its record, bind-mounted at start",
        web["ID"][:12] + "\n",
    )
    c.need_file(
        rel(upper + "/var/log/app.log"),
        "step 4 writes it through the merged view into the top layer (读写层)",
        "started\n",
    )
    c.need_whiteout(rel(upper), "etc/os-release", "step 4 deletes it through the merged view")
    for name in INIT_FILES:
        c.need_absent(
            rel(upper + name), "the lab never changes the init files; a change would copy them into the top layer"
        )
    merged = os.path.join(os.path.dirname(upper), "merged")
    if os.path.ismount(merged):
        c.problem(f"{rel(merged)} is still mounted: imagegraph umount web")
    try:
        view = store.union(image_id, extra_top=[upper, init])
    except (OSError, ValueError) as exc:
        c.problem(f"web's layers cannot be stacked ({exc})")
        return c.problems
    label = "web's merged view"
    c.need_hidden(view, "/etc/os-release", label, "its whiteout in the top layer hides it")
    c.need_served_by(view, "/etc/hosts", rel(init), label, "the init layer is above the image")
    c.need_served_by(view, "/var/log/app.log", rel(upper), label, "new files live in the top layer")
    c.need_served_by(view, "/bin/sh", rel(image_layer), label, "files nobody changed come from the image")
    return c.problems


def _web(c: Checker, folder: str) -> tuple[Store, dict] | None:
    store = store_or_problem(c, folder, "do the exercise in a copy of the lab's folder (cp -a ../lab06 .)")
    if store is None:
        return None
    web = container_named(store, "web")
    if web is None:
        c.problem("no container named web: the copy of the lab's folder has it")
        return None
    return store, web


def exercise_1(folder: str) -> list[str]:
    """A second container: an init layer of its own (empty placeholders), its own hostname."""
    c = Checker(folder)
    found = _web(c, folder)
    if found is None:
        return c.problems
    store, web = found
    web2 = container_named(store, "web2")
    if web2 is None:
        c.problem("no container named web2: imagegraph create --name web2 tiny /bin/sh")
        return c.problems
    if web2.get("Image") != store.image_id("tiny"):
        c.problem("web2 was not made from tiny")
    dirs, dirs2 = container_dirs(store, web["ID"]), container_dirs(store, web2["ID"])
    if dirs is None or dirs2 is None:
        c.problem("the store has no init-id/mount-id for web or web2 in layerdb/mounts")
        return c.problems
    rel = lambda p: os.path.relpath(p, folder)  # noqa: E731
    if dirs[0] == dirs2[0]:
        c.problem("web and web2 share one init layer: each container gets its own")
    c.need_file(rel(dirs2[0] + "/etc/hostname"), "web2's init layer has the same empty placeholder as web's", "")
    cdir2 = os.path.join(store.root, "containers", web2["ID"])
    c.need_file(rel(cdir2 + "/hostname"), "web2's real hostname is its own short ID", web2["ID"][:12] + "\n")
    return c.problems


def exercise_2(folder: str) -> list[str]:
    """A write to an init file copies it up into the top layer; the init layer is unchanged."""
    c = Checker(folder)
    found = _web(c, folder)
    if found is None:
        return c.problems
    store, web = found
    dirs = container_dirs(store, web["ID"])
    if dirs is None:
        c.problem("the store has no init-id/mount-id for web in layerdb/mounts")
        return c.problems
    init, upper = dirs
    rel = lambda p: os.path.relpath(p, folder)  # noqa: E731
    if c.need_file(rel(upper + "/etc/hosts"), "the write copies hosts up into the top layer (读写层)"):
        with open(upper + "/etc/hosts", encoding="utf-8", errors="replace") as f:
            text = f.read()
        if not text.endswith("10.0.0.2 db\n"):
            c.problem(f"{rel(upper + '/etc/hosts')} does not end with '10.0.0.2 db': append it through the mount")
    if os.path.isfile(init + "/etc/hosts"):
        with open(init + "/etc/hosts", encoding="utf-8", errors="replace") as f:
            if "10.0.0.2 db" in f.read():
                c.problem(f"{rel(init + '/etc/hosts')} has the new line: the init layer is read-only for the container")
    merged = os.path.join(os.path.dirname(upper), "merged")
    if os.path.ismount(merged):
        c.problem(f"{rel(merged)} is still mounted: imagegraph umount web")
    return c.problems


def exercise_3(folder: str) -> list[str]:
    """The image's layer alone: no init files in it."""
    c = Checker(folder)
    c.need_file("image-only.txt", "ls -A mnt > image-only.txt, with tiny's layer mounted alone", "bin\netc\nvar\n")
    c.need_unmounted("mnt", "unmount it (umount ./mnt)")
    return c.problems


EXERCISES = {1: exercise_1, 2: exercise_2, 3: exercise_3}
