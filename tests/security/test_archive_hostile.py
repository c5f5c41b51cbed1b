"""archive.apply_layer_tar and write_layer_tar against hostile tars: every refusal is one line and
leaves nothing behind; depth, width and sparse files are applied without recursion or inflation."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from imagegraph.archive import MAX_TRAILING, ArchiveError, apply_layer_tar, write_layer_tar

from .hostile import CASES, SPARSE_VERSIONS, E, allocated, deep_tar, gnu_sparse_tar, tar_of, wide_tar
from .trees import deep_exists, make_deep

ENCODINGS = ["aufs", "overlay"] if os.geteuid() == 0 else ["aufs"]


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_tar_is_refused_in_one_line_and_leaves_nothing(tmp_path: Path, case: str, encoding: str) -> None:
    build, words = CASES[case]
    with pytest.raises(ArchiveError) as exc:
        apply_layer_tar(io.BytesIO(build()), tmp_path / "layer", encoding)
    assert words in str(exc.value)
    assert "\n" not in str(exc.value) and ".apply-" not in str(exc.value)
    assert os.listdir(tmp_path) == []  # no layer, no temporary directory
    assert not Path("/tmp/owned-by-image").exists() and not Path("/etc/passwd-owned").exists()


@pytest.mark.parametrize("version", SPARSE_VERSIONS)
def test_sparse_members_stay_sparse(tmp_path: Path, version: str) -> None:
    """A 1 TiB file holding 3 bytes, in each format GNU tar writes: a few KiB on disk, not a TiB."""
    data = gnu_sparse_tar(version)
    assert len(data) < 16384
    res = apply_layer_tar(io.BytesIO(data), tmp_path / "layer", "aufs")
    bomb = tmp_path / "layer" / "bomb"
    assert bomb.stat().st_size == 1 << 40
    assert allocated(bomb) <= 1 << 20
    with open(bomb, "rb") as f:
        f.seek(1 << 39)
        assert f.read(3) == b"hi\n"
        f.seek((1 << 39) - 4096)
        assert f.read(4096) == b"\0" * 4096
    assert res.sparse and res.size == 1 << 40


def test_writing_a_layer_keeps_large_holes(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    with open(src / "holes", "wb") as f:
        f.write(b"head")
        f.seek(64 << 20)
        f.write(b"middle")
        f.truncate(256 << 20)
    (src / "dense").write_bytes(b"d" * 5000)
    out = tmp_path / "layer.tar"
    with open(out, "wb") as f:
        written = write_layer_tar(src, f)
    assert written.tar_size < 64 << 10  # not 256 MiB of zeros
    listing = subprocess.run(["tar", "-tvf", str(out)], capture_output=True, text=True, check=True).stdout
    assert "268435456" in listing and "holes" in listing and "GNUSparseFile" not in listing  # GNU tar reads it
    res = apply_layer_tar(open(out, "rb"), tmp_path / "back", "aufs")
    back = tmp_path / "back" / "holes"
    assert back.stat().st_size == 256 << 20 and allocated(back) < 1 << 20
    with open(back, "rb") as f:
        assert f.read(4) == b"head"
        f.seek(64 << 20)
        assert f.read(6) == b"middle"
    assert write_layer_tar(tmp_path / "back").diff_id == res.diff_id == written.diff_id


def test_small_holes_are_written_as_docker_writes_them(tmp_path: Path) -> None:
    """Holes under 1 MiB are zeros in the tar, so ordinary files keep Docker's bytes (and DiffIDs)."""
    src = tmp_path / "src"
    src.mkdir()
    with open(src / "f", "wb") as f:
        f.write(b"a")
        f.seek(100_000)
        f.write(b"b")
    with tarfile.open(fileobj=io.BytesIO(_tar(src))) as tf:
        (m,) = tf.getmembers()
        assert m.name == "f" and m.size == 100_001 and not m.issparse()


def _tar(src: Path) -> bytes:
    b = io.BytesIO()
    write_layer_tar(src, b)
    return b.getvalue()


def test_5000_deep_tar_applies_and_writes_back(deep_tmp: Path) -> None:
    data = deep_tar(5000)
    res = apply_layer_tar(io.BytesIO(data), deep_tmp / "layer", "aufs")
    assert deep_exists(deep_tmp / "layer", 5000)
    again = write_layer_tar(deep_tmp / "layer")
    assert again.diff_id == write_layer_tar(deep_tmp / "layer").diff_id
    assert res.size == len(b"bottom\n")


def test_5000_deep_directory_becomes_a_tar_without_recursion(deep_tmp: Path) -> None:
    make_deep(deep_tmp / "src", 5000, mtime=1600000000)
    out = io.BytesIO()
    write_layer_tar(deep_tmp / "src", out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tf:
        names = tf.getnames()
    assert len(names) == 5001 and names[-1] == "d/" * 5000 + "f"


def test_a_tar_20000_entries_wide(tmp_path: Path) -> None:
    res = apply_layer_tar(io.BytesIO(wide_tar(20000)), tmp_path / "layer", "aufs")
    assert len(os.listdir(tmp_path / "layer" / "wide")) == 20000
    assert res.size == 0


def test_endless_padding_after_the_archive_is_refused(tmp_path: Path) -> None:
    class Endless(io.RawIOBase):
        def __init__(self, head: bytes) -> None:
            self.head = head

        def readable(self) -> bool:
            return True

        def readinto(self, b) -> int:
            n = len(b)
            if self.head:
                chunk, self.head = self.head[:n], self.head[n:]
                b[: len(chunk)] = chunk
                return len(chunk)
            b[:n] = b"\0" * n
            return n

    with pytest.raises(ArchiveError, match="of data after the end of the archive"):
        apply_layer_tar(io.BufferedReader(Endless(tar_of([E("f", data=b"x")]))), tmp_path / "layer", "aufs")
    assert os.listdir(tmp_path) == []
    assert MAX_TRAILING >= 10240  # GNU and Python pad to 10 KiB records: such tars still apply


def test_directory_modes_are_set_after_their_contents(tmp_path: Path) -> None:
    """A 0555 directory with files in it (Fedora's /usr/bin): its mode is set last, so a non-root
    store can still fill it."""
    data = tar_of([E("ro/", tarfile.DIRTYPE), E("ro/f", data=b"x")])
    raw = bytearray(data)
    raw[100:108] = b"0000555\0"  # the directory entry's mode
    raw[148:156] = b" " * 8
    raw[148:156] = f"{sum(raw[:512]):06o}\0 ".encode()
    apply_layer_tar(io.BytesIO(bytes(raw)), tmp_path / "layer", "aufs")
    assert (tmp_path / "layer" / "ro" / "f").read_text() == "x"
    assert (tmp_path / "layer" / "ro").stat().st_mode & 0o777 == 0o555
    os.chmod(tmp_path / "layer" / "ro", 0o755)
