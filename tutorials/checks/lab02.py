"""Lab 02 (the union mount): the two branches, the seed's merged view, the overlay-style upper."""

from __future__ import annotations

from . import Checker

SEED = "dirs=./fruits:./vegetables"
OVERLAY = "lowerdir=./fruits:./vegetables,upperdir=./upper,workdir=./work"
SWAPPED = "dirs=./vegetables:./fruits"


def _branches(c: Checker) -> bool:
    return all([c.need_dir("fruits", "step 1 makes it"), c.need_dir("vegetables", "step 1 makes it")])


def check(folder: str) -> list[str]:
    c = Checker(folder)
    if not _branches(c):
        return c.problems
    c.need_file("fruits/apple", "step 1 writes it", "apple, from fruits\n")
    c.need_file("fruits/tomato", "the seed's merged tomato comes from here", "tomato, from fruits\n")
    c.need_file("vegetables/carrots", "step 1 writes it", "carrots, from vegetables\n")
    c.need_file("vegetables/tomato", "it must stay, hidden under fruits/tomato", "tomato, from vegetables\n")
    c.need_only(
        "vegetables",
        {"carrots", "tomato"},
        "vegetables is a read-only branch in every mount of this lab, so nothing may appear in it",
    )
    c.need_only("fruits", {"apple", "tomato"}, "only the seed's files belong in fruits", allowed={".wh..wh.work"})
    c.need_dir(
        "fruits/.wh..wh.work",
        "the seed's mount (step 2) makes this work folder in its writable branch: without it, nothing was mounted",
    )
    c.need_unmounted(
        "mnt", "unmount it (umount ./mnt); files in an unmounted mnt were written beside the union, not into it"
    )

    seed = c.union(SEED, "the seed's union")
    if seed is not None:
        c.need_listing(seed, "/", ["apple", "carrots", "tomato"], SEED, "the seed's tree ./mnt shows these three")
        c.need_served_by(seed, "/tomato", "fruits", SEED, "the first branch in dirs= is the top")
        c.need_served_by(seed, "/carrots", "vegetables", SEED, "only vegetables has carrots")

    if c.need_dir("upper", "step 5 makes it for the OverlayFS-style mount") and c.need_dir(
        "work", "OverlayFS needs a work directory beside the upper"
    ):
        c.need_dir("work/work", "the OverlayFS-style mount (step 5) makes it: without it, nothing was mounted")
        c.need_file(
            "upper/kiwi",
            "step 5 writes kiwi through the OverlayFS-style mount; writes land in upperdir",
            "kiwi, written through the mount\n",
        )
        c.need_absent("fruits/kiwi", "with a separate upperdir nothing is written into a lower layer")
        overlay = c.union(OVERLAY, "the OverlayFS-style union")
        if overlay is not None:
            c.need_listing(
                overlay,
                "/",
                [".wh..wh.work", "apple", "carrots", "kiwi", "tomato"],
                "lowerdir=./fruits:./vegetables",
                "the two lower layers plus the upper (and the aufs mount's work folder in fruits: in OverlayFS's "
                "encoding a .wh. name is an ordinary name, as the kernel shows it)",
            )
            c.need_served_by(
                overlay, "/tomato", "fruits", "lowerdir=./fruits:./vegetables", "the leftmost lowerdir is the top"
            )
            c.need_served_by(overlay, "/kiwi", "upper", "lowerdir=./fruits:./vegetables", "new files go to the upper")
    return c.problems


def _untouched(c: Checker, *, tomato: bool = True) -> None:
    c.need_file("vegetables/tomato", "a lower branch never changes", "tomato, from vegetables\n")
    c.need_file("vegetables/carrots", "a lower branch never changes", "carrots, from vegetables\n")
    if tomato:
        c.need_file("fruits/tomato", "the copy of the lab's fruits", "tomato, from fruits\n")
    c.need_unmounted("mnt", "unmount it (umount ./mnt)")


def exercise_1(folder: str) -> list[str]:
    """lowerdir= alone: fruits on top, and a read-only mount."""
    c = Checker(folder)
    if not _branches(c):
        return c.problems
    _untouched(c)
    c.need_file("tomato.txt", "cat mnt/tomato > tomato.txt: the leftmost lowerdir is the top", "tomato, from fruits\n")
    if c.need_file("write.txt", "touch mnt/x 2> write.txt keeps the error"):
        with open(c.path("write.txt"), encoding="utf-8", errors="replace") as f:
            if "Read-only file system" not in f.read():
                c.problem(
                    "write.txt does not say 'Read-only file system': without upperdir the whole mount is read-only"
                )
    for branch in ("fruits", "vegetables"):
        c.need_absent(f"{branch}/x", "a mount without upperdir writes nothing anywhere")
    return c.problems


def exercise_2(folder: str) -> list[str]:
    """rm through dirs=: a whiteout in the writable branch hides every tomato below."""
    c = Checker(folder)
    if not _branches(c):
        return c.problems
    _untouched(c, tomato=False)
    c.need_absent("fruits/tomato", "rm mnt/tomato removes the writable branch's own copy")
    c.need_read_only_whiteout("fruits/.wh.tomato", "rm mnt/tomato through the mount")
    seed = c.union(SEED, "the exercise's union")
    if seed is not None:
        c.need_listing(seed, "/", ["apple", "carrots"], SEED, "the whiteout hides vegetables/tomato too")
    return c.problems


def exercise_3(folder: str) -> list[str]:
    """The prediction without a mount, and the mount, agree; vegetables is now on top."""
    c = Checker(folder)
    if not _branches(c):
        return c.problems
    _untouched(c)
    c.need_dir(
        "vegetables/.wh..wh.work",
        "with dirs=./vegetables:./fruits, vegetables is the writable branch: the mount makes its work folder there",
    )
    predicted = c.union("lowerdir=./vegetables:./fruits", "the prediction")
    if predicted is not None:
        c.need_tree_file(
            "predicted.txt",
            predicted,
            "layerfs tree -o lowerdir=./vegetables:./fruits --label ./mnt > predicted.txt",
            "./mnt",
            origin=False,
        )
    swapped = c.union(SWAPPED, "the swapped union")
    if swapped is not None:
        c.need_served_by(swapped, "/tomato", "vegetables", SWAPPED, "the first branch in dirs= is the top")
        c.need_tree_file("mounted.txt", swapped, "tree ./mnt > mounted.txt (while mounted)", "./mnt", origin=False)
    return c.problems


EXERCISES = {1: exercise_1, 2: exercise_2, 3: exercise_3}
