"""The mfusepy `Operations` over a `Union`: translate FUSE calls and errors, hold handles.

No semantics live here. Every call becomes one `Union` method; the core's OSErrors carry
the errno FUSE returns. What this module adds is what only the FUSE side knows: the
caller's uid and gid (new objects belong to them), integer file handles, a per-opendir
snapshot of the listing (so readdir offsets stay right while the directory changes, as in
the kernel's overlay), and the libfuse 3 arguments that mfusepy's plain `FUSE` drops
(rename flags, UTIME_NOW/UTIME_OMIT).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import itertools
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .handles import HandleTable
from .inode import Stat
from .libfuse import prefer_libfuse3
from .listing import stat_entries
from .super import Cred
from .union import Union

prefer_libfuse3()  # before mfusepy loads a library (libfuse.py: why)

import mfusepy as fuse  # noqa: E402 - after prefer_libfuse3

UTIME_NOW = (1 << 30) - 1
UTIME_OMIT = (1 << 30) - 2
FUSE_READDIR_PLUS = 1  # enum fuse_readdir_flags
FUSE_FILL_DIR_PLUS = 2  # enum fuse_fill_dir_flags

#: A listing entry for libfuse: (name, attributes or None, offset of the next entry).
Entry = tuple[str, dict[str, int] | None, int]


@dataclass
class DirHandle:
    """An open directory: its listing is taken at offset 0 and served from there on."""

    path: str
    names: list[str] | None = None
    plus: bool = False  # this listing hands the kernel each entry's attributes


@dataclass
class LinkNames:
    """The union paths reported for each hard-linked regular file, by its real (dev, ino).

    Only files the kernel was shown with st_nlink > 1 are kept: those are the ones whose other
    names may hold cached attributes or pages in the kernel after a change through one name.
    """

    by_key: dict[tuple[int, int], set[str]] = field(default_factory=dict)
    by_path: dict[str, tuple[int, int]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, path: str, st: Stat) -> None:
        """Record what getattr (or a listing) reported for `path`."""
        if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
            key = (st.st_dev, st.st_ino)
            if self.by_path.get(path) != key:
                with self._lock:
                    self._drop(path)
                    self.by_path[path] = key
                    self.by_key.setdefault(key, set()).add(path)
        elif path in self.by_path:
            self.drop(path)

    def others(self, path: str) -> list[str]:
        """The other names of `path`'s file (empty unless it is a known hard link)."""
        key = self.by_path.get(path)
        if key is None:
            return []
        with self._lock:
            return [p for p in self.by_key.get(key, ()) if p != path]

    def drop(self, path: str) -> None:
        with self._lock:
            self._drop(path)

    def _drop(self, path: str) -> None:
        key = self.by_path.pop(path, None)
        if key is not None:
            names = self.by_key.get(key)
            if names is not None:
                names.discard(path)
                if not names:
                    del self.by_key[key]

    def rename(self, old: str, new: str) -> None:
        """`old` (a file, or a directory with everything under it) is now called `new`."""
        if not self.by_path:
            return
        prefix = old.rstrip("/") + "/"
        with self._lock:
            self._drop(new)
            moved = [p for p in self.by_path if p == old or p.startswith(prefix)]
            for p in moved:
                key = self.by_path[p]
                self._drop(p)
                q = new + p[len(old) :]
                self.by_path[q] = key
                self.by_key.setdefault(key, set()).add(q)


class Invalidator:
    """Drops the kernel's cached attributes and pages of a union path (libfuse >= 3.1).

    `struct fuse *` comes from the FUSE context of `init`; without libfuse 3 (no
    `fuse_invalidate_path`) this does nothing, and the mount uses short timeouts instead.
    """

    def __init__(self) -> None:
        self._fuse: int | None = None
        self._fn = None
        if fuse.fuse_version_major == 3:
            fn = getattr(fuse._libfuse, "fuse_invalidate_path", None)
            if fn is not None:
                fn.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
                fn.restype = ctypes.c_int
                self._fn = fn

    @property
    def available(self) -> bool:
        return self._fn is not None

    def start(self) -> None:
        """Called in `init`, inside libfuse's context, where `fuse_get_context()->fuse` is ours."""
        if self._fn is not None:
            self._fuse = fuse._libfuse.fuse_get_context().contents.fuse

    def __call__(self, path: str) -> None:
        if self._fn is not None and self._fuse:
            # -ENOENT when the kernel has no node for the path: nothing cached, nothing to do.
            self._fn(self._fuse, os.fsencode(path))


def library_versions() -> list[str]:
    """libfuse's version lines, as fuse-overlayfs -V prints them: fuse_pkgversion(), then what
    fuse_lowlevel_version() prints (the kernel interface version, and fusermount3's)."""
    import sys
    import tempfile

    lib = fuse._libfuse
    lines = []
    pkgversion = getattr(lib, "fuse_pkgversion", None)
    if pkgversion is not None:
        pkgversion.restype = ctypes.c_char_p
        lines.append(f"FUSE library version {pkgversion().decode()}")
    lowlevel = getattr(lib, "fuse_lowlevel_version", None)
    if lowlevel is None:
        return lines
    # It prints with C's stdio (and runs fusermount3 --version): catch fd 1 in a file.
    libc = ctypes.CDLL(None)
    sys.stdout.flush()
    saved = os.dup(1)
    with tempfile.TemporaryFile() as out:
        os.dup2(out.fileno(), 1)
        try:
            lowlevel()
            libc.fflush(None)
        finally:
            os.dup2(saved, 1)
            os.close(saved)
        out.seek(0)
        lines += [line for line in out.read().decode("utf-8", "replace").splitlines() if line.strip()]
    return lines


def _caller() -> Cred:
    uid, gid, _pid = fuse.fuse_get_context()
    return Cred(uid, gid)


class LayerOps(fuse.Operations):
    """FUSE operations for one mounted union."""

    use_ns = True  # times as integer nanoseconds, as the core keeps them

    def __init__(
        self,
        union: Union,
        on_ready: Callable[[], None] | None = None,
        after_init: Callable[[], object] | None = None,
    ) -> None:
        self.union = union
        self.on_ready = on_ready
        self.after_init = after_init  # run by the first request after FUSE_INIT (_LayerFUSE._wrapper)
        self.first_request: Callable[[], object] | None = None
        self.files = HandleTable()
        self.dirs = HandleTable()
        self.links = LinkNames()
        self._listed: set[str] = set()  # directories whose entries' attributes the kernel got
        self.invalidate = Invalidator()
        self.max_read = 0  # the max_read= mount option, repeated in init (run_fuse sets it)
        self._local = threading.local()
        union.listen(self._on_event)  # copy-ups change what the kernel has cached

    # -- telling the kernel what it cannot see ---------------------------------------------
    def _on_event(self, event: dict) -> None:
        """A copied-up directory now shows the upper's attributes (nlink 1 once merged, its
        ctime): note it, to invalidate once the operation that copied it up is done."""
        if event.get("event") == "copy_up":
            pending = getattr(self._local, "copied", None)
            if pending is None:
                pending = self._local.copied = []
            pending.append(str(event.get("path")))

    @contextlib.contextmanager
    def _changing(self, *paths: str, skip: tuple[str, ...] = ()) -> Iterator[None]:
        """Run a change, then `_changed`, also when it fails (a copy-up may have been done)."""
        try:
            yield
        finally:
            self._changed(*paths, skip=skip)

    def _changed(self, *paths: str, skip: tuple[str, ...] = ()) -> None:
        """After a change to `paths`: invalidate their files' other names and copied-up parents.

        `skip` are names whose kernel inode the kernel refreshes itself (the target of a
        setattr, a write); invalidating those from inside their own request is what libfuse
        warns may deadlock.
        """
        targets: set[str] = set()
        for path in paths:
            targets.update(self.links.others(path))
        pending = getattr(self._local, "copied", None)
        if pending:
            targets.update(pending)
            pending.clear()
        for path in targets:
            if path not in skip:
                self.invalidate(path)

    def _note(self, path: str, st: Stat) -> Stat:
        self.links.note(path, st)
        return st

    # -- life cycle -----------------------------------------------------------------------
    def init_with_config(self, conn: Any, config: Any) -> None:
        """The kernel has answered FUSE_INIT: the mount is live. libfuse 3 refuses FUSE_INIT
        unless init repeats the max_read= option in the connection (lowlevel.init_conn)."""
        if conn is not None and hasattr(conn, "max_read"):
            conn.max_read = self.max_read
        self.invalidate.start()
        self.first_request = self.after_init
        if self.on_ready is not None:
            self.on_ready()

    def destroy(self, path: str) -> None:
        """Unmounted: close what the kernel left open, so every layer file is complete."""
        for handle in self.files.drain():
            handle.close()
        self.dirs.drain()

    # -- attributes -----------------------------------------------------------------------
    def getattr(self, path: str, fh: int | None = None) -> dict[str, int]:
        return self._attrs(self.stat(path))

    def stat(self, path: str) -> Stat:
        """What getattr reports, as the union's Stat (_LayerFUSE fills libfuse's struct with it)."""
        return self._note(path, self.union.getattr(path))

    @staticmethod
    def _attrs(st: Stat) -> dict[str, int]:
        return {
            "st_mode": st.st_mode,
            "st_ino": st.st_ino,
            "st_nlink": st.st_nlink,
            "st_uid": st.st_uid,
            "st_gid": st.st_gid,
            "st_size": st.st_size,
            "st_atime": st.st_atime_ns,
            "st_mtime": st.st_mtime_ns,
            "st_ctime": st.st_ctime_ns,
            "st_rdev": st.st_rdev,
            "st_blocks": st.st_blocks,
            "st_blksize": st.st_blksize,
        }

    def readlink(self, path: str) -> str:
        return self.union.readlink(path)

    def chmod(self, path: str, mode: int) -> int:
        with self._changing(path, skip=(path,)):
            self.union.chmod(path, mode)
        return 0

    def chown(self, path: str, uid: int, gid: int) -> int:
        with self._changing(path, skip=(path,)):
            self.union.chown(path, uid, gid)
        return 0

    def truncate(self, path: str, length: int, fh: int | None = None) -> int:
        with self._changing(path, skip=(path,)):
            self.union.truncate(path, length)
        return 0

    def utimens(self, path: str, times: tuple[int, int] | None = None) -> int:
        """`times` may hold UTIME_NOW or UTIME_OMIT (see `_LayerFUSE`): resolve them here."""
        if times is None or times == (UTIME_NOW, UTIME_NOW):
            with self._changing(path, skip=(path,)):
                self.union.utimens(path, None)
            return 0
        now = time.time_ns()
        current = None
        resolved = []
        for value, which in zip(times, ("st_atime_ns", "st_mtime_ns"), strict=True):
            if value == UTIME_NOW:
                value = now
            elif value == UTIME_OMIT:
                current = current or self.union.getattr(path)
                value = getattr(current, which)
            resolved.append(value)
        with self._changing(path, skip=(path,)):
            self.union.utimens(path, (resolved[0], resolved[1]))
        return 0

    def statfs(self, path: str) -> dict[str, int]:
        sv = self.union.statfs(path)
        return {
            key: getattr(sv, key)
            for key in (
                "f_bsize",
                "f_frsize",
                "f_blocks",
                "f_bfree",
                "f_bavail",
                "f_files",
                "f_ffree",
                "f_favail",
                "f_namemax",
            )
        }

    # -- xattrs -----------------------------------------------------------------------------
    def getxattr(self, path: str, name: str, position: int = 0) -> bytes:
        return self.union.getxattr(path, name)

    def listxattr(self, path: str) -> list[str]:
        return self.union.listxattr(path)

    def setxattr(self, path: str, name: str, value: bytes, options: int, position: int = 0) -> int:
        with self._changing(path):
            self.union.setxattr(path, name, value, options)
        return 0

    def removexattr(self, path: str, name: str) -> int:
        with self._changing(path):
            self.union.removexattr(path, name)
        return 0

    # -- namespace --------------------------------------------------------------------------
    def mkdir(self, path: str, mode: int) -> int:
        with self._changing():
            self.union.mkdir(path, mode, _caller())
        return 0

    def mknod(self, path: str, mode: int, dev: int) -> int:
        with self._changing():
            self.union.mknod(path, mode, dev, _caller())
        return 0

    def symlink(self, path: str, target: str) -> int:
        """mfusepy's order: the new link's path first, then what it points to."""
        with self._changing():
            self.union.symlink(target, path, _caller())
        return 0

    def link(self, path: str, existing: str) -> int:
        """mfusepy's order: the new name first, then the existing file. Every name of the
        file now counts one more link: its other names' cached attributes are stale."""
        with self._changing(path, skip=(path,)):
            self.union.link(existing, path)
            st = self.union.getattr(path)
            self.links.note(existing, st)
            self.links.note(path, st)
        return 0

    def unlink(self, path: str) -> int:
        others = self.links.others(path)
        with self._changing():
            self.union.unlink(path)
        self.links.drop(path)
        for name in others:  # one link fewer
            self.invalidate(name)
        return 0

    def rmdir(self, path: str) -> int:
        with self._changing():
            self.union.rmdir(path)
        return 0

    def rename(self, old: str, new: str, flags: int = 0) -> int:
        # A file replaced at `new` loses a link; the renamed file's ctime changes.
        others = self.links.others(new) + self.links.others(old)
        with self._changing():
            self.union.rename(old, new, flags)
        self.links.rename(old, new)
        for name in others:
            if name not in (old, new):
                self.invalidate(name)
        return 0

    # -- files ----------------------------------------------------------------------------
    def create(self, path: str, mode: int, flags: int = os.O_WRONLY | os.O_CREAT) -> int:
        with self._changing(path):
            return self.files.add(self.union.create(path, mode, flags, _caller()))

    def open(self, path: str, flags: int) -> int:
        if not flags & (os.O_WRONLY | os.O_RDWR | os.O_TRUNC):
            return self.files.add(self.union.open(path, flags))
        with self._changing(path):  # a copy-up, or O_TRUNC emptied every name's file
            return self.files.add(self.union.open(path, flags, cred=_caller()))

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        return self.files.get(fh).read(size, offset)

    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        written = self.files.get(fh).write(data, offset)
        if path in self.links.by_path:
            self._changed(path, skip=(path,))
        return written

    def flush(self, path: str, fh: int) -> int:
        return 0  # writes reach the layer file at once: nothing is buffered here

    def fsync(self, path: str, datasync: int, fh: int) -> int:
        self.files.get(fh).fsync(bool(datasync))
        return 0

    def release(self, path: str, fh: int) -> int:
        handle = self.files.pop(fh)
        if handle is not None:
            handle.close()
        return 0

    # -- directories ----------------------------------------------------------------------
    def opendir(self, path: str) -> int:
        node = self.union.lookup(path)
        if not node.is_dir:
            raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
        return self.dirs.add(DirHandle(path))

    def readdir_with_offset(self, path: str, offset: int, fh: int) -> Iterator[Entry]:
        """Entries after `offset`; offset 0 (a new read or a rewinddir) takes a fresh listing.

        A generator: libfuse stops asking once the kernel's buffer is full.
        """
        handle: DirHandle = self.dirs.get(fh)
        if offset == 0 or handle.names is None:
            handle.names = self.union.readdir(handle.path)
        names = handle.names
        return ((names[i], None, i + 1) for i in range(offset, len(names)))

    def readdir_plus(self, path: str, offset: int, fh: int) -> Iterator[Entry]:
        """The kernel asks for a listing with attributes (READDIRPLUS): give them the first
        time it lists a directory, so a cold `find` or `ls -l` needs no LOOKUP per entry.

        Later listings of the same directory come without: the kernel keeps the entries
        and attributes it was given (long timeouts, and it hears of every change), so
        working them out again would only slow warm walks down. Should it have dropped some,
        it looks them up, as without READDIRPLUS.
        """
        handle: DirHandle = self.dirs.get(fh)
        if offset == 0:
            given = self._listed
            handle.plus = handle.path not in given
            if handle.plus:
                if len(given) > 1 << 16:
                    given.clear()
                given.add(handle.path)
        entries = self.readdir_with_offset(path, offset, fh)
        return self._with_attrs(handle, entries) if handle.plus else entries

    def _with_attrs(self, handle: DirHandle, entries: Iterator[Entry]) -> Iterator[Entry]:
        """`entries` with their attributes, worked out a batch at a time (libfuse stops
        asking once the kernel's buffer is full)."""
        base = handle.path.rstrip("/") + "/"
        while True:
            batch = list(itertools.islice(entries, 128))
            if not batch:
                return
            try:
                stats = stat_entries(self.union, handle.path, [name for name, _, _ in batch])
            except OSError:
                stats = {}
            for name, _, off in batch:
                st = stats.get(name)
                if st is None:
                    yield name, None, off
                else:
                    self._note(base + name, st)
                    yield name, self._attrs(st), off

    def releasedir(self, path: str, fh: int) -> int:
        self.dirs.pop(fh)
        return 0

    def fsyncdir(self, path: str, datasync: int, fh: int) -> int:
        self.union.fsyncdir(path)
        return 0


class _LayerFUSE(fuse.FUSE):
    """mfusepy's FUSE, passing on what its libfuse 3 wrappers drop."""

    def _wrapper(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """mfusepy's wrapper of every call. The first request after `init` first runs the
        operations' `after_init` hook: the kernel has processed init's reply by then (it sends
        nothing before), which `init` itself, called before the reply, cannot know."""
        ops = self.operations
        if ops.first_request is not None:
            hook, ops.first_request = ops.first_request, None
            hook()
        return super()._wrapper(func, *args, **kwargs)

    def opendir(self, path: bytes, fip: fuse.fuse_fi_p) -> int:
        """Let the kernel keep listings (FOPEN_CACHE_DIR, kept across opens): it drops them
        itself when the directory changes through the mount, the only way it can change."""
        fi = fip.contents
        fi.fh = self.operations.opendir(path.decode(self.encoding, self.errors))
        if hasattr(fi, "cache_readdir"):
            fi.cache_readdir = 1
            fi.keep_cache = 1
        return 0

    def readdir_fuse_3(
        self, path: bytes | None, buf: Any, filler: Any, offset: int, fip: fuse.fuse_fi_p, flags: int
    ) -> int:
        """READDIRPLUS: hand libfuse each entry's attributes with FUSE_FILL_DIR_PLUS."""
        if not flags & FUSE_READDIR_PLUS:
            return self._readdir(path, buf, filler, offset, fip)
        entries = self.operations.readdir_plus(
            path.decode(self.encoding, self.errors) if path else "/", offset, fip.contents.fh
        )
        st = fuse.c_stat()
        for name, attrs, off in entries:
            encoded = name.encode(self.encoding, self.errors)
            if attrs is None:
                if filler(buf, encoded, None, off, 0) != 0:
                    break
                continue
            ctypes.memset(ctypes.byref(st), 0, ctypes.sizeof(st))
            fuse.set_st_attrs(st, attrs, use_ns=True)
            if filler(buf, encoded, st, off, FUSE_FILL_DIR_PLUS) != 0:
                break
        return 0

    def getattr_fuse_3(self, path: bytes | None, buf: Any, fip: fuse.fuse_fi_p) -> int:
        """The most frequent call (every lookup and stat): the union's Stat goes straight into
        libfuse's struct stat, without mfusepy's attribute dict and its per-key loop."""
        fill_stat(buf.contents, self.operations.stat(self._path(path)))
        return 0

    def rename_fuse_3(self, old: bytes, new: bytes, flags: int) -> int:
        return self.operations.rename(
            old.decode(self.encoding, self.errors), new.decode(self.encoding, self.errors), flags
        )

    def _times(self, buf: fuse.c_utimbuf_p) -> tuple[int, int] | None:
        if not buf:
            return None
        out = []
        for ts in (buf.contents.actime, buf.contents.modtime):
            if ts.tv_nsec in (UTIME_NOW, UTIME_OMIT):
                out.append(ts.tv_nsec)
            else:
                out.append(ts.tv_sec * 10**9 + ts.tv_nsec)
        return out[0], out[1]

    def utimens_fuse_3(self, path: bytes | None, buf: fuse.c_utimbuf_p, fip: fuse.fuse_fi_p) -> int:
        return self.operations.utimens(self._path(path), self._times(buf))

    def utimens_fuse_2(self, path: bytes | None, buf: fuse.c_utimbuf_p) -> int:
        return self.operations.utimens(self._path(path), self._times(buf))

    def _path(self, path: bytes | None) -> str:
        """libfuse's high-level API gives a path unless `nullpath_ok` is set, which we never set."""
        if path is None:
            raise OSError(errno.EINVAL, "no path given")
        return path.decode(self.encoding, self.errors)


def fill_stat(out: Any, st: Stat) -> None:
    """`st` into mfusepy's c_stat `out` (zeroed first: padding, and what we do not report)."""
    ctypes.memset(ctypes.byref(out), 0, ctypes.sizeof(out))
    out.st_mode = st.st_mode
    out.st_ino = st.st_ino
    out.st_nlink = st.st_nlink
    out.st_uid = st.st_uid
    out.st_gid = st.st_gid
    out.st_size = st.st_size
    out.st_rdev = st.st_rdev
    out.st_blocks = st.st_blocks
    out.st_blksize = st.st_blksize
    out.st_atimespec.tv_sec, out.st_atimespec.tv_nsec = divmod(st.st_atime_ns, 1_000_000_000)
    out.st_mtimespec.tv_sec, out.st_mtimespec.tv_nsec = divmod(st.st_mtime_ns, 1_000_000_000)
    out.st_ctimespec.tv_sec, out.st_ctimespec.tv_nsec = divmod(st.st_ctime_ns, 1_000_000_000)


def run_fuse(ops: LayerOps, mountpoint: str, fuse_options: dict[str, Any]) -> None:
    """Run the multi-threaded FUSE loop in this process until the union is unmounted."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        options = dict(fuse_options)
        nothreads = bool(options.pop("nothreads", False))
        ops.max_read = int(options.get("max_read") or 0)
        _LayerFUSE(ops, mountpoint, foreground=True, nothreads=nothreads, **options)
