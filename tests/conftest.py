"""Markers that name a real component a test needs, turned into the fixture that requires it.

`@pytest.mark.mount` (FUSE), `@pytest.mark.kernel_overlay`, `@pytest.mark.root` and
`@pytest.mark.namespaces` (running containers) skip the
test where the component is missing, and fail it in CI (LAYERLAB_REQUIRE_FUSE=1): the rule
itself lives in tests/support.py.
"""

from __future__ import annotations

import pytest

from .support import require_fuse, require_kernel_overlay, require_namespaces, require_root

MARKER_FIXTURES = {
    "mount": "need_fuse",
    "kernel_overlay": "need_kernel_overlay",
    "root": "need_root",
    "namespaces": "need_namespaces",
}


@pytest.fixture
def need_fuse() -> None:
    """Use in every test that mounts with layerfs."""
    require_fuse()


@pytest.fixture
def need_kernel_overlay() -> None:
    """Use in every test that compares with the kernel's OverlayFS."""
    require_kernel_overlay()


@pytest.fixture
def need_namespaces() -> None:
    """Use in every test that runs a container."""
    require_namespaces()


@pytest.fixture
def need_root(request: pytest.FixtureRequest) -> None:
    """`@pytest.mark.root("what needs it")`: mknod, trusted.* xattrs, mount(8)…"""
    marker = request.node.get_closest_marker("root")
    require_root(str(marker.args[0]) if marker and marker.args else "")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Each marked test gets its marker's fixture, so the rule lives in one place."""
    for item in items:
        names = getattr(item, "fixturenames", None)
        if names is None:
            continue
        for marker, fixture in MARKER_FIXTURES.items():
            if item.get_closest_marker(marker) and fixture not in names:
                names.append(fixture)
