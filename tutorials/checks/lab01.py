"""Lab 01 (rootfs and layers): the seed's three layers, their merged rootfs, the top layer."""

from __future__ import annotations

from . import Checker

LAYERS = {
    "image_1": {"var", "boot", "proc"},
    "image_2": {"media", "opt", "home"},
    "image_n": {"lib", "etc"},
}
ROOTFS = "lowerdir=./image_n:./image_2:./image_1"
WITH_TOP = ROOTFS + ",upperdir=./upper,workdir=./work"


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
