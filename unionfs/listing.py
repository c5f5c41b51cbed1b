"""Attributes of every entry of a union directory at once (for FUSE's READDIRPLUS).

A lookup per entry walks the whole path again; here the directory is resolved once, each
upper entry costs one lstat, and each lower-only entry a hit in the resolver's cache of the
read-only layers (which never change while the union is open). The answers are the ones
`Union.getattr` gives for the same paths: directories found in the upper fall back to it,
since only a full lookup knows whether they are opaque or redirected.
"""

from __future__ import annotations

import os
import stat

from .branch import aufs_whiteout_exists, is_whiteout_stat
from .inode import Stat, stat_of
from .namei import Entry, Node, join, normalize
from .union import Union


def stat_entries(union: Union, path: str, names: list[str], node: Node | None = None) -> dict[str, Stat]:
    """{name: Stat} for the entries of directory `path`; names gone meanwhile are left out.
    `node`: the directory, resolved before (valid while nothing has changed the union since)."""
    sb = union.sb
    resolver = sb.resolver
    dir_path = normalize(path)
    if node is None:
        node = resolver.lookup(dir_path)
    if not node.is_dir:
        raise NotADirectoryError(20, os.strerror(20), path)
    upper = node.top if node.in_upper else None
    lower_path = node.lower_path
    out: dict[str, Stat] = {}
    for name in names:
        if name in (".", ".."):
            continue
        lowers = resolver.lower(join(lower_path, name), 0).entries if lower_path is not None else ()
        if upper is not None:
            real = upper.real + "/" + name
            try:
                st = os.lstat(real)
            except (FileNotFoundError, NotADirectoryError):
                st = None
            if st is not None:
                if is_whiteout_stat(st):
                    continue
                if stat.S_ISDIR(st.st_mode):
                    try:
                        out[name] = union.getattr(join(dir_path, name))
                    except OSError:
                        pass
                else:
                    out[name] = stat_of(sb, (Entry(upper.branch, real, st),), lowers)
                continue
            if aufs_whiteout_exists(upper.real, name, resolver.wh_files):
                continue
        if lowers:
            out[name] = stat_of(sb, lowers, lowers)
    return out
