"""What the options beside the layers change in the union (no FUSE): inode numbers, owners,
redirect_dir, volatile, static_nlink, noxattrs, userxattr, and reading layers as stored."""

from __future__ import annotations

import errno
import itertools
import os
import subprocess
from pathlib import Path

import pytest

from unionfs.mountinfo import mounts, plain_path
from unionfs.options import OptionError
from unionfs.origin import OriginHandle
from unionfs.union import Cred, Union

from ..support import require_root, require_second_filesystem
from .layers import make_union

needs_root = pytest.mark.root("trusted.* xattrs and char-device whiteouts")


def ino(u: Union, path: str) -> int:
    return u.getattr(path).st_ino


def _append(u: Union, path: str, data: bytes = b"+") -> None:
    handle = u.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        handle.write(data, 0)
    finally:
        handle.close()


# -- inode numbers ------------------------------------------------------------------------------


@needs_root
def test_a_copied_up_file_keeps_its_inode_number_also_after_a_rename(tmp_path: Path) -> None:
    u = make_union(tmp_path, "overlay", [{"d": {"f": "x"}}])
    lower_f = os.lstat(tmp_path / "l0" / "d" / "f").st_ino
    lower_d = os.lstat(tmp_path / "l0" / "d").st_ino
    assert (ino(u, "/d/f"), ino(u, "/d")) == (lower_f, lower_d)
    _append(u, "/d/f")  # copies up d and d/f
    assert (tmp_path / "upper" / "d" / "f").exists()
    assert (ino(u, "/d/f"), ino(u, "/d")) == (lower_f, lower_d)
    u.rename("/d/f", "/g")  # found again by its handle (open_by_handle_at)
    assert ino(u, "/g") == lower_f
    u.mkdir("/new")
    assert ino(u, "/new") == os.lstat(tmp_path / "upper" / "new").st_ino


@needs_root
def test_the_origin_mark_is_the_kernels(tmp_path: Path) -> None:
    """struct ovl_fb with the lower file's handle, so the kernel's overlay reads our uppers."""
    u = make_union(tmp_path, "overlay", [{"f": "x"}])
    _append(u, "/f")
    value = os.getxattr(tmp_path / "upper" / "f", "trusted.overlay.origin")
    handle = OriginHandle.decode(value)
    assert handle is not None and handle.encode() == value
    assert (handle.handle_type, handle.fid) == u.sb.libc.name_to_handle_at(str(tmp_path / "l0" / "f"))
    assert OriginHandle.decode(b"") is None and OriginHandle.decode(b"\x00\xfbjunk") is None


@pytest.mark.parametrize("dialect", ["aufs", "overlay"])
def test_every_name_of_a_hard_link_shows_one_inode(tmp_path: Path, dialect: str) -> None:
    if dialect == "overlay":
        require_root("the overlay encoding")
    u = make_union(tmp_path, dialect, [{"a": "lower"}])
    os.link(tmp_path / "l0" / "a", tmp_path / "l0" / "b")
    u = make_union(tmp_path, dialect, [{}])
    assert ino(u, "/a") == ino(u, "/b") and u.getattr("/a").st_nlink == 2
    u.write_file("/c", b"upper")
    u.link("/c", "/d")
    u.link("/c", "/e")
    assert ino(u, "/c") == ino(u, "/d") == ino(u, "/e") and u.getattr("/e").st_nlink == 3
    assert len({ino(u, p) for p in ("/a", "/c", "/")}) == 3


@needs_root
def test_a_lower_hard_link_broken_by_copy_up_gets_a_number_of_its_own(tmp_path: Path) -> None:
    (tmp_path / "l0").mkdir()
    (tmp_path / "l0" / "a").write_text("x")
    os.link(tmp_path / "l0" / "a", tmp_path / "l0" / "b")
    u = make_union(tmp_path, "overlay", [{}])
    before = ino(u, "/a")
    _append(u, "/a")
    assert "trusted.overlay.origin" not in os.listxattr(tmp_path / "upper" / "a")  # as the kernel, index=off
    assert ino(u, "/a") == os.lstat(tmp_path / "upper" / "a").st_ino != before
    assert ino(u, "/b") == before and u.getattr("/b").st_nlink == 2


@needs_root
def test_the_root_shows_the_uppers_number_and_a_merged_dir_the_lowers(tmp_path: Path) -> None:
    u = make_union(tmp_path, "overlay", [{"d": {"x": "1"}}], upper={"d": {"y": "2"}})
    assert ino(u, "/") == os.lstat(tmp_path / "upper").st_ino
    assert ino(u, "/d") == os.lstat(tmp_path / "l0" / "d").st_ino
    assert u.getattr("/d").st_dev == u.getattr("/d/y").st_dev == u.getattr("/").st_dev


@needs_root
def test_fast_ino_trades_the_number_for_speed(tmp_path: Path) -> None:
    u = make_union(tmp_path, "overlay", [{"f": "x"}], extra="fast_ino=1")
    before = ino(u, "/f")
    _append(u, "/f")
    assert ino(u, "/f") == os.lstat(tmp_path / "upper" / "f").st_ino != before


@pytest.mark.parametrize("xino", ["auto", "off"])
def test_layers_on_two_filesystems_get_distinct_numbers(tmp_path: Path, xino: str) -> None:
    other = Path(require_second_filesystem(tmp_path))
    lower = Path(subprocess.run(["mktemp", "-d", "-p", str(other)], capture_output=True, text=True).stdout.strip())
    try:
        (lower / "f").write_text("lower")
        (tmp_path / "upper").mkdir()
        (tmp_path / "upper" / "g").write_text("upper")
        u = Union.from_options(f"dirs={tmp_path / 'upper'}:{lower},xino={xino}")
        real_f, real_g = os.lstat(lower / "f").st_ino, os.lstat(tmp_path / "upper" / "g").st_ino
        if xino == "auto":  # the layer's filesystem in the high bits: upper's 0, the other 1
            assert (ino(u, "/f"), ino(u, "/g")) == (real_f | 1 << 62, real_g)
        else:  # numbered per mount, not persistent, still unique
            assert ino(u, "/f") >> 63 == ino(u, "/g") >> 63 == 1 and ino(u, "/f") != ino(u, "/g")
            assert ino(u, "/f") == ino(u, "/f")
    finally:
        subprocess.run(["rm", "-rf", str(lower)])


def test_ino32_t_keeps_32_bits(tmp_path: Path) -> None:
    other = Path(require_second_filesystem(tmp_path))
    lower = Path(subprocess.run(["mktemp", "-d", "-p", str(other)], capture_output=True, text=True).stdout.strip())
    try:
        (lower / "f").write_text("lower")
        (tmp_path / "upper").mkdir()
        u = Union.from_options(f"dirs={tmp_path / 'upper'}:{lower},ino32_t")
        assert ino(u, "/f") == os.lstat(lower / "f").st_ino & 0xFFFFFFFF
    finally:
        subprocess.run(["rm", "-rf", str(lower)])


def test_static_nlink_and_merged_dirs(tmp_path: Path) -> None:
    u = make_union(tmp_path, "aufs", [{"d": {"e": {}}}, {"d": {}}])
    assert u.getattr("/d").st_nlink == 1  # merged: the kernel does not count subdirectories
    assert u.getattr("/d/e").st_nlink == 2
    s = Union.from_options(f"br={tmp_path / 'upper'}=rw:{tmp_path / 'l0'}=ro+wh:{tmp_path / 'l1'}=ro+wh,static_nlink")
    assert s.getattr("/d/e").st_nlink == 1 and s.getattr("/d/e/.").st_nlink == 1


# -- owners -------------------------------------------------------------------------------------


@needs_root
def test_uidmapping_shows_stored_owners_mapped_and_maps_callers_back(tmp_path: Path) -> None:
    u = make_union(
        tmp_path, "overlay", [{"f": "x", "g": "y"}], extra="uidmapping=:0:100000:65536,gidmapping=0:200000:65536"
    )
    os.chown(tmp_path / "l0" / "g", 70000, 70000)  # outside every range
    st = u.getattr("/f")
    assert (st.st_uid, st.st_gid) == (100000, 200000)
    assert (u.getattr("/g").st_uid, u.getattr("/g").st_gid) == (65534, 65534)  # the overflow ids
    u.write_file("/new", b"n", cred=Cred(100005, 200006))
    stored = os.lstat(tmp_path / "upper" / "new")
    assert (stored.st_uid, stored.st_gid) == (5, 6)
    assert (u.getattr("/new").st_uid, u.getattr("/new").st_gid) == (100005, 200006)
    u.chown("/f", 100007, -1)
    stored = os.lstat(tmp_path / "upper" / "f")
    assert (stored.st_uid, stored.st_gid) == (7, 0)
    u.mkdir("/d", 0o755, Cred(100000, 200000))
    assert os.lstat(tmp_path / "upper" / "d").st_uid == 0


def test_squash_shows_one_owner_and_writes_as_asked(tmp_path: Path) -> None:
    u = make_union(tmp_path, "aufs", [{"f": "x"}], extra="squash_to_uid=1234,squash_to_root")
    st = u.getattr("/f")
    assert (st.st_uid, st.st_gid) == (1234, 0)


# -- redirect_dir -------------------------------------------------------------------------------


@needs_root
@pytest.mark.parametrize("mode", ["off", "follow", "nofollow"])
def test_without_redirects_a_lower_directory_cannot_move(tmp_path: Path, mode: str) -> None:
    u = make_union(tmp_path, "overlay", [{"d": {"x": "1"}, "empty": {}, "f": "1"}], extra=f"redirect_dir={mode}")
    for src in ("/d", "/empty"):  # even an empty one (unionmount-testsuite's rename-exdev)
        with pytest.raises(OSError) as info:
            u.rename(src, "/moved")
        assert info.value.errno == errno.EXDEV
    u.mkdir("/e/", 0o755)
    with pytest.raises(OSError) as info:  # EXDEV comes before the target's emptiness
        u.rename("/d", "/e")
    assert info.value.errno == errno.EXDEV
    u.rename("/e", "/e2")  # a directory only in the upper moves
    u.rename("/f", "/f2")  # and files do
    assert sorted(u.listdir("/")) == ["d", "e2", "empty", "f2"]


@needs_root
def test_an_existing_redirect_is_followed_unless_nofollow(tmp_path: Path) -> None:
    u = make_union(tmp_path, "overlay", [{"d": {"x": "1"}}])
    u.rename("/d", "/moved")
    assert u.listdir("/moved") == ["x"]
    options = f"lowerdir={tmp_path / 'l0'},upperdir={tmp_path / 'upper'},workdir={tmp_path / 'work'}"
    assert Union.from_options(options + ",redirect_dir=follow").listdir("/moved") == ["x"]
    assert Union.from_options(options + ",redirect_dir=off").listdir("/moved") == ["x"]
    refusing = Union.from_options(options + ",redirect_dir=nofollow")
    with pytest.raises(OSError) as info:
        refusing.listdir("/moved")
    assert info.value.errno == errno.EPERM
    assert refusing.listdir("/") == ["moved"]


# -- volatile, noxattrs, userxattr ---------------------------------------------------------------


@pytest.mark.parametrize("extra, syncs", [("", True), ("volatile", False), ("fsync=0", False)])
def test_volatile_skips_every_fsync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: str, syncs: bool) -> None:
    u = make_union(tmp_path, "aufs", [{"f": "x"}], extra=extra)
    calls: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real_fsync(fd))[1])
    _append(u, "/f")  # a copy-up: synced before it replaces the lower file, unless volatile
    handle = u.open("/f", os.O_WRONLY)
    handle.fsync()
    handle.close()
    u.fsyncdir("/")
    assert len(calls) == (3 if syncs else 0)


@pytest.mark.parametrize("extra, syncs", [("", True), ("volatile", False)])
def test_a_copy_up_is_written_back_as_it_is_copied_and_synced_before_it_replaces_the_lower_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: str, syncs: bool
) -> None:
    """The crash rule: the copy's data (and size) are on disk before the rename makes it the
    file. Each chunk's writeback starts as soon as it is copied (sync_file_range: no durability
    of its own), every data byte once, in order; the fsync still follows, then the rename.
    A volatile union does neither."""
    from unionfs.fsutil import WRITE_BEHIND_CHUNK, Libc

    u = make_union(tmp_path, "aufs", [{"f": "x"}], extra=extra)
    big = tmp_path / "l0" / "f"
    head = os.urandom(WRITE_BEHIND_CHUNK + 12345)
    tail = os.urandom(3000)
    with open(big, "wb") as f:  # data, a hole, data
        f.write(head)
        f.seek(3 * WRITE_BEHIND_CHUNK)
        f.write(tail)
    size = 3 * WRITE_BEHIND_CHUNK + len(tail)
    events: list[tuple] = []
    real_fsync, real_rename = os.fsync, os.rename
    monkeypatch.setattr(Libc, "start_writeback", lambda self, fd, off, n: events.append(("wb", off, n)))
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append(("fsync", os.fstat(fd).st_size)), real_fsync(fd))[1])

    def rename(src: str, dst: str) -> None:
        events.append(("rename", os.path.basename(dst)))
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    _append(u, "/f", b"!")
    data = (tmp_path / "upper" / "f").read_bytes()
    assert len(data) == size + 1 and data[: len(head)] == head and data[-len(tail) - 1 :] == tail + b"!"
    assert data[len(head) : 3 * WRITE_BEHIND_CHUNK] == bytes(3 * WRITE_BEHIND_CHUNK - len(head))
    writebacks = [e for e in events if e[0] == "wb"]
    rename_at = events.index(("rename", "f"))
    if not syncs:
        assert not writebacks and not [e for e in events if e[0] == "fsync"]
        return
    covered = [(off, off + n) for _, off, n in writebacks]
    assert covered[0][0] == 0 and all(n <= WRITE_BEHIND_CHUNK for _, _, n in writebacks)
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(covered))  # in order, each byte once
    # every data byte (the hole need not be: it may be skipped, or copied as zeros)
    assert sum(b - a for a, b in covered) >= len(head) + len(tail)
    assert covered[-1][1] == size
    fsync_at = events.index(("fsync", size))  # the whole size, then the rename
    assert events.index(writebacks[-1]) < fsync_at < rename_at


def test_noxattrs_refuses_every_xattr_call(tmp_path: Path) -> None:
    u = make_union(tmp_path, "aufs", [{"f": "x"}], extra="noxattrs=1")
    for call in (
        lambda: u.getxattr("/f", "user.a"),
        lambda: u.listxattr("/f"),
        lambda: u.setxattr("/f", "user.a", b"1"),
        lambda: u.removexattr("/f", "user.a"),
    ):
        with pytest.raises(OSError) as info:
            call()
        assert info.value.errno == errno.ENOTSUP


@needs_root
def test_userxattr_keeps_marks_in_user_overlay(tmp_path: Path) -> None:
    u = make_union(tmp_path, "overlay", [{"d": {"x": "1"}, "f": "1"}], extra="userxattr")
    u.unlink("/d/x")
    u.rmdir("/d")
    u.mkdir("/d")  # over a whiteout: opaque
    _append(u, "/f")
    assert os.getxattr(tmp_path / "upper" / "d", "user.overlay.opaque") == b"y"
    assert "trusted.overlay.opaque" not in os.listxattr(tmp_path / "upper" / "d")
    assert os.getxattr(tmp_path / "upper" / "f", "user.overlay.origin")[:2] == b"\x00\xfb"
    assert u.listdir("/d") == [] and "user.overlay.opaque" not in u.listxattr("/d")


# -- layers reached through an idmapped mount ------------------------------------------------------


def test_a_layer_on_an_idmapped_mount_is_read_through_a_plain_one(tmp_path: Path) -> None:
    """podman 4.3 passes lowers through idmapped mounts and uidmapping= as well."""
    require_root("a bind mount")
    store, mapped = tmp_path / "store", tmp_path / "mapped"
    (store / "layer").mkdir(parents=True)
    mapped.mkdir()
    subprocess.run(["mount", "--bind", str(store), str(mapped)], check=True)
    try:
        table = mounts()
        assert plain_path(str(mapped / "layer"), table) == str(mapped / "layer")  # not idmapped: itself
        # The same table, with the bind mount marked idmapped, as the kernel shows one.
        bind = next(m for m in reversed(table) if m.mountpoint == str(mapped))
        idmapped = bind.replace(options=bind.options + ",idmapped")
        marked = [idmapped if m is bind else m for m in table]
        assert plain_path(str(mapped / "layer"), marked) == str(store / "layer")
        alone = [m for m in marked if m.device != bind.device or m is idmapped]
        with pytest.raises(OptionError, match="idmapped mount"):
            plain_path(str(mapped / "layer"), alone)
    finally:
        subprocess.run(["umount", str(mapped)], check=True)
