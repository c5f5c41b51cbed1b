"""Copy-up origins: which lower object an upper one came from (the kernel's `overlay.origin`).

On copy-up the kernel stores, on the new upper object, a file handle of the lower object it
was copied from (`trusted.overlay.origin`, or `user.overlay.origin` with `userxattr`), for
directories and for files with a single link (a lower hard link is broken by the copy-up, so
its copies must not share a number). `stat` then reports the origin's inode number, so a file
keeps its `st_ino` across copy-up and renames. layerfs writes the same xattr in the same
format (struct ovl_fb: version 0, magic 0xfb, length, flags, handle type, the filesystem's
UUID, the handle), so the kernel reads layerfs's uppers and layerfs reads the kernel's.

Finding the origin again: first the lower object at the same path (what a file not renamed
since its copy-up has), compared by handle; else `open_by_handle_at`, which needs
CAP_DAC_READ_SEARCH (root): without it a renamed copy shows its upper inode number.
"""

from __future__ import annotations

import errno
import os
import stat
import threading
from dataclasses import dataclass, field
from functools import lru_cache

from .fsutil import Libc, fs_uuid

OVL_FH_VERSION = 0
OVL_FH_MAGIC = 0xFB
_HEADER = 5  # version, magic, len, flags, type
_UUID = 16


@dataclass(frozen=True)
class OriginHandle:
    """A decoded `overlay.origin`: the lower object's handle and its filesystem's UUID."""

    handle_type: int
    fid: bytes
    uuid: bytes

    def encode(self) -> bytes:
        """struct ovl_fb, with flags 0 (little-endian fid, a lower object)."""
        return bytes([OVL_FH_VERSION, OVL_FH_MAGIC, _HEADER + _UUID + len(self.fid), 0, self.handle_type]) + (
            self.uuid + self.fid
        )

    @classmethod
    def decode(cls, value: bytes) -> OriginHandle | None:
        """None for an empty value ("copied up, origin unknown") or one that is not ours."""
        if len(value) < _HEADER + _UUID or value[0] != OVL_FH_VERSION or value[1] != OVL_FH_MAGIC:
            return None
        if value[2] != len(value):
            return None
        return cls(value[4], bytes(value[_HEADER + _UUID :]), bytes(value[_HEADER : _HEADER + _UUID]))


@dataclass
class Origins:
    """Writes origins at copy-up and finds them at stat time, with caches.

    `xattr` is the union's own name for it. Lower layers never change while the union is
    open, so their handles are cached for good; an upper object's origin is cached by
    (device, inode, ctime), which any change to the object (an xattr included) moves on.
    """

    libc: Libc
    xattr: str
    lower_paths: tuple[str, ...]
    _found: dict[tuple[int, int, int], os.stat_result | None] = field(default_factory=dict)
    _mount_fds: dict[bytes, list[int]] | None = None
    _uuids: dict[int, bytes] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.handle_of = lru_cache(maxsize=1 << 16)(self._handle_of)

    def _handle_of(self, real: str) -> OriginHandle | None:
        try:
            handle_type, fid = self.libc.name_to_handle_at(real)
        except OSError:
            return None  # a filesystem without file handles: no origin, as in the kernel
        return OriginHandle(handle_type, fid, self._uuid(os.path.dirname(real) or "/"))

    def _uuid(self, directory: str) -> bytes:
        dev = os.stat(directory).st_dev
        uuid = self._uuids.get(dev)
        if uuid is None:
            uuid = self._uuids[dev] = fs_uuid(directory)
        return uuid

    # -- at copy-up ---------------------------------------------------------------------------
    def mark(self, source: str, source_st: os.stat_result, target: str) -> None:
        """Record on `target` (the copy, still in the work dir) where it came from."""
        if not stat.S_ISDIR(source_st.st_mode) and source_st.st_nlink != 1:
            return  # a broken hard link: its copies are new files (the kernel, index=off)
        handle = self.handle_of(source)
        if handle is None:
            return
        try:
            os.setxattr(target, self.xattr, handle.encode(), follow_symlinks=False)
        except OSError as exc:
            if exc.errno not in (errno.ENOTSUP, errno.EPERM):
                raise

    def made(self, st: os.stat_result) -> None:
        """An object the union has just made (`st`: its attributes) has no origin: noted, so
        that its first stat does not look for one."""
        with self._lock:
            if len(self._found) > 1 << 16:
                self._found.clear()
            self._found[(st.st_dev, st.st_ino, st.st_ctime_ns)] = None

    # -- at stat time -------------------------------------------------------------------------
    def find(
        self, upper_real: str, upper_st: os.stat_result, here: os.stat_result | None, here_real: str | None
    ) -> os.stat_result | None:
        """The origin's stat of upper non-directory `upper_real`, or None.

        `here` is the lower object at the same union path (if any): the usual origin.
        """
        key = (upper_st.st_dev, upper_st.st_ino, upper_st.st_ctime_ns)
        try:
            return self._found[key]
        except KeyError:
            pass
        found = self._find(upper_real, here, here_real)
        with self._lock:
            if len(self._found) > 1 << 16:
                self._found.clear()
            self._found[key] = found
        return found

    def _find(self, upper_real: str, here: os.stat_result | None, here_real: str | None) -> os.stat_result | None:
        try:
            value = os.getxattr(upper_real, self.xattr, follow_symlinks=False)
        except OSError:
            return None
        wanted = OriginHandle.decode(value)
        if wanted is None:
            return None
        if here is not None and here_real is not None and self.handle_of(here_real) == wanted:
            return here
        return self._open_by_handle(wanted)

    def _open_by_handle(self, wanted: OriginHandle) -> os.stat_result | None:
        for mount_fd in self._fds_for(wanted.uuid):
            try:
                fd = self.libc.open_by_handle_at(mount_fd, wanted.handle_type, wanted.fid)
            except OSError:
                continue  # ESTALE (gone, or another fs), EPERM (not root)
            try:
                return os.fstat(fd)
            finally:
                os.close(fd)
        return None

    def _fds_for(self, uuid: bytes) -> list[int]:
        """A descriptor per lower filesystem whose UUID is `uuid` (for open_by_handle_at)."""
        with self._lock:
            if self._mount_fds is None:
                fds: dict[bytes, list[int]] = {}
                seen: set[int] = set()
                for path in self.lower_paths:
                    try:
                        dev = os.stat(path).st_dev
                        if dev in seen:
                            continue
                        seen.add(dev)
                        fds.setdefault(self._uuid(path), []).append(
                            os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                        )
                    except OSError:
                        continue
                self._mount_fds = fds
            return self._mount_fds.get(uuid, [])
