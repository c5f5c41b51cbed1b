"""Copy-up: bring a lower object into the upper before it changes (fs/overlayfs/copy_up.c).

Parents first, with their attributes; then the object, built in the work directory with its
mode, owner, times, xattrs (not the union's private ones), symlink target, sparse holes and
the `overlay.origin` mark (origin.py), its data synced unless the union is volatile, and
renamed into place. No reader and no crash ever sees a partial file.
"""

from __future__ import annotations

import errno
import os
import stat

from .branch import Branch, MarkWriter, XattrNames
from .fsutil import copy_data
from .namei import Entry, Node, join, split_path
from .super import Super


def erofs(path: str) -> OSError:
    return OSError(errno.EROFS, os.strerror(errno.EROFS), path)


def require_upper(sb: Super, path: str) -> Branch:
    if sb.upper is None or sb.tmpdir is None:
        raise erofs(path)
    return sb.upper


def require_marks(sb: Super, path: str) -> MarkWriter:
    """The writer of whiteouts, opaque marks and redirects, which a writable union has."""
    if sb.marks is None:
        raise erofs(path)
    return sb.marks


def copy_xattrs(src: str, dst: str, names_rule: XattrNames) -> None:
    try:
        names = os.listxattr(src, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EPERM):
            return
        raise
    for name in names:
        if not names_rule.copied_up(name):
            continue
        try:
            os.setxattr(dst, name, os.getxattr(src, name, follow_symlinks=False), follow_symlinks=False)
        except OSError as exc:
            if exc.errno not in (errno.ENOTSUP, errno.EPERM):  # e.g. user.* on a symlink
                raise


def set_attrs(path: str, st: os.stat_result) -> None:
    """Owner, mode (not for symlinks) and times, as ovl_set_attr does."""
    is_link = stat.S_ISLNK(st.st_mode)
    try:
        os.chown(path, st.st_uid, st.st_gid, follow_symlinks=False)
    except PermissionError:
        pass  # an unprivileged union keeps its own uid, as fuse-overlayfs does without mappings
    if not is_link:
        os.chmod(path, stat.S_IMODE(st.st_mode))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def ensure_upper_dir(sb: Super, path: str, trigger: str) -> str:
    """The real upper directory of union dir `path`, copying up every missing ancestor."""
    upper = require_upper(sb, path)
    real = upper.path
    current = "/"
    for name in split_path(path):
        current = join(current, name)
        candidate = real + "/" + name
        try:
            st = os.lstat(candidate)
        except FileNotFoundError:
            node = sb.resolver.lookup(current)
            copy_up_node(sb, node, trigger)
            real = candidate
            continue
        if not stat.S_ISDIR(st.st_mode):
            raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), current)
        real = candidate
    return real


def copy_up(sb: Super, path: str, trigger: str, data_bytes: int | None = None) -> Node:
    """Make sure `path` lives in the upper; returns its new node. Holds the union lock."""
    with sb.lock:
        node = sb.resolver.lookup(path)
        if not node.exists:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
        if node.in_upper:
            return node
        copy_up_node(sb, node, trigger, data_bytes)
        return sb.resolver.lookup(path)


def copy_up_node(sb: Super, node: Node, trigger: str, data_bytes: int | None = None) -> None:
    """Copy one lower object (its parent already resolved) into the upper."""
    upper = require_upper(sb, node.path)
    parent_real = ensure_upper_dir(sb, node.parent_path, trigger)
    source: Entry = node.top
    st = source.st
    target = parent_real + "/" + node.name
    temp = sb.temp_name()
    parent_times = os.stat(parent_real)
    copied = 0
    mode = st.st_mode
    try:
        if stat.S_ISDIR(mode):
            os.mkdir(temp, 0o700)
        elif stat.S_ISREG(mode):
            size = st.st_size if data_bytes is None else min(st.st_size, data_bytes)
            src_fd = os.open(source.real, os.O_RDONLY | os.O_NOFOLLOW)
            try:
                dst_fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                try:
                    if sb.spec.features.fsync:
                        # As the kernel (unless volatile): the data is on disk before the copy
                        # replaces the lower file in the union, so a crash cannot show an empty
                        # one. Each chunk's writeback starts as soon as it is copied, so the
                        # fsync waits for the disk's tail, not for the whole file's writing.
                        copied = copy_data(src_fd, dst_fd, size, sb.libc.start_writeback)
                        os.fsync(dst_fd)
                    else:
                        copied = copy_data(src_fd, dst_fd, size)
                finally:
                    os.close(dst_fd)
            finally:
                os.close(src_fd)
        elif stat.S_ISLNK(mode):
            os.symlink(os.readlink(source.real), temp)
        else:
            os.mknod(temp, mode, st.st_rdev)
        copy_xattrs(source.real, temp, sb.xattrs)
        sb.origins.mark(source.real, st, temp)
        set_attrs(temp, st)
        os.rename(temp, target)
    except BaseException:
        _discard(temp)
        raise
    try:
        os.utime(parent_real, ns=(parent_times.st_atime_ns, parent_times.st_mtime_ns))
    except OSError:
        pass
    kind = "directory" if stat.S_ISDIR(mode) else "symlink" if stat.S_ISLNK(mode) else "file"
    sb.emit(
        "copy_up",
        path=node.path,
        trigger=trigger,
        type=kind,
        bytes=copied,
        **{"from": source.branch.label, "to": upper.label},
    )
    if stat.S_ISREG(mode):
        move_read_handles(sb, st, target)


def move_read_handles(sb: Super, st: os.stat_result, new_real: str) -> None:
    """Read-only handles opened on the lower file now read the copy, as the kernel's do."""
    handles = sb.lower_handles.pop((st.st_dev, st.st_ino), None)
    if not handles:
        return
    for handle in list(handles):
        handle.reopen(new_real)


def _discard(temp: str) -> None:
    try:
        if os.path.isdir(temp) and not os.path.islink(temp):
            import shutil

            shutil.rmtree(temp, ignore_errors=True)
        else:
            os.unlink(temp)
    except FileNotFoundError:
        pass
