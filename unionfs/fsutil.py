"""System calls the standard library lacks (renameat2) and in-kernel data copies with holes."""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
from dataclasses import dataclass

RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
RENAME_WHITEOUT = 4
_AT_FDCWD = -100


@dataclass(frozen=True)
class Libc:
    """A handle on libc's renameat2, loaded once per union (no module-level state)."""

    lib: ctypes.CDLL

    @classmethod
    def load(cls) -> Libc:
        return cls(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True))

    def renameat2(self, old: str, new: str, flags: int) -> None:
        fn = self.lib.renameat2
        fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
        result = fn(_AT_FDCWD, os.fsencode(old), _AT_FDCWD, os.fsencode(new), flags)
        if result != 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code), old, None, new)


def copy_data(src_fd: int, dst_fd: int, size: int) -> int:
    """Copy `size` bytes in the kernel, skipping holes (SEEK_DATA/SEEK_HOLE). Returns bytes copied."""
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
            n = _copy_range(src_fd, dst_fd, position, end - position)
            if n == 0:
                break
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
