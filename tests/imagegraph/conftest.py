"""Fixtures for the store, container and CLI tests: a fresh store root and a CLI runner."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from imagegraph.cli import main
from imagegraph.service import Services

from .daemon_fixture import daemon  # noqa: F401  (the `daemon` fixture: a real imagegraph daemon)
from .registry_fixture import RunningRegistry, start_registry


@dataclass
class Result:
    rc: int
    out: str
    err: str


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    r = tmp_path / "store"
    monkeypatch.setenv("IMAGEGRAPH_ROOT", str(r))
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    return r


@pytest.fixture
def ig(root: Path):
    """Run `imagegraph ARGS…` in-process; returns Result(rc, out, err)."""

    def run(*argv: str, stdin: str | None = None) -> Result:
        out, err = io.StringIO(), io.StringIO()
        if stdin is not None:
            import sys

            old = sys.stdin
            sys.stdin = io.TextIOWrapper(io.BytesIO(stdin.encode()))
            try:
                rc = main(list(argv), out, err)
            finally:
                sys.stdin = old
        else:
            rc = main(list(argv), out, err)
        return Result(rc, out.getvalue(), err.getvalue())

    return run


@pytest.fixture
def svc(root: Path) -> Services:
    return Services.open(root)


def make_rootfs(path: Path, files: dict[str, str], mtime: int = 1600000000) -> Path:
    """A small root filesystem with fixed mtimes, so its layer's DiffID is fixed."""
    for rel, content in files.items():
        p = path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(content)
    for dirpath, dirnames, filenames in os.walk(path, topdown=False):
        for n in filenames + dirnames:
            os.utime(os.path.join(dirpath, n), (mtime, mtime), follow_symlinks=False)
    os.utime(path, (mtime, mtime))
    return path


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    return make_rootfs(
        tmp_path / "rootfs",
        {"bin/sh": "#!fake shell\n", "etc/motd": "hello\n", "etc/passwd": "root:x:0:0::/root:/bin/sh\n"},
    )


@pytest.fixture(scope="session")
def registry(tmp_path_factory) -> Iterator[RunningRegistry]:
    """An open registry (no auth), shared by the session; tests use their own repositories."""
    with start_registry(tmp_path_factory.mktemp("registry")) as reg:
        yield reg


@pytest.fixture(scope="session")
def basic_registry(tmp_path_factory) -> Iterator[RunningRegistry]:
    """A registry with htpasswd Basic auth; user `alice`, password `wonderland`."""
    with start_registry(tmp_path_factory.mktemp("basic-registry"), users={"alice": "wonderland"}) as reg:
        yield reg


@pytest.fixture
def busybox(root: Path) -> str:
    """The offline busybox image (tutorials.images), in this test's store; its ID."""
    from tutorials.images import build_busybox

    return build_busybox(Services.open(root))


@pytest.fixture
def this_layerfs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Containers mount with this checkout's layerfs (a monitor looks `layerfs` up in PATH)."""
    import sys

    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
