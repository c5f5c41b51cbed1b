"""Trees no recursive walk survives: deep chains built with dir fds (the paths exceed PATH_MAX)."""

from __future__ import annotations

import os
from pathlib import Path

O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW


def make_deep(root: Path, depth: int, name: str = "d", leaf: str | None = "f", mtime: int | None = None) -> None:
    """`root/d/d/…/d` with `depth` directories (and a file `leaf` at the bottom), like `mkdir -p`."""
    root.mkdir(parents=True, exist_ok=True)
    fds = [os.open(root, O_DIR)]
    try:
        for _ in range(depth):
            try:
                os.mkdir(name, 0o755, dir_fd=fds[-1])
            except FileExistsError:
                pass
            fd = os.open(name, O_DIR, dir_fd=fds[-1])
            if len(fds) > 1:
                os.close(fds.pop())
            fds.append(fd)
        if leaf:
            fd = os.open(leaf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644, dir_fd=fds[-1])
            os.write(fd, b"bottom\n")
            os.close(fd)
            if mtime is not None:
                os.utime(leaf, (mtime, mtime), dir_fd=fds[-1])
    finally:
        for fd in fds:
            os.close(fd)
    if mtime is not None:
        set_mtimes_deep(root, depth, name, mtime)


def set_mtimes_deep(root: Path, depth: int, name: str, mtime: int) -> None:
    """Fixed mtimes on every directory of the chain (bottom first), so the layer's DiffID is fixed."""
    fds = [os.open(root, O_DIR)]
    try:
        for _ in range(depth):
            fds.append(os.open(name, O_DIR, dir_fd=fds[-1]))
        for fd in reversed(fds):
            os.utime(fd, (mtime, mtime))
    finally:
        for fd in fds:
            os.close(fd)


def deep_exists(root: Path, depth: int, name: str = "d", leaf: str | None = "f") -> bool:
    """True when the chain (and its leaf) is all there."""
    fd = os.open(root, O_DIR)
    try:
        for _ in range(depth):
            nxt = os.open(name, O_DIR, dir_fd=fd)
            os.close(fd)
            fd = nxt
        if leaf:
            os.stat(leaf, dir_fd=fd, follow_symlinks=False)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
