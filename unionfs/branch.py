"""One layer directory, and the marks that live in it: whiteouts, opaque dirs, redirects.

The kernel's marks (char device 0/0, ``overlay.*`` xattrs) are always read. The aufs/OCI
marks (``.wh.NAME`` files, ``.wh..wh..opq``) are read where the union says ``.wh.`` names are
marks (`wh_files`): always in the aufs dialect; in the overlay dialect only with
``whiteout=aufs`` (layers unpacked from OCI tars), because the kernel's OverlayFS treats a
``.wh.x`` as an ordinary file named ``.wh.x``. What is written depends on the union's encoding.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass

from .options import Role

WH_PREFIX = ".wh."
WH_OPAQUE = ".wh..wh..opq"
# The kernel makes its whiteouts with mode 0 (include/linux/fs.h WHITEOUT_MODE).
WHITEOUT_MODE = 0

OPAQUE_XATTRS = ("trusted.overlay.opaque", "user.overlay.opaque")
REDIRECT_XATTRS = ("trusted.overlay.redirect", "user.overlay.redirect")
LAYERFS_XATTR_PREFIX = "user.layerfs."


@dataclass(frozen=True)
class XattrNames:
    """How xattr names cross the union, as the kernel's OverlayFS does since 6.7.

    The union's private namespace (`trusted.overlay.`, or `user.overlay.` where the union
    may not write trusted xattrs, like the kernel's `userxattr`) never shows through. A
    caller may still use names in it: they are stored escaped, `trusted.overlay.X` as
    `trusted.overlay.overlay.X`, and copied up like any other xattr. Our own `user.layerfs.`
    names are refused (`user.layerfs.origin` is answered by the union itself).
    """

    private: str  # "trusted.overlay." or "user.overlay."

    @property
    def escaped(self) -> str:
        return self.private + "overlay."

    def to_real(self, name: str) -> str:
        """The name stored on disk for a caller's `name`; EOPNOTSUPP for our own names."""
        if name.startswith(LAYERFS_XATTR_PREFIX):
            raise OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP), name)
        if name.startswith(self.private):
            return self.escaped + name[len(self.private) :]
        return name

    def from_real(self, name: str) -> str | None:
        """The caller's name for a name on disk, or None for a private one."""
        if name.startswith(self.escaped):
            return self.private + name[len(self.escaped) :]
        if name.startswith((self.private, LAYERFS_XATTR_PREFIX)):
            return None
        return name

    def copied_up(self, name: str) -> bool:
        """Copy-up keeps a caller's xattrs (escaped ones too) and drops the union's own."""
        return self.from_real(name) is not None


def is_reserved_name(name: str, wh_files: bool = True) -> bool:
    """Names that no user may create or see: the aufs/OCI whiteout namespace, where `.wh.`
    names are marks (`wh_files`); in the kernel's encoding they are ordinary names."""
    return wh_files and name.startswith(WH_PREFIX)


def is_whiteout_stat(st: os.stat_result) -> bool:
    """The kernel's whiteout: a character device with device number 0/0."""
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _getxattr(path: str, name: str) -> bytes | None:
    try:
        return os.getxattr(path, name, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (errno.ENODATA, errno.ENOTSUP, errno.EPERM, errno.ENOENT, errno.EACCES):
            return None
        raise


@dataclass(frozen=True)
class Branch:
    """A layer directory in the stack. `index` 0 is the top."""

    path: str
    role: Role
    label: str
    index: int
    whiteouts: bool = True  # does lookup honour whiteouts found here?

    @property
    def writable(self) -> bool:
        return self.role is Role.UPPER

    def real(self, upath: str) -> str:
        """The real path of union path `upath` ("/a/b") in this branch."""
        return self.path if upath == "/" else self.path + upath

    def describe(self) -> str:
        return f"{self.label} ({self.role.value})"


def lstat_or_none(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        return None


def aufs_whiteout_exists(real_dir: str, name: str, wh_files: bool = True) -> bool:
    """Is there an aufs/OCI whiteout ``.wh.NAME`` (a regular file) for `name` in `real_dir`?
    (Never where `.wh.` names are ordinary files: `wh_files` False.)"""
    if not wh_files:
        return False
    if len(os.fsencode(WH_PREFIX + name)) > 255:
        return False  # longer than NAME_MAX: no such file can exist (lstat says ENAMETOOLONG)
    st = lstat_or_none(os.path.join(real_dir, WH_PREFIX + name))
    return st is not None and stat.S_ISREG(st.st_mode)


def is_opaque_dir(real_dir: str, wh_files: bool = True) -> bool:
    """Opaque by ``overlay.opaque=y`` (trusted or user), or by ``.wh..wh..opq`` where `.wh.`
    names are marks."""
    for attr in OPAQUE_XATTRS:
        if _getxattr(real_dir, attr) == b"y":
            return True
    return wh_files and lstat_or_none(os.path.join(real_dir, WH_OPAQUE)) is not None


def read_redirect(real_dir: str) -> str | None:
    """The ``overlay.redirect`` of a renamed directory, if any."""
    for attr in REDIRECT_XATTRS:
        value = _getxattr(real_dir, attr)
        if value:
            return value.decode("utf-8", "surrogateescape")
    return None


@dataclass
class MarkWriter:
    """Writes whiteouts, opaque marks and redirects in the union's encoding.

    The overlay encoding needs mknod and `trusted.*` xattrs, which only root has: like
    fuse-overlayfs, it falls back to ``.wh.NAME`` files and `user.*` xattrs without them.
    """

    aufs_encoding: bool
    can_mknod: bool
    xattr_prefix: str  # "trusted." or "user."

    @classmethod
    def probe(cls, workdir: str, aufs_encoding: bool, user_xattrs: bool = False) -> MarkWriter:
        """Find out in the work directory what this process may write (`user_xattrs`: keep
        marks in user.overlay.* even where trusted.* could be written, as `userxattr`)."""
        probe = os.path.join(workdir, "#probe")
        can_mknod = False
        try:
            os.mknod(probe, stat.S_IFCHR | 0o600, os.makedev(0, 0))
            can_mknod = True
            os.unlink(probe)
        except OSError:
            pass
        return cls(aufs_encoding, can_mknod, "user." if user_xattrs else _trusted_or_user(probe))

    @property
    def writes_char_whiteouts(self) -> bool:
        return not self.aufs_encoding and self.can_mknod

    @property
    def writes_wh_files(self) -> bool:
        """Does it write `.wh.` whiteouts (so the union must read them as marks)?"""
        return not self.writes_char_whiteouts

    def whiteout_in(self, real_dir: str, name: str) -> None:
        """Write a whiteout for `name` into `real_dir` (which has no entry `name`)."""
        if self.writes_char_whiteouts:
            os.mknod(os.path.join(real_dir, name), stat.S_IFCHR | WHITEOUT_MODE, os.makedev(0, 0))
        else:
            fd = os.open(os.path.join(real_dir, WH_PREFIX + name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o444)
            os.close(fd)

    def make_whiteout_at(self, path: str) -> None:
        """A standalone whiteout object at `path` (in the work dir), for atomic swaps."""
        os.mknod(path, stat.S_IFCHR | WHITEOUT_MODE, os.makedev(0, 0))

    def set_opaque(self, real_dir: str) -> None:
        if self.aufs_encoding:
            fd = os.open(os.path.join(real_dir, WH_OPAQUE), os.O_WRONLY | os.O_CREAT, 0o444)
            os.close(fd)
        else:
            os.setxattr(real_dir, self.xattr_prefix + "overlay.opaque", b"y")

    def set_redirect(self, real_dir: str, value: str) -> None:
        os.setxattr(real_dir, self.xattr_prefix + "overlay.redirect", value.encode("utf-8", "surrogateescape"))


def _trusted_or_user(probe: str) -> str:
    """ "trusted." where this process may write trusted.* xattrs (root), else "user."."""
    try:
        os.mkdir(probe)
    except OSError:
        return "user."
    try:
        os.setxattr(probe, "trusted.overlay.probe", b"y")
        return "trusted."
    except OSError:
        return "user."
    finally:
        os.rmdir(probe)
