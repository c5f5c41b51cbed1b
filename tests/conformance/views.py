"""Merged views as comparable data, and the one list of tolerated differences.

`KNOWN_DIFFERENCES` is the only place where layerfs may differ from the kernel; each entry
says why (docs/conformance.md explains them for people). Everything else must be equal.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Protocol

# Names of the union's private xattrs: never shown through a union, so never compared.
PRIVATE_PREFIXES = ("trusted.overlay.", "user.overlay.", "user.layerfs.", "user.fuseoverlayfs.")

KNOWN_DIFFERENCES = {
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
    # st_ino, as a label both sides can share: the lower object it is ("l0:/a", which holds
    # across copy-up), else the first path of the view with the same number ("=/a": every
    # name of a hard link gets the first name's label). "" where not compared.
    ino: str = ""
    root_dev: bool = True  # st_dev is the union root's (one device for the whole mount)


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
    @property
    def st_ino(self) -> int: ...
    @property
    def st_dev(self) -> int: ...


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


def snapshot(reader: Reader, lower_inos: dict[int, str] | None = None) -> dict[str, Entry]:
    """The whole merged tree: every path with what the issue asks to compare.

    With `lower_inos` (real inode number -> label, for every lower object of every copy of
    the layers) each entry's st_ino is compared as a label, and st_dev against the root's.
    """
    view = {path: snapshot_one(reader, path) for path in walk(reader)}
    if lower_inos is None:
        return view
    first: dict[int, str] = {}
    root_dev = reader.lstat("/").st_dev
    out = {}
    for path, entry in view.items():
        st = reader.lstat(path)
        label = lower_inos.get(st.st_ino) or "=" + first.setdefault(st.st_ino, path)
        out[path] = replace(entry, ino=label, root_dev=st.st_dev == root_dev)
    return out


def lower_inode_labels(layers: list[list[str]]) -> dict[int, str]:
    """{inode number: "l<i>:<path>"} for every object of the read-only layers, where
    `layers[i]` lists the copies of layer i (each side's clone): the same object in every
    copy gets the same label; hard links within a layer get their first path's."""
    labels: dict[int, str] = {}
    for i, copies in enumerate(layers):
        for root in copies:
            for dirpath, dirnames, filenames in os.walk(root):
                dirnames.sort()
                rel = dirpath[len(root) :] or "/"
                labels.setdefault(os.lstat(dirpath).st_ino, f"l{i}:{rel}")
                for name in sorted(dirnames + filenames):
                    full = os.path.join(dirpath, name)
                    labels.setdefault(os.lstat(full).st_ino, f"l{i}:{('' if rel == '/' else rel)}/{name}")
    return labels


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
