"""The filesystem through a real FUSE mount: open flags, rename flags, xattrs, statfs, readdir
offsets, copy-up under concurrency, other users' permissions, times."""

from __future__ import annotations

import ctypes
import errno
import json
import os
import stat
import subprocess
import threading
from pathlib import Path

import pytest

from .mount_helpers import one_layer_union

pytestmark = pytest.mark.mount

RENAME_NOREPLACE = 1
_libc = ctypes.CDLL(None, use_errno=True)


def renameat2(old: Path, new: Path, flags: int) -> None:
    if _libc.renameat2(-100, os.fsencode(old), -100, os.fsencode(new), ctypes.c_uint(flags)) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


@pytest.fixture(params=["overlay", "aufs"])
def union(request):
    """A mounted union over one lower layer; yields (mnt, upper, lower, trace path)."""

    def fill(lower: Path) -> None:
        (lower / "file").write_text("lower data\n")
        (lower / "dir").mkdir()
        (lower / "dir" / "a").write_text("a\n")
        (lower / "private").write_text("secret\n")
        os.chmod(lower / "private", 0o600)
        (lower / "rootdir").mkdir()
        (lower / "shared").mkdir()
        os.chmod(lower / "shared", 0o1777)
        os.setxattr(lower / "file", "user.colour", b"red")

    with one_layer_union(request.param, fill, extra="trace={root}/trace.jsonl", open_to_all=True) as (
        root,
        mnt,
        upper,
        lower,
    ):
        yield mnt, upper, lower, root / "trace.jsonl"


def _errno(fn, *args) -> int | None:
    with pytest.raises(OSError) as err:
        fn(*args)
    return err.value.errno


# -- open flags ---------------------------------------------------------------------------
def test_o_trunc_copies_up_nothing_and_empties(union):
    mnt, upper, lower, trace = union
    fd = os.open(mnt / "file", os.O_WRONLY | os.O_TRUNC)
    os.close(fd)
    assert (mnt / "file").read_bytes() == b""
    assert (upper / "file").read_bytes() == b""
    assert (lower / "file").read_text() == "lower data\n"
    events = [json.loads(line) for line in trace.read_text().splitlines()]
    assert [e["bytes"] for e in events if e["event"] == "copy_up" and e["path"] == "/file"] == [0]


def test_o_append_appends_to_the_copy(union):
    mnt, upper, lower, _ = union
    fd = os.open(mnt / "file", os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, b"more\n")
    finally:
        os.close(fd)
    assert (mnt / "file").read_text() == "lower data\nmore\n"
    assert (upper / "file").read_text() == "lower data\nmore\n"
    assert (lower / "file").read_text() == "lower data\n"


def test_o_excl_o_creat_and_o_directory(union):
    mnt, upper, _, _ = union
    assert _errno(os.open, mnt / "file", os.O_WRONLY | os.O_CREAT | os.O_EXCL) == errno.EEXIST
    assert _errno(os.open, mnt / "dir", os.O_RDONLY | os.O_CREAT | os.O_EXCL) == errno.EEXIST
    fd = os.open(mnt / "new", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    os.close(fd)
    assert stat.S_IMODE(os.stat(upper / "new").st_mode) == 0o640
    os.close(os.open(mnt / "dir", os.O_RDONLY | os.O_DIRECTORY))
    assert _errno(os.open, mnt / "file", os.O_RDONLY | os.O_DIRECTORY) == errno.ENOTDIR
    assert _errno(os.open, mnt / "dir", os.O_WRONLY) == errno.EISDIR
    assert _errno(os.open, mnt / "missing", os.O_RDONLY) == errno.ENOENT
    assert _errno(os.open, mnt / "missing" / "x", os.O_WRONLY | os.O_CREAT) == errno.ENOENT


# -- rename -------------------------------------------------------------------------------
def test_rename_noreplace(union):
    mnt, upper, _, _ = union
    (mnt / "other").write_text("other\n")
    assert _errno(renameat2, mnt / "other", mnt / "file", RENAME_NOREPLACE) == errno.EEXIST
    assert (mnt / "file").read_text() == "lower data\n" and (mnt / "other").exists()
    renameat2(mnt / "other", mnt / "moved", RENAME_NOREPLACE)
    assert (mnt / "moved").read_text() == "other\n" and not (mnt / "other").exists()
    os.rename(mnt / "file", mnt / "moved")  # plain rename replaces
    assert (mnt / "moved").read_text() == "lower data\n" and not (mnt / "file").exists()
    assert "file" not in os.listdir(mnt)


# -- xattrs and statfs --------------------------------------------------------------------------
def test_xattrs_through_the_mount(union):
    mnt, upper, lower, _ = union
    assert os.getxattr(mnt / "file", "user.colour") == b"red"
    os.setxattr(mnt / "file", "user.size", b"big")
    assert os.getxattr(upper / "file", "user.size") == b"big"
    assert os.getxattr(upper / "file", "user.colour") == b"red"  # copied up
    assert "user.size" not in os.listxattr(lower / "file")
    assert _errno(os.getxattr, mnt / "file", "user.missing") == errno.ENODATA
    assert _errno(os.setxattr, mnt / "file", "user.size", b"x", os.XATTR_CREATE) == errno.EEXIST
    os.removexattr(mnt / "file", "user.size")
    assert "user.size" not in os.listxattr(mnt / "file")
    # The union's own marks are not shown; a caller's overlay-like name is stored escaped
    # (trusted.overlay.X as trusted.overlay.overlay.X), as the kernel does, and marks nothing.
    os.unlink(mnt / "dir" / "a")
    os.rmdir(mnt / "dir")
    os.mkdir(mnt / "dir")  # over a whiteout: opaque
    assert not any(n.startswith(("trusted.overlay.", "user.overlay.")) for n in os.listxattr(mnt / "dir"))
    os.setxattr(mnt / "file", "trusted.overlay.opaque", b"y")
    assert os.getxattr(upper / "file", "trusted.overlay.overlay.opaque") == b"y"
    assert "trusted.overlay.opaque" in os.listxattr(mnt / "file")
    assert _errno(os.setxattr, mnt / "file", "user.layerfs.origin", b"x") == errno.EOPNOTSUPP
    assert os.listdir(mnt / "dir") == []


def test_statfs_is_the_uppers(union):
    mnt, upper, _, _ = union
    got, want = os.statvfs(mnt), os.statvfs(upper)
    assert (got.f_bsize, got.f_blocks, got.f_files) == (want.f_bsize, want.f_blocks, want.f_files)


# -- readdir --------------------------------------------------------------------------------------
class _Dir:
    """opendir/readdir/telldir/seekdir from libc: Python has no telldir."""

    class Dirent(ctypes.Structure):
        _fields_ = [
            ("d_ino", ctypes.c_uint64),
            ("d_off", ctypes.c_int64),
            ("d_reclen", ctypes.c_ushort),
            ("d_type", ctypes.c_ubyte),
            ("d_name", ctypes.c_char * 256),
        ]

    def __init__(self, path: Path) -> None:
        _libc.opendir.restype = ctypes.c_void_p
        _libc.readdir.restype = ctypes.POINTER(self.Dirent)
        _libc.readdir.argtypes = [ctypes.c_void_p]
        _libc.telldir.restype = ctypes.c_long
        _libc.telldir.argtypes = [ctypes.c_void_p]
        _libc.seekdir.argtypes = [ctypes.c_void_p, ctypes.c_long]
        _libc.closedir.argtypes = [ctypes.c_void_p]
        self.handle = _libc.opendir(os.fsencode(path))
        assert self.handle

    def read(self, count: int | None = None) -> list[str]:
        names: list[str] = []
        while count is None or len(names) < count:
            entry = _libc.readdir(self.handle)
            if not entry:
                break
            names.append(entry.contents.d_name.decode())
        return names

    def tell(self) -> int:
        return _libc.telldir(self.handle)

    def seek(self, position: int) -> None:
        _libc.seekdir(self.handle, position)

    def close(self) -> None:
        _libc.closedir(self.handle)


def test_readdir_offsets_stay_right_while_the_directory_changes(union):
    mnt, upper, lower, _ = union
    big = lower / "big"
    big.mkdir()
    names = {f"{i:05d}-" + "x" * 120 for i in range(1500)}  # far more than one FUSE readdir page
    for name in names:
        (big / name).touch()
    d = _Dir(mnt / "big")
    try:
        first = d.read(400)
        position = d.tell()
        again = d.read(10)
        # Change the directory under the open handle: add, remove, and copy up.
        for i in range(100):
            (mnt / "big" / f"new-{i}").touch()
        for name in sorted(names)[-100:]:
            os.unlink(mnt / "big" / name)
        d.seek(position)
        rest = d.read()
    finally:
        d.close()
    assert rest[:10] == again
    seen = first + rest
    assert len(seen) == len(set(seen)), "an entry was returned twice"
    assert set(seen) - {".", ".."} == names  # the listing as it was at opendir, whole
    listing_now = set(os.listdir(mnt / "big"))
    assert {f"new-{i}" for i in range(100)} <= listing_now and len(listing_now) == 1500


def test_rewinddir_takes_a_fresh_listing(union):
    mnt, _, _, _ = union
    d = _Dir(mnt / "dir")
    try:
        assert sorted(d.read()) == [".", "..", "a"]
        (mnt / "dir" / "b").touch()
        d.seek(0)
        assert sorted(d.read()) == [".", "..", "a", "b"]
    finally:
        d.close()


# -- copy-up and handles ---------------------------------------------------------------------------
def test_read_handle_opened_before_a_copy_up_reads_the_new_data(union):
    mnt, upper, _, _ = union
    with open(mnt / "file", "rb", buffering=0) as reader:
        assert reader.read(5) == b"lower"
        with open(mnt / "file", "r+b", buffering=0) as writer:
            writer.write(b"UPPER")
        assert os.pread(reader.fileno(), 100, 0) == b"UPPER data\n"
    assert (upper / "file").read_bytes() == b"UPPER data\n"


def test_two_threads_writing_one_lower_file_copy_it_up_once(union):
    mnt, upper, _, trace = union
    (union[2] / "shared-file").write_bytes(b"." * 64)
    barrier = threading.Barrier(8)
    errors = []

    def writer(i: int) -> None:
        try:
            barrier.wait()
            fd = os.open(mnt / "shared-file", os.O_WRONLY)
            try:
                os.pwrite(fd, str(i).encode(), i)
            finally:
                os.close(fd)
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert (mnt / "shared-file").read_bytes() == b"01234567" + b"." * 56
    events = [json.loads(line) for line in trace.read_text().splitlines()]
    assert len([e for e in events if e["event"] == "copy_up" and e["path"] == "/shared-file"]) == 1


# -- other users -------------------------------------------------------------------------------------
def _as_nobody(code: str) -> subprocess.CompletedProcess:
    def drop() -> None:
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)

    # The system Python: the venv's may live where other users cannot reach.
    return subprocess.run(["/usr/bin/python3", "-c", code], preexec_fn=drop, capture_output=True, text=True, timeout=60)


def test_other_users_get_the_kernels_permission_checks(union):
    mnt, upper, _, _ = union
    probe = f"""
import errno, os
def try_(fn):
    try:
        fn(); return "ok"
    except OSError as e:
        return errno.errorcode[e.errno]
print(try_(lambda: open({str(mnt / "private")!r}).read()))
print(try_(lambda: open({str(mnt / "rootdir" / "x")!r}, 'w').close()))
print(try_(lambda: open({str(mnt / "file")!r}, 'a').close()))
print(try_(lambda: os.chmod({str(mnt / "file")!r}, 0o777)))
print(try_(lambda: open({str(mnt / "file")!r}).read()))
print(try_(lambda: open({str(mnt / "shared" / "mine")!r}, 'w').close()))
print(try_(lambda: os.mkdir({str(mnt / "shared" / "mydir")!r})))
"""
    result = _as_nobody(probe)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["EACCES", "EACCES", "EACCES", "EPERM", "ok", "ok", "ok"]
    for name in ("mine", "mydir"):
        st = os.stat(mnt / "shared" / name)
        assert (st.st_uid, st.st_gid) == (65534, 65534)  # the caller's, not the daemon's
        st = os.stat(upper / "shared" / name)
        assert (st.st_uid, st.st_gid) == (65534, 65534)
    assert not (upper / "file").exists()  # refused before any copy-up


def test_another_users_setuid_file_keeps_its_mode(union):
    """The daemon gives a new file to its caller with chown(2), which drops S_ISUID and
    S_ISGID: they are set again, as the kernel's overlay (which creates as the caller) keeps them."""
    mnt, upper, _, _ = union
    made = _as_nobody(
        f"import os; os.umask(0); os.close(os.open({str(mnt / 'shared' / 'tool')!r}, os.O_WRONLY | os.O_CREAT, 0o6755))"
    )
    assert made.returncode == 0, made.stderr
    for st in (os.stat(mnt / "shared" / "tool"), os.stat(upper / "shared" / "tool")):
        assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o6755, 65534, 65534)


# -- times, links, modes ------------------------------------------------------------------------------
def test_times_links_and_modes(union):
    mnt, upper, lower, _ = union
    before = os.stat(mnt / "file")
    os.utime(mnt / "file", ns=(before.st_atime_ns, 1_000_000_000_123_456_789))
    st = os.stat(mnt / "file")
    assert st.st_mtime_ns == 1_000_000_000_123_456_789 and st.st_atime_ns == before.st_atime_ns
    a_before = os.stat(mnt / "dir" / "a")
    subprocess.run(["touch", "-m", "-d", "@978307200", str(mnt / "dir" / "a")], check=True)
    a = os.stat(mnt / "dir" / "a")
    assert a.st_mtime_ns == 978307200 * 10**9
    assert a.st_atime_ns == a_before.st_atime_ns  # UTIME_OMIT kept the access time
    os.symlink("file", mnt / "link")
    assert os.readlink(mnt / "link") == "file" and (mnt / "link").read_text().startswith("lower")
    os.link(mnt / "dir" / "a", mnt / "hard")
    assert os.stat(upper / "hard").st_ino == os.stat(upper / "dir" / "a").st_ino
    os.chmod(mnt / "dir", 0o700)
    assert stat.S_IMODE(os.stat(upper / "dir").st_mode) == 0o700
    os.chown(mnt / "dir" / "a", 123, 456)
    assert (os.stat(mnt / "dir" / "a").st_uid, os.stat(upper / "dir" / "a").st_gid) == (123, 456)
    os.mkfifo(mnt / "fifo")
    assert stat.S_ISFIFO(os.stat(upper / "fifo").st_mode)
    os.truncate(mnt / "file", 3)
    assert (mnt / "file").read_text() == "low" and os.stat(mnt / "file").st_size == 3
