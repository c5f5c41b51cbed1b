"""Every class of hostile layer, through every way in (import from a file and from stdin, load
of a docker save archive and of an OCI layout, pull from a registry): refused with one line,
a non-zero exit status, and the store byte-for-byte as it was."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from imagegraph.storecheck import check_store

from .conftest import Run, assert_unchanged, snapshot
from .hostile import CASES, SPARSE_VERSIONS, allocated, gnu_sparse_tar, save_archive, wide_tar
from .lying_registry import LyingRegistry

CHANNELS = ["import-file", "import-stdin", "load", "load-oci", "pull"]


@pytest.fixture(scope="module")
def registry() -> Iterator[LyingRegistry]:
    reg = LyingRegistry()
    yield reg
    reg.close()


def bring_in(channel: str, layer: bytes, ig, tmp_path: Path, registry: LyingRegistry, name: str) -> Run:
    """Bring a one-layer image in through `channel`, tagged evil/NAME:1."""
    repo = f"evil/{name.lower()}"
    if channel == "import-file":
        f = tmp_path / "layer.tar"
        f.write_bytes(layer)
        return ig("import", str(f), f"{repo}:1")
    if channel == "import-stdin":
        return ig("import", "-", f"{repo}:1", stdin=layer)
    if channel in ("load", "load-oci"):
        f = tmp_path / "image.tar"
        f.write_bytes(save_archive([layer], f"{repo}:1", oci=channel == "load-oci"))
        return ig("load", "-q", "-i", str(f))
    registry.image(repo, "1", [layer])
    return ig("pull", "-q", f"{registry.domain}/{repo}:1")


def name_of(channel: str, registry: LyingRegistry, name: str) -> str:
    repo = f"evil/{name.lower()}:1"
    return f"{registry.domain}/{repo}" if channel == "pull" else repo


@pytest.mark.parametrize("channel", CHANNELS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_layer_is_refused_and_the_store_unchanged(
    seeded: Path, ig, tmp_path: Path, registry: LyingRegistry, case: str, channel: str
) -> None:
    build, words = CASES[case]
    before = snapshot(seeded)
    bring_in(channel, build(), ig, tmp_path, registry, case).refused(words)
    assert_unchanged(seeded, before)
    assert ig("images").rc == 0 and ig("ps", "-a").rc == 0


@pytest.mark.parametrize("channel", CHANNELS)
@pytest.mark.parametrize("version", SPARSE_VERSIONS)
def test_sparse_bomb_stays_small_on_disk(
    seeded: Path, ig, tmp_path: Path, registry: LyingRegistry, version: str, channel: str
) -> None:
    """A 1 TiB sparse file in a few KiB of tar: accepted (it is a valid layer), a few KiB on disk,
    and saved back out as a few KiB."""
    r = bring_in(channel, gnu_sparse_tar(version), ig, tmp_path, registry, f"sparse{version}")
    assert r.rc == 0, r.err
    used = sum(allocated(p) for p in seeded.rglob("*") if p.is_file() and not p.is_symlink())
    assert used < 8 << 20
    assert check_store(seeded) == []
    out = tmp_path / "saved.tar"
    assert ig("save", "-o", str(out), name_of(channel, registry, f"sparse{version}")).rc == 0
    assert out.stat().st_size < 1 << 20


def test_twenty_thousand_entries_wide(seeded: Path, ig, tmp_path: Path) -> None:
    f = tmp_path / "wide.tar"
    f.write_bytes(wide_tar(20000))
    r = ig("import", str(f), "wide:1")
    assert r.rc == 0, r.err
    assert ig("create", "--name", "wide", "wide:1", "/bin/sh").rc == 0
    assert ig("diff", "wide").out == ""
    assert ig("rm", "wide").rc == 0 and ig("rmi", "wide:1").rc == 0
    assert check_store(seeded) == []
