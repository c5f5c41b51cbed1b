"""A directory rename whose redirect would exceed redirect_max (256 bytes) is EXDEV in the
kernel (ovl_set_redirect), after the copy-ups; layerfs wrote the long redirect. Found by the
ten-layer machine."""

from __future__ import annotations

import pytest

from ..layers import LONG, Item, Stack
from ..replay import replay

pytestmark = pytest.mark.kernel_overlay


def test_rename_of_lower_dir_with_a_redirect_longer_than_256_bytes_is_exdev():
    stack = Stack([[Item("dir", ("p", LONG)), Item("dir", ("q",))]])
    steps = [("rename", (f"/p/{LONG}", "/q/x", 0)), ("listdir", ("/q",)), ("listdir", ("/p",))]
    assert replay(stack, steps) == []
