"""Lookup: walk a union path down the stack (the kernel's fs/overlayfs/namei.c).

Rules, top-down: a whiteout stops the lookup; a non-directory stops it and hides everything
below; a directory continues unless it is opaque. Below a directory, an entry of another type
is dropped and ends the merge, in both dialects: the kernel does so, and the OCI rules that
the aufs dialect is checked against agree (real aufs would skip it and merge on).

The read-only layers (init and lowers) never change while the union is open, so their part
of every lookup is cached for directories (with each layer directory's listing): after the
first walk, a lookup costs one lstat per component in the upper, nothing per read-only
layer however many there are, and one lstat for a last component that a layer serves as
a file, unless it is among the last few looked up (`Resolver._lower` says why).
"""

from __future__ import annotations

import errno
import os
import stat
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import lru_cache
from stat import S_ISDIR
from typing import NamedTuple

from .branch import (
    Branch,
    aufs_whiteout_exists,
    is_opaque_dir,
    is_reserved_name,
    is_whiteout_stat,
    lstat_or_none,
    read_redirect,
)
from .options import Dialect


class Entry(NamedTuple):
    """One real object in one branch."""

    branch: Branch
    real: str
    st: os.stat_result

    @property
    def is_dir(self) -> bool:
        return S_ISDIR(self.st.st_mode)


class LowerResult(NamedTuple):
    """What the read-only layers hold at one path."""

    entries: tuple[Entry, ...] = ()
    whiteout: Branch | None = None  # the layer whose whiteout stopped the lookup, if any


class Node(NamedTuple):
    """A resolved union path.

    `entries` is what the union shows: the first entry serves the path; for a directory the
    rest are the lower directories merged under it. `lowers` is what the read-only layers hold
    at the same place whether or not the upper hides it: it decides whether a removal needs a
    whiteout. `parent_upper` is the parent's directory in the upper, if it is there yet.

    The records of a lookup (Entry, LowerResult, Node) are named tuples, immutable as the
    frozen dataclasses they were, because a fresh FUSE lookup makes several: a tuple is built
    in a fifth of a frozen dataclass's time (whose __init__ sets each field through
    object.__setattr__), and the resolver builds them with `_new` (tuple.__new__), faster still.
    """

    path: str
    entries: tuple[Entry, ...]
    lowers: tuple[Entry, ...]
    lower_path: str | None  # where lower layers are looked up (after redirects); None if cut off
    parent_upper: str | None
    upper_whiteout: bool = False
    parent_upper_st: os.stat_result | None = None
    parent_merged: bool = False  # the parent has lower parts (merged now, or once copied up)

    @property
    def exists(self) -> bool:
        return bool(self.entries)

    @property
    def top(self) -> Entry:
        if not self.entries:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), self.path)
        return self.entries[0]

    @property
    def is_dir(self) -> bool:
        entries = self.entries
        return bool(entries) and S_ISDIR(entries[0].st.st_mode)

    @property
    def in_upper(self) -> bool:
        return bool(self.entries) and self.entries[0].branch.writable

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def parent_path(self) -> str:
        return parent_of(self.path)

    @property
    def has_lower(self) -> bool:
        """Does a read-only layer still hold this name (so removing it needs a whiteout)?"""
        return bool(self.lowers)

    @property
    def merged(self) -> bool:
        return len(self.entries) > 1 and S_ISDIR(self.entries[0].st.st_mode)


_new = tuple.__new__  # Entry/LowerResult/Node from a tuple of every field, without keywords
_NO_LOWER = LowerResult()
_INDEXED = 4  # a directory merged from more layers than this gets an index of its names


def parent_of(path: str) -> str:
    head = path.rsplit("/", 1)[0]
    return head or "/"


def join(path: str, name: str) -> str:
    return ("" if path == "/" else path) + "/" + name


def split_path(path: str) -> list[str]:
    return [c for c in path.split("/") if c]


def normalize(path: str) -> str:
    """A union path in canonical form: absolute, no '.', '..' or double slashes."""
    parts: list[str] = []
    for part in split_path(path):
        if part == "..":
            if parts:
                parts.pop()
        elif part != ".":
            parts.append(part)
    return "/" + "/".join(parts)


def _redirect_target(lower_path: str, redirect: str) -> str:
    """An absolute redirect starts from the layer root; a relative one replaces the last name."""
    if redirect.startswith("/"):
        return normalize(redirect)
    return join(parent_of(lower_path), redirect)


@dataclass
class Resolver:
    """Path resolution over one stack; `branches` is top first, the upper (if any) at 0."""

    branches: tuple[Branch, ...]
    dialect: Dialect
    follow_redirects: bool = True  # False with redirect_dir=nofollow: a redirect to follow is EPERM
    wh_files: bool = True  # are `.wh.` names marks (aufs/OCI), or ordinary names (the kernel's encoding)?
    cache_size: int = 1 << 17
    #: How many other names than directories `_lower` keeps (the most recent).
    RECENT = 256
    _upper_info: dict[tuple[int, int], tuple[bool, str | None]] = field(default_factory=dict)
    _upper_root_st: os.stat_result | None = None

    def __post_init__(self) -> None:
        self.upper = self.branches[0] if self.branches and self.branches[0].writable else None
        self.readonly = tuple(b for b in self.branches if not b.writable)
        # The read-only layers' view (`_lower`) by path (and start layer): of each directory,
        # and of the last few other names, oldest first.
        self._lowers: dict[str | tuple[str, int], LowerResult] = {}
        self._recent: OrderedDict[str | tuple[str, int], LowerResult] = OrderedDict()
        self._listing = lru_cache(maxsize=self.cache_size // 8)(self._lower_listing)
        # One listing per read-only layer directory: a lookup probes dicts, not the disk.
        self._layer_dir = lru_cache(maxsize=self.cache_size // 8)(self._read_layer_dir)
        self._names_below = lru_cache(maxsize=self.cache_size // 64)(self._read_names_below)

    # -- reserved names -------------------------------------------------------------------
    def check_name(self, name: str) -> None:
        """Where `.wh.` names are marks, such a name cannot be looked up or created: aufs says
        EPERM, the overlay dialect with `whiteout=aufs` EINVAL. The kernel's encoding has no
        reserved names."""
        if is_reserved_name(name, self.wh_files):
            code = errno.EPERM if self.dialect is Dialect.AUFS else errno.EINVAL
            raise OSError(code, os.strerror(code), name)

    # -- the read-only layers -------------------------------------------------------------
    def lower(self, path: str, start: int = 0) -> LowerResult:
        """The read-only layers' view of `path`, from read-only layer `start` down (cached)."""
        return self._lower(path, start)

    def _lower(self, path: str, start: int) -> LowerResult:
        """`lower`, cached. Directories are kept (up to `cache_size`; full, the cache starts
        again): they are the parents of every lookup below them. Anything else (a file, an
        absent or a whited-out name) is kept among the `RECENT` last ones only: an OPEN after
        its LOOKUP walks the path twice (`file.open_file`) and finds it there, while a stream
        of fresh lookups recycles that memory instead of growing the daemon by ~1 KB each (an
        `os.stat_result` and its fields, the records, the cache's own entry): new memory costs
        a page fault per 4 KB, ~5 µs on a VM, more than the one lstat a later resolution of
        the file costs (the kernel keeps what a LOOKUP answers)."""
        key = path if start == 0 else (path, start)
        found = self._lowers.get(key)
        if found is None:
            recent = self._recent
            found = recent.get(key)
            if found is None:
                found = self._resolve_lower(path, start)
                entries = found.entries
                if entries and S_ISDIR(entries[0].st.st_mode):
                    lowers = self._lowers
                    if len(lowers) >= self.cache_size:
                        lowers.clear()
                    lowers[key] = found
                else:
                    recent[key] = found
                    if len(recent) > self.RECENT:
                        recent.popitem(last=False)
        return found

    def _resolve_lower(self, path: str, start: int) -> LowerResult:
        if path == "/":
            return LowerResult(tuple(Entry(b, b.path, os.lstat(b.path)) for b in self.readonly[start:]))
        head, _, name = path.rpartition("/")
        parent = self._lower(head or "/", start).entries
        if not parent or not S_ISDIR(parent[0].st.st_mode):
            return _NO_LOWER  # below a non-directory nothing exists
        if len(parent) > _INDEXED:  # many layers: only those that have the name (or hide it)
            positions = self._names_below(head or "/", start).get(name)
            if positions is None:
                return _NO_LOWER
            parent = tuple(parent[i] for i in positions)
        found: list[Entry] = []
        layer_dir = self._layer_dir
        for pentry in parent:
            branch = pentry.branch
            listing = layer_dir(pentry.real)
            if name not in listing.names:
                if branch.whiteouts and name in listing.whiteouts:
                    return _new(LowerResult, (tuple(found), None if found else branch))
                if name not in listing.char_whiteouts:
                    continue
            real = pentry.real + "/" + name
            try:
                st = os.lstat(real)
            except (FileNotFoundError, NotADirectoryError):  # listed but gone: a layer changed
                continue  # under us; treat as absent
            entry: Entry = _new(Entry, (branch, real, st))
            is_dir = S_ISDIR(st.st_mode)
            if found:
                if not is_dir:
                    # Below a directory, an entry of another type is dropped and ends the merge:
                    # the kernel stops there, and so does OCI (it replaced the directory below).
                    break
                found.append(entry)
            else:
                found.append(entry)
                if not is_dir:
                    break
            if branch.whiteouts and is_opaque_dir(real, self.wh_files):
                break
            if self.dialect is Dialect.OVERLAY:
                redirect = read_redirect(real)
                if redirect:
                    position = self.readonly.index(branch) + 1
                    if position < len(self.readonly):
                        self._may_follow(path)
                    rest = self._lower(_redirect_target(path, redirect), position)
                    if rest.entries and rest.entries[0].is_dir:
                        found.extend(rest.entries)
                    break
        return _new(LowerResult, (tuple(found), None))

    def _read_layer_dir(self, real_dir: str) -> LayerDir:
        return LayerDir.read(real_dir, self.wh_files)

    def _read_names_below(self, path: str, start: int) -> dict[str, tuple[int, ...]]:
        """For the read-only directory `path` (from layer `start` down), each name its layers
        have or white out: at which of its merged parts (fuse-overlayfs's load_dir), so that
        a lookup under many layers looks only at those, not at every layer's listing."""
        index: dict[str, list[int]] = {}
        for i, entry in enumerate(self._lower(path, start).entries):
            listing = self._layer_dir(entry.real)
            for name in listing.names | listing.whiteouts:
                index.setdefault(name, []).append(i)
        return {name: tuple(positions) for name, positions in index.items()}

    def lower_listing(self, path: str) -> tuple[frozenset[str], frozenset[str]]:
        """Names the read-only layers show in directory `path`, and the names they white out."""
        return self._listing(path)

    def _lower_listing(self, path: str) -> tuple[frozenset[str], frozenset[str]]:
        visible: set[str] = set()
        hidden: set[str] = set()
        for entry in self._lower(path, 0).entries:
            names, whiteouts = self._layer_dir(entry.real).shown(entry.branch.whiteouts)
            visible |= {n for n in names if n not in hidden}
            hidden |= whiteouts - visible
        return frozenset(visible), frozenset(hidden)

    # -- the upper --------------------------------------------------------------------------
    def upper_dir_info(self, real: str, st: os.stat_result) -> tuple[bool, str | None]:
        """(opaque, redirect) of an upper directory, cached by inode.

        Every write goes through the union, so the cache only has to hear of the union's own
        changes: `forget_upper` after it marks an existing directory, `forget_all_upper` after
        it removes one (an inode number may then come back for a new directory).
        """
        key = (st.st_dev, st.st_ino)
        info = self._upper_info.get(key)
        if info is None:
            info = (
                is_opaque_dir(real, self.wh_files),
                read_redirect(real) if self.dialect is Dialect.OVERLAY else None,
            )
            if len(self._upper_info) > 65536:
                self._upper_info.clear()
            self._upper_info[key] = info
        return info

    def forget_upper(self, real: str) -> None:
        st = os.lstat(real)
        self._upper_info.pop((st.st_dev, st.st_ino), None)

    def forget_all_upper(self) -> None:
        self._upper_info.clear()

    # -- the walk -----------------------------------------------------------------------------
    def lookup(self, path: str) -> Node:
        """Resolve `path`; a missing last component gives a Node without entries.

        Raises ENOENT for a missing parent and ENOTDIR for a non-directory on the way.
        """
        names = split_path(path)
        upper = self.upper
        lowers = self._lower("/", 0).entries
        entries: tuple[Entry, ...] = lowers
        if upper is not None:
            # Fresh attributes only when the root itself is asked for: on the way down it only
            # has to be a directory, and it always is (a creator stats a root parent itself).
            if not names or self._upper_root_st is None:
                self._upper_root_st = os.lstat(upper.path)
            entries = (Entry(upper, upper.path, self._upper_root_st),) + lowers
        node = Node(path="/", entries=entries, lowers=lowers, lower_path="/", parent_upper=None)
        last = len(names) - 1
        for i, name in enumerate(names):
            if not node.is_dir:
                code = errno.ENOTDIR if node.exists else errno.ENOENT
                raise OSError(code, os.strerror(code), node.path)
            self.check_name(name)
            node = self._child(node, name)
            if i < last and not node.entries:
                raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), node.path)
        return node

    def lookup_child(self, parent: Node, name: str) -> Node:
        """`name` in the directory `parent`, resolved before by `lookup` or `lookup_child`,
        without walking down from the root again (what a FUSE lookup by parent node needs).
        Right as long as nothing changed the union since `parent` was resolved: the caller
        keeps resolved directories only between changes."""
        entries = parent.entries
        if not entries or not S_ISDIR(entries[0].st.st_mode):
            code = errno.ENOTDIR if entries else errno.ENOENT
            raise OSError(code, os.strerror(code), parent.path)
        if self.wh_files and name.startswith(".wh."):
            self.check_name(name)
        return self._child(parent, name)

    def _may_follow(self, path: str) -> None:
        """A redirect is about to be followed: EPERM with redirect_dir=nofollow (the kernel's
        "refusing to follow redirect")."""
        if not self.follow_redirects:
            raise PermissionError(errno.EPERM, os.strerror(errno.EPERM), path)

    def _child(self, parent: Node, name: str) -> Node:
        """The entry `name` of the directory `parent` (resolved: it exists and is a directory).

        Where the walk stands comes from `parent` alone: its directory in the upper (None
        where the upper has none; its attributes are fresh except the root's, which a creator
        stats itself), and where the lower layers are looked up (None once a whiteout or an
        opaque directory cut them off).
        """
        upper = self.upper
        ptop = parent.entries[0]
        parent_path = parent.path
        if upper is not None and ptop.branch is upper:  # Branch.writable, without a call
            parent_upper: str | None = ptop.real
            parent_upper_st = ptop.st if parent_path != "/" else None
            # Merged, or about to be once copied up: the parent has lower parts.
            parent_merged = len(parent.entries) > 1
        else:
            parent_upper = parent_upper_st = None
            parent_merged = True
        current = parent_path + name if parent_path == "/" else parent_path + "/" + name
        parent_lower = parent.lower_path
        if parent_lower == parent_path:  # no redirect on the way (most lookups): the same string,
            child_lower: str | None = current  # hashed once for the lower cache and the inode table
            lowers = self._lower(current, 0).entries
        elif parent_lower is not None:
            child_lower = parent_lower + name if parent_lower == "/" else parent_lower + "/" + name
            lowers = self._lower(child_lower, 0).entries
        else:
            child_lower, lowers = None, ()
        if parent_upper is None:
            return _new(
                Node, (current, lowers, lowers, child_lower, parent_upper, False, parent_upper_st, parent_merged)
            )
        real = parent_upper + "/" + name
        st = lstat_or_none(real)
        if st is None:
            if aufs_whiteout_exists(parent_upper, name, self.wh_files):
                return _new(
                    Node, (current, (), lowers, child_lower, parent_upper, True, parent_upper_st, parent_merged)
                )
            return _new(
                Node, (current, lowers, lowers, child_lower, parent_upper, False, parent_upper_st, parent_merged)
            )
        if is_whiteout_stat(st):
            return _new(Node, (current, (), lowers, child_lower, parent_upper, True, parent_upper_st, parent_merged))
        upper_entry: Entry = _new(Entry, (upper, real, st))
        if not S_ISDIR(st.st_mode):
            return _new(
                Node,
                (current, (upper_entry,), lowers, child_lower, parent_upper, False, parent_upper_st, parent_merged),
            )
        opaque, redirect = self.upper_dir_info(real, st)
        if redirect and not opaque and self.readonly:
            self._may_follow(current)
        merge_path = child_lower
        if opaque:
            merge_path = None
        elif redirect and redirect.startswith("/"):
            merge_path = normalize(redirect)  # from the layers' roots, even below an
            # opaque or upper-only parent (ovl_lookup: poe = roe)
        elif redirect and parent_lower is not None:
            merge_path = _redirect_target(child_lower or current, redirect)
        merge = self._lower(merge_path, 0).entries if merge_path is not None else ()
        if merge and not merge[0].is_dir:
            merge = ()
        return _new(
            Node,
            (current, (upper_entry,) + merge, lowers, merge_path, parent_upper, False, parent_upper_st, parent_merged),
        )


@dataclass(frozen=True)
class LayerDir:
    """One layer directory, listed once: its real names and the names it whites out.

    A char device 0/0 at NAME whites NAME out (kept apart, since a layer that honours no
    whiteouts shows it as the device it is). Where `.wh.` names are marks (`wh_files`), a
    `.wh.NAME` file whites NAME out too, and `.wh.*` names are never real names; in the
    kernel's encoding they are ordinary names, as the kernel's OverlayFS sees them.
    """

    names: frozenset[str]
    whiteouts: frozenset[str]
    char_whiteouts: frozenset[str]

    @classmethod
    def read(cls, real_dir: str, wh_files: bool = True) -> LayerDir:
        names: set[str] = set()
        whiteouts: set[str] = set()
        chars: set[str] = set()
        with os.scandir(real_dir) as it:
            for d in it:
                name = d.name
                if wh_files and name.startswith(".wh."):
                    if not name.startswith(".wh..wh.") and d.is_file(follow_symlinks=False):
                        whiteouts.add(name[4:])
                    continue
                if not (
                    d.is_dir(follow_symlinks=False) or d.is_file(follow_symlinks=False) or d.is_symlink()
                ) and is_whiteout_stat(d.stat(follow_symlinks=False)):
                    chars.add(name)
                    whiteouts.add(name)
                    continue
                names.add(name)
        return cls(frozenset(names), frozenset(whiteouts), frozenset(chars))

    def shown(self, whiteouts_count: bool) -> tuple[frozenset[str], frozenset[str]]:
        """(names a listing shows, names hidden below) for a layer that does or does not
        honour whiteouts. OCI: a whiteout never hides a name of its own layer."""
        if whiteouts_count:
            return self.names, self.whiteouts - self.names
        return self.names | self.char_whiteouts, frozenset()


def read_layer_dir(
    real_dir: str, whiteouts_count: bool, wh_files: bool = True
) -> tuple[frozenset[str], frozenset[str]]:
    """One layer's directory, read now (for the upper, which changes): (shown, hidden)."""
    return LayerDir.read(real_dir, wh_files).shown(whiteouts_count)


ExplainLine = tuple[Branch, str]


def explain(resolver: Resolver, path: str) -> list[ExplainLine]:
    """The resolution chain of one path, one line per branch, for people (slow, uncached)."""
    path = normalize(path)
    try:
        node = resolver.lookup(path)
    except OSError as exc:
        return [(b, f"not reached: {os.strerror(exc.errno or 0)} on the way") for b in resolver.branches]
    serving = node.entries[0].branch if node.entries else None
    merged = {e.branch.index for e in node.entries[1:]}
    lines: list[ExplainLine] = []
    stopped_by: str | None = None
    for branch in resolver.branches:
        real = branch.real(path)
        st = lstat_or_none(real)
        if path != "/":
            parent_real = branch.real(parent_of(path))
            wh = (st is not None and is_whiteout_stat(st)) or (
                st is None and aufs_whiteout_exists(parent_real, node.name, resolver.wh_files)
            )
        else:
            wh = False
        if serving is not None and branch.index == serving.index:
            kind = "directory" if node.is_dir else _kind(st)
            lines.append((branch, f"serves {path} ({kind})"))
            if not node.is_dir:
                stopped_by = f"hidden by the {kind} in {serving.label}"
            elif not node.merged and node.lower_path is None and path != "/":
                stopped_by = "hidden: the directory above is opaque"
            continue
        if branch.index in merged:
            lines.append((branch, f"merged into {path} (directory)"))
            continue
        if wh and branch.whiteouts:
            form = "char device 0/0" if st is not None else f".wh.{node.name}"
            lines.append((branch, f"whiteout ({form}): hides {path} in the branches below"))
            stopped_by = stopped_by or f"hidden by the whiteout in {branch.label}"
            continue
        if st is None:
            lines.append((branch, "absent"))
            continue
        if stopped_by:
            lines.append((branch, f"has {path} ({_kind(st)}), {stopped_by}"))
        elif serving is not None and serving.index < branch.index:
            lines.append(
                (
                    branch,
                    f"has {path} ({_kind(st)}), ignored: "
                    f"a {'directory' if node.is_dir else 'file'} above has another type"
                    if node.is_dir != stat.S_ISDIR(st.st_mode)
                    else f"has {path} ({_kind(st)}), hidden: an opaque directory or redirect above",
                )
            )
        else:
            lines.append((branch, f"has {path} ({_kind(st)}), hidden"))
    return lines


_KINDS = {
    stat.S_IFDIR: "directory",
    stat.S_IFLNK: "symlink",
    stat.S_IFREG: "file",
    stat.S_IFCHR: "char device",
    stat.S_IFBLK: "block device",
    stat.S_IFIFO: "fifo",
    stat.S_IFSOCK: "socket",
}


def _kind(st: os.stat_result | None) -> str:
    return "absent" if st is None else _KINDS.get(stat.S_IFMT(st.st_mode), "file")
