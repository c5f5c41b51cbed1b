"""Merged views as comparable data, and the one list of tolerated differences.

`KNOWN_DIFFERENCES` is the only place where layerfs may differ from the kernel; each entry
says why (docs/conformance.md explains them for people). Everything else must be equal.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

# Names of the union's private xattrs: never shown through a union, so never compared.
PRIVATE_PREFIXES = ("trusted.overlay.", "user.overlay.", "user.layerfs.", "user.fuseoverlayfs.")

KNOWN_DIFFERENCES = {
    "st_ino": "layerfs reports the serving branch's inode; it changes on copy-up (the kernel, all "
    "layers on one fs and xino off, also shows the real inode, but FUSE renumbers it)",
    "st_dev": "through FUSE every object has the mount's st_dev; the kernel's non-dirs show the real fs's st_dev",
    "dir st_size": "a directory's size is the upper ext4 dir's size, which depends on its history "
    "(whiteouts created and removed, work files): not a union property",
    "stray whiteouts": "the kernel's readdir of a non-merged lower dir passes a whiteout that hides "
    "nothing through (lookup then says ENOENT); layerfs never lists whiteouts",
    "times": "atime/ctime and mtimes set by the clock differ between two runs; explicit times "
    "(utimens) are compared through the operation's result",
}


@dataclass(frozen=True)
class Entry:
    kind: str
    mode: int
    uid: int
    gid: int
    nlink: int
    size: int | None  # None for directories (see KNOWN_DIFFERENCES["dir st_size"])
    data: bytes | str | None  # file content or symlink target
    xattrs: tuple[tuple[str, bytes], ...]


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "dir"),
        (stat.S_ISREG, "file"),
        (stat.S_ISLNK, "symlink"),
        (stat.S_ISCHR, "chr"),
        (stat.S_ISBLK, "blk"),
        (stat.S_ISFIFO, "fifo"),
    ):
        if test(mode):
            return name
    return "sock"


class StatLike(Protocol):
    """The fields compared: os.stat_result and the union's Stat both have them."""

    @property
    def st_mode(self) -> int: ...
    @property
    def st_uid(self) -> int: ...
    @property
    def st_gid(self) -> int: ...
    @property
    def st_nlink(self) -> int: ...
    @property
    def st_size(self) -> int: ...


@dataclass
class Reader:
    """What a view is read through: plain functions on union paths (no symlink following)."""

    lstat: Callable[[str], StatLike]
    listdir: Callable[[str], list[str]]
    readlink: Callable[[str], str]
    read: Callable[[str], bytes]
    listxattr: Callable[[str], list[str]]
    getxattr: Callable[[str, str], bytes]

    @classmethod
    def real(cls, root: str) -> Reader:
        def p(path: str) -> str:
            return root + ("" if path == "/" else path)

        def read(path: str) -> bytes:
            with open(p(path), "rb") as f:
                return f.read()

        def listdir(path: str) -> list[str]:
            # See KNOWN_DIFFERENCES["stray whiteouts"].
            return [n for n in os.listdir(p(path)) if os.path.lexists(os.path.join(p(path), n))]

        return cls(
            lambda x: os.lstat(p(x)),
            listdir,
            lambda x: os.readlink(p(x)),
            read,
            lambda x: os.listxattr(p(x), follow_symlinks=False),
            lambda x, n: os.getxattr(p(x), n, follow_symlinks=False),
        )

    @classmethod
    def union(cls, u) -> Reader:
        return cls(u.getattr, u.listdir, u.readlink, u.read_file, u.listxattr, u.getxattr)


def _xattrs(reader: Reader, path: str) -> tuple[tuple[str, bytes], ...]:
    out = []
    try:
        names = reader.listxattr(path)
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            return ()
        raise
    for name in sorted(names):
        if name.startswith(PRIVATE_PREFIXES):
            continue
        out.append((name, reader.getxattr(path, name)))
    return tuple(out)


def walk(reader: Reader, path: str = "/") -> Iterator[str]:
    yield path
    st = reader.lstat(path)
    if stat.S_ISDIR(st.st_mode):
        for name in sorted(reader.listdir(path)):
            yield from walk(reader, ("" if path == "/" else path) + "/" + name)


def snapshot(reader: Reader) -> dict[str, Entry]:
    """The whole merged tree: every path with what the issue asks to compare."""
    return {path: snapshot_one(reader, path) for path in walk(reader)}


def snapshot_one(reader: Reader, path: str) -> Entry:
    st = reader.lstat(path)
    kind = _kind(st.st_mode)
    data: bytes | str | None = None
    if kind == "file":
        data = reader.read(path)
    elif kind == "symlink":
        data = reader.readlink(path)
    return Entry(
        kind,
        stat.S_IMODE(st.st_mode),
        st.st_uid,
        st.st_gid,
        st.st_nlink,
        None if kind == "dir" else st.st_size,
        data,
        _xattrs(reader, path),
    )


def diff(expected: dict[str, Entry], actual: dict[str, Entry], limit: int = 12) -> list[str]:
    """Human-readable differences, kernel (expected) first."""
    lines = []
    for path in sorted(set(expected) | set(actual)):
        a, b = expected.get(path), actual.get(path)
        if a == b:
            continue
        if a is None or b is None:
            lines.append(f"{path!r}: kernel {a} / layerfs {b}")
        else:
            fields = [
                f"{k}: kernel {getattr(a, k)!r} / layerfs {getattr(b, k)!r}"
                for k in a.__dataclass_fields__
                if getattr(a, k) != getattr(b, k)
            ]
            lines.append(f"{path!r}: " + "; ".join(fields))
        if len(lines) >= limit:
            lines.append("...")
            break
    return lines
