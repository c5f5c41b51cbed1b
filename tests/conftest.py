"""Shared test fixtures: where FUSE and the kernel's OverlayFS are needed, and what happens without them.

A test that needs FUSE skips on a machine without it, but fails in CI, where .ci/run sets
LAYERLAB_REQUIRE_FUSE=1: a missing install step must never hide behind a skip.
"""

from __future__ import annotations

import os
import shutil

import pytest


def fuse_unavailable_reason() -> str | None:
    """Why a FUSE mount cannot be made here, or None when it can."""
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse does not exist"
    if not (shutil.which("fusermount3") or shutil.which("fusermount")):
        return "fusermount3 is not installed (apt-get install fuse3)"
    os.environ.setdefault("FUSE_LIBRARY_NAME", "fuse3")  # as unionfs.fuse_ops does: libfuse 3 first
    try:
        import mfusepy  # noqa: F401  (loads libfuse)
    except (ImportError, OSError) as exc:
        return f"mfusepy cannot load libfuse: {exc}"
    return None


def kernel_overlay_unavailable_reason() -> str | None:
    """Why the kernel's OverlayFS cannot be used as an oracle here, or None."""
    if os.geteuid() != 0:
        return "the kernel's OverlayFS needs root"
    try:
        with open("/proc/filesystems") as f:
            if "overlay" not in f.read():
                return "the kernel has no overlay filesystem"
    except OSError as exc:
        return str(exc)
    return None


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("LAYERLAB_REQUIRE_FUSE") == "1":
        pytest.fail(f"LAYERLAB_REQUIRE_FUSE=1 but: {reason}")
    pytest.skip(reason)


@pytest.fixture
def need_fuse() -> None:
    """Use in every test that mounts with layerfs."""
    reason = fuse_unavailable_reason()
    if reason:
        _skip_or_fail(reason)


@pytest.fixture
def need_kernel_overlay() -> None:
    """Use in every test that compares with the kernel's OverlayFS."""
    reason = kernel_overlay_unavailable_reason()
    if reason:
        _skip_or_fail(reason)


def pytest_collection_modifyitems(config, items):
    """Tests marked `mount` get the need_fuse fixture, so the rule lives in one place."""
    for item in items:
        if item.get_closest_marker("mount") and "need_fuse" not in getattr(item, "fixturenames", ()):
            item.fixturenames.append("need_fuse")
        if item.get_closest_marker("kernel_overlay") and "need_kernel_overlay" not in getattr(item, "fixturenames", ()):
            item.fixturenames.append("need_kernel_overlay")


@pytest.fixture
def deep_tmp(tmp_path):
    """tmp_path for trees deeper than pytest's own clean-up (a recursive rmtree) survives: emptied
    here, without recursion, when the test ends."""
    yield tmp_path
    from imagegraph.fstree import remove_tree

    for child in tmp_path.iterdir():
        remove_tree(child)
