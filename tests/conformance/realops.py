"""The harness's operations on a real mounted tree (the kernel's overlay, or layerfs through FUSE).

Standard library only: reproduction scripts embed this file as it is, so a divergence replays
on a machine without the project. Every operation takes union paths ("/a/b"); `run` turns its
outcome into a comparable value: ("ok", result) or ("err", "ENOENT").
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import stat

RENAME_NOREPLACE = 1
_AT_FDCWD = -100


def _renameat2(old: str, new: str, flags: int) -> None:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    fn = libc.renameat2
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if fn(_AT_FDCWD, os.fsencode(old), _AT_FDCWD, os.fsencode(new), flags) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), old)


class RealFS:
    """Operations through the kernel's VFS on the tree mounted at `root`."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.handles: dict[int, int] = {}

    def p(self, path: str) -> str:
        return self.root + path

    # -- namespace and attributes -----------------------------------------------------------
    def mkdir(self, path, mode):
        os.mkdir(self.p(path), mode)

    def rmdir(self, path):
        os.rmdir(self.p(path))

    def unlink(self, path):
        os.unlink(self.p(path))

    def rename(self, old, new, flags):
        if flags:
            _renameat2(self.p(old), self.p(new), flags)
        else:
            os.rename(self.p(old), self.p(new))

    def symlink(self, target, path):
        os.symlink(target, self.p(path))

    def link(self, old, new):
        os.link(self.p(old), self.p(new), follow_symlinks=False)

    def chmod(self, path, mode):
        os.chmod(self.p(path), mode)

    def chown(self, path, uid, gid):
        os.chown(self.p(path), uid, gid)

    def lchown(self, path, uid, gid):
        os.chown(self.p(path), uid, gid, follow_symlinks=False)

    def utimens(self, path, atime_ns, mtime_ns):
        os.utime(self.p(path), ns=(atime_ns, mtime_ns))
        st = os.stat(self.p(path))
        return st.st_mtime_ns

    def truncate(self, path, length):
        os.truncate(self.p(path), length)

    def setxattr(self, path, name, value, flags):
        os.setxattr(self.p(path), name, value, flags, follow_symlinks=False)

    def removexattr(self, path, name):
        os.removexattr(self.p(path), name, follow_symlinks=False)

    def getxattr(self, path, name):
        return os.getxattr(self.p(path), name, follow_symlinks=False)

    def stat(self, path):
        st = os.stat(self.p(path))
        return (
            stat.S_IFMT(st.st_mode),
            stat.S_IMODE(st.st_mode),
            st.st_uid,
            st.st_gid,
            st.st_size if not stat.S_ISDIR(st.st_mode) else None,
        )

    def read_path(self, path):
        with open(self.p(path), "rb") as f:
            return f.read()

    def listdir(self, path):
        # The kernel lists a stray whiteout (nothing below it) in a non-merged lower dir, but
        # looking it up says ENOENT: only names that can be looked up count.
        return sorted(n for n in os.listdir(self.p(path)) if os.path.lexists(os.path.join(self.p(path), n)))

    # -- descriptors ------------------------------------------------------------------------
    def open(self, slot, path, flags, mode):
        fd = os.open(self.p(path), flags | os.O_CLOEXEC, mode)
        old = self.handles.pop(slot, None)
        if old is not None:
            os.close(old)
        self.handles[slot] = fd

    def _fd(self, slot):
        if slot not in self.handles:
            raise OSError(errno.EBADF, "no such slot")
        return self.handles[slot]

    def pwrite(self, slot, data, offset):
        return os.pwrite(self._fd(slot), data, offset)

    def pread(self, slot, size, offset):
        return os.pread(self._fd(slot), size, offset)

    def close(self, slot):
        os.close(self.handles.pop(slot) if slot in self.handles else self._fd(slot))

    def close_all(self):
        for fd in self.handles.values():
            os.close(fd)
        self.handles.clear()


def run(fs, op: str, args: tuple):
    """Call `op` and return ("ok", value) or ("err", errno name)."""
    try:
        return ("ok", getattr(fs, op)(*args))
    except OSError as exc:
        return ("err", errno.errorcode.get(exc.errno or 0, str(exc.errno)))
