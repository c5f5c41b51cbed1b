"""layerfs against the kernel's OverlayFS, by random operations (issue 7)."""

from __future__ import annotations

import pytest
from hypothesis.stateful import run_state_machine_as_test

from .machine import UnionMachine


class InProcess(UnionMachine):
    """layerfs as the in-process `Union` object (symlinks resolved by the harness)."""

    fuse = False


@pytest.mark.kernel_overlay
def test_in_process_union_matches_kernel_overlay():
    run_state_machine_as_test(InProcess)


class Mounted(UnionMachine):
    """layerfs mounted with FUSE (`layerfs mount`): the kernel's VFS resolves paths for both."""

    fuse = True
    trailing_slashes = True


@pytest.mark.mount
@pytest.mark.kernel_overlay
def test_fuse_mounted_layerfs_matches_kernel_overlay():
    run_state_machine_as_test(Mounted)
