"""Attributes: getattr, chmod, chown, utimens, truncate, xattrs (fs/overlayfs/inode.c, xattrs.c).

Every change copies the object up first; the union's private xattrs are hidden and refused.
"""

from __future__ import annotations

import errno
import os
import stat
from stat import S_ISDIR
from typing import NamedTuple

from .copy_up import copy_up, require_upper
from .namei import Entry, Node
from .super import Super

ORIGIN_XATTR = "user.layerfs.origin"


class Stat(NamedTuple):
    """What stat(2) shows through the union (a named tuple: immutable, and built in a fraction
    of a frozen dataclass's time, once per lookup and getattr)."""

    st_mode: int
    st_ino: int
    st_dev: int
    st_nlink: int
    st_uid: int
    st_gid: int
    st_size: int
    st_atime_ns: int
    st_mtime_ns: int
    st_ctime_ns: int
    st_rdev: int
    st_blocks: int
    st_blksize: int


def getattr_(sb: Super, path: str) -> Stat:
    # The lookup's lstat is fresh for the upper, and lower layers do not change while open.
    node = sb.resolver.lookup(path)
    if not node.exists:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
    return stat_of(sb, node.entries, node.lowers, root=path == "/")


def getattr_of(sb: Super, node: Node) -> Stat:
    """getattr of a resolved node: an upper object's attributes read again (its size, times
    and links change without changing how the path resolves), the read-only layers' as they
    were resolved (they never change while the union is open)."""
    if not node.entries:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), node.path)
    entries = node.entries
    top = entries[0]
    if top.branch is sb.resolver.upper:  # Branch.writable
        entries = (Entry(top.branch, top.real, os.lstat(top.real)), *entries[1:])
    return stat_of(sb, entries, node.lowers, root=node.path == "/")


def getattr_identity(sb: Super, path: str) -> tuple[Stat, bool]:
    """What stat shows, and whether its st_ino names the object for good: False for a lower
    file with several links in a writable union, which a copy-up through one name turns into
    a file of its own (the kernel's overlay then gives each name its own inode, ovl_hash_bylower).
    """
    return identity_of(sb, sb.resolver.lookup(path))


def identity_of(sb: Super, node: Node) -> tuple[Stat, bool]:
    """`getattr_identity` of a resolved node (once per FUSE LOOKUP: no property is read)."""
    entries = node.entries
    if not entries:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), node.path)
    top = entries[0]
    st = top.st
    lasting = (
        st.st_nlink <= 1 or sb.upper is None or top.branch is sb.resolver.upper or S_ISDIR(st.st_mode)
    )  # the upper is the one writable branch (resolver.upper), also where sb.upper is None
    return stat_of(sb, entries, node.lowers, node.path == "/"), lasting


def stat_of(sb: Super, entries: tuple[Entry, ...], lowers: tuple[Entry, ...], root: bool = False) -> Stat:
    """What stat(2) shows for a resolved object, as the kernel's ovl_getattr reports it.

    `entries` serve the object (the first) and, for a directory, are merged under it;
    `lowers` are what the read-only layers hold at its place.

    - st_ino: a lower object shows its own number; an upper directory merged with lower
      ones shows the first lower's (not the root: ovl_get_root gives it the upper's); an
      upper non-directory copied up from a single-link lower file shows its origin's (so the
      number survives copy-up and renames); anything else its upper number. Every name of
      a hard link is one object, hence one number. Layers on several filesystems get the
      layer's filesystem in the high bits (`xino`).
    - st_nlink: 1 for a merged directory (the kernel does not count subdirectories), or for
      every directory with `static_nlink`.
    - owners: as `uidmapping=`/`gidmapping=`/`squash_to_*` show them.
    - st_dev: one device for the whole union.
    """
    top = entries[0]
    st = top.st
    mode = st.st_mode
    is_dir = S_ISDIR(mode)
    number_of = st
    features = sb.spec.features
    if top.branch is sb.resolver.upper and not features.fast_ino:  # Branch.writable, without a call
        if is_dir:
            if len(entries) > 1 and not root:
                number_of = entries[1].st
        else:
            here = lowers[0] if lowers and not lowers[0].is_dir else None
            origin = sb.origins.find(top.real, st, here.st if here else None, here.real if here else None)
            if origin is not None and origin.st_nlink == 1:
                number_of = origin
    nlink = 1 if is_dir and (len(entries) > 1 or features.static_nlink) else st.st_nlink
    uids, gids = features.uid_map, features.gid_map
    inos = sb.inos
    return _new(
        Stat,
        (
            mode,
            # InodeNumbers.number, without the call where it changes nothing (one filesystem)
            number_of.st_ino if len(inos.fsids) <= 1 and not inos.ino32 else inos.number(number_of),
            inos.dev,
            nlink,
            # IdMap.shown, without a call where the map is the identity (every mount without
            # uidmapping=/gidmapping=/squash_*): a Stat is built for every lookup and getattr
            st.st_uid if not uids.ranges and uids.squash is None else uids.shown(st.st_uid),
            st.st_gid if not gids.ranges and gids.squash is None else gids.shown(st.st_gid),
            st.st_size,
            st.st_atime_ns,
            st.st_mtime_ns,
            st.st_ctime_ns,
            st.st_rdev,
            st.st_blocks,
            st.st_blksize,
        ),
    )


_new = tuple.__new__


def readlink(sb: Super, path: str) -> str:
    node = sb.resolver.lookup(path)
    if not stat.S_ISLNK(node.top.st.st_mode):
        raise OSError(errno.EINVAL, os.strerror(errno.EINVAL), path)
    return os.readlink(node.top.real)


def chmod(sb: Super, path: str, mode: int) -> None:
    if stat.S_ISLNK(sb.resolver.lookup(path).top.st.st_mode):
        raise OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP), path)  # Linux has no lchmod
    node = copy_up(sb, path, "chmod")
    os.chmod(node.top.real, stat.S_IMODE(mode))


def chown(sb: Super, path: str, uid: int, gid: int) -> None:
    """`uid`/`gid` as seen through the union (-1: unchanged), stored mapped back."""
    features = sb.spec.features
    node = copy_up(sb, path, "chown")
    os.chown(node.top.real, features.uid_map.stored(uid), features.gid_map.stored(gid), follow_symlinks=False)


def utimens(sb: Super, path: str, ns: tuple[int, int] | None) -> None:
    node = copy_up(sb, path, "utimens")
    if ns is None:
        os.utime(node.top.real, follow_symlinks=False)
    else:
        os.utime(node.top.real, ns=ns, follow_symlinks=False)


def truncate(sb: Super, path: str, length: int) -> None:
    node = sb.resolver.lookup(path)
    if node.is_dir:
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
    if not stat.S_ISREG(node.top.st.st_mode):
        raise OSError(errno.EINVAL, os.strerror(errno.EINVAL), path)
    if length < 0:
        raise OSError(errno.EINVAL, os.strerror(errno.EINVAL), path)
    node = copy_up(sb, path, "truncate", data_bytes=length)
    os.truncate(node.top.real, length)


def statfs(sb: Super, path: str = "/") -> os.statvfs_result:
    """statfs of the upper (or of the top layer of a read-only union)."""
    return os.statvfs(sb.branches[0].path)


def origin(sb: Super, path: str) -> str:
    """Provenance as `user.layerfs.origin` shows it: the serving branch's label and role."""
    return sb.resolver.lookup(path).top.branch.describe()


def _xattrs_enabled(sb: Super, path: str) -> None:
    """noxattrs=1: every xattr call fails, as on a filesystem without xattrs."""
    if not sb.spec.features.xattrs:
        raise OSError(errno.ENOTSUP, os.strerror(errno.ENOTSUP), path)


def getxattr(sb: Super, path: str, name: str) -> bytes:
    _xattrs_enabled(sb, path)
    return getxattr_of(sb, sb.resolver.lookup(path), name)


def getxattr_of(sb: Super, node: Node, name: str) -> bytes:
    """getxattr of a resolved node."""
    _xattrs_enabled(sb, node.path)
    if name == ORIGIN_XATTR:
        return node.top.branch.describe().encode("utf-8", "surrogateescape")
    return os.getxattr(node.top.real, sb.xattrs.to_real(name), follow_symlinks=False)


def listxattr(sb: Super, path: str) -> list[str]:
    _xattrs_enabled(sb, path)
    node = sb.resolver.lookup(path)
    shown = (sb.xattrs.from_real(n) for n in os.listxattr(node.top.real, follow_symlinks=False))
    return [n for n in shown if n is not None]


def _check_user_xattr_target(sb: Super, path: str, name: str) -> None:
    """The VFS allows user.* xattrs only on files and directories: EPERM before any copy-up."""
    if name.startswith("user."):
        mode = sb.resolver.lookup(path).top.st.st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            raise PermissionError(errno.EPERM, os.strerror(errno.EPERM), path)


def setxattr(sb: Super, path: str, name: str, value: bytes, flags: int = 0) -> None:
    _xattrs_enabled(sb, path)
    real_name = sb.xattrs.to_real(name)
    require_upper(sb, path)
    _check_user_xattr_target(sb, path, name)
    # No early EEXIST/ENODATA for XATTR_CREATE/REPLACE: the kernel's ovl_xattr_set copies
    # up first and lets the upper fs refuse, so the copy-up happens even when the call fails.
    node = copy_up(sb, path, "setxattr")
    os.setxattr(node.top.real, real_name, value, flags, follow_symlinks=False)


def removexattr(sb: Super, path: str, name: str) -> None:
    _xattrs_enabled(sb, path)
    real_name = sb.xattrs.to_real(name)
    require_upper(sb, path)
    _check_user_xattr_target(sb, path, name)
    node = sb.resolver.lookup(path)
    if not node.in_upper:
        os.getxattr(node.top.real, real_name, follow_symlinks=False)  # ENODATA without a pointless copy-up
    node = copy_up(sb, path, "removexattr")
    os.removexattr(node.top.real, real_name, follow_symlinks=False)
