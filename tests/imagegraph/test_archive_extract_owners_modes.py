"""apply_layer_tar leaves out the chown and chmod that would change nothing, and only those."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from imagegraph import archive

MODES = {"plain": 0o644, "private": 0o600, "group": 0o640, "setuid": 0o4755, "sticky": 0o1777, "none": 0o000}


def layer(owner: tuple[int, int]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        d = tarfile.TarInfo("d")
        d.type, d.mode, d.uid, d.gid = tarfile.DIRTYPE, 0o2750, *owner
        tf.addfile(d)
        for name, mode in MODES.items():
            for size in (5, 100_000):  # through tarfile, and copied from under it
                info = tarfile.TarInfo(f"d/{name}-{size}")
                info.size, info.mode, info.mtime = size, mode, 1_000_000
                info.uid, info.gid = owner
                tf.addfile(info, io.BytesIO(b"x" * size))
        link = tarfile.TarInfo("d/link")
        link.type, link.linkname, link.uid, link.gid = tarfile.SYMTYPE, "plain-5", *owner
        tf.addfile(link)
    return buf.getvalue()


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o000])
def test_modes_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        archive.apply_layer_tar(io.BytesIO(layer((os.geteuid(), os.getegid()))), tmp_path / "l")
    finally:
        os.umask(old)
    for name, mode in MODES.items():
        for size in (5, 100_000):
            st = os.lstat(tmp_path / "l" / "d" / f"{name}-{size}")
            assert stat.S_IMODE(st.st_mode) == mode, name
            assert st.st_mtime == 1_000_000 and st.st_size == size
    assert stat.S_IMODE(os.lstat(tmp_path / "l" / "d").st_mode) == 0o2750


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to others needs root")
@pytest.mark.parametrize("owner", [(0, 0), (1234, 5678), (0, 5678)])
def test_owners_as_root(tmp_path: Path, owner: tuple[int, int]) -> None:
    archive.apply_layer_tar(io.BytesIO(layer(owner)), tmp_path / "l")
    for path in (tmp_path / "l" / "d").iterdir():
        st = os.lstat(path)
        assert (st.st_uid, st.st_gid) == owner, path.name
    st = os.lstat(tmp_path / "l" / "d")
    assert (st.st_uid, st.st_gid) == owner


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to others needs root")
def test_a_set_group_id_parent_does_not_hand_its_group_down(tmp_path: Path) -> None:
    """Under a setgid folder a new entry takes the folder's group: the chown to our own group
    must then run, not be skipped as a no-op."""
    parent = tmp_path / "sgid"
    parent.mkdir()
    os.chown(parent, 0, 4321)
    os.chmod(parent, 0o2755)
    archive.apply_layer_tar(io.BytesIO(layer((0, 0))), parent / "l")
    for path in (parent / "l" / "d").iterdir():
        assert (os.lstat(path).st_uid, os.lstat(path).st_gid) == (0, 0), path.name
