"""Deep stacks (10 and 100 lower layers) and a sparse file larger than 4 GiB (issue 7, "Also checked")."""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest
from hypothesis import settings
from hypothesis.stateful import run_state_machine_as_test

from unionfs.union import Union

from .harness import kernel_mount, layerfs_options, umount
from .machine import UnionMachine


class TenLayers(UnionMachine):
    min_lowers = max_lowers = 10
    max_items = 6


class HundredLayers(UnionMachine):
    min_lowers = max_lowers = 100
    max_items = 4


def _bounded(examples: int) -> settings:
    """A tenth of the profile's examples (at least `examples`): each one builds a deep stack."""
    current = settings.default
    assert current is not None and current.max_examples is not None
    return settings(current, max_examples=max(examples, current.max_examples // 10))


@pytest.mark.kernel_overlay
def test_ten_lower_layers_match_kernel_overlay():
    run_state_machine_as_test(TenLayers, settings=_bounded(5))


@pytest.mark.kernel_overlay
def test_hundred_lower_layers_match_kernel_overlay():
    run_state_machine_as_test(HundredLayers, settings=_bounded(2))


GiB = 1 << 30
SPARSE_SIZE = 5 * GiB + 12345
MARKS = {0: b"head", 4 * GiB + 7: b"past four GiB", SPARSE_SIZE - 4: b"tail"}


@pytest.fixture
def sparse_stack():
    base = tempfile.mkdtemp(prefix="cfsparse", dir="/tmp")
    try:
        for side in ("k", "f"):
            lower = os.path.join(base, side, "l0")
            os.makedirs(lower)
            os.makedirs(os.path.join(base, side, "upper"))
            with open(os.path.join(lower, "big"), "wb") as f:
                f.truncate(SPARSE_SIZE)
                for offset, data in MARKS.items():
                    f.seek(offset)
                    f.write(data)
        yield base
    finally:
        umount(os.path.join(base, "km"))
        shutil.rmtree(base, ignore_errors=True)


def _check_copy(path: str) -> None:
    """Size, marks and zeros as written; a few MiB at most allocated (the kernel copies data
    regions in 1 MiB chunks), against 5 GiB if the holes had been written."""
    st = os.stat(path)
    assert st.st_size == SPARSE_SIZE
    assert st.st_blocks * 512 < 16 << 20, f"{st.st_blocks * 512} bytes allocated: the holes were written"
    with open(path, "rb") as f:
        for offset, data in MARKS.items():
            f.seek(offset)
            assert f.read(len(data)) == data
        f.seek(2 * GiB)
        assert f.read(16) == bytes(16)


@pytest.mark.kernel_overlay
def test_sparse_file_over_4gib_copies_up_without_its_holes(sparse_stack):
    base = sparse_stack
    # The kernel, as the reference: appending copies the file up, holes and all.
    kernel_mount(
        [os.path.join(base, "k", "l0")],
        os.path.join(base, "k", "upper"),
        os.path.join(base, "kw"),
        os.path.join(base, "km"),
    )
    with open(os.path.join(base, "km", "big"), "ab") as f:
        f.write(b"!")
    umount(os.path.join(base, "km"))
    os.truncate(os.path.join(base, "k", "upper", "big"), SPARSE_SIZE)
    _check_copy(os.path.join(base, "k", "upper", "big"))
    # layerfs: the same append through the union.
    os.makedirs(os.path.join(base, "fw"))
    union = Union.from_options(
        layerfs_options([os.path.join(base, "f", "l0")], os.path.join(base, "f", "upper"), os.path.join(base, "fw"))
    )
    handle = union.open("/big", os.O_WRONLY | os.O_APPEND)
    try:
        union.write(handle, b"!", SPARSE_SIZE)
    finally:
        union.release(handle)
    assert union.getattr("/big").st_size == SPARSE_SIZE + 1
    os.truncate(os.path.join(base, "f", "upper", "big"), SPARSE_SIZE)
    _check_copy(os.path.join(base, "f", "upper", "big"))
