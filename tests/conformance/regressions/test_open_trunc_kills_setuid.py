"""Fixed difference: open(O_TRUNC) by a non-root caller kept a file's setuid bit.

Found by the permissions machine (test_permissions.py), kernel 6.x, as uid 1000 on its own
file of mode 04755: `open(f, O_WRONLY|O_TRUNC)` gives 0755 on the kernel's overlay (the VFS's
handle_truncate kills S_ISUID, and S_ISGID with S_IXGRP, for a caller without CAP_FSETID) and
04755 on layerfs. truncate(2) and write(2) kill it on both: there the kernel sends layerfs a
SETATTR with the new mode. With FUSE's atomic O_TRUNC the truncation happens inside OPEN, so
the kill is layerfs's job: unionfs.file._kill_setid does it for a caller other than root.
"""

from __future__ import annotations

import os

import pytest

from ..asuser import replay_as
from ..layers import Item, Stack

pytestmark = [pytest.mark.mount, pytest.mark.kernel_overlay]


@pytest.mark.parametrize("where", ["lower", "upper"])
@pytest.mark.parametrize("mode", [0o4755, 0o2755])
def test_open_trunc_by_owner_kills_setuid_and_setgid(where, mode):
    item = Item("file", ("f",), b"data", mode, owner=(1000, 1000))
    stack = Stack([[item]]) if where == "lower" else Stack([[]], [item])
    steps = [("open", (0, "/f", os.O_WRONLY | os.O_TRUNC, 0)), ("close", (0,)), ("stat", ("/f",))]
    results, problems = replay_as(stack, steps, 1000, 1000)
    assert results[-1] == ("ok", (0o100000, 0o755, 1000, 1000, 0))  # the kernel kills the bit
    assert problems == []


@pytest.mark.parametrize("call", ["truncate", "write"])
def test_truncate_and_write_by_owner_kill_setuid(call):
    """The neighbours that already match: the kernel sends the killed mode in a SETATTR."""
    stack = Stack([[Item("file", ("f",), b"data", 0o4755, owner=(1000, 1000))]])
    steps = (
        [("truncate", ("/f", 1))]
        if call == "truncate"
        else [("open", (0, "/f", os.O_WRONLY, 0)), ("pwrite", (0, b"x", 0)), ("close", (0,))]
    )
    results, problems = replay_as(stack, steps + [("stat", ("/f",))], 1000, 1000)
    assert results[-1][1][1] == 0o755
    assert problems == []
