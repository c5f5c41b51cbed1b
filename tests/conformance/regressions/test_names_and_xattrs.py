"""Regressions found by the conformance machine: 255-byte names, setxattr and copy-up."""

from __future__ import annotations

import os

import pytest

from ..layers import LONG, Item, Stack
from ..replay import replay

pytestmark = pytest.mark.kernel_overlay


def test_255_byte_names_can_be_created_and_changed():
    """layerfs looked for `.wh.` + NAME (259 bytes) and failed with ENAMETOOLONG; the kernel
    creates, chowns and removes such names."""
    stack = Stack([[Item("file", ("x", LONG, "d"))]])
    steps = [
        ("lchown", (f"/x/{LONG}/d", 1000, 0)),
        ("symlink", ("missing", f"/{LONG}")),
        ("mkdir", (f"/x/{LONG}/n", 0o755)),
        ("unlink", (f"/{LONG}",)),
        ("stat", (f"/x/{LONG}/d",)),
    ]
    assert replay(stack, steps) == []


def test_setxattr_replace_of_a_missing_attribute_still_copies_up():
    """The kernel's ovl_xattr_set copies up first and lets the upper refuse (ENODATA/EEXIST):
    the file and its parents are in the upper afterwards, so the parents become merged dirs."""
    stack = Stack([[Item("file", ("x", "y", "f"), xattrs=(("user.a", b"1"),))]])
    steps = [
        ("setxattr", ("/x/y/f", "user.b", b"v", os.XATTR_REPLACE)),
        ("setxattr", ("/x/y/f", "user.a", b"v", os.XATTR_CREATE)),
        ("stat", ("/x/y",)),
    ]
    assert replay(stack, steps) == []
