"""Inode numbers and hard links against the kernel (issue 11): the views compare st_ino as labels
(the lower object a number belongs to, else the first path with it) and st_dev against the
root's, so each sequence here checks every name of a hard link shares one number, a file keeps
its number across copy-up and rename, directories keep theirs, and a lower hard link broken by a
copy-up gets a number of its own, in process and through FUSE.

Before issue 11 layerfs reported the serving layer's number (new on copy-up) and, through FUSE,
libfuse's per-name node numbers: two names of one file had two numbers.
"""

from __future__ import annotations

import os

import pytest

from ..layers import Item, Stack
from ..replay import replay

pytestmark = pytest.mark.kernel_overlay

# A layer with a hard-linked file, a plain file and a directory; a second layer merging the dir.
STACK = Stack(
    [
        [
            Item("file", ("a",), b"linked"),
            Item("hardlink", ("b",), target="0"),
            Item("file", ("c",), b"plain"),
            Item("dir", ("d",)),
            Item("file", ("d", "x"), b"x"),
        ],
        [Item("dir", ("d",)), Item("file", ("d", "y"), b"y")],
    ]
)

SEQUENCES = {
    "copy-up keeps the number, rename too": [
        ("open", (0, "/c", os.O_WRONLY | os.O_APPEND, 0)),
        ("pwrite", (0, b"+", 0)),
        ("close", (0,)),
        ("rename", ("/c", "/d/c2", 0)),
        ("chmod", ("/d/x", 0o600)),
    ],
    "a lower hard link broken by copy-up": [("chmod", ("/a", 0o600)), ("truncate", ("/b", 1))],
    "links made through the union": [
        ("link", ("/c", "/c2")),
        ("link", ("/c2", "/d/c3")),
        ("open", (0, "/new", os.O_WRONLY | os.O_CREAT, 0o644)),
        ("close", (0,)),
        ("link", ("/new", "/new2")),
        ("unlink", ("/c",)),
    ],
    "a renamed merged directory keeps its number": [
        ("rename", ("/d", "/e", 0)),
        ("mkdir", ("/d", 0o755)),
        ("rename", ("/e/x", "/d/x", 0)),
    ],
}


@pytest.mark.parametrize("steps", list(SEQUENCES.values()), ids=list(SEQUENCES))
def test_inode_numbers_in_process(steps: list[tuple[str, tuple]]) -> None:
    assert replay(STACK, steps) == []


@pytest.mark.mount
@pytest.mark.parametrize("steps", list(SEQUENCES.values()), ids=list(SEQUENCES))
def test_inode_numbers_through_fuse(steps: list[tuple[str, tuple]]) -> None:
    assert replay(STACK, steps, fuse=True) == []
