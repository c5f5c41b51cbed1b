"""The kernel's node ids for a union's objects, as the low-level FUSE adapter hands them out.

The kernel names every object by a node id it was given in a LOOKUP (or CREATE, MKDIR, …,
READDIRPLUS) reply and says, by FORGET, when it holds no more references. The table keeps, per
node, the union paths the kernel reached it by and the lookup count, and finds the node of an
object again by its key: the union's st_ino, so that every name of a hard link is one kernel
inode (one set of cached attributes and pages), as on the kernel's overlay. A lower file with
several links that a copy-up would break (the kernel's ovl_hash_bylower says no) is keyed by
its path instead: each name its own inode, as there.

A node whose last name is gone (unlink, rmdir, a rename over it) loses its key, so that a new
object that reuses the inode number gets a new node; the old one lives until forgotten (an
open file). Node ids are never reused, so their generation is always 0.
"""

from __future__ import annotations

import errno
import itertools
import os
import threading
from collections.abc import Hashable, Iterator
from dataclasses import dataclass, field

ROOT_ID = 1


class Node:
    """One kernel node (a plain slotted class: one is made per name the kernel learns)."""

    __slots__ = ("id", "paths", "key", "nlookup")

    def __init__(self, id: int, paths: list[str], key: Hashable | None, nlookup: int = 0) -> None:
        self.id = id
        self.paths = paths  # the union paths the kernel knows it by; the first one serves requests
        self.key = key
        self.nlookup = nlookup


@dataclass
class InodeTable:
    nodes: dict[int, Node] = field(default_factory=dict)
    by_key: dict[Hashable, Node] = field(default_factory=dict)
    by_path: dict[str, Node] = field(default_factory=dict)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(ROOT_ID + 1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        root = Node(ROOT_ID, ["/"], None, 1)  # the kernel never forgets the root
        self.nodes[ROOT_ID] = root
        self.by_path["/"] = root

    def __len__(self) -> int:
        return len(self.nodes)

    # -- reading ------------------------------------------------------------------------------
    def path(self, nid: int) -> str:
        """A union path of node `nid`; ENOENT once it has none (unlinked while open)."""
        node = self.nodes.get(nid)
        if node is None:
            raise OSError(errno.ESTALE, os.strerror(errno.ESTALE))
        paths = node.paths
        if not paths:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT))
        return paths[0]

    def child(self, parent: int, name: str) -> str:
        """The union path of `name` in the directory node `parent`."""
        base = self.path(parent)
        return base + name if base == "/" else base + "/" + name

    def node_at(self, path: str) -> int | None:
        node = self.by_path.get(path)
        return node.id if node is not None else None

    # -- the kernel learns a name ----------------------------------------------------------------
    def bind(self, path: str, key: Hashable) -> int:
        """The kernel is told that `path` is the object `key`: its node, lookup count + 1."""
        with self._lock:
            node = self.by_key.get(key)
            old = self.by_path.get(path)
            if node is None and old is None:  # a new name of a new object: most lookups
                node = Node(next(self._ids), [path], key, 1)
                self.nodes[node.id] = self.by_key[key] = self.by_path[path] = node
                return node.id
            if node is None:
                if old is not None and old.id != ROOT_ID and old.paths == [path]:
                    # the same name shows another identity now (copied up): same kernel inode
                    self._rekey(old, key)
                    node = old
                else:
                    node = Node(next(self._ids), [], key)
                    self.nodes[node.id] = node
                    self.by_key[key] = node
            if old is not node:
                if old is not None:
                    self._drop_path(old, path)
                node.paths.append(path)
                self.by_path[path] = node
            node.nlookup += 1
            return node.id

    def link(self, nid: int, path: str, key: Hashable) -> None:
        """`path` is a new name of node `nid` (a hard link made through the union); the reply
        counts one lookup."""
        with self._lock:
            node = self.nodes[nid]
            old = self.by_path.get(path)
            if old is not None and old is not node:
                self._drop_path(old, path)
            if path not in node.paths:
                node.paths.append(path)
            self.by_path[path] = node
            if node.key != key:
                self._rekey(node, key)
            node.nlookup += 1

    def _rekey(self, node: Node, key: Hashable) -> None:
        if node.key is not None and self.by_key.get(node.key) is node:
            del self.by_key[node.key]
        node.key = key
        other = self.by_key.get(key)
        if other is None or not other.paths:
            self.by_key[key] = node

    def forget(self, nid: int, count: int) -> None:
        """FORGET: the kernel dropped `count` references; at none, the node goes."""
        if nid == ROOT_ID:
            return
        with self._lock:
            node = self.nodes.get(nid)
            if node is None:
                return
            node.nlookup -= count
            if node.nlookup > 0:
                return
            del self.nodes[nid]
            if node.key is not None and self.by_key.get(node.key) is node:
                del self.by_key[node.key]
            for path in node.paths:
                if self.by_path.get(path) is node:
                    del self.by_path[path]

    # -- the union changed -----------------------------------------------------------------------
    def removed(self, path: str) -> None:
        """`path` is gone (unlink, rmdir): its node no longer has that name."""
        with self._lock:
            node = self.by_path.get(path)
            if node is not None:
                self._drop_path(node, path)

    def _drop_path(self, node: Node, path: str) -> None:
        if self.by_path.get(path) is node:
            del self.by_path[path]
        try:
            node.paths.remove(path)
        except ValueError:
            pass
        if not node.paths and node.key is not None and self.by_key.get(node.key) is node:
            del self.by_key[node.key]  # a new object with this number is another node

    def renamed(self, old: str, new: str) -> None:
        """`old` is now `new`, with everything under it; whatever `new` named loses the name."""
        with self._lock:
            target = self.by_path.get(new)
            moving = self.by_path.get(old)
            if target is not None and target is not moving:
                self._drop_path(target, new)
            prefix = old + "/"
            moved = [(p, n) for p, n in self.by_path.items() if p == old or p.startswith(prefix)]
            for p, _ in moved:
                del self.by_path[p]
            for p, node in moved:
                q = new + p[len(old) :]
                node.paths = [q if x == p else x for x in node.paths]
                stale = self.by_path.get(q)
                if stale is not None and stale is not node:
                    self._drop_path(stale, q)
                self.by_path[q] = node

    def exchanged(self, a: str, b: str) -> None:
        """RENAME_EXCHANGE: `a` and `b` swapped, with everything under them."""
        with self._lock:
            moves: list[tuple[str, str, Node]] = []
            for src, dst in ((a, b), (b, a)):
                prefix = src + "/"
                moves += [
                    (p, dst + p[len(src) :], n) for p, n in self.by_path.items() if p == src or p.startswith(prefix)
                ]
            for p, _, _ in moves:
                del self.by_path[p]
            for p, q, node in moves:
                node.paths = [q if x == p else x for x in node.paths]
                self.by_path[q] = node
