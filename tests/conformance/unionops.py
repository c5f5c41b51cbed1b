"""The same operations as `realops.RealFS`, on the in-process `Union` object.

FUSE gets paths the kernel's VFS has already resolved: symlinks in the middle of a path and,
for the calls that follow them, at its end. The in-process Union sees raw union paths, so this
adapter does the VFS's part itself (`resolve`), and nothing more. Trailing slashes are left to
the mounted variants.
"""

from __future__ import annotations

import errno
import os
import stat

from unionfs.file import Handle
from unionfs.union import Union

MAX_SYMLINKS = 40


def _err(code: int, path: str = "") -> OSError:
    return OSError(code, os.strerror(code), path)


def _join(parent: str, name: str) -> str:
    return ("" if parent == "/" else parent) + "/" + name


class UnionFS:
    """`RealFS`'s interface over a `Union` (paths resolved here, as the VFS would)."""

    def __init__(self, union: Union) -> None:
        self.u = union
        self.handles: dict[int, Handle] = {}

    # -- the VFS's part -----------------------------------------------------------------------
    def resolve(self, path: str, follow: bool) -> tuple[str, bool]:
        """(path without symlinks, whether the last component exists)."""
        pending = [c for c in path.split("/") if c]
        current = "/"
        links = 0
        while pending:
            name = pending.pop(0)
            last = not pending
            if name == ".":
                if last:
                    return current, True
                continue
            if name == "..":
                current = current.rsplit("/", 1)[0] or "/"
                continue
            candidate = _join(current, name)
            try:
                st = self.u.getattr(candidate)
            except FileNotFoundError:
                if last:
                    return candidate, False
                raise
            if stat.S_ISLNK(st.st_mode) and (not last or follow):
                links += 1
                if links > MAX_SYMLINKS:
                    raise _err(errno.ELOOP, path)
                target = self.u.readlink(candidate)
                if target.startswith("/"):
                    current = "/"
                pending = [c for c in target.split("/") if c] + pending
                if not pending:  # a link to "/" or "."
                    return current, True
                continue
            if not last and not stat.S_ISDIR(st.st_mode):
                raise _err(errno.ENOTDIR, path)
            current = candidate
        return current, True

    def existing(self, path: str, follow: bool) -> str:
        real, exists = self.resolve(path, follow)
        if not exists:
            raise _err(errno.ENOENT, path)
        return real

    def new(self, path: str) -> str:
        """The parent resolved, the last name kept (for mkdir, symlink, link targets...)."""
        real, _ = self.resolve(path, False)
        return real

    # -- namespace and attributes -----------------------------------------------------------
    def mkdir(self, path, mode):
        self.u.mkdir(self.new(path), mode & 0o7777 & ~self.umask())

    @staticmethod
    def umask() -> int:
        mask = os.umask(0)
        os.umask(mask)
        return mask

    def rmdir(self, path):
        self.u.rmdir(self.new(path))

    def unlink(self, path):
        self.u.unlink(self.new(path))

    def rename(self, old, new, flags):
        self.u.rename(self.new(old), self.new(new), flags)

    def symlink(self, target, path):
        self.u.symlink(target, self.new(path))

    def link(self, old, new):
        self.u.link(self.existing(old, False), self.new(new))

    def chmod(self, path, mode):
        self.u.chmod(self.existing(path, True), mode)

    def chown(self, path, uid, gid):
        self.u.chown(self.existing(path, True), uid, gid)

    def lchown(self, path, uid, gid):
        self.u.chown(self.existing(path, False), uid, gid)

    def utimens(self, path, atime_ns, mtime_ns):
        real = self.existing(path, True)
        self.u.utimens(real, (atime_ns, mtime_ns))
        return self.u.getattr(real).st_mtime_ns

    def truncate(self, path, length):
        self.u.truncate(self.existing(path, True), length)

    def setxattr(self, path, name, value, flags):
        self.u.setxattr(self.existing(path, False), name, value, flags)

    def removexattr(self, path, name):
        self.u.removexattr(self.existing(path, False), name)

    def getxattr(self, path, name):
        return self.u.getxattr(self.existing(path, False), name)

    def stat(self, path):
        st = self.u.getattr(self.existing(path, True))
        return (
            stat.S_IFMT(st.st_mode),
            stat.S_IMODE(st.st_mode),
            st.st_uid,
            st.st_gid,
            st.st_size if not stat.S_ISDIR(st.st_mode) else None,
        )

    def read_path(self, path):
        real = self.existing(path, True)
        if stat.S_ISDIR(self.u.getattr(real).st_mode):
            raise _err(errno.EISDIR, path)
        return self.u.read_file(real)

    def listdir(self, path):
        return sorted(self.u.listdir(self.existing(path, True)))

    # -- descriptors ------------------------------------------------------------------------
    def open(self, slot, path, flags, mode):
        creating = bool(flags & os.O_CREAT)
        exclusive = creating and bool(flags & os.O_EXCL)
        real, exists = self.resolve(path, not exclusive)
        if exists and stat.S_ISLNK(self.u.getattr(real).st_mode):
            raise _err(errno.EEXIST if exclusive else errno.ELOOP, path)
        handle = self.u.open(real, flags, mode & 0o7777 & ~self.umask())
        old = self.handles.pop(slot, None)
        if old is not None:
            self.u.release(old)
        self.handles[slot] = handle

    def _h(self, slot):
        if slot not in self.handles:
            raise _err(errno.EBADF)
        return self.handles[slot]

    def pwrite(self, slot, data, offset):
        return self.u.write(self._h(slot), data, offset)

    def pread(self, slot, size, offset):
        return self.u.read(self._h(slot), size, offset)

    def close(self, slot):
        self.u.release(self._h(slot))
        del self.handles[slot]

    def close_all(self):
        for h in self.handles.values():
            self.u.release(h)
        self.handles.clear()
