"""Open files: handles on the real file, read, write, fsync, release (fs/overlayfs/file.c).

An open for writing copies the file up first. A read-only handle on a lower file follows the
file when another writer copies it up, so it never reads stale data.
"""

from __future__ import annotations

import errno
import os
import stat
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

from .copy_up import copy_up, require_upper
from .dir import Owner, create_entry, own_new_file
from .namei import Entry, Node
from .super import Cred, Super

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR
_CREATE_FLAGS = os.O_CREAT | os.O_EXCL | os.O_NOCTTY


@dataclass(eq=False)
class Handle:
    """An open union file: a descriptor on the real file in the branch that serves it."""

    fd: int
    path: str
    flags: int
    real: str
    sync: bool = True  # False in a volatile union: fsync(2) returns at once
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def reopen(self, real: str) -> None:
        """Point this read-only handle at `real` (the copy-up of the file it had open)."""
        new_fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW)
        with self._lock:
            if self.fd < 0:  # released meanwhile (the registry holds handles only weakly)
                old = new_fd
            else:
                old, self.fd, self.real = self.fd, new_fd, real
        os.close(old)

    def read(self, size: int, offset: int) -> bytes:
        with self._lock:
            return os.pread(self.fd, size, offset)

    def send_from(self, send: Callable[[int], object]) -> None:
        """Call `send(fd)` with the descriptor held, as `read` holds it: a copy-up's `reopen`
        or a `close` waits until `send` returns. For a reader that reads the descriptor itself
        (the FUSE adapter hands it to libfuse, which splices the data to the kernel)."""
        with self._lock:
            send(self.fd)

    def write(self, data: bytes, offset: int) -> int:
        return os.pwrite(self.fd, data, offset)

    def truncate(self, length: int) -> None:
        os.ftruncate(self.fd, length)

    def getxattr(self, real_name: str) -> bytes:
        """An xattr of the open file itself (by its descriptor, whatever its name now)."""
        with self._lock:
            if self.fd < 0:
                raise OSError(errno.EBADF, os.strerror(errno.EBADF), self.path)
            return os.getxattr(self.fd, real_name)

    def fsync(self, datasync: bool = False) -> None:
        if self.sync:
            (os.fdatasync if datasync else os.fsync)(self.fd)

    def close(self) -> None:
        with self._lock:
            fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)


def wants_write(flags: int) -> bool:
    return bool(flags & _WRITE_FLAGS) or bool(flags & os.O_TRUNC)


def open_file(sb: Super, path: str, flags: int, mode: int = 0o644, cred: Cred | None = None) -> Handle:
    """open(2) on the union, with O_CREAT, O_EXCL, O_TRUNC, O_APPEND and O_DIRECTORY."""
    trailing_slash = path.endswith("/")
    path = path.rstrip("/") or "/"
    node = sb.resolver.lookup(path)
    if trailing_slash and node.exists and not node.is_dir:
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
    if not node.exists:
        if not flags & os.O_CREAT:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
        if trailing_slash:
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
        return create_file(sb, path, flags, mode, cred)
    if flags & os.O_CREAT and path == "/":  # no last name to create: the VFS says EISDIR
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
    if flags & os.O_CREAT and flags & os.O_EXCL:
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), path)
    if node.is_dir:
        if wants_write(flags) or flags & os.O_CREAT:
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
        fd = os.open(node.top.real, os.O_RDONLY | os.O_DIRECTORY)
        return Handle(fd, path, flags, node.top.real, sb.spec.features.fsync)
    if flags & os.O_DIRECTORY:
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
    real_flags = (flags & ~_CREATE_FLAGS) | os.O_NOFOLLOW
    if wants_write(flags) and not node.in_upper:
        require_upper(sb, path)
        trigger = "open(O_TRUNC)" if flags & os.O_TRUNC else "open for write"
        node = copy_up(sb, path, trigger, data_bytes=0 if flags & os.O_TRUNC else None)
    elif wants_write(flags) and sb.upper is None:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), path)
    real = node.top.real
    fd = os.open(real, real_flags)
    if flags & os.O_TRUNC and cred is not None and cred.uid != 0:
        _kill_setid(fd)
    handle = Handle(fd, path, flags, real, sb.spec.features.fsync)
    if not node.in_upper and stat.S_ISREG(node.top.st.st_mode) and sb.upper is not None:
        key = (node.top.st.st_dev, node.top.st.st_ino)
        with sb.lock:
            sb.lower_handles.setdefault(key, weakref.WeakSet()).add(handle)
            # A copy-up may have finished between the lookup and now: follow it.
            current = sb.resolver.lookup(path)
            if current.in_upper and current.top.real != real:
                handle.reopen(current.top.real)
    return handle


def fsync_dir(sb: Super, path: str) -> None:
    """fsync(2) on a directory: the upper's, when it is there (nothing to sync below)."""
    if not sb.spec.features.fsync:
        return
    node = sb.resolver.lookup(path)
    if node.exists and node.is_dir and node.in_upper:
        fd = os.open(node.top.real, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _kill_setid(fd: int) -> None:
    """open(O_TRUNC) by a caller without CAP_FSETID drops S_ISUID, and S_ISGID where group
    execute is set (the VFS's handle_truncate); through FUSE the truncation happens inside
    OPEN, so the union must do it."""
    mode = os.fstat(fd).st_mode
    kill = mode & stat.S_ISUID
    if mode & stat.S_ISGID and mode & stat.S_IXGRP:
        kill |= stat.S_ISGID
    if kill and stat.S_ISREG(mode):
        os.fchmod(fd, stat.S_IMODE(mode) & ~kill)


def create_in(sb: Super, parent: Node, name: str, flags: int, mode: int, cred: Cred | None) -> tuple[Handle, Node]:
    """open(2) with O_CREAT of `name` in the directory `parent`, resolved before (as for
    `Resolver.lookup_child`): the name is resolved in it, not by a walk from the root. Returns
    the handle and the file's node as a lookup now gives it.

    A new name is resolved once, under the lock that the creation holds; the new file's node
    is the absent one with the file as its only entry (what `lookup_child` would now return),
    its attributes those of the open descriptor."""
    resolver = sb.resolver
    with sb.lock:
        node = resolver.lookup_child(parent, name)
        if not node.exists:
            handle, st = _make_file(sb, node.path, flags, mode, cred, node=node)
    if node.exists:  # an existing name: open(2) as by path (O_EXCL: EEXIST)
        handle = open_file(sb, node.path, flags | os.O_CREAT, mode, cred)
    elif parent.in_upper and sb.upper is not None:
        # The parent was in the upper before, so it is as it was resolved: a new name does
        # not change how it resolves.
        return handle, node._replace(entries=(Entry(sb.upper, handle.real, st),), upper_whiteout=False)
    try:
        # A parent that was only below has just been copied up: walk to it again.
        return handle, resolver.lookup_child(parent, name) if parent.in_upper else resolver.lookup(node.path)
    except BaseException:
        handle.close()
        raise


def create_file(sb: Super, path: str, flags: int, mode: int, cred: Cred | None) -> Handle:
    """Create a regular file and open it (O_CREAT on a missing name), in one open(2)."""
    return _make_file(sb, path, flags, mode, cred)[0]


def _make_file(
    sb: Super, path: str, flags: int, mode: int, cred: Cred | None, node: Node | None = None
) -> tuple[Handle, os.stat_result]:
    """`create_file`, and the new file's attributes. `node`: the name, resolved under
    `sb.lock`, which the caller holds (see `dir.create_entry`).

    System calls for a file made in place: the open(2) with the final flags and mode, and an
    fstat; a chown only where the upper filesystem did not already give the caller's ids
    (a daemon serving another user), then the S_ISUID/S_ISGID that chown drops set again."""
    open_flags = (flags & ~(_CREATE_FLAGS | os.O_TRUNC)) | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    wanted = stat.S_IMODE(mode)
    fd = -1
    made: tuple[str, os.stat_result] | None = None

    def make(real: str) -> None:
        nonlocal fd
        fd = os.open(real, open_flags, wanted)
        sb.fix_mode(fd, wanted)

    def own(real: str, owner: Owner | None) -> None:
        nonlocal made
        made = real, own_new_file(fd, owner, wanted)

    try:
        real = create_entry(sb, path, make, cred, is_dir=False, trigger="create", node=node, own=own)
        # Built in the work dir over a whiteout and renamed (a rename moves the ctime), or in
        # place: either way the descriptor follows.
        st = made[1] if made is not None and made[0] == real else os.fstat(fd)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        raise
    sb.origins.made(st)
    return Handle(fd, path, flags, real, sb.spec.features.fsync), st
