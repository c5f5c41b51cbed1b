"""Tree walks that never recurse and never name more than one path component at a time.

A layer may nest directories as deep as `mkdir -p` can make them. At 5,000 levels a path is
far longer than PATH_MAX (4,096 bytes) and a recursive walk is far deeper than Python's
recursion limit. So every walk here keeps an explicit stack, and every system call names one
entry relative to an open directory (`dir_fd=`, the *at() calls), never a full path.

Open directories are bounded: when a walk holds more than `FD_BUDGET` of them, the shallowest
are closed, and reopened through `..` (checked by device and inode) when the walk comes back
up to them. A walk never follows a symbolic link: directories are opened with O_NOFOLLOW.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
FD_BUDGET = 256  # open directories a walk may hold; more are closed and reopened on the way up


class TreeError(OSError):
    """A tree operation that could not go on; str() is one line."""

    def __str__(self) -> str:
        return str(self.strerror)


def sorted_names(fd: int) -> list[str]:
    """The entries of the directory open as `fd`, sorted bytewise as Go's filepath.WalkDir sorts them."""
    return sorted(os.listdir(fd), key=os.fsencode)


def _ident(fd: int) -> tuple[int, int]:
    st = os.fstat(fd)
    return st.st_dev, st.st_ino


def xattr_path(dir_fd: int, name: str) -> str:
    """A short path naming `name` in the directory `dir_fd` (for the xattr calls, which have no dir_fd)."""
    return f"/proc/self/fd/{dir_fd}/{name}"


@dataclass
class _Frame:
    """One directory of the walk: its name in its parent, and per slot its fd (None: closed) and identity."""

    name: str
    rel: str
    fds: list[int | None]
    ids: list[tuple[int, int] | None]
    names: list[str] = field(default_factory=list)  # children still to visit, last one first


class DirStack:
    """The directories from a root down to the current one, in one or more parallel trees ("slots").

    Slot 0 is the tree being walked; other slots follow the same names in other trees (a
    container's lower layers) and hold None where that tree has no such directory. Frame 0 (the
    roots) stays open; above the budget the shallowest other frames are closed, and `pop`
    reopens the frame it returns to.
    """

    def __init__(self, root_fds: Sequence[int | None], budget: int = FD_BUDGET) -> None:
        fds = list(root_fds)
        ids = [_ident(fd) if fd is not None else None for fd in fds]
        self.frames: list[_Frame] = [_Frame("", "", fds, ids)]
        self.budget = budget
        self._open = sum(1 for fd in fds if fd is not None)
        self._first_open = 1  # frames[1:_first_open] are closed, the rest open

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def top(self) -> _Frame:
        return self.frames[-1]

    def fd(self, slot: int = 0) -> int | None:
        """The current directory's fd in `slot` (None where that tree has no such directory)."""
        return self.top.fds[slot]

    def push(self, name: str, fds: Sequence[int | None]) -> _Frame:
        """Enter the child `name`, already opened as `fds` (ownership passes to the stack)."""
        parent = self.top
        fds = list(fds)
        frame = _Frame(name, f"{parent.rel}/{name}" if parent.rel else name, fds, [])
        frame.ids = [_ident(fd) if fd is not None else None for fd in fds]
        self.frames.append(frame)
        self._open += sum(1 for fd in fds if fd is not None)
        self._evict()
        return frame

    def _evict(self) -> None:
        while self._open > self.budget and self._first_open < len(self.frames) - 2:
            self._close(self.frames[self._first_open])
            self._first_open += 1

    def _close(self, frame: _Frame) -> None:
        for i, fd in enumerate(frame.fds):
            if fd is not None:
                os.close(fd)
                self._open -= 1
                frame.fds[i] = None

    def pop(self) -> _Frame:
        """Leave the current directory; the parent is open again afterwards."""
        child = self.frames.pop()
        try:
            if len(self.frames) > 1 and len(self.frames) - 1 < self._first_open:
                self._reopen(self.frames[-1], child)
                self._first_open = len(self.frames) - 1
        finally:
            self._close(child)
        return child

    def _reopen(self, frame: _Frame, child: _Frame) -> None:
        for slot, want in enumerate(frame.ids):
            if want is None:
                continue
            if child.fds[slot] is not None:
                fd = os.open("..", O_DIR, dir_fd=child.fds[slot])
            else:
                fd = self._open_from_root(slot, len(self.frames) - 1)
            if _ident(fd) != want:
                os.close(fd)
                raise TreeError(errno.ESTALE, f"{frame.rel or '/'} was moved while it was walked")
            frame.fds[slot] = fd
            self._open += 1

    def _open_from_root(self, slot: int, depth: int) -> int:
        root = self.frames[0].fds[slot]
        assert root is not None
        fd = os.dup(root)
        for frame in self.frames[1 : depth + 1]:
            try:
                nxt = os.open(frame.name, O_DIR, dir_fd=fd)
            finally:
                os.close(fd)
            fd = nxt
        return fd

    def close(self) -> None:
        for frame in self.frames:
            self._close(frame)
        self.frames.clear()


def open_dir(path: str | os.PathLike[str]) -> int:
    """Open a directory the caller names by a (short) path; the last component is not followed."""
    return os.open(path, O_DIR)


# ---- pre-order walks ------------------------------------------------------------------------------


@dataclass
class Entry:
    """One entry met by `walk`: valid until the walk moves on (its parent's fds are reused)."""

    rel: str  # "a/b/c", relative to the root
    name: str
    st: os.stat_result  # lstat in slot 0
    stack: DirStack
    descend: bool = True  # set False to skip a directory's contents

    def dir_fd(self, slot: int = 0) -> int | None:
        """The fd of this entry's parent directory in `slot`."""
        return self.stack.fd(slot)

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.st.st_mode)


#: Given a directory entry and its parent's fds in the other slots, open the entry in each of
#: them (None where that tree has no such directory, or hides it).
Follow = Callable[[Entry, list[int | None]], list[int | None]]


def follow_same_name(entry: Entry, parents: list[int | None]) -> list[int | None]:
    """The default: the same name as a directory (never through a symlink), else None."""
    out: list[int | None] = []
    for pfd in parents:
        fd = None
        if pfd is not None:
            try:
                fd = os.open(entry.name, O_DIR, dir_fd=pfd)
            except OSError as exc:
                if exc.errno not in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                    raise
        out.append(fd)
    return out


def walk(
    root: str | os.PathLike[str],
    others: Sequence[str | os.PathLike[str] | None] = (),
    follow: Follow = follow_same_name,
    budget: int = FD_BUDGET,
) -> Iterator[Entry]:
    """Every entry below `root`, parents first, names sorted bytewise (Go's filepath.WalkDir order).

    `others` are trees walked alongside (missing ones are None throughout); `follow` decides
    which of their directories stand for a directory of `root`.
    """
    root_fd = open_dir(root)
    extra: list[int | None] = []
    try:
        for o in others:
            try:
                extra.append(open_dir(o) if o is not None else None)
            except (FileNotFoundError, NotADirectoryError):
                extra.append(None)
    except BaseException:
        os.close(root_fd)
        for fd in extra:
            if fd is not None:
                os.close(fd)
        raise
    stack = DirStack([root_fd, *extra], budget)
    try:
        stack.top.names = sorted_names(root_fd)[::-1]
        while True:
            frame = stack.top
            if not frame.names:
                if len(stack) == 1:
                    return
                stack.pop()
                continue
            name = frame.names.pop()
            pfd = stack.fd(0)
            assert pfd is not None
            try:
                st = os.lstat(name, dir_fd=pfd)
            except FileNotFoundError:
                continue  # gone since the listing
            entry = Entry(f"{frame.rel}/{name}" if frame.rel else name, name, st, stack)
            yield entry
            if entry.is_dir and entry.descend:
                cfd = os.open(name, O_DIR, dir_fd=pfd)
                try:
                    children = follow(entry, [stack.fd(s) for s in range(1, len(frame.fds))])
                except BaseException:
                    os.close(cfd)
                    raise
                child = stack.push(name, [cfd, *children])
                child.names = sorted_names(cfd)[::-1]
    finally:
        stack.close()


# ---- removing -------------------------------------------------------------------------------------


def _mount_points_below(path: str) -> list[str]:
    """Mount points strictly below `path` (a removal must never reach into a mounted filesystem)."""
    from unionfs.mountinfo import parse_mountinfo

    try:
        with open("/proc/self/mountinfo") as f:
            infos = parse_mountinfo(f.read())
    except OSError:
        return []
    prefix = path.rstrip("/") + "/"
    return [m.mountpoint for m in infos if m.mountpoint.startswith(prefix)]


def _unlink(name: str, dir_fd: int) -> None:
    try:
        os.unlink(name, dir_fd=dir_fd)
    except PermissionError:
        os.chmod(dir_fd, 0o700)  # a read-only directory from an image (non-root stores)
        os.unlink(name, dir_fd=dir_fd)


def _open_for_removal(name: str, dir_fd: int) -> int:
    try:
        fd = os.open(name, O_DIR, dir_fd=dir_fd)
    except PermissionError:
        os.chmod(name, 0o700, dir_fd=dir_fd)
        fd = os.open(name, O_DIR, dir_fd=dir_fd)
    if os.geteuid() != 0 and stat.S_IMODE(os.fstat(fd).st_mode) & 0o700 != 0o700:
        os.chmod(fd, 0o700)
    return fd


def remove_tree(path: str | os.PathLike[str], missing_ok: bool = True, budget: int = FD_BUDGET) -> None:
    """`rm -rf --one-file-system PATH` without recursion: any depth, any width.

    A directory the caller cannot write (an image's 0555 folder in a non-root store) is made
    writable first. A filesystem mounted anywhere below is never entered: the removal stops
    with an error before anything is removed.
    """
    path = os.path.abspath(os.fspath(path))
    parent, name = os.path.split(path)
    if not name:
        raise TreeError(errno.EINVAL, "refusing to remove /")
    try:
        pfd = open_dir(parent)
    except FileNotFoundError:
        if missing_ok:
            return
        raise
    try:
        try:
            st = os.lstat(name, dir_fd=pfd)
        except FileNotFoundError:
            if missing_ok:
                return
            raise
        if stat.S_ISDIR(st.st_mode):
            mounted = _mount_points_below(os.path.realpath(path)) + ([path] if os.path.ismount(path) else [])
            if mounted:
                raise TreeError(errno.EBUSY, f"{mounted[0]} is a mount point: unmount it first")
        remove_at(pfd, name, budget)
    finally:
        os.close(pfd)


def remove_at(dir_fd: int, name: str, budget: int = FD_BUDGET) -> None:
    """Remove `name` in the directory `dir_fd`, whatever it is; a directory with all it holds.

    Post-order and without recursion; another filesystem below is never entered (EXDEV).
    """
    st = os.lstat(name, dir_fd=dir_fd)
    if not stat.S_ISDIR(st.st_mode):
        _unlink(name, dir_fd)
        return
    stack = DirStack([os.dup(dir_fd)], budget)
    try:
        _remove_below(stack, name, st.st_dev)
    finally:
        stack.close()


def _remove_below(stack: DirStack, name: str, dev: int) -> None:
    """Post-order: a directory is removed once its last entry is gone."""

    def enter(child: str) -> None:
        pfd = stack.fd()
        assert pfd is not None
        fd = _open_for_removal(child, pfd)
        if os.fstat(fd).st_dev != dev:
            os.close(fd)
            raise TreeError(errno.EXDEV, f"{stack.top.rel}/{child} is on another filesystem: not removed")
        frame = stack.push(child, [fd])
        frame.names = os.listdir(fd)

    enter(name)
    retries = 0
    while len(stack) > 1:
        frame = stack.top
        if frame.names:
            child = frame.names.pop()
            fd = stack.fd()
            assert fd is not None
            try:
                st = os.lstat(child, dir_fd=fd)
            except FileNotFoundError:
                continue
            if stat.S_ISDIR(st.st_mode):
                enter(child)
            else:
                _unlink(child, fd)
            continue
        stack.pop()
        pfd = stack.fd()
        assert pfd is not None
        try:
            os.rmdir(frame.name, dir_fd=pfd)
        except OSError as exc:
            retries += 1
            if exc.errno != errno.ENOTEMPTY or retries > 3:
                raise
            enter(frame.name)  # something was created meanwhile: list it again


def remove_quietly(path: str | os.PathLike[str]) -> str | None:
    """`remove_tree` for clean-up paths: returns the error's one line instead of raising."""
    try:
        remove_tree(path)
    except OSError as exc:
        return f"cannot remove {os.fspath(path)}: {exc.strerror or exc}"
    return None


# ---- a cursor for writing -------------------------------------------------------------------------


class DirCursor:
    """An open directory somewhere below a root, moved by relative component lists.

    Applying a tar visits paths in (mostly) pre-order, so the cursor keeps the directories of
    the last path open and only walks the difference. Missing directories are created (0755,
    as moby does); a symlink or non-directory on the way is refused by `on_bad_parent`.
    """

    def __init__(self, root_fd: int, budget: int = FD_BUDGET, mode: int = 0o755) -> None:
        self.stack = DirStack([root_fd], budget)
        self.mode = mode

    def close(self) -> None:
        self.stack.close()

    @property
    def rel(self) -> str:
        return self.stack.top.rel

    def goto(self, rel: str, create: bool = True) -> int:
        """Make `rel` ("a/b", "" for the root) the current directory; return its fd.

        Only the difference from the current directory is walked, found by string operations
        (a deep tree's paths are long; comparing them component by component is not linear).
        """
        cur = self.stack.top.rel
        if rel != cur:
            if cur and not rel.startswith(cur + "/"):
                a, b = cur + "/", rel + "/"
                lo, hi = 0, min(len(a), len(b))  # the common prefix, by bisection in C-speed slices
                while lo < hi:
                    mid = (lo + hi + 1) // 2
                    if a[:mid] == b[:mid]:
                        lo = mid
                    else:
                        hi = mid - 1
                keep = a[:lo].count("/")  # whole components shared
                while len(self.stack) - 1 > keep:
                    self.stack.pop()
                cur = self.stack.top.rel
            rest = rel[len(cur) + 1 :] if cur else rel
            if rest:
                self._descend(rest.split("/"), create)
        fd = self.stack.fd()
        assert fd is not None
        return fd

    def _descend(self, names: list[str], create: bool) -> None:
        for name in names:
            pfd = self.stack.fd()
            assert pfd is not None
            try:
                fd = os.open(name, O_DIR, dir_fd=pfd)
            except FileNotFoundError:
                if not create:
                    raise
                os.mkdir(name, self.mode, dir_fd=pfd)
                fd = os.open(name, O_DIR, dir_fd=pfd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    st = os.lstat(name, dir_fd=pfd)
                    kind = "the symlink" if stat.S_ISLNK(st.st_mode) else "the non-directory"
                    where = f"{self.stack.top.rel}/{name}" if self.stack.top.rel else name
                    raise TreeError(exc.errno, f'{kind} "{where}"') from None
                raise
            self.stack.push(name, [fd])


__all__ = [
    "O_DIR",
    "DirCursor",
    "DirStack",
    "Entry",
    "TreeError",
    "follow_same_name",
    "open_dir",
    "remove_at",
    "remove_quietly",
    "remove_tree",
    "sorted_names",
    "walk",
    "xattr_path",
]
