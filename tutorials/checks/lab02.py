"""Lab 02 (the union mount): the two branches, the seed's merged view, the overlay-style upper."""

from __future__ import annotations

from . import Checker

SEED = "dirs=./fruits:./vegetables"
OVERLAY = "lowerdir=./fruits:./vegetables,upperdir=./upper,workdir=./work"


def check(folder: str) -> list[str]:
    c = Checker(folder)
    if not all([c.need_dir("fruits", "step 1 makes it"), c.need_dir("vegetables", "step 1 makes it")]):
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
                ["apple", "carrots", "kiwi", "tomato"],
                "lowerdir=./fruits:./vegetables",
                "the two lower layers plus the upper",
            )
            c.need_served_by(
                overlay, "/tomato", "fruits", "lowerdir=./fruits:./vegetables", "the leftmost lowerdir is the top"
            )
            c.need_served_by(overlay, "/kiwi", "upper", "lowerdir=./fruits:./vegetables", "new files go to the upper")
    return c.problems
