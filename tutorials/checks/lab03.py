"""Lab 03 (copy-on-write): copy-ups and whiteouts in top/, image/ byte for byte unchanged."""

from __future__ import annotations

import os

from . import Checker

UNION = "dirs=./top=rw:./image=ro"
BIG = 1048576


def check(folder: str) -> list[str]:
    c = Checker(folder)
    if not (
        c.need_dir("image", "step 1 makes the read-only layer") and c.need_dir("top", "step 1 makes the top layer")
    ):
        return c.problems
    ro = "the read-only layer never changes (只读层永远不会变)"
    c.need_only("image", {"big.bin", "etc", "secret.txt"}, ro)
    c.need_only("image/etc", {"app.conf", "hosts"}, ro)
    c.need_file("image/etc/app.conf", ro + "; the write went to the copy in top/", "port=80\n")
    c.need_file("image/etc/hosts", ro, "127.0.0.1 localhost\n")
    c.need_file("image/secret.txt", "a delete only hides a file of a lower layer; its bytes stay", "password=hunter2\n")
    if c.need_file("image/big.bin", "deleting does not shrink a read-only layer"):
        st = os.stat(c.path("image/big.bin"))
        if st.st_size != BIG or st.st_mode & 0o777 != 0o644:
            c.problem(
                f"image/big.bin is {st.st_size} bytes, mode {st.st_mode & 0o777:o}; expected {BIG} bytes, "
                f"mode 644: {ro}, the chmod belongs to the copy-up"
            )

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
    c.need_unmounted("mnt", "unmount it (umount ./mnt)")

    union = c.union(UNION, "the lab's union")
    if union is not None:
        c.need_listing(union, "/", ["etc"], UNION, "secret.txt and big.bin were deleted through the mount")
        c.need_hidden(union, "/secret.txt", UNION, "its whiteout in top/ hides it")
        c.need_served_by(union, "/etc/app.conf", "top", UNION, "the changed file is the copy in the top layer")
    return c.problems
