"""A full disk (a small tmpfs mounted by the test) and an endless `import -`: one line, no
partial layer, no temporary file, the store as it was."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from imagegraph.storecheck import check_store

from .conftest import REPO, Run, assert_unchanged, command, run_in_process, snapshot
from .hostile import E, save_archive, tar_of
from .lying_registry import LyingRegistry

pytestmark = pytest.mark.root("mounts a small tmpfs")

SIZE_MIB = 16


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE_MIB}m,mode=0755", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=True)


@pytest.fixture
def full_store(small_disk: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A seeded store on the small disk."""
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    root = small_disk / "store"
    seed = small_disk.parent / "seed"
    (seed / "etc").mkdir(parents=True)
    (seed / "etc" / "motd").write_text("hi\n")
    assert ig(root, "import", str(seed), "base:1").rc == 0
    assert ig(root, "create", "--name", "c1", "base:1", "/bin/sh").rc == 0
    assert check_store(root) == []
    return root


def ig(root: Path, *argv: str, stdin: bytes | None = None) -> Run:
    return run_in_process("--root", str(root), *argv, stdin=stdin)


def _big_tree(path: Path, mib: int) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for i in range(mib):
        (path / f"chunk{i}").write_bytes(os.urandom(1 << 20))
    return path


def _free(root: Path) -> int:
    st = os.statvfs(root)
    return st.f_bavail * st.f_frsize


def _refused_and_unchanged(root: Path, before: dict, r: Run, free_before: int) -> None:
    r.refused("no space left on device")
    assert_unchanged(root, before)
    assert _free(root) >= free_before - (64 << 10)  # every spool and half layer gone


def test_import_of_a_tree_larger_than_the_disk(full_store: Path, tmp_path: Path) -> None:
    before, free = snapshot(full_store), _free(full_store)
    _refused_and_unchanged(
        full_store, before, ig(full_store, "import", str(_big_tree(tmp_path / "big", 24)), "big:1"), free
    )


def test_import_of_a_tar_larger_than_the_disk(full_store: Path, tmp_path: Path) -> None:
    data = tar_of([E(f"f{i}", data=os.urandom(1 << 20)) for i in range(24)])
    before, free = snapshot(full_store), _free(full_store)
    _refused_and_unchanged(full_store, before, ig(full_store, "import", "-", "big:1", stdin=data), free)


def _endless_tar_writer() -> str:
    """A process that writes valid tar entries to stdout for ever."""
    return (
        "import io, os, sys, tarfile\n"
        "out = sys.stdout.buffer\n"
        "i = 0\n"
        "while True:\n"
        "    ti = tarfile.TarInfo(f'f{i}'); ti.size = 1 << 20; i += 1\n"
        "    out.write(ti.tobuf(tarfile.USTAR_FORMAT)); out.write(os.urandom(1 << 20))\n"
    )


@pytest.mark.parametrize("source", ["endless-tar", "dev-zero", "dev-urandom"])
def test_import_from_an_endless_stream_stops_with_one_line(full_store: Path, source: str) -> None:
    before, free = snapshot(full_store), _free(full_store)
    if source == "endless-tar":
        feeder = subprocess.Popen([sys.executable, "-c", _endless_tar_writer()], stdout=subprocess.PIPE)
        stdin = feeder.stdout
    else:
        feeder = None
        stdin = open("/dev/zero" if source == "dev-zero" else "/dev/urandom", "rb")
    try:
        res = subprocess.run(
            command("--root", str(full_store), "import", "-", "endless:1"),
            stdin=stdin,
            capture_output=True,
            timeout=300,
            cwd=REPO,
        )
    finally:
        stdin.close()  # type: ignore[union-attr]  # Popen.stdout is set: stdout=PIPE
        if feeder is not None:
            feeder.kill()
            feeder.wait()
    r = Run(res.returncode, res.stdout.decode(), res.stderr.decode())
    words = "no space left on device" if source != "dev-urandom" else None
    r.refused(words)
    assert_unchanged(full_store, before)
    assert _free(full_store) >= free - (64 << 10)


def test_load_larger_than_the_disk(full_store: Path, tmp_path: Path) -> None:
    layer = tar_of([E(f"f{i}", data=os.urandom(1 << 20)) for i in range(10)])
    archive = tmp_path / "image.tar"
    archive.write_bytes(save_archive([layer, tar_of([E("g", data=os.urandom(1 << 20) * 4)])], "big:1"))
    before, free = snapshot(full_store), _free(full_store)
    r = ig(full_store, "load", "-q", "-i", str(archive))
    _refused_and_unchanged(full_store, before, r, free)


def test_pull_larger_than_the_disk(full_store: Path) -> None:
    reg = LyingRegistry()
    try:
        layer = tar_of([E(f"f{i}", data=os.urandom(1 << 20)) for i in range(10)])
        reg.image("big/img", "1", [layer, tar_of([E("g", data=os.urandom(6 << 20))])], compress=False)
        before, free = snapshot(full_store), _free(full_store)
        _refused_and_unchanged(full_store, before, ig(full_store, "pull", "-q", f"{reg.domain}/big/img:1"), free)
    finally:
        reg.close()


def test_commit_larger_than_the_disk(full_store: Path) -> None:
    from imagegraph.service import Services

    svc = Services.open(full_store)
    c = svc.get_container("c1")
    top = svc.layout.layer_dir(svc.layers.get_mount(c.id).mount_id) / "diff"
    _big_tree(top / "data", 9)  # on the same disk: the copy into the store needs 9 MiB more, about 7 are free
    before, free = snapshot(full_store), _free(full_store)
    _refused_and_unchanged(full_store, before, ig(full_store, "commit", "c1", "big:c"), free)
    assert (top / "data" / "chunk5").stat().st_size == 1 << 20  # the container's own files are kept


def test_save_to_a_full_disk(full_store: Path, small_disk: Path, tmp_path: Path) -> None:
    _big_tree(tmp_path / "mid", 5)
    assert ig(full_store, "import", str(tmp_path / "mid"), "mid:1").rc == 0
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * max(0, _free(small_disk) - (2 << 20)))
    out = small_disk / "out"
    out.mkdir()
    before = snapshot(full_store)
    r = ig(full_store, "save", "-o", str(out / "img.tar"), "mid:1")
    r.refused("no space left on device")
    assert os.listdir(out) == []
    assert_unchanged(full_store, before)
