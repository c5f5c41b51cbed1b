"""A whiteout planted in a directory that only the upper has (nothing below for it to hide)
keeps the directory from being removed or replaced: the kernel removes such a directory as the
upper filesystem does (ovl_remove_upper, vfs_rename), so rmdir and a rename onto it say
ENOTEMPTY. layerfs cleared the whiteout and went ahead. Found by a 200-sequence run."""

from __future__ import annotations

import pytest

from ..layers import Item, Stack
from ..replay import replay

pytestmark = pytest.mark.kernel_overlay

STACK = Stack([[Item("file", ("a",))]], [Item("whiteout", ("b", "a", "a"))])


@pytest.mark.parametrize("fuse", [False, pytest.param(True, marks=pytest.mark.mount)], ids=["in-process", "fuse"])
def test_rmdir_of_an_upper_only_dir_holding_a_stray_whiteout(fuse: bool) -> None:
    assert replay(STACK, [("rmdir", ("/b/a",)), ("listdir", ("/b",))], fuse=fuse) == []


@pytest.mark.parametrize("fuse", [False, pytest.param(True, marks=pytest.mark.mount)], ids=["in-process", "fuse"])
def test_rename_onto_an_upper_only_dir_holding_a_stray_whiteout(fuse: bool) -> None:
    steps = [("mkdir", ("/x", 0o755)), ("rename", ("/x", "/b/a", 0)), ("listdir", ("/",))]
    assert replay(STACK, steps, fuse=fuse) == []


def test_a_merged_directory_still_takes_its_whiteouts_along() -> None:
    """The other side of the rule: whiteouts that hide lower names go with their directory."""
    stack = Stack([[Item("dir", ("d",)), Item("file", ("d", "x")), Item("file", ("d", "y"))]])
    steps = [
        ("unlink", ("/d/x",)),
        ("unlink", ("/d/y",)),
        ("rmdir", ("/d",)),
        ("mkdir", ("/e", 0o755)),
        ("rename", ("/e", "/d", 0)),
        ("listdir", ("/",)),
    ]
    assert replay(stack, steps) == []
