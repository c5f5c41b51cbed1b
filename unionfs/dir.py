"""Namespace changes: create, mkdir, mknod, symlink, link, unlink, rmdir, rename (fs/overlayfs/dir.c).

Whiteouts are written only where a lower layer still has the name. A directory made where a
whiteout was becomes opaque, so the old lower directory does not show through. Renaming a
lower or merged directory follows the dialect: overlay sets a redirect (as the kernel does
with redirect_dir=on); aufs refuses with EXDEV unless the lower parts are empty.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable

from .branch import WH_PREFIX, MarkWriter, aufs_whiteout_exists, lstat_or_none
from .copy_up import copy_up, ensure_upper_dir, require_marks, require_upper
from .fsutil import RENAME_EXCHANGE, RENAME_NOREPLACE, RENAME_WHITEOUT
from .namei import Node, parent_of
from .options import Dialect
from .readdir import is_empty_dir
from .super import Cred, Super


def _err(code: int, path: str) -> OSError:
    return OSError(code, os.strerror(code), path)


#: (uid, gid, setgid) for a new object: -1 leaves an id as the upper filesystem made it
Owner = tuple[int, int, bool]
_SETID = stat.S_ISUID | stat.S_ISGID


def _owner(sb: Super, pst: os.stat_result, cred: Cred | None, is_dir: bool) -> Owner | None:
    """uid, gid (as stored) and setgid for a new object: the caller's, with a setgid parent's group.

    A setgid parent counts without a caller too: an object built in the work directory
    would otherwise miss the group (and a directory the setgid bit) that the kernel's
    overlay gives it (inode_init_owner on the overlay's parent inode). The caller's ids are
    mapped back to stored ids (`uidmapping=`); the parent's group is stored already.
    """
    features = sb.spec.features
    uid = features.uid_map.stored(cred.uid) if cred is not None else -1
    if pst.st_mode & stat.S_ISGID:
        return uid, pst.st_gid, is_dir
    if cred is None:
        return None
    return uid, features.gid_map.stored(cred.gid), False


def _chown_new(real: str, owner: Owner | None, mode: int = 0) -> None:
    """Give a new object its owner. chown(2) drops a non-directory's S_ISUID and S_ISGID
    (whoever asks, even for the same ids), which the kernel's overlay never does to a new
    object (it makes the upper object as the caller): those of `mode` are set again."""
    if owner is None:
        return
    uid, gid, setgid = owner
    try:
        os.chown(real, uid, gid, follow_symlinks=False)
    except PermissionError:
        pass
    if setgid:
        os.chmod(real, stat.S_IMODE(os.lstat(real).st_mode) | stat.S_ISGID)
    elif mode & _SETID:
        st = os.lstat(real)
        if not stat.S_ISLNK(st.st_mode) and stat.S_IMODE(st.st_mode) != mode:
            os.chmod(real, mode)


def own_new_file(fd: int, owner: Owner | None, mode: int) -> os.stat_result:
    """`_chown_new` of a regular file just made and open as `fd`; returns its attributes.
    The upper filesystem gave it the daemon's ids (or a setgid parent's group): where they
    are already the wanted ones, as for a daemon serving its own user, nothing is changed."""
    st = os.fstat(fd)
    if owner is None:
        return st
    uid, gid, _ = owner
    if (uid == -1 or uid == st.st_uid) and (gid == -1 or gid == st.st_gid):
        return st
    try:
        os.fchown(fd, uid, gid)
    except PermissionError:
        return st
    if mode & _SETID:
        os.fchmod(fd, mode)
    return os.fstat(fd)


def _whiteout_form(marks: MarkWriter) -> str:
    return "char device 0/0" if marks.writes_char_whiteouts else ".wh. file"


def create_entry(
    sb: Super,
    path: str,
    make: Callable[[str], None],
    cred: Cred | None,
    *,
    is_dir: bool,
    trigger: str,
    parent: Node | None = None,
    node: Node | None = None,
    own: Callable[[str, Owner | None], None] | None = None,
    mode: int = 0,
) -> str:
    """Create a new object at `path` with `make(real_path)`; returns its real path.

    Where no whiteout is in the way it is made in place. Over a whiteout it is built in the
    work directory and swapped in, and a directory becomes opaque. `parent`, if given, is
    the directory of `path` resolved before (`Resolver.lookup_child`'s contract): the name is
    then looked up in it, without a walk from the root. `node`, if given, is the name
    itself, resolved under `sb.lock`, which the caller still holds. `own(real, owner)` gives
    the new object its owner (default: `_chown_new` with the S_ISUID/S_ISGID of `mode`).
    """
    upper, marks = require_upper(sb, path), require_marks(sb, path)
    with sb.lock:
        if node is None:
            if parent is not None:
                node = sb.resolver.lookup_child(parent, path.rsplit("/", 1)[-1])
            else:
                node = sb.resolver.lookup(path)
        if node.exists:
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), path)
        if node.parent_upper is not None and node.parent_upper_st is not None:
            parent_real, parent_st = node.parent_upper, node.parent_upper_st
        else:
            parent_real = ensure_upper_dir(sb, parent_of(path), trigger)
            parent_st = os.stat(parent_real)
        target = parent_real + "/" + node.name
        owner = _owner(sb, parent_st, cred, is_dir)
        if own is None:

            def own(real: str, owner: Owner | None) -> None:
                _chown_new(real, owner, mode)

        # Over a whiteout a new directory must be opaque. The kernel also marks every new
        # directory in a merged parent opaque ("just an optimization" in ovl_create_upper);
        # the overlay dialect does the same, so both uppers look alike.
        needs_opaque = is_dir and (
            node.upper_whiteout or node.has_lower or (node.parent_merged and sb.spec.dialect is Dialect.OVERLAY)
        )
        if not node.upper_whiteout and not needs_opaque:
            make(target)
            own(target, owner)
            return target
        temp = sb.temp_name()
        make(temp)
        try:
            own(temp, owner)
            if needs_opaque:
                marks.set_opaque(temp)
            char_whiteout = lstat_or_none(target)
            if char_whiteout is not None:  # a char 0/0 whiteout: swap atomically, then drop it
                sb.libc.renameat2(temp, target, RENAME_EXCHANGE)
                os.unlink(temp)
            else:
                os.rename(temp, target)
        except BaseException:
            _remove_tree(temp)
            raise
        if aufs_whiteout_exists(parent_real, node.name, sb.resolver.wh_files):
            os.unlink(os.path.join(parent_real, WH_PREFIX + node.name))
        if needs_opaque:
            sb.emit("opaque", path=path, trigger=trigger, branch=upper.label, form=_opaque_form(marks))
        return target


def mkdir(sb: Super, path: str, mode: int, cred: Cred | None = None) -> None:
    # mkdir(2) ignores S_ISGID in its mode (vfs_mkdir); a setgid parent's bit is inherited
    # in create_entry.
    wanted = stat.S_IMODE(mode) & 0o1777

    def make(real: str) -> None:
        os.mkdir(real, wanted)
        sb.fix_mode(real, wanted)

    create_entry(sb, path, make, cred, is_dir=True, trigger="mkdir")


def mknod(sb: Super, path: str, mode: int, device: int = 0, cred: Cred | None = None) -> None:
    if stat.S_ISREG(mode) or stat.S_IFMT(mode) == 0:

        def make(real: str) -> None:
            os.close(os.open(real, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IMODE(mode)))
            sb.fix_mode(real, stat.S_IMODE(mode))
    elif stat.S_ISDIR(mode):
        raise _err(errno.EPERM, path)
    else:

        def make(real: str) -> None:
            os.mknod(real, stat.S_IFMT(mode) | stat.S_IMODE(mode), device)
            sb.fix_mode(real, stat.S_IMODE(mode))

    create_entry(sb, path, make, cred, is_dir=False, trigger="mknod", mode=stat.S_IMODE(mode))


def symlink(sb: Super, target: str, path: str, cred: Cred | None = None) -> None:
    create_entry(sb, path, lambda real: os.symlink(target, real), cred, is_dir=False, trigger="symlink")


def _existing(sb: Super, path: str) -> Node:
    """The node at `path`, which must exist (ENOENT otherwise)."""
    node = sb.resolver.lookup(path)
    if not node.exists:
        raise _err(errno.ENOENT, path)
    return node


def link(sb: Super, existing: str, new: str) -> None:
    """A hard link: the source is copied up first (OverlayFS copies up on link)."""
    require_upper(sb, new)
    with sb.lock:
        src = _existing(sb, existing)
        if sb.resolver.lookup(new).exists:  # the VFS checks the new name before the type
            raise _err(errno.EEXIST, new)
        if src.is_dir:
            raise _err(errno.EPERM, existing)
        src = copy_up(sb, existing, "link")
        source_real = src.top.real
        # A new name of an existing file: its owner stays, also in a setgid directory (the
        # kernel's ovl_link takes no new owner; only new objects do).
        create_entry(
            sb,
            new,
            lambda real: os.link(source_real, real, follow_symlinks=False),
            None,
            is_dir=False,
            trigger="link",
            own=_keep_owner,
        )


def _keep_owner(real: str, owner: Owner | None) -> None:
    """`create_entry`'s `own` for a hard link: nothing to change."""


def _whiteout(sb: Super, parent_real: str, name: str, path: str, trigger: str) -> None:
    marks = require_marks(sb, path)
    marks.whiteout_in(parent_real, name)
    sb.emit("whiteout", path=path, trigger=trigger, branch=require_upper(sb, path).label, form=_whiteout_form(marks))


def unlink(sb: Super, path: str) -> None:
    require_upper(sb, path)
    with sb.lock:
        node = _existing(sb, path)
        if node.is_dir:
            raise _err(errno.EISDIR, path)
        _remove(sb, node, "unlink")


def rmdir(sb: Super, path: str) -> None:
    require_upper(sb, path)
    if path == "/":
        raise _err(errno.EBUSY, path)
    with sb.lock:
        node = _existing(sb, path)
        if not node.is_dir:
            raise _err(errno.ENOTDIR, path)
        if not is_empty_dir(sb, node):
            raise _err(errno.ENOTEMPTY, path)
        _remove(sb, node, "rmdir")
        sb.resolver.forget_all_upper()  # its inode number may come back for a new directory


def _remove(sb: Super, node: Node, trigger: str) -> None:
    """Remove what the upper has of `node` and white the name out if a lower still has it."""
    parent_real = ensure_upper_dir(sb, node.parent_path, trigger)
    target = parent_real + "/" + node.name
    if not node.has_lower:
        if node.in_upper:
            if node.is_dir:
                if node.merged or sb.spec.dialect is Dialect.AUFS:
                    _clear_upper_dir(target)  # its whiteouts hide lower names: they go with it
                # A directory only in the upper is removed as the upper fs removes it (the
                # kernel's ovl_remove_upper): a whiteout left there by hand keeps it (ENOTEMPTY).
                os.rmdir(target)
            else:
                os.unlink(target)
        return
    if not node.in_upper:
        _whiteout(sb, parent_real, node.name, node.path, trigger)
        return
    marks = require_marks(sb, node.path)
    if marks.writes_char_whiteouts:
        # Swap a fresh whiteout with the entry, so no moment shows the lower file.
        temp = sb.temp_name()
        marks.make_whiteout_at(temp)
        sb.libc.renameat2(temp, target, RENAME_EXCHANGE)
        _remove_tree(temp)
        label = require_upper(sb, node.path).label
        sb.emit("whiteout", path=node.path, trigger=trigger, branch=label, form=_whiteout_form(marks))
        return
    # .wh. files: the whiteout first; while both exist the entry still wins (OCI rule).
    _whiteout(sb, parent_real, node.name, node.path, trigger)
    if node.is_dir:
        temp = sb.temp_name()
        os.rename(target, temp)
        _remove_tree(temp)
    else:
        os.unlink(target)


def _clear_upper_dir(real: str) -> None:
    """An empty merged directory may still hold whiteouts in the upper: remove them."""
    import shutil  # here, not at the top: the mount command's start-up does without it

    with os.scandir(real) as it:
        for entry in it:
            path = os.path.join(real, entry.name)
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(path)
            else:
                os.unlink(path)


def _remove_tree(path: str) -> None:
    st = lstat_or_none(path)
    if st is None:
        return
    if stat.S_ISDIR(st.st_mode):
        import shutil

        shutil.rmtree(path, ignore_errors=True)
    else:
        os.unlink(path)


def rename(sb: Super, old: str, new: str, flags: int = 0) -> None:
    """rename(2) and renameat2(2) with RENAME_NOREPLACE."""
    upper, marks = require_upper(sb, old), require_marks(sb, old)
    if flags & ~RENAME_NOREPLACE:
        raise _err(errno.EINVAL, old)
    with sb.lock:
        src = _existing(sb, old)
        dst = sb.resolver.lookup(new)
        if not _rename_needed(sb, src, dst, old, new, flags):
            return
        redirect, opaque = _dir_move_marks(sb, src, dst, old, new)
        if not src.in_upper:
            src = copy_up(sb, old, "rename")
        old_parent = ensure_upper_dir(sb, parent_of(old), "rename")
        new_parent = ensure_upper_dir(sb, parent_of(new), "rename")
        source = old_parent + "/" + src.name
        target = new_parent + "/" + dst.name
        if redirect is not None:
            if len(os.fsencode(redirect)) > REDIRECT_MAX:
                # The kernel's ovl_set_redirect refuses with EXDEV, after the copy-ups.
                raise _err(errno.EXDEV, old)
            marks.set_redirect(source, redirect)
            sb.resolver.forget_upper(source)
            sb.emit("redirect", path=new, target=redirect, branch=upper.label)
        elif opaque and not sb.resolver.upper_dir_info(source, os.lstat(source))[0]:
            marks.set_opaque(source)
            sb.resolver.forget_upper(source)
            sb.emit("opaque", path=new, trigger="rename", branch=upper.label, form=_opaque_form(marks))
        if dst.in_upper and dst.is_dir and (dst.merged or sb.spec.dialect is Dialect.AUFS):
            _clear_upper_dir(target)  # as in _remove: only a merged directory's whiteouts go
            sb.resolver.forget_all_upper()  # the replaced directory's inode may come back
        target_st = lstat_or_none(target)
        if target_st is not None and not dst.exists:
            # The target is a char-device whiteout: exchange, and the whiteout lands on the old
            # name, which is just what the old name needs when a lower layer still has it.
            sb.libc.renameat2(source, target, RENAME_EXCHANGE)
            if src.has_lower:
                sb.emit("whiteout", path=old, trigger="rename", branch=upper.label, form=_whiteout_form(marks))
            else:
                os.unlink(source)
        elif src.has_lower and marks.writes_char_whiteouts:
            sb.libc.renameat2(source, target, RENAME_WHITEOUT)
            sb.emit("whiteout", path=old, trigger="rename", branch=upper.label, form=_whiteout_form(marks))
        else:
            if src.has_lower:  # .wh. file first: while both exist, the entry still wins
                _whiteout(sb, old_parent, src.name, old, "rename")
            os.rename(source, target)
        if aufs_whiteout_exists(new_parent, dst.name, sb.resolver.wh_files):
            os.unlink(os.path.join(new_parent, WH_PREFIX + dst.name))


def _rename_needed(sb: Super, src: Node, dst: Node, old: str, new: str, flags: int) -> bool:
    """rename's checks, in the order the VFS makes them (do_renameat2, then vfs_rename): raise
    the first failure's errno, else say whether there is anything to do (not for the same name).
    The union's root is a mount point: renaming it to or from elsewhere crosses mounts."""
    if (old == "/") != (new == "/"):
        raise _err(errno.EXDEV, old)
    if flags & RENAME_NOREPLACE and dst.exists:
        raise _err(errno.EEXIST, new)
    if old == new:
        return False
    if (new + "/").startswith(old + "/"):
        raise _err(errno.EINVAL, new)  # a directory into itself
    if (old + "/").startswith(new + "/"):
        raise _err(errno.ENOTEMPTY, new)  # onto one of its own ancestors
    if dst.exists:
        if src.is_dir and not dst.is_dir:
            raise _err(errno.ENOTDIR, new)
        if not src.is_dir and dst.is_dir:
            raise _err(errno.EISDIR, new)
    if _moves_lower_dir(src) and sb.spec.dialect is Dialect.OVERLAY and not sb.spec.features.creates_redirects:
        # ovl_can_move: without redirects a directory with lower parts cannot move, even an
        # empty one (unionmount-testsuite's rename-exdev), before the target is read.
        raise _err(errno.EXDEV, old)
    if dst.exists and dst.is_dir and not is_empty_dir(sb, dst):
        raise _err(errno.ENOTEMPTY, new)
    return True


def _moves_lower_dir(src: Node) -> bool:
    """Is `src` a directory with lower parts (merged, or not copied up yet)?"""
    return src.is_dir and (src.merged or not src.in_upper)


def _dir_move_marks(sb: Super, src: Node, dst: Node, old: str, new: str) -> tuple[str | None, bool]:
    """(redirect, opaque) that a moved directory needs so its lower parts follow it, or do not
    show through where it lands. aufs cannot follow: a non-empty lower part is EXDEV."""
    if _moves_lower_dir(src):
        if sb.spec.dialect is Dialect.AUFS:
            if not _lower_parts_empty(src):
                raise _err(errno.EXDEV, old)
            return None, True
        return _plan_redirect(sb, src, old, new), False
    if src.is_dir:
        # The kernel marks a moved upper directory opaque when the new parent has lower
        # parts (merged once copied up): a lower directory there must not show through.
        return None, dst.parent_merged
    return None, False


REDIRECT_MAX = 256  # the kernel's redirect_max module parameter (default 256 bytes)


def _opaque_form(marks: MarkWriter) -> str:
    return ".wh..wh..opq" if marks.aufs_encoding else f"{marks.xattr_prefix}overlay.opaque=y"


def _plan_redirect(sb: Super, src: Node, old: str, new: str) -> str:
    """The kernel's ovl_set_redirect: keep a redirect that still holds, else the old name
    (same parent) or the absolute lower path (another parent)."""
    samedir = parent_of(old) == parent_of(new)
    existing = None
    if src.in_upper:
        existing = sb.resolver.upper_dir_info(src.top.real, src.top.st)[1]
    if existing and (samedir or existing.startswith("/")):
        return existing
    if samedir:
        return src.name
    return src.lower_path or old


def _lower_parts_empty(node: Node) -> bool:
    for entry in node.entries:
        if entry.branch.writable:
            continue
        with os.scandir(entry.real) as it:
            for d in it:
                if not d.name.startswith(".wh."):
                    return False
    return True
