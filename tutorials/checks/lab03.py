"""Lab 03 (copy-on-write): copy-ups and whiteouts in top/, image/ byte for byte unchanged."""

from __future__ import annotations

import os

from . import Checker

UNION = "dirs=./top=rw:./image=ro"
BIG = 1048576
RO = "the read-only layer never changes (只读层永远不会变)"
BY_HAND = "the mount's trace of it is missing: was it made by hand? (step 1 mounts with trace=./trace.log)"


def _image_unchanged(c: Checker) -> None:
    c.need_only("image", {"big.bin", "etc", "secret.txt"}, RO)
    c.need_only("image/etc", {"app.conf", "hosts"}, RO)
    c.need_file("image/etc/app.conf", RO + "; the write went to the copy in top/", "port=80\n")
    c.need_file("image/etc/hosts", RO, "127.0.0.1 localhost\n")
    c.need_file("image/secret.txt", "a delete only hides a file of a lower layer; its bytes stay", "password=hunter2\n")
    if c.need_file("image/big.bin", "deleting does not shrink a read-only layer"):
        st = os.stat(c.path("image/big.bin"))
        if st.st_size != BIG or st.st_mode & 0o777 != 0o644:
            c.problem(
                f"image/big.bin is {st.st_size} bytes, mode {st.st_mode & 0o777:o}; expected {BIG} bytes, "
                f"mode 644: {RO}, the chmod belongs to the copy-up"
            )


def check(folder: str) -> list[str]:
    c = Checker(folder)
    if not (
        c.need_dir("image", "step 1 makes the read-only layer") and c.need_dir("top", "step 1 makes the top layer")
    ):
        return c.problems
    _image_unchanged(c)

    c.need_file("top/etc/app.conf", "writing a lower file copies it up, then writes the copy", "port=80\nport=8080\n")
    c.need_file("top/etc/hosts", "an open for writing copies up even if nothing is written", "127.0.0.1 localhost\n")
    c.need_whiteout("top", "secret.txt", "rm of a lower file leaves a whiteout in the top layer")
    c.need_whiteout("top", "big.bin", "rm of the copied-up big.bin must still hide image/big.bin")
    c.need_absent("top/big.bin", "deleting the copied-up file removes the copy; only the whiteout stays")
    c.need_only(
        "top",
        {"etc", ".wh.secret.txt", ".wh.big.bin"},
        "the top layer holds only the lab's changes",
        allowed={".wh..wh.work"},
    )
    c.need_dir("top/.wh..wh.work", "the mount makes its work folder in the writable branch: " + BY_HAND)
    c.need_unmounted("mnt", "unmount it (umount ./mnt)")

    events = c.trace_events("trace.log", "the mount writes it (trace=./trace.log)")
    if events is not None:
        for event, path in (
            ("copy_up", "/etc/app.conf"),
            ("copy_up", "/etc/hosts"),
            ("whiteout", "/secret.txt"),
            ("copy_up", "/big.bin"),
            ("whiteout", "/big.bin"),
        ):
            c.need_traced(events, "trace.log", event, path, "every change in top/ is made by the mount: " + BY_HAND)

    union = c.union(UNION, "the lab's union")
    if union is not None:
        c.need_listing(union, "/", ["etc"], UNION, "secret.txt and big.bin were deleted through the mount")
        c.need_hidden(union, "/secret.txt", UNION, "its whiteout in top/ hides it")
        c.need_served_by(union, "/etc/app.conf", "top", UNION, "the changed file is the copy in the top layer")
    return c.problems


def exercise_1(folder: str) -> list[str]:
    """A new file over a whiteout: the whiteout goes, the top layer serves the new file."""
    c = Checker(folder)
    if not (c.need_dir("image", "a copy of the lab's image") and c.need_dir("top", "a copy of the lab's top")):
        return c.problems
    _image_unchanged(c)
    c.need_absent("top/.wh.secret.txt", "creating secret.txt through the mount removes its whiteout")
    c.need_file("top/secret.txt", "echo 'password=' > mnt/secret.txt writes into the top layer", "password=\n")
    c.need_unmounted("mnt", "unmount it (umount ./mnt)")
    union = c.union(UNION, "the exercise's union")
    if union is not None:
        c.need_served_by(union, "/secret.txt", "top", UNION, "the new file is in the top layer, above the old one")
    return c.problems


def exercise_2(folder: str) -> list[str]:
    """touch copies up: the trace says so, and top/ holds the copy."""
    c = Checker(folder)
    if not (c.need_dir("image", "a copy of the lab's image") and c.need_dir("top", "a fresh top layer")):
        return c.problems
    _image_unchanged(c)
    c.need_file("top/etc/hosts", "touch mnt/etc/hosts copies the file up", "127.0.0.1 localhost\n")
    c.need_absent("top/etc/app.conf", "on a fresh top layer only hosts was touched")
    events = c.trace_events("trace.log", "mount with trace=./trace.log")
    if events is not None:
        c.need_traced(events, "trace.log", "copy_up", "/etc/hosts", "the copy-up of touch must come from the mount")
    c.need_unmounted("mnt", "unmount it (umount ./mnt)")
    return c.problems


def exercise_3(folder: str) -> list[str]:
    """The image layer alone still has the secret."""
    c = Checker(folder)
    if not c.need_dir("image", "a copy of the lab's image"):
        return c.problems
    _image_unchanged(c)
    c.need_file("leaked.txt", "cat mnt/secret.txt > leaked.txt, with image mounted alone", "password=hunter2\n")
    c.need_unmounted("mnt", "unmount it (umount ./mnt)")
    return c.problems


EXERCISES = {1: exercise_1, 2: exercise_2, 3: exercise_3}
