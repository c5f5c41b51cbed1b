"""A tree copied into a new layer directory: the DiffID of the tar it stands for, and the proof
the copy gives that tar back, entry by entry, without a second walk."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imagegraph import archive, layercopy

ROOT = os.geteuid() == 0

_NAMES = st.sampled_from(["a", "b.txt", "Zz", "dé", "x" * 120, "sp ace", ".hidden"])
_FILE_MODES = st.sampled_from([0o644, 0o600, 0o755, 0o444, 0o000, 0o4755, 0o2711, 0o1644])
_DIR_MODES = st.sampled_from([0o755, 0o700, 0o1777, 0o2755, 0o555])
_TIMES = st.one_of(st.integers(0, 2**32), st.just(2**33 + 7))  # the last needs a PAX mtime
_OWNERS = st.sampled_from([(0, 0), (1000, 1000), (65534, 65534), (2**21 + 5, 7)] if ROOT else [None])

_ENTRY = st.tuples(
    st.lists(st.sampled_from(["d1", "d2", "d1/e"]), max_size=1),  # the folder, made with its parents
    _NAMES,
    st.sampled_from(["file", "dir", "symlink"]),
    st.integers(0, 3000),  # size of a file
    _FILE_MODES,
    _DIR_MODES,
    _TIMES,
    _OWNERS,
)


def _build(root: Path, entries: list[tuple]) -> None:
    """A plain tree: files, folders and symlinks with any mode, time and (as root) owner."""
    dirs: dict[Path, tuple[int, int]] = {}
    for where, name, kind, size, fmode, dmode, mtime, owner in entries:
        parent = root.joinpath(*where)
        parent.mkdir(parents=True, exist_ok=True)
        path = parent / name
        if os.path.lexists(path):
            continue
        if kind == "file":
            path.write_bytes(os.urandom(size // 4) + b"t" * (size - size // 4))
            if owner:
                os.chown(path, *owner)
            os.chmod(path, fmode)
        elif kind == "dir":
            path.mkdir()
            if owner:
                os.chown(path, *owner)
            dirs[path] = (dmode, mtime)
        else:
            os.symlink("elsewhere/" + name, path)
            if owner:
                os.lchown(path, *owner)
        os.utime(path, (mtime, mtime), follow_symlinks=False)
    for path, (mode, mtime) in sorted(dirs.items(), reverse=True):
        os.chmod(path, mode)
        os.utime(path, (mtime, mtime))


def _copy(src: Path, dest: Path, encoding: str = "aufs") -> layercopy.CopyResult:
    return layercopy.copy_layer_dir(src, dest, encoding)


@settings(max_examples=60, deadline=None)
@given(entries=st.lists(_ENTRY, max_size=12))
def test_a_plain_tree_is_copied_and_proven(entries: list[tuple]) -> None:
    """The DiffID and headers are those write_layer_tar gives the source; the copy proves itself
    (no xattrs, hard links or whiteouts, owners this user can set) and gives the same tar back."""
    with tempfile.TemporaryDirectory(dir="/var/tmp" if os.path.isdir("/var/tmp") else None) as tmp:
        src, dest = Path(tmp, "src"), Path(tmp, "dest")
        src.mkdir()
        _build(src, entries)
        written = archive.write_layer_tar(src)
        copied = _copy(src, dest)
        assert (copied.diff_id, copied.headers, copied.tar_size) == (
            written.diff_id,
            written.headers,
            written.tar_size,
        )
        assert copied.proven
        again = archive.write_layer_tar(dest)
        assert (again.diff_id, again.headers) == (written.diff_id, written.headers)
        for d in (src, dest):  # a 0555 folder as non-root: let the clean-up in
            for dirpath, _, _ in os.walk(d):
                os.chmod(dirpath, 0o755)


def _plain(src: Path) -> Path:
    (src / "d").mkdir(parents=True)
    (src / "d" / "f").write_text("data")
    os.symlink("f", src / "d" / "s")
    return src


def test_an_xattr_leaves_the_proof_to_the_walk(tmp_path: Path) -> None:
    src = _plain(tmp_path / "src")
    try:
        os.setxattr(src / "d" / "f", "user.note", b"hi")
    except OSError:
        pytest.skip("no user xattrs on this filesystem")
    copied = _copy(src, tmp_path / "dest")
    assert not copied.proven
    assert archive.headers_digest(tmp_path / "dest") == copied.headers == archive.write_layer_tar(src).headers


def test_a_hard_link_leaves_the_proof_to_the_walk(tmp_path: Path) -> None:
    src = _plain(tmp_path / "src")
    os.link(src / "d" / "f", src / "d" / "g")
    copied = _copy(src, tmp_path / "dest")
    assert not copied.proven
    assert archive.headers_digest(tmp_path / "dest") == copied.headers


def test_a_whiteout_leaves_the_proof_to_the_walk(tmp_path: Path) -> None:
    src = _plain(tmp_path / "src")
    (src / "d" / ".wh.gone").write_text("")
    copied = _copy(src, tmp_path / "dest", "aufs")
    assert not copied.proven
    assert archive.headers_digest(tmp_path / "dest") == copied.headers


def test_an_owner_that_cannot_be_set_is_not_proven(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The read-back sees what the store could not do (here: chown does nothing)."""
    src = _plain(tmp_path / "src")
    if ROOT:
        os.chown(src / "d" / "f", 1234, 1234)
        monkeypatch.setattr(layercopy.os, "fchown", lambda *a: None)
    else:
        pytest.skip("needs root to give a file an owner other than its maker")
    copied = _copy(src, tmp_path / "dest")
    assert not copied.proven
    assert archive.headers_digest(tmp_path / "dest") != copied.headers


@pytest.mark.skipif(not ROOT, reason="a folder of another group: needs root")
def test_a_new_file_of_another_group_is_given_the_headers_owner(tmp_path: Path) -> None:
    """A set-group-ID store folder gives new files its group: the read-back finds it and chowns."""
    src = _plain(tmp_path / "src")
    parent = tmp_path / "store"
    parent.mkdir()
    os.chown(parent, 0, 4321)
    os.chmod(parent, 0o2755)
    copied = _copy(src, parent / "dest")
    assert os.stat(parent / "dest" / "d" / "f").st_gid == 0
    assert archive.write_layer_tar(parent / "dest").diff_id == copied.diff_id
    assert copied.diff_id == archive.write_layer_tar(src).diff_id
