"""Regressions found by the conformance machine: which error the kernel reports first, and
where a merge ends. Each failed before its fix (the kernel's result is in the docstring)."""

from __future__ import annotations

import os

import pytest

from unionfs.union import Union

from ..layers import Item, Stack, build_stack, to_aufs_encoding
from ..replay import replay

pytestmark = pytest.mark.kernel_overlay


def test_link_onto_an_existing_name_is_eexist_even_for_a_directory():
    """link("/", "/"): the VFS looks the new name up first, so EEXIST, not EPERM."""
    assert replay(Stack([[]]), [("link", ("/", "/"))]) == []


def test_rename_of_a_name_onto_itself_is_a_no_op():
    """rename("/", "/") succeeds (same dentry) before any mount-point check."""
    stack = Stack([[]], [Item("file", ("a",))])
    assert replay(stack, [("rename", ("/", "/", 0)), ("rename", ("/a", "/a", 0))]) == []


def test_user_xattr_on_a_symlink_is_eperm_without_copy_up():
    """removexattr(symlink, "user.a"): EPERM from the VFS, before overlay looks for the name."""
    stack = Stack([[Item("symlink", ("a",), target="missing")]])
    assert replay(stack, [("removexattr", ("/a", "user.a")), ("setxattr", ("/a", "user.a", b"1", 0))]) == []


def test_open_root_with_o_creat_is_eisdir():
    """open("/", O_CREAT|O_EXCL): no last name to create, so EISDIR rather than EEXIST."""
    assert replay(Stack([[]]), [("open", (0, "/", os.O_CREAT | os.O_EXCL, 0o644))]) == []


def test_a_file_between_two_directories_ends_the_merge_in_both_dialects(tmp_path):
    """l0: dir a; l1: file a; l2: dir a with a/a. The kernel stops at the file and OCI replaces
    the lower directory with it, so /a/a is gone; the aufs dialect used to skip the file."""
    stack = Stack([[Item("dir", ("a",))], [Item("file", ("a",))], [Item("file", ("a", "a"))]])
    lowers, upper = build_stack(str(tmp_path), stack)
    overlay = Union.from_options("lowerdir=" + ":".join(lowers))
    for lower in lowers:
        to_aufs_encoding(lower)
    aufs = Union.from_options("br=" + ":".join(f"{d}=ro+wh" for d in lowers))
    assert overlay.listdir("/a") == [] and aufs.listdir("/a") == []
    assert replay(stack, [("stat", ("/a/a",))]) == []


def test_upper_dir_moved_onto_an_empty_lower_dir_becomes_opaque():
    """rename(upper dir, lower-only parent/existing empty lower dir): the kernel copies the
    parent up (now merged) and marks the moved directory opaque; layerfs merged it instead."""
    stack = Stack([[Item("dir", ("c", "e", "a"))]], [Item("dir", ("a", "x"))])
    assert replay(stack, [("rename", ("/a", "/c/e/a", 0)), ("stat", ("/c/e/a",))]) == []


def test_root_to_elsewhere_is_exdev_before_noreplace():
    """rename("/", "/a", RENAME_NOREPLACE) with /a existing: EXDEV (another mount) comes first."""
    stack = Stack([[Item("file", ("a",))]])
    assert replay(stack, [("rename", ("/", "/a", 1)), ("rename", ("/a", "/", 0))]) == []


def test_mkdir_in_a_lower_only_parent_is_opaque_as_the_kernel_makes_it():
    """mkdir(/d/x/new) with /d/x only in a lower: the kernel copies /d/x up (now merged) and
    marks the new directory opaque; layerfs looked at the parent before its copy-up."""
    stack = Stack([[Item("dir", ("d", "x", "old"))]])
    assert replay(stack, [("mkdir", ("/d/x/new", 0o700)), ("stat", ("/d/x/new",))]) == []


def test_absolute_redirect_is_followed_below_an_upper_only_parent():
    """A lower dir moved into a directory made in the upper gets an absolute redirect; the
    kernel follows it from the layers' roots although the new parent has no lower part."""
    stack = Stack([[Item("dir", ("a", "c", "f")), Item("dir", ("x",))]])
    steps = [("mkdir", ("/n", 0o755)), ("rename", ("/a/c", "/n/c", 0)), ("stat", ("/n/c",)), ("stat", ("/n/c/f",))]
    assert replay(stack, steps) == []
