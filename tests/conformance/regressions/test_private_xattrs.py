"""Fixed difference: xattrs named like overlay's private ones, through the union.

Kernel 6.18 (redirect_dir=on, index=off): `setxattr(f, "trusted.overlay.opaque", "y")` succeeds
(the kernel stores it escaped as trusted.overlay.overlay.opaque), getxattr of a missing one says
ENODATA, and `user.overlay.*` is an ordinary xattr (no userxattr option). layerfs refused every
such name with ENOTSUP; it now escapes them as the kernel does (unionfs.branch.XattrNames).
"""

from __future__ import annotations

import pytest

from ..layers import Item, Stack
from ..replay import replay

pytestmark = pytest.mark.kernel_overlay


def test_trusted_overlay_names_are_escaped_not_refused():
    stack = Stack([[Item("file", ("f",)), Item("dir", ("d",))]])
    steps = [
        ("removexattr", ("/f", "trusted.overlay.opaque")),
        ("getxattr", ("/d", "trusted.overlay.opaque")),
        ("setxattr", ("/f", "trusted.overlay.opaque", b"y", 0)),
    ]
    assert replay(stack, steps) == []


def test_user_overlay_names_are_ordinary_without_userxattr():
    stack = Stack([[Item("file", ("f",))]])
    steps = [
        ("setxattr", ("/f", "user.overlay.x", b"1", 0)),
        ("getxattr", ("/f", "user.overlay.x")),
        ("removexattr", ("/f", "user.overlay.x")),
    ]
    assert replay(stack, steps) == []
