"""Lab 01 (rootfs and layers): the seed's three layers, their merged rootfs, the top layer."""

from __future__ import annotations

from . import Checker

LAYERS = {
    "image_1": {"var", "boot", "proc"},
    "image_2": {"media", "opt", "home"},
    "image_n": {"lib", "etc"},
}
ROOTFS = "lowerdir=./image_n:./image_2:./image_1"
REVERSED = "lowerdir=./image_1:./image_2:./image_n"
WITH_TOP = ROOTFS + ",upperdir=./upper,workdir=./work"
OTHER = "lowerdir=./image_m:../lab01/image_2:../lab01/image_1"
MOUNTED = "the mount makes work/work (copies are built there): without it, upper/ was not written through a mount"


def check(folder: str) -> list[str]:
    c = Checker(folder)
    present = [c.need_dir(layer, f"the seed's {layer} layer") for layer in LAYERS]
    if not all(present):
        return c.problems
    for layer, names in LAYERS.items():
        c.need_only(layer, names, f"the seed puts {' '.join('/' + n for n in sorted(names))} in {layer}")
    c.need_file("image_1/var/README", "step 1 writes it, to show which layer serves /var", "image_1 was here\n")
    c.need_file("image_n/etc/README", "step 1 writes it, to show which layer serves /etc", "image_n was here\n")
    c.need_absent(
        "image_n/etc/motd", "a read-only layer (只读层) never changes; the container's write belongs in upper/etc/motd"
    )
    c.need_unmounted("rootfs", "unmount it (umount ./rootfs); the merged rootfs exists only while mounted")

    rootfs = c.union(ROOTFS, "the seed's read-only rootfs")
    if rootfs is not None:
        c.need_listing(
            rootfs,
            "/",
            sorted(set().union(*LAYERS.values())),
            ROOTFS,
            "the merged rootfs holds every layer's part of /",
        )
        for path, layer in (("/etc", "image_n"), ("/home", "image_2"), ("/var", "image_1")):
            c.need_served_by(rootfs, path, layer, ROOTFS, f"only {layer} has {path}")

    if c.need_dir("upper", "step 4 adds a read-write top layer") and c.need_dir("work", "OverlayFS's work directory"):
        c.need_dir("work/work", MOUNTED)
        c.need_only("upper", {"etc"}, "the only write in the lab is rootfs/etc/motd")
        c.need_file(
            "upper/etc/motd",
            "the write through the mount lands in the top layer (读写层)",
            "written in the container\n",
        )
        top = c.union(WITH_TOP, "the rootfs with its top layer")
        if top is not None:
            c.need_served_by(top, "/etc/motd", "upper", "with upperdir", "new files are served by the top layer")
            c.need_served_by(
                top,
                "/etc/README",
                "image_n",
                "with upperdir",
                "files nobody changed are still served by the read-only layer",
            )
    return c.problems


def exercise_1(folder: str) -> list[str]:
    """The order of the layers, once two layers share a name."""
    c = Checker(folder)
    present = [c.need_dir(layer, "a copy of the lab's layer") for layer in LAYERS]  # each missing one named
    if not all(present):
        return c.problems
    c.need_file("image_1/etc/README", "the exercise gives image_1 an /etc/README too", "image_1 was here\n")
    c.need_file("image_n/etc/README", "the copy of the lab's image_n keeps its README", "image_n was here\n")
    for options, name, top in ((ROOTFS, "seed-order.txt", "image_n"), (REVERSED, "reversed.txt", "image_1")):
        union = c.union(options, "the exercise's stack")
        if union is None:
            continue
        c.need_served_by(union, "/etc/README", top, options, "the first layer in lowerdir= that has a name serves it")
        c.need_tree_file(name, union, f"layerfs tree --origin -o {options} > {name}")
    return c.problems


def exercise_2(folder: str) -> list[str]:
    """The top layer keeps its files from one mount to the next; a delete leaves a whiteout."""
    c = Checker(folder)
    present = [c.need_dir(d, "a copy of the lab's layers") for d in [*LAYERS, "upper", "work"]]
    if not all(present):
        return c.problems
    c.need_file("image_n/etc/README", "a read-only layer never changes: rm only hides its README", "image_n was here\n")
    c.need_file("upper/etc/motd", "the top layer keeps what was written into it", "written in the container\n")
    c.need_whiteout("upper", "etc/README", "rm rootfs/etc/README through the mount leaves a whiteout in the top layer")
    c.need_unmounted("rootfs", "unmount it (umount ./rootfs)")
    union = c.union(WITH_TOP, "the rootfs with its top layer")
    if union is not None:
        c.need_hidden(union, "/etc/README", "with upperdir", "its whiteout in upper/ hides it")
        c.need_served_by(union, "/etc/motd", "upper", "with upperdir", "the top layer serves what was written")
    return c.problems


def exercise_3(folder: str) -> list[str]:
    """A second distribution's rootfs on the same lower layers: no bootfs, no copies."""
    c = Checker(folder)
    if not c.need_dir("image_m", "the other distribution's top layer"):
        return c.problems
    c.need_file("image_m/etc/os-release", "the exercise writes it", "NAME=other\n")
    c.need_only("image_m", {"etc"}, "the other distribution differs from the lab's only in /etc")
    for layer in ("image_1", "image_2"):
        c.need_absent(layer, f"the second rootfs shares ../lab01/{layer}: a layer is used, not copied")
    c.need_unmounted("rootfs", "unmount it (umount ./rootfs)")
    union = c.union(OTHER, "the other distribution's rootfs")
    if union is not None:
        c.need_listing(union, "/boot", [], OTHER, "an image has no bootfs: the container runs on the host's kernel")
        c.need_served_by(union, "/etc/os-release", "image_m", OTHER, "only image_m has it")
        c.need_served_by(union, "/var", "../lab01/image_1", OTHER, "the lab's image_1 is shared, not copied")
    return c.problems


EXERCISES = {1: exercise_1, 2: exercise_2, 3: exercise_3}
