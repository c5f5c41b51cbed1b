"""The mfusepy `Operations` over a `Union`: translate FUSE calls and errors, hold handles.

No semantics live here. Every call becomes one `Union` method; the core's OSErrors carry
the errno FUSE returns. What this module adds is what only the FUSE side knows: the
caller's uid and gid (new objects belong to them), integer file handles, a per-opendir
snapshot of the listing (so readdir offsets stay right while the directory changes, as in
the kernel's overlay), and the libfuse 3 arguments that mfusepy's plain `FUSE` drops
(rename flags, UTIME_NOW/UTIME_OMIT).
"""
from __future__ import annotations

import errno
import itertools
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

# mfusepy loads libfuse 2 when both are installed; libfuse 3 passes rename flags
# (RENAME_NOREPLACE), so prefer it unless the user chose a library.
if not os.environ.get("FUSE_LIBRARY_PATH"):
    os.environ.setdefault("FUSE_LIBRARY_NAME", "fuse3")

import mfusepy as fuse  # noqa: E402  (after the library choice above)

from .super import Cred  # noqa: E402
from .union import Union  # noqa: E402

UTIME_NOW = (1 << 30) - 1
UTIME_OMIT = (1 << 30) - 2


@dataclass
class DirHandle:
    """An open directory: its listing is taken at offset 0 and served from there on."""

    path: str
    names: list[str] | None = None


@dataclass
class HandleTable:
    """Integer file handles for the kernel, objects for us (shared by the loop's threads)."""

    items: dict[int, Any] = field(default_factory=dict)
    _next: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, item: Any) -> int:
        with self._lock:
            fh = next(self._next)
            self.items[fh] = item
            return fh

    def get(self, fh: int) -> Any:
        try:
            return self.items[fh]
        except KeyError:
            raise OSError(errno.EBADF, os.strerror(errno.EBADF)) from None

    def pop(self, fh: int) -> Any:
        with self._lock:
            return self.items.pop(fh, None)

    def drain(self) -> list[Any]:
        with self._lock:
            items, self.items = list(self.items.values()), {}
            return items


def _caller() -> Cred:
    uid, gid, _pid = fuse.fuse_get_context()
    return Cred(uid, gid)


class LayerOps(fuse.Operations):
    """FUSE operations for one mounted union."""

    use_ns = True  # times as integer nanoseconds, as the core keeps them

    def __init__(self, union: Union, on_ready: Callable[[], None] | None = None) -> None:
        self.union = union
        self.on_ready = on_ready
        self.files = HandleTable()
        self.dirs = HandleTable()

    # -- life cycle -----------------------------------------------------------------------
    def init(self, path: str) -> None:
        """The kernel has answered FUSE_INIT: the mount is live."""
        if self.on_ready is not None:
            self.on_ready()

    def destroy(self, path: str) -> None:
        """Unmounted: close what the kernel left open, so every layer file is complete."""
        for handle in self.files.drain():
            handle.close()
        self.dirs.drain()

    # -- attributes -----------------------------------------------------------------------
    def getattr(self, path: str, fh: int | None = None) -> dict[str, int]:
        st = self.union.getattr(path)
        return {
            "st_mode": st.st_mode, "st_ino": st.st_ino, "st_nlink": st.st_nlink,
            "st_uid": st.st_uid, "st_gid": st.st_gid, "st_size": st.st_size,
            "st_atime": st.st_atime_ns, "st_mtime": st.st_mtime_ns, "st_ctime": st.st_ctime_ns,
            "st_rdev": st.st_rdev, "st_blocks": st.st_blocks, "st_blksize": st.st_blksize,
        }

    def readlink(self, path: str) -> str:
        return self.union.readlink(path)

    def chmod(self, path: str, mode: int) -> int:
        self.union.chmod(path, mode)
        return 0

    def chown(self, path: str, uid: int, gid: int) -> int:
        self.union.chown(path, uid, gid)
        return 0

    def truncate(self, path: str, length: int, fh: int | None = None) -> int:
        self.union.truncate(path, length)
        return 0

    def utimens(self, path: str, times: tuple[int, int] | None = None) -> int:
        """`times` may hold UTIME_NOW or UTIME_OMIT (see `_LayerFUSE`): resolve them here."""
        if times is None or times == (UTIME_NOW, UTIME_NOW):
            self.union.utimens(path, None)
            return 0
        now = time.time_ns()
        current = None
        resolved = []
        for value, which in zip(times, ("st_atime_ns", "st_mtime_ns")):
            if value == UTIME_NOW:
                value = now
            elif value == UTIME_OMIT:
                current = current or self.union.getattr(path)
                value = getattr(current, which)
            resolved.append(value)
        self.union.utimens(path, (resolved[0], resolved[1]))
        return 0

    def statfs(self, path: str) -> dict[str, int]:
        sv = self.union.statfs(path)
        return {key: getattr(sv, key) for key in ("f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail",
                                                  "f_files", "f_ffree", "f_favail", "f_namemax")}

    # -- xattrs -----------------------------------------------------------------------------
    def getxattr(self, path: str, name: str, position: int = 0) -> bytes:
        return self.union.getxattr(path, name)

    def listxattr(self, path: str) -> list[str]:
        return self.union.listxattr(path)

    def setxattr(self, path: str, name: str, value: bytes, options: int, position: int = 0) -> int:
        self.union.setxattr(path, name, value, options)
        return 0

    def removexattr(self, path: str, name: str) -> int:
        self.union.removexattr(path, name)
        return 0

    # -- namespace --------------------------------------------------------------------------
    def mkdir(self, path: str, mode: int) -> int:
        self.union.mkdir(path, mode, _caller())
        return 0

    def mknod(self, path: str, mode: int, dev: int) -> int:
        self.union.mknod(path, mode, dev, _caller())
        return 0

    def symlink(self, path: str, target: str) -> int:
        """mfusepy's order: the new link's path first, then what it points to."""
        self.union.symlink(target, path, _caller())
        return 0

    def link(self, path: str, existing: str) -> int:
        """mfusepy's order: the new name first, then the existing file."""
        self.union.link(existing, path)
        return 0

    def unlink(self, path: str) -> int:
        self.union.unlink(path)
        return 0

    def rmdir(self, path: str) -> int:
        self.union.rmdir(path)
        return 0

    def rename(self, old: str, new: str, flags: int = 0) -> int:
        self.union.rename(old, new, flags)
        return 0

    # -- files ----------------------------------------------------------------------------
    def create(self, path: str, mode: int, flags: int = os.O_WRONLY | os.O_CREAT) -> int:
        return self.files.add(self.union.create(path, mode, flags, _caller()))

    def open(self, path: str, flags: int) -> int:
        return self.files.add(self.union.open(path, flags))

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        return self.files.get(fh).read(size, offset)

    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        return self.files.get(fh).write(data, offset)

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

    def readdir_with_offset(self, path: str, offset: int, fh: int):
        """Entries after `offset`; offset 0 (a new read or a rewinddir) takes a fresh listing."""
        handle: DirHandle = self.dirs.get(fh)
        if offset == 0 or handle.names is None:
            handle.names = self.union.readdir(handle.path)
        names = handle.names
        return [(names[i], None, i + 1) for i in range(offset, len(names))]

    def releasedir(self, path: str, fh: int) -> int:
        self.dirs.pop(fh)
        return 0

    def fsyncdir(self, path: str, datasync: int, fh: int) -> int:
        return 0


class _LayerFUSE(fuse.FUSE):
    """mfusepy's FUSE, passing on what its libfuse 3 wrappers drop."""

    def rename_fuse_3(self, old: bytes, new: bytes, flags: int) -> int:
        return self.operations.rename(old.decode(self.encoding, self.errors),
                                      new.decode(self.encoding, self.errors), flags)

    def _times(self, buf) -> tuple[int, int] | None:
        if not buf:
            return None
        out = []
        for ts in (buf.contents.actime, buf.contents.modtime):
            if ts.tv_nsec in (UTIME_NOW, UTIME_OMIT):
                out.append(ts.tv_nsec)
            else:
                out.append(ts.tv_sec * 10**9 + ts.tv_nsec)
        return out[0], out[1]

    def utimens_fuse_3(self, path, buf, fip) -> int:
        return self.operations.utimens(path.decode(self.encoding, self.errors), self._times(buf))

    def utimens_fuse_2(self, path, buf) -> int:
        return self.operations.utimens(path.decode(self.encoding, self.errors), self._times(buf))


def run_fuse(ops: LayerOps, mountpoint: str, fuse_options: dict[str, Any]) -> None:
    """Run the multi-threaded FUSE loop in this process until the union is unmounted."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        _LayerFUSE(ops, mountpoint, foreground=True, nothreads=False, **fuse_options)
