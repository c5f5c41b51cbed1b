"""The merged listing (fs/overlayfs/readdir.c): upper first, then the lower layers' names;
whiteouts, the names they hide and (where `.wh.` names are marks) `.wh.*` names are left out."""

from __future__ import annotations

import errno
import os

from .namei import Node, read_layer_dir
from .super import Super


def list_names(sb: Super, node: Node) -> list[str]:
    """The names in merged directory `node`, without '.' and '..', in a stable order."""
    if not node.exists:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), node.path)
    if not node.is_dir:
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), node.path)
    top = node.top
    if not top.branch.writable:
        visible, _ = sb.resolver.lower_listing(node.lower_path or node.path)
        return sorted(visible)
    names, hidden = read_layer_dir(top.real, True, sb.resolver.wh_files)
    if len(node.entries) == 1 or node.lower_path is None:
        return sorted(names)
    lower_visible, _ = sb.resolver.lower_listing(node.lower_path)
    merged = set(names)
    merged.update(n for n in lower_visible if n not in hidden)
    return sorted(merged)


def readdir(sb: Super, path: str) -> list[str]:
    """readdir(3) of a union directory, with '.' and '..' first."""
    return readdir_of(sb, sb.resolver.lookup(path))


def readdir_of(sb: Super, node: Node) -> list[str]:
    """`readdir` of a resolved directory."""
    return [".", ".."] + list_names(sb, node)


def is_empty_dir(sb: Super, node: Node) -> bool:
    return not list_names(sb, node)
