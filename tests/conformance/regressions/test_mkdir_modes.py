"""mkdir(2)'s mode and a setgid parent, as the kernel's overlay handles them.

Found by the conformance machine: layerfs kept S_ISGID from mkdir's mode argument (the VFS
drops it), and a directory made in a setgid directory lost the inherited setgid bit because
the explicit chmod after mkdir cleared it.
"""

from __future__ import annotations

import pytest

from ..layers import Item, Stack
from ..replay import replay

pytestmark = pytest.mark.kernel_overlay


def test_mkdir_ignores_setgid_in_its_mode():
    assert replay(Stack([[]]), [("mkdir", ("/a", 0o2775)), ("stat", ("/a",))]) == []


def test_mkdir_in_setgid_dir_inherits_setgid_and_group():
    steps = [
        ("mkdir", ("/b", 0o755)),
        ("chown", ("/b", 0, 1000)),
        ("chmod", ("/b", 0o2755)),
        ("mkdir", ("/b/c", 0o755)),
        ("stat", ("/b/c",)),
        ("open", (0, "/b/f", 0o101, 0o644)),
        ("stat", ("/b/f",)),
    ]
    assert replay(Stack([[]]), steps) == []


def test_dir_over_whiteout_in_setgid_dir_gets_its_group():
    """Built in the work dir and swapped in: the group must still be the parent's."""
    stack = Stack([[Item("dir", ("d",), mode=0o2775), Item("dir", ("d", "x"))]])
    steps = [("chown", ("/d", 0, 1000)), ("rmdir", ("/d/x",)), ("mkdir", ("/d/x", 0o755)), ("stat", ("/d/x",))]
    assert replay(stack, steps) == []
