"""System calls the standard library lacks (renameat2, file handles, the fs UUID) and in-kernel
data copies with holes."""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
from collections.abc import Callable
from dataclasses import dataclass

RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
RENAME_WHITEOUT = 4
SYNC_FILE_RANGE_WRITE = 2
#: copy_data's chunk when the caller starts each chunk's writeback as it goes
WRITE_BEHIND_CHUNK = 8 << 20
_AT_FDCWD = -100
MAX_HANDLE_SZ = 128
# FS_IOC_GETFSUUID = _IOR(0x15, 0, struct fsuuid2 { __u8 len; __u8 uuid[16]; }) (Linux 6.5+).
FS_IOC_GETFSUUID = (2 << 30) | (17 << 16) | (0x15 << 8)


class _FileHandle(ctypes.Structure):
    _fields_ = [
        ("handle_bytes", ctypes.c_uint),
        ("handle_type", ctypes.c_int),
        ("f_handle", ctypes.c_ubyte * MAX_HANDLE_SZ),
    ]


@dataclass(frozen=True)
class Libc:
    """A handle on libc's renameat2 and file-handle calls, loaded once per union (no module-level state)."""

    lib: ctypes.CDLL

    @classmethod
    def load(cls) -> Libc:
        """libc as the process already has it (dlopen(NULL)): no `ldconfig -p` run, which is
        what ctypes.util.find_library costs at every mount."""
        return cls(ctypes.CDLL(None, use_errno=True))

    def renameat2(self, old: str, new: str, flags: int) -> None:
        fn = self.lib.renameat2
        fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
        result = fn(_AT_FDCWD, os.fsencode(old), _AT_FDCWD, os.fsencode(new), flags)
        if result != 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code), old, None, new)

    def start_writeback(self, fd: int, offset: int, count: int) -> None:
        """sync_file_range(SYNC_FILE_RANGE_WRITE): start writing these dirty pages to disk
        and return. No durability: only fsync(2) makes any; a hint, so errors are left to it."""
        fn = self.lib.sync_file_range
        fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
        fn(fd, offset, count, SYNC_FILE_RANGE_WRITE)

    def name_to_handle_at(self, path: str) -> tuple[int, bytes]:
        """(handle type, file id) of `path` itself (a symlink is not followed), as the
        kernel's exportfs encodes it; OSError (EOPNOTSUPP) where the fs has no handles."""
        handle = _FileHandle()
        handle.handle_bytes = MAX_HANDLE_SZ
        mount_id = ctypes.c_int()
        fn = self.lib.name_to_handle_at
        fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int]
        if fn(_AT_FDCWD, os.fsencode(path), ctypes.byref(handle), ctypes.byref(mount_id), 0) != 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code), path)
        return handle.handle_type, bytes(handle.f_handle[: handle.handle_bytes])

    def open_by_handle_at(self, mount_fd: int, handle_type: int, fid: bytes) -> int:
        """An O_PATH descriptor on the object a handle names (needs CAP_DAC_READ_SEARCH)."""
        if len(fid) > MAX_HANDLE_SZ:
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        handle = _FileHandle()
        handle.handle_bytes = len(fid)
        handle.handle_type = handle_type
        ctypes.memmove(handle.f_handle, fid, len(fid))
        fn = self.lib.open_by_handle_at
        fn.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
        fd = fn(mount_fd, ctypes.byref(handle), os.O_PATH | os.O_NOFOLLOW)
        if fd < 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code))
        return fd


def fs_uuid(path: str) -> bytes:
    """The UUID of the filesystem holding `path` (the kernel's s_uuid); 16 zero bytes where
    the kernel cannot say (before Linux 6.5, or a filesystem without one)."""
    buf = bytearray(17)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return bytes(16)
    try:
        fcntl.ioctl(fd, FS_IOC_GETFSUUID, buf)
    except OSError:
        return bytes(16)
    finally:
        os.close(fd)
    length = min(buf[0], 16)
    return bytes(buf[1 : 1 + length]).ljust(16, b"\0")


def copy_data(src_fd: int, dst_fd: int, size: int, write_behind: Callable[[int, int, int], None] | None = None) -> int:
    """Copy `size` bytes in the kernel, skipping holes (SEEK_DATA/SEEK_HOLE). Returns bytes copied.

    `write_behind(fd, offset, count)`, if given, is called after each chunk (WRITE_BEHIND_CHUNK)
    to start that chunk's writeback while the next one is copied: a copy that is fsynced
    afterwards then takes about the disk's time, not the copy's and then the disk's."""
    chunk = 1 << 30 if write_behind is None else WRITE_BEHIND_CHUNK
    copied = 0
    offset = 0
    while offset < size:
        try:
            data = os.lseek(src_fd, offset, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # only a hole remains
                break
            if exc.errno in (errno.EINVAL, errno.EOPNOTSUPP):
                data = offset
            else:
                raise
        if data >= size:
            break
        try:
            hole = os.lseek(src_fd, data, os.SEEK_HOLE)
        except OSError:
            hole = size
        end = min(hole, size)
        position = data
        while position < end:
            n = _copy_range(src_fd, dst_fd, position, min(end - position, chunk))
            if n == 0:
                break
            if write_behind is not None:
                write_behind(dst_fd, position, n)
            position += n
            copied += n
        offset = max(end, position)
        if offset <= data:
            break
    os.ftruncate(dst_fd, size)
    return copied


def _copy_range(src_fd: int, dst_fd: int, offset: int, count: int) -> int:
    count = min(count, 1 << 30)
    try:
        return os.copy_file_range(src_fd, dst_fd, count, offset, offset)
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            raise
    os.lseek(dst_fd, offset, os.SEEK_SET)
    return os.sendfile(dst_fd, src_fd, offset, count)
