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


def _wh_files(c: Checker, layer: str) -> list[str]:
    """`.wh.` names anywhere in `layer` (relative to the lab folder)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(c.path(layer)):
        for name in dirnames + filenames:
            if name.startswith(".wh."):
                found.append(os.path.relpath(os.path.join(dirpath, name), c.folder))
    return sorted(found)


def _overlay_marks(c: Checker, upper: str, opaque_dir: str = "conf.d") -> None:
    """`upper` holds the lab's changes in the kernel's encoding, and nothing of the other."""
    if not c.need_dir(upper, "step 4/5 makes it as the OverlayFS upper layer"):
        return
    c.need_file(f"{upper}/conf.d/c.conf", "the new conf.d's only file is written into the upper", "c\n")
    if os.path.isdir(c.path(f"{upper}/{opaque_dir}")) and not _opaque_xattr(c.path(f"{upper}/{opaque_dir}")):
        c.problem(
            f"{upper}/{opaque_dir} has no overlay.opaque=y attribute: without it image/conf.d/a.conf and b.conf show "
            f"through again"
        )
    c.need_char_whiteout(
        upper, "data/x", "rm of a lower file leaves a whiteout (a 0/0 character device in this encoding)"
    )
    for path in _wh_files(c, upper):
        c.problem(
            f"{path} is a .wh. name in an OverlayFS layer: the kernel's encoding has no .wh. marks (a 0/0 device "
            f"and an overlay.opaque attribute instead); the kernel shows it as an ordinary file"
        )


def _image_unchanged(c: Checker) -> None:
    ro = "the read-only layer never changes; deletes are marks in the layer above"
    c.need_only("image", {"conf.d", "data"}, ro)
    c.need_only("image/conf.d", {"a.conf", "b.conf"}, ro)
    c.need_only("image/data", {"x", "y"}, ro)


def check(folder: str) -> list[str]:
    c = Checker(folder)
    if not (c.need_dir("image", "step 1 makes it") and c.need_dir("top", "step 1 makes it")):
        return c.problems
    _image_unchanged(c)
    c.need_unmounted("mnt", "unmount it (umount ./mnt)")

    c.need_file(
        "top/conf.d/.wh..wh..opq",
        "mkdir over a deleted lower directory must make it opaque, or image/conf.d/a.conf and b.conf show through",
    )
    c.need_file("top/conf.d/c.conf", "the new conf.d's only file", "c\n")
    c.need_whiteout("top", "data/x", "rm of a lower file leaves .wh.x in the top layer")
    c.need_absent("top/conf.d/.wh.a.conf", "an opaque directory needs no whiteouts for the names it hides")
    c.need_dir("top/.wh..wh.work", "the mount (step 1) makes its work folder there: without it, nothing was mounted")
    events = c.trace_events("trace.log", "the mount of step 1 writes it (trace=./trace.log)")
    if events is not None:
        c.need_traced(events, "trace.log", "opaque", "/conf.d", "the opaque mark must come from the mount's mkdir")
        c.need_traced(events, "trace.log", "whiteout", "/data/x", "the whiteout must come from the mount's rm")
    for label, options in ((AUFS, AUFS), (OVERLAY, OVERLAY)):
        if label == OVERLAY and not os.path.isdir(c.path("upper")):
            continue
        union = c.union(options, "the lab's union")
        if union is not None:
            c.need_listing(union, "/conf.d", ["c.conf"], label, "the old conf.d is hidden by the opaque mark")
            c.need_listing(union, "/data", ["y"], label, "x is hidden by its whiteout")
    _overlay_marks(c, "upper")
    if os.path.isdir(c.path("upper")):
        c.need_dir("work/work", "the OverlayFS-style mount (step 4) makes it: without it, upper/ was made by hand")
    if os.path.isdir(c.path("kupper")):
        _overlay_marks(c, "kupper")
    return c.problems


def exercise_1(folder: str) -> list[str]:
    """rm -rf leaves one whiteout for the directory; the new directory is opaque."""
    c = Checker(folder)
    if not (c.need_dir("image", "a copy of the lab's image") and c.need_dir("top", "a fresh top layer")):
        return c.problems
    _image_unchanged(c)
    c.need_dir("top/.wh..wh.work", "the mount makes its work folder there: without it, nothing was mounted")
    c.need_file("top/conf.d/.wh..wh..opq", "mkdir over the whiteout of a lower directory makes it opaque")
    c.need_absent("top/.wh.conf.d", "the new directory replaced the directory's whiteout")
    c.need_only("top/conf.d", {".wh..wh..opq"}, "rm -rf then mkdir: the new conf.d is empty and opaque")
    c.need_unmounted("mnt", "unmount it (umount ./mnt)")
    union = c.union(AUFS, "the exercise's union")
    if union is not None:
        c.need_listing(union, "/conf.d", [], AUFS, "the opaque mark hides a.conf and b.conf")
    return c.problems


def exercise_2(folder: str) -> list[str]:
    """In the kernel's encoding, the whiteout of y is a 0/0 device, not a .wh. file."""
    c = Checker(folder)
    if not (c.need_dir("image", "a copy of the lab's image") and c.need_dir("upper", "a copy of the lab's upper")):
        return c.problems
    _image_unchanged(c)
    c.need_char_whiteout("upper", "data/y", "the exercise ends with mknod upper/data/y c 0 0")
    c.need_unmounted("mnt", "unmount it (umount ./mnt)")
    union = c.union(OVERLAY, "the exercise's union")
    if union is not None:
        c.need_listing(union, "/data", [], OVERLAY, "x and y are both whited out now, as the kernel reads them")
    return c.problems


def exercise_3(folder: str) -> list[str]:
    """top/ converted by hand to the kernel's encoding: the same merged view."""
    c = Checker(folder)
    if not c.need_dir("upper2", "the exercise builds it"):
        return c.problems
    c.need_only("upper2", {"conf.d", "data"}, "the same changes as the lab's top/, and nothing else")
    c.need_only("upper2/conf.d", {"c.conf"}, "the opaque mark is an attribute in this encoding, not a file")
    _overlay_marks(c, "upper2")
    options = "lowerdir=./upper2:../lab04/image"
    union = c.union(options, "the converted layer on the lab's image")
    if union is not None:
        c.need_listing(union, "/conf.d", ["c.conf"], options, "the same view as the aufs-encoded top/")
        c.need_listing(union, "/data", ["y"], options, "the same view as the aufs-encoded top/")
    return c.problems


EXERCISES = {1: exercise_1, 2: exercise_2, 3: exercise_3}
