"""Lab 04 (whiteouts and opaque dirs): the same changes in both encodings, image/ unchanged."""

from __future__ import annotations

import os

from . import Checker

AUFS = "br=./top=ro+wh:./image=ro"
OVERLAY = "lowerdir=./upper:./image"


def _opaque_xattr(path: str) -> bool:
    for name in ("trusted.overlay.opaque", "user.overlay.opaque"):
        try:
            if os.getxattr(path, name, follow_symlinks=False) == b"y":
                return True
        except OSError:
            pass
    return False


def _overlay_marks(c: Checker, upper: str) -> None:
    """`upper` holds the lab's changes in the kernel's encoding."""
    if not c.need_dir(upper, "step 4/5 makes it as the OverlayFS upper layer"):
        return
    c.need_file(f"{upper}/conf.d/c.conf", "the new conf.d's only file is written into the upper", "c\n")
    if os.path.isdir(c.path(f"{upper}/conf.d")) and not _opaque_xattr(c.path(f"{upper}/conf.d")):
        c.problem(
            f"{upper}/conf.d has no overlay.opaque=y attribute: "
            "without it image/conf.d/a.conf and b.conf show through again"
        )
    c.need_whiteout(upper, "data/x", "rm of a lower file leaves a whiteout (a 0/0 character device in this encoding)")
    c.need_absent(
        f"{upper}/conf.d/.wh..wh..opq", "the overlay encoding marks opaque dirs with an xattr, not a .wh. file"
    )


def check(folder: str) -> list[str]:
    c = Checker(folder)
    if not (c.need_dir("image", "step 1 makes it") and c.need_dir("top", "step 1 makes it")):
        return c.problems
    ro = "the read-only layer never changes; deletes are marks in the layer above"
    c.need_only("image", {"conf.d", "data"}, ro)
    c.need_only("image/conf.d", {"a.conf", "b.conf"}, ro)
    c.need_only("image/data", {"x", "y"}, ro)
    c.need_unmounted("mnt", "unmount it (umount ./mnt)")

    c.need_file(
        "top/conf.d/.wh..wh..opq",
        "mkdir over a deleted lower directory must make it opaque, or image/conf.d/a.conf and b.conf show through",
    )
    c.need_file("top/conf.d/c.conf", "the new conf.d's only file", "c\n")
    c.need_whiteout("top", "data/x", "rm of a lower file leaves .wh.x in the top layer")
    c.need_absent("top/conf.d/.wh.a.conf", "an opaque directory needs no whiteouts for the names it hides")
    for label, options in ((AUFS, AUFS), (OVERLAY, OVERLAY)):
        if label == OVERLAY and not os.path.isdir(c.path("upper")):
            continue
        union = c.union(options, "the lab's union")
        if union is not None:
            c.need_listing(union, "/conf.d", ["c.conf"], label, "the old conf.d is hidden by the opaque mark")
            c.need_listing(union, "/data", ["y"], label, "x is hidden by its whiteout")
    _overlay_marks(c, "upper")
    if os.path.isdir(c.path("kupper")):
        _overlay_marks(c, "kupper")
    return c.problems
