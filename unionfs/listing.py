"""Attributes of every entry of a union directory at once (for FUSE's READDIRPLUS).

A lookup per entry walks the whole path again; here the directory is resolved once, each
upper entry costs one lstat, and each lower-only entry one lstat in the layer that serves it,
found in the listings of the read-only layers the resolver keeps (they never change while the
union is open). The answers are the ones `Union.getattr` gives for the same paths:
directories found in the upper are looked up under the directory (only a lookup knows
whether they are opaque or redirected), and lower directories by the resolver's own lookup
(opaque marks, redirects, the parts merged below).
"""

from __future__ import annotations

import os
from stat import S_ISDIR

from .branch import Branch, aufs_whiteout_exists, is_whiteout_stat
from .inode import Stat, stat_of
from .namei import Entry, LayerDir, Node, Resolver, normalize
from .union import Union

_new = tuple.__new__  # an Entry from a tuple of its fields, as the resolver builds them


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
    parts: tuple[Entry, ...] = ()  # the read-only directories merged at `lower_path`
    if lower_path is not None:
        parts = resolver.lower(lower_path, 0).entries
        if parts and not S_ISDIR(parts[0].st.st_mode):
            parts = ()
    lower_prefix = "" if lower_path in (None, "/") else lower_path
    listings = _layer_listings(resolver, parts)
    out: dict[str, Stat] = {}
    for name in names:
        if name == "." or name == "..":
            continue
        if listings:
            lowers = _lower_non_dir(listings, name)
            if lowers is None:  # a directory (or a layer changed under us): the resolver decides
                lowers = resolver.lower(lower_prefix + "/" + name, 0).entries
        else:
            lowers = ()
        if upper is not None:
            real = upper.real + "/" + name
            try:
                st = os.lstat(real)
            except (FileNotFoundError, NotADirectoryError):
                st = None
            if st is not None:
                if is_whiteout_stat(st):
                    continue
                if S_ISDIR(st.st_mode):  # opaque? redirected? merged? as a lookup of the name says
                    try:
                        child = resolver.lookup_child(node, name)
                    except OSError:
                        continue
                    if child.entries:
                        out[name] = stat_of(sb, child.entries, child.lowers)
                else:
                    out[name] = stat_of(sb, (Entry(upper.branch, real, st),), lowers)
                continue
            if aufs_whiteout_exists(upper.real, name, resolver.wh_files):
                continue
        if lowers:
            out[name] = stat_of(sb, lowers, lowers)
    return out


def _layer_listings(resolver: Resolver, parts: tuple[Entry, ...]) -> list[tuple[Branch, str, LayerDir]]:
    """(branch, real path, listing) of each read-only directory of `parts`, from the
    resolver's cache of layer directories (read once while the union is open)."""
    layer_dir = resolver._layer_dir
    return [(part.branch, part.real, layer_dir(part.real)) for part in parts]


def _lower_non_dir(listings: list[tuple[Branch, str, LayerDir]], name: str) -> tuple[Entry, ...] | None:
    """What `resolver.lower(dir/name).entries` is where that is not a directory, from the
    listings of the read-only directories merged at dir, top first (branch, real path,
    listing): the first layer whose listing has `name` serves it, unless a whiteout above
    hides it (then nothing). None where the layer's object is a directory, or is gone: the
    resolver's lookup decides those.

    The resolver's own walk does the same layer by layer (plus an index of names under many
    layers, to find the layers that have a name without a probe each); for a listing every
    name is wanted, so the layers' listings are probed directly and no index is built.
    """
    for branch, real_dir, listing in listings:
        if name not in listing.names:
            if branch.whiteouts and name in listing.whiteouts:
                return ()
            if name not in listing.char_whiteouts:
                continue
        real = real_dir + "/" + name
        try:
            st = os.lstat(real)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if S_ISDIR(st.st_mode):
            return None
        return (_new(Entry, (branch, real, st)),)
    return ()
