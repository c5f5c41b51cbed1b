"""A root filesystem as the builder reads it: a plain directory, or the union of an image's layers.

COPY reads from the build context (a directory) or, with `--from`, from another image (its
layers merged by the union core, no mount needed). Both answer the same few questions, with
paths as seen from inside (`/etc/passwd`): lstat, listdir, readlink, and which real file holds
an object's bytes. `resolve` follows symlinks as moby's FollowSymlinkInScope does, so that no
link in a hostile context or image can lead outside its root; `walk` visits a tree in Go's
WalkDir order without recursing on its depth.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from typing import Protocol

from unionfs.union import Union

MAX_SYMLINKS = 255


class ScopeError(OSError):
    """Too many symlinks on the way (ELOOP)."""


class StatLike(Protocol):
    @property
    def st_mode(self) -> int: ...
    @property
    def st_uid(self) -> int: ...
    @property
    def st_gid(self) -> int: ...
    @property
    def st_size(self) -> int: ...
    @property
    def st_mtime_ns(self) -> int: ...
    @property
    def st_rdev(self) -> int: ...


class FSView(Protocol):
    def lstat(self, path: str) -> StatLike: ...
    def listdir(self, path: str) -> list[str]: ...
    def readlink(self, path: str) -> str: ...
    def host_path(self, path: str) -> str: ...


class HostDir:
    """A directory on the host seen as a root."""

    def __init__(self, root: str) -> None:
        self.root = root

    def host_path(self, path: str) -> str:
        rel = path.strip("/")
        return os.path.join(self.root, rel) if rel else self.root

    def lstat(self, path: str) -> os.stat_result:
        return os.lstat(self.host_path(path))

    def listdir(self, path: str) -> list[str]:
        return os.listdir(self.host_path(path))

    def readlink(self, path: str) -> str:
        return os.readlink(self.host_path(path))


class UnionView:
    """A union of layers seen as a root (read through the union core, never mounted)."""

    def __init__(self, union: Union) -> None:
        self.union = union

    def host_path(self, path: str) -> str:
        return self.union.lookup("/" + path.strip("/")).top.real

    def lstat(self, path: str) -> StatLike:
        return self.union.getattr("/" + path.strip("/"))

    def listdir(self, path: str) -> list[str]:
        return self.union.listdir("/" + path.strip("/"))

    def readlink(self, path: str) -> str:
        return self.union.readlink("/" + path.strip("/"))


def resolve(fs: FSView, path: str) -> str:
    """FollowSymlinkInScope: `path` with its symlinks followed inside the root; `/`-rooted."""
    todo = [p for p in path.split("/") if p]
    done: list[str] = []
    links = 0
    while todo:
        part = todo.pop(0)
        if part == ".":
            continue
        if part == "..":
            if done:
                done.pop()
            continue
        candidate = "/" + "/".join([*done, part])
        try:
            st = fs.lstat(candidate)
        except OSError:
            done.append(part)
            continue
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > MAX_SYMLINKS:
                raise ScopeError(40, f"too many links in {path}")
            target = fs.readlink(candidate)
            if target.startswith("/"):
                done = []
            todo = [p for p in target.split("/") if p] + todo
            continue
        done.append(part)
    return "/" + "/".join(done)


def walk(fs: FSView, top: str) -> Iterator[tuple[str, StatLike]]:
    """filepath.WalkDir from `top` (not following links): `top` first, then every entry below
    it, each directory's entries sorted bytewise, depth first."""
    first = fs.lstat(top)
    yield top, first
    if not stat.S_ISDIR(first.st_mode):
        return
    stack = [top]
    pending: list[list[str]] = [_children(fs, top)]
    while pending:
        if not pending[-1]:
            pending.pop()
            stack.pop()
            continue
        path = pending[-1].pop(0)
        st = fs.lstat(path)
        yield path, st
        if stat.S_ISDIR(st.st_mode):
            stack.append(path)
            pending.append(_children(fs, path))


def _children(fs: FSView, path: str) -> list[str]:
    base = path.rstrip("/")
    return [f"{base}/{n}" for n in sorted(fs.listdir(path), key=os.fsencode)]


__all__ = ["FSView", "HostDir", "UnionView", "StatLike", "ScopeError", "resolve", "walk"]
