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
from .inode import Stat
from .namei import join, normalize
from .union import Union


def stat_entries(union: Union, path: str, names: list[str]) -> dict[str, Stat]:
    """{name: Stat} for the entries of directory `path`; names gone meanwhile are left out."""
    resolver = union.sb.resolver
    dir_path = normalize(path)
    node = resolver.lookup(dir_path)
    if not node.is_dir:
        raise NotADirectoryError(20, os.strerror(20), path)
    upper_dir = node.top.real if node.in_upper else None
    lower_path = node.lower_path
    out: dict[str, Stat] = {}
    for name in names:
        if name in (".", ".."):
            continue
        if upper_dir is not None:
            try:
                st = os.lstat(upper_dir + "/" + name)
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
                    out[name] = Stat.of(st)
                continue
            if aufs_whiteout_exists(upper_dir, name, resolver.wh_files):
                continue
        if lower_path is None:
            continue
        lowers = resolver.lower(join(lower_path, name), 0).entries
        if lowers:
            top = lowers[0]
            out[name] = Stat.of(top.st, 1 if top.is_dir and len(lowers) > 1 else None)
    return out
