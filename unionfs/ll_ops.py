"""The FUSE adapter on libfuse 3's low-level API: kernel node ids in, `Union` calls out.

No semantics live here. Every request becomes `Union` calls on the union path(s) the inode
table holds for the node; the core's OSErrors carry the errno to reply with. What this module
adds is what only the FUSE side knows: node ids and lookup counts (inode_table), the caller's
uid and gid, integer handles, a snapshot of a listing per read of it (by the offsets handed
out, dir_cookies, where the kernel opens directories itself; else per OPENDIR), and what the
kernel may keep: names, attributes and pages for a day (every change goes through us), and
listings (FOPEN_CACHE_DIR: the kernel drops a directory's cached listing itself when a change
through the mount touches the directory). One node per union inode number means every name of
a hard link is one kernel inode, so nothing needs invalidating after a change through one name;
only what a copy-up changed behind the request (a parent directory's attributes) is
invalidated, once the request is answered.
"""

from __future__ import annotations

import ctypes
import errno
import itertools
import os
import sys
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from functools import cached_property, partial
from stat import S_ISDIR
from typing import Any

from . import lowlevel as ll
from .bootstrap import session_options  # the one list of what libfuse parses, for both start-ups
from .dir_cookies import Listings, Page
from .dirent import DIRENTPLUS_HEAD, PlusPacker, pack_dirents
from .handles import HandleTable
from .inode import Stat, identity_of
from .inode_table import ROOT_ID, InodeTable
from .listing import stat_entries
from .namei import Node
from .super import Cred
from .union import Union

RENAME_EXCHANGE = 2
_pack_stat_of = ll.pack_stat_of
_pack_entry_of = ll.pack_entry_of
_FS_ENCODING, _FS_ERRORS = sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()


def _fsdecode(name: bytes) -> str:
    """os.fsdecode of a name libfuse gives as bytes, without its per-call checks."""
    return name.decode(_FS_ENCODING, _FS_ERRORS)


class _Local(threading.local):
    """Per thread (the loop's, each pool thread's): the copied-up paths whose attributes the
    kernel must drop before this request's reply (a class default, so a thread without any
    costs no AttributeError)."""

    copied: list[str] | None = None


@dataclass
class DirHandle:
    """An open directory: its listing is taken at offset 0 and served from there on."""

    path: str
    names: list[str] | None = None


class Replies:
    """libfuse's reply functions, each first sending the invalidations the request caused
    (`pending` says whether this thread has any: one attribute read when it has none)."""

    def __init__(self, lib: Any, flush: Callable[[], None], pending: Any = None) -> None:
        def flushing(fn: Callable[..., int]) -> Callable[..., int]:
            if pending is None:

                def reply(*args: Any) -> int:
                    flush()
                    return fn(*args)

            else:

                def reply(*args: Any) -> int:
                    if pending.copied:
                        flush()
                    return fn(*args)

            return reply

        self.reply_err = flushing(lib.reply_err)
        self.reply_entry = flushing(lib.reply_entry)
        self.reply_create = flushing(lib.reply_create)
        self.reply_attr = flushing(lib.reply_attr)
        self.reply_readlink = flushing(lib.reply_readlink)
        self.reply_open = flushing(lib.reply_open)
        self.reply_write = flushing(lib.reply_write)
        self.reply_buf = flushing(lib.reply_buf)
        self.reply_data = flushing(lib.reply_data)
        self.reply_statfs = flushing(lib.reply_statfs)
        self.reply_xattr = flushing(lib.reply_xattr)


@dataclass(frozen=True)
class Caching:
    """How long the kernel may keep what it is told, and libfuse's high-level display options
    (uid=, gid=, umask=), which the low-level API leaves to the filesystem."""

    entry: float = 86400.0
    attr: float = 86400.0
    negative: float = 86400.0
    keep_pages: bool = True
    uid: int | None = None
    gid: int | None = None
    umask: int | None = None

    @cached_property
    def plain(self) -> bool:
        """No display option: attributes are shown as the layers have them (read per reply)."""
        return self.uid is None and self.gid is None and self.umask is None


class LowLevelOps:
    """The callbacks of one mounted union, by `struct fuse_lowlevel_ops` slot."""

    def __init__(
        self,
        union: Union,
        caching: Caching | None = None,
        on_ready: Callable[[], None] | None = None,
        after_init: Callable[[], object] | None = None,
        lib: ll.Library | None = None,
        debug: bool = False,
    ) -> None:
        self.union = union
        # Union.lookup_child and Union.identity_of without their one-line wrappers: a fresh
        # LOOKUP, the commonest request, calls both (bench/README.md, 2026-11-30 18:10–19:35).
        self._lookup_child = union.sb.resolver.lookup_child
        self._identity_of = partial(identity_of, union.sb)
        self.debug = debug  # libfuse logs each request by node id; we say which path a node is
        self.caching = caching or Caching()
        self._plus = (self.caching, PlusPacker(self.caching.attr, self.caching.entry))  # READDIRPLUS records
        self.on_ready = on_ready
        self._first: Callable[[], object] | None = None
        self.after_init = after_init
        self.lib = lib or ll.Library()
        self.table = InodeTable()
        self.files = HandleTable()
        self.dirs = HandleTable()
        # Where the kernel opens directories itself (FUSE_CAP_NO_OPENDIR_SUPPORT, set by init):
        # OPENDIR is declined once, and a listing is found by the offsets it handed out.
        self.no_opendir = False
        self.listings = Listings()
        self._session: ll.Session | None = None
        self._local = _Local()
        self.r = Replies(self.lib, self._flush, self._local)
        # Resolved directories by node id, so a LOOKUP resolves one name, not the whole path.
        # Kept only while nothing changes: every changing request empties it when it starts
        # and when it ends, and a lookup keeps what it resolved only if no change began or
        # ended meanwhile (`_generation`, `_changing`).
        self._dirs_resolved: dict[int, Node] = {}
        self._generation = 0
        self._changing = 0
        self._change_lock = threading.Lock()
        self._splice_max = ll.splice_limit()  # the biggest READ reply libfuse can splice
        self.max_read = 0  # the max_read= mount option, repeated in init (lowlevel.init_conn)

        # An open handle for writing per node (the last one opened): the kernel asks for a
        # file's security.capability before every write(2) (cap_inode_need_killpriv), and the
        # handle answers it from the file itself, without resolving a path.
        self._writers: dict[int, Any] = {}
        self._xattrs = union.spec.features.xattrs
        union.listen(self._on_event)

    # -- plumbing -----------------------------------------------------------------------------
    @property
    def session(self) -> ll.Session | None:
        return self._session

    @session.setter
    def session(self, session: ll.Session | None) -> None:
        """The session serving this union, which learns the union's lock: its loop answers a
        request that takes the lock on its receiving thread only while it is free (loop.py)."""
        self._session = session
        if session is not None:
            session.gate = self.union.sb.lock

    def callbacks(self) -> dict[str, Callable[..., None]]:
        out: dict[str, Callable[..., None]] = {
            "init": self._init,
            "destroy": self._destroy,
            "forget": self._forget,
            "forget_multi": self._forget_multi,
        }
        for name in (
            "lookup", "getattr", "setattr", "readlink", "mknod", "mkdir", "unlink", "rmdir", "symlink",
            "rename", "link", "open", "read", "write", "flush", "release", "fsync", "opendir", "readdir",
            "releasedir", "fsyncdir", "statfs", "setxattr", "getxattr", "listxattr", "removexattr",
            "create", "readdirplus",
        ):  # fmt: skip
            handler = getattr(self, name)
            if name in CHANGING:
                handler = self._bracketed(handler)
            out[name] = self._guard(handler)
        return out

    def _bracketed(self, handler: Callable[..., None]) -> Callable[..., None]:
        def call(req: int, *args: Any) -> None:
            self._begin_change()
            try:
                handler(req, *args)
            finally:
                self._end_change()

        call.__name__ = handler.__name__
        return call

    def _begin_change(self) -> int:
        """A change starts: resolved directories are dropped. Returns the generation it began."""
        with self._change_lock:
            self._changing += 1
            self._generation += 1
            self._dirs_resolved.clear()
            return self._generation

    def _end_change(self, began: int = 0, keep: tuple[int, Node] | None = None) -> None:
        """A change ended: resolved directories are dropped, except `keep` (node id, node),
        which the change says it left as resolved, if no other change began or ended since
        this one `began`."""
        with self._change_lock:
            self._changing -= 1
            self._generation += 1
            self._dirs_resolved.clear()
            if keep is not None and not self._changing and self._generation == began + 1:
                self._dirs_resolved[keep[0]] = keep[1]

    def _resolved_dir(self, nid: int) -> Node:
        """The directory node `nid`, resolved: from the cache, or by its path (and kept)."""
        node = self._dirs_resolved.get(nid)
        if node is None:
            generation = self._generation
            node = self.union.lookup(self.table.path(nid))
            self._keep_resolved(nid, node, generation)
        return node

    def _keep_resolved(self, nid: int, node: Node, generation: int) -> None:
        if self._changing or self._generation != generation or not node.is_dir:
            return
        cache = self._dirs_resolved
        if len(cache) > 1 << 16:
            cache.clear()
        cache[nid] = node
        if self._changing or self._generation != generation:  # a change began meanwhile
            cache.pop(nid, None)

    def _guard(self, handler: Callable[..., None]) -> Callable[..., None]:
        """Every request is answered once: by the handler, or here with its error."""
        reply_err = self.r.reply_err
        local = self._local
        flush = self._flush

        def call(req: int, *args: Any) -> None:
            if self._first is not None:
                hook, self._first = self._first, None
                hook()
            try:
                handler(req, *args)
            except OSError as exc:
                reply_err(req, exc.errno or errno.EIO)
            except BaseException as exc:  # never into C: log it and answer EIO
                print(f"layerfs: {handler.__name__}: {exc!r}", file=sys.stderr)
                reply_err(req, errno.EIO)
            if local.copied:  # a reply that failed to go out
                flush()

        call.__name__ = handler.__name__
        return call

    def _flush(self) -> None:
        pending = self._local.copied
        if pending:
            self._after_copy_up(pending)

    def _on_event(self, event: dict) -> None:
        """A copy-up changed attributes the kernel may hold (a parent directory's link count
        and ctime): note the path, to invalidate once the request is done, before its reply
        (the caller may look at once). Attributes only: no page is locked, so this cannot
        deadlock against the request itself."""
        if event.get("event") == "copy_up":
            pending = self._local.copied
            if pending is None:
                pending = self._local.copied = []
            pending.append(str(event.get("path")))

    def _after_copy_up(self, paths: list[str]) -> None:
        try:
            for path in paths:
                nid = self.table.node_at(path)
                if nid is not None and self.session is not None:
                    self.session.inval_inode(nid)
        except Exception:  # the kernel may have forgotten the node meanwhile: nothing to do
            pass
        finally:
            paths.clear()

    def _cred(self, req: int) -> Cred:
        ctx = self.lib.req_ctx(req).contents
        return Cred(ctx.uid, ctx.gid)

    def _shown(self, st: Stat) -> Stat:
        """`st` as libfuse's high-level options `uid=`, `gid=`, `umask=` would show it (the
        replies call this only where one is set: `Caching.plain`)."""
        c = self.caching
        mode = st.st_mode if c.umask is None else (st.st_mode & 0o170000) | (0o777 & ~c.umask)
        uid = st.st_uid if c.uid is None else c.uid
        gid = st.st_gid if c.gid is None else c.gid
        return st._replace(st_mode=mode, st_uid=uid, st_gid=gid)

    def _fill(self, buf: Any, offset: int, st: Stat) -> None:
        """`st` into the struct stat at `offset` in `buf` (a CStat or an EntryParam)."""
        _pack_stat_of(buf, offset, st if self.caching.plain else self._shown(st))

    @staticmethod
    def _key(path: str, st: Stat, lasting: bool) -> Hashable:
        return st.st_ino if lasting else ("path", path)

    def _entry(self, path: str, st: Stat, lasting: bool) -> ll.EntryParam:
        """The reply for a name the kernel learns: its node (lookup count + 1) and attributes."""
        return self._entry_of(self._bind(path, st, lasting), st)

    def _bind(self, path: str, st: Stat, lasting: bool) -> int:
        """The node of a name the kernel learns (lookup count + 1)."""
        nid = self.table.bind(path, st.st_ino if lasting else ("path", path))  # self._key
        if self.debug:  # after libfuse's line for the request, before its reply's
            print(f"   layerfs: node {nid} = {path}", file=sys.stderr, flush=True)
        return nid

    def _entry_of(self, nid: int, st: Stat) -> ll.EntryParam:
        """A `struct fuse_entry_param` for node `nid` with attributes `st` (as `_shown`
        shows them) and the timeouts, in one pack_into (`ll.pack_entry_of`)."""
        e = ll.EntryParam()
        c = self.caching
        _pack_entry_of(e, nid, st if c.plain else self._shown(st), c.attr, c.entry)
        return e

    def _reply_new(self, req: int, path: str) -> None:
        st, lasting = self.union.getattr_identity(path)
        self.r.reply_entry(req, ctypes.byref(self._entry(path, st, lasting)))

    def _open_file(self, fi: Any) -> Any:
        """The open file a request names by handle, if any (fstat, ftruncate)."""
        return self.files.items.get(fi.contents.fh) if fi else None

    # -- life cycle ---------------------------------------------------------------------------
    def _init(self, _userdata: int, conn: Any) -> None:
        if conn:  # None where the bootstrap answered FUSE_INIT (it sets no_opendir as agreed there)
            self.no_opendir = ll.init_conn(conn, self.max_read)
        self._first = self.after_init
        if self.on_ready is not None:
            self.on_ready()

    def _destroy(self, _userdata: int) -> None:
        """Unmounted: close what the kernel left open, so every layer file is complete."""
        for handle in self.files.drain():
            try:
                handle.close()
            except OSError:
                pass
        self.dirs.drain()

    def _forget(self, req: int, ino: int, nlookup: int) -> None:
        try:
            self.table.forget(ino, nlookup)
            self._dirs_resolved.pop(ino, None)
        finally:
            self.lib.reply_none(req)

    def _forget_multi(self, req: int, count: int, forgets: Any) -> None:
        try:
            for i in range(count):
                item = forgets[i]
                self.table.forget(item.ino, item.nlookup)
                self._dirs_resolved.pop(item.ino, None)
        finally:
            self.lib.reply_none(req)

    # -- names ---------------------------------------------------------------------------------
    def lookup(self, req: int, parent: int, name: bytes) -> None:
        generation = self._generation
        try:
            pnode = self._dirs_resolved.get(parent) or self._resolved_dir(parent)
            node = self._lookup_child(pnode, name.decode(_FS_ENCODING, _FS_ERRORS))
            # an absent name is answered without raising and catching ENOENT
            found = self._identity_of(node) if node.entries else None
        except FileNotFoundError:
            found = None
        if found is None:
            if not self.caching.negative:
                raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT))
            e = ll.EntryParam()  # node 0: the kernel keeps the name as absent
            e.entry_timeout = self.caching.negative
            self.r.reply_entry(req, ctypes.byref(e))
            return
        st, lasting = found
        # _bind and _entry_of, inlined: a fresh LOOKUP is the commonest request (a Python call
        # less each; the figures in bench/README.md, 2026-11-30 18:10–19:35).
        path = node.path
        nid = self.table.bind(path, st.st_ino if lasting else ("path", path))  # self._key
        if self.debug:
            print(f"   layerfs: node {nid} = {path}", file=sys.stderr, flush=True)
        e = ll.EntryParam()
        c = self.caching
        _pack_entry_of(e, nid, st if c.plain else self._shown(st), c.attr, c.entry)
        if S_ISDIR(st.st_mode):
            self._keep_resolved(nid, node, generation)
        # No copy-up invalidation can be pending here (a lookup copies nothing up, and the
        # guard sent any an earlier request left): libfuse's reply, not Replies' wrapper.
        self.lib.reply_entry(req, ctypes.byref(e))

    def mknod(self, req: int, parent: int, name: bytes, mode: int, rdev: int) -> None:
        path = self.table.child(parent, _fsdecode(name))
        self.union.mknod(path, mode, rdev, self._cred(req))
        self._reply_new(req, path)

    def mkdir(self, req: int, parent: int, name: bytes, mode: int) -> None:
        path = self.table.child(parent, _fsdecode(name))
        self.union.mkdir(path, mode, self._cred(req))
        self._reply_new(req, path)

    def symlink(self, req: int, target: bytes, parent: int, name: bytes) -> None:
        path = self.table.child(parent, _fsdecode(name))
        self.union.symlink(_fsdecode(target), path, self._cred(req))
        self._reply_new(req, path)

    def link(self, req: int, ino: int, newparent: int, newname: bytes) -> None:
        existing = self.table.path(ino)
        path = self.table.child(newparent, _fsdecode(newname))
        self.union.link(existing, path)
        st, lasting = self.union.getattr_identity(path)
        self.table.link(ino, path, self._key(path, st, lasting))
        self.r.reply_entry(req, ctypes.byref(self._entry_of(ino, st)))

    def unlink(self, req: int, parent: int, name: bytes) -> None:
        path = self.table.child(parent, _fsdecode(name))
        self.union.unlink(path)
        self.table.removed(path)
        self.r.reply_err(req, 0)

    def rmdir(self, req: int, parent: int, name: bytes) -> None:
        path = self.table.child(parent, _fsdecode(name))
        self.union.rmdir(path)
        self.table.removed(path)
        self.r.reply_err(req, 0)

    def rename(self, req: int, parent: int, name: bytes, newparent: int, newname: bytes, flags: int) -> None:
        old = self.table.child(parent, _fsdecode(name))
        new = self.table.child(newparent, _fsdecode(newname))
        self.union.rename(old, new, flags)
        if flags & RENAME_EXCHANGE:
            self.table.exchanged(old, new)
        else:
            self.table.renamed(old, new)
        self.r.reply_err(req, 0)

    # -- attributes ----------------------------------------------------------------------------
    def getattr(self, req: int, ino: int, fi: Any) -> None:
        out = ll.CStat()
        try:
            path = self.table.path(ino)
        except FileNotFoundError:  # unlinked, still open: fstat(2) reads the real file
            handle = self._open_file(fi)
            if handle is None:
                raise
            real = os.fstat(handle.fd)
            out = _from_os(real, ino)
        else:
            union = self.union
            node = self._dirs_resolved.get(ino)  # resolved: one lstat of its upper directory
            if node is not None:
                st = union.getattr_of(node)
            else:  # else its name under its resolved directory (one lstat), or a walk
                pnode = self._resolved_parent(path)
                st = union.getattr(path) if pnode is None else union.identity_of(union.lookup_child(*pnode))[0]
            self._fill(out, 0, st)
        self.r.reply_attr(req, ctypes.byref(out), self.caching.attr)

    def _resolved_parent(self, path: str) -> tuple[Node, str] | None:
        """(the resolved directory of `path`, its last name), if that directory is resolved:
        the name is then one lookup under it, not a walk from the root."""
        head, _, base = path.rpartition("/")
        parent = self.table.node_at(head or "/") if base else None
        pnode = self._dirs_resolved.get(parent) if parent is not None else None
        return (pnode, base) if pnode is not None else None

    def setattr(self, req: int, ino: int, attr: Any, to_set: int, fi: Any) -> None:
        """In the order libfuse's high-level API calls them: mode, owner, size, times."""
        union = self.union
        a = attr.contents
        try:
            path = self.table.path(ino)
        except FileNotFoundError:  # unlinked, still open: ftruncate(2) is all that is left
            handle = self._open_file(fi)
            if handle is None or to_set & ~(ll.SET_ATTR_SIZE | ll.SET_ATTR_MTIME | ll.SET_ATTR_MTIME_NOW):
                raise
            handle.truncate(a.st_size)
            out = _from_os(os.fstat(handle.fd), ino)
            self.r.reply_attr(req, ctypes.byref(out), self.caching.attr)
            return
        if to_set & ll.SET_ATTR_MODE:
            union.chmod(path, a.st_mode)
        if to_set & (ll.SET_ATTR_UID | ll.SET_ATTR_GID):
            uid = a.st_uid if to_set & ll.SET_ATTR_UID else -1
            gid = a.st_gid if to_set & ll.SET_ATTR_GID else -1
            union.chown(path, uid, gid)
        if to_set & ll.SET_ATTR_SIZE:
            union.truncate(path, a.st_size)
        times = ll.SET_ATTR_ATIME | ll.SET_ATTR_MTIME | ll.SET_ATTR_ATIME_NOW | ll.SET_ATTR_MTIME_NOW
        if to_set & times:
            now = time.time_ns()
            current: Stat | None = None
            resolved = []
            for set_bit, now_bit, ts, which in (
                (ll.SET_ATTR_ATIME, ll.SET_ATTR_ATIME_NOW, a.st_atim, "st_atime_ns"),
                (ll.SET_ATTR_MTIME, ll.SET_ATTR_MTIME_NOW, a.st_mtim, "st_mtime_ns"),
            ):
                if to_set & now_bit:
                    resolved.append(now)
                elif to_set & set_bit:
                    resolved.append(ts.tv_sec * 1_000_000_000 + ts.tv_nsec)
                else:
                    current = current or union.getattr(path)
                    resolved.append(getattr(current, which))
            if to_set & ll.SET_ATTR_ATIME_NOW and to_set & ll.SET_ATTR_MTIME_NOW:
                union.utimens(path, None)
            else:
                union.utimens(path, (resolved[0], resolved[1]))
        out = ll.CStat()
        self._fill(out, 0, union.getattr(path))
        self.r.reply_attr(req, ctypes.byref(out), self.caching.attr)

    def readlink(self, req: int, ino: int) -> None:
        self.r.reply_readlink(req, os.fsencode(self.union.readlink(self.table.path(ino))))

    def statfs(self, req: int, ino: int) -> None:
        sv = self.union.statfs(self.table.path(ino) if ino != ROOT_ID else "/")
        out = ll.CStatvfs()
        for key in ("f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail", "f_files", "f_ffree", "f_favail"):
            setattr(out, key, getattr(sv, key))
        out.f_namemax = sv.f_namemax
        self.r.reply_statfs(req, ctypes.byref(out))

    # -- xattrs --------------------------------------------------------------------------------
    def setxattr(self, req: int, ino: int, name: bytes, value: int, size: int, flags: int) -> None:
        data = ctypes.string_at(value, size) if size else b""
        self.union.setxattr(self.table.path(ino), _fsdecode(name), data, flags)
        self.r.reply_err(req, 0)

    def getxattr(self, req: int, ino: int, name: bytes, size: int) -> None:
        """Asked before every write(2) to a file (security.capability): answered by a handle
        open for writing on it if there is one, else resolved under its resolved directory
        where there is one, not from the root."""
        if name == b"security.capability" and self._xattrs:
            handle = self._writers.get(ino)
            if handle is not None:
                try:
                    data = handle.getxattr("security.capability")
                except OSError as exc:
                    if exc.errno != errno.EBADF:  # EBADF: released meanwhile, ask by path
                        self.r.reply_err(req, exc.errno or errno.EIO)  # ENODATA, mostly
                        return
                else:
                    self._reply_sized(req, data, size)
                    return
        path = self.table.path(ino)
        head, _, base = path.rpartition("/")
        parent = self.table.node_at(head or "/")
        pnode = self._dirs_resolved.get(parent) if parent is not None and base else None
        if pnode is None:
            data = self.union.getxattr(path, _fsdecode(name))
        else:
            data = self.union.getxattr_of(self.union.lookup_child(pnode, base), _fsdecode(name))
        self._reply_sized(req, data, size)

    def listxattr(self, req: int, ino: int, size: int) -> None:
        names = self.union.listxattr(self.table.path(ino))
        self._reply_sized(req, b"".join(os.fsencode(n) + b"\0" for n in names), size)

    def _reply_sized(self, req: int, data: bytes, size: int) -> None:
        if size == 0:
            self.r.reply_xattr(req, len(data))
        elif len(data) > size:
            self.r.reply_err(req, errno.ERANGE)
        else:
            self.r.reply_buf(req, data, len(data))

    def removexattr(self, req: int, ino: int, name: bytes) -> None:
        self.union.removexattr(self.table.path(ino), _fsdecode(name))
        self.r.reply_err(req, 0)

    # -- files ---------------------------------------------------------------------------------
    def create(self, req: int, parent: int, name: bytes, mode: int, fi: Any) -> None:
        """The new name is resolved in its directory, resolved before if it still is, and
        the directory stays resolved after: a new file in a directory of the upper changes
        nothing about how the directory resolves (creating files one after another, each
        LOOKUP, CREATE and GETATTR of the directory then costs one lstat, not a walk)."""
        generation = self._generation  # read before the cache: a change since moves it
        cached = self._dirs_resolved.get(parent)
        began = self._begin_change()
        keep: tuple[int, Node] | None = None
        try:
            union = self.union
            dnode = cached if cached is not None and began == generation + 1 else None
            if dnode is None:
                dnode = union.lookup(self.table.path(parent))
            info = fi.contents
            handle, node = union.create_in(dnode, _fsdecode(name), mode, info.flags, self._cred(req))
            try:
                st, lasting = union.identity_of(node)
            except OSError:
                handle.close()
                raise
            e = self._entry(node.path, st, lasting)
            if dnode.in_upper:
                keep = (parent, dnode)
        finally:
            self._end_change(began, keep)
        info.fh = self.files.add(handle)
        info.keep_cache = self.caching.keep_pages
        if info.flags & (os.O_WRONLY | os.O_RDWR):
            self._writers[e.ino] = handle
        if self.r.reply_create(req, ctypes.byref(e), fi) != 0:  # interrupted: nobody holds it
            self._release(e.ino, info.fh)
            self.table.forget(e.ino, 1)

    def open(self, req: int, ino: int, fi: Any) -> None:
        path = self.table.path(ino)
        info = fi.contents
        flags = info.flags
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_TRUNC):  # may copy up
            self._begin_change()
            try:
                handle = self.union.open(path, flags, cred=self._cred(req))
            finally:
                self._end_change()
        else:
            handle = self.union.open(path, flags)
        info.fh = self.files.add(handle)
        info.keep_cache = self.caching.keep_pages
        if flags & (os.O_WRONLY | os.O_RDWR):
            self._writers[ino] = handle
        if self.r.reply_open(req, fi) != 0:
            self._release(ino, info.fh)

    def read(self, req: int, ino: int, size: int, offset: int, fi: Any) -> None:
        """The layer file's data does not pass through Python: libfuse reads the descriptor
        itself (`fuse_reply_data`) and splices its pages into /dev/fuse (one copy, in the
        kernel, as fuse-overlayfs does; `init` asks for it), or preads them into its own
        buffer where the kernel cannot splice. libfuse answers a failed read with its errno.
        A READ too big for libfuse's pipe (direct I/O; the readahead stays below it) is read
        here, into one bytes object, as libfuse's fallback would do at a higher cost."""
        handle = self.files.get(fi.contents.fh)
        if size > self._splice_max:
            data = handle.read(size, offset)
            self.r.reply_buf(req, data, len(data))
            return
        reply_data = self.r.reply_data

        def send(fd: int) -> None:
            reply_data(req, ctypes.byref(ll.fd_bufvec(size, fd, offset)), 0)

        handle.send_from(send)

    def write(self, req: int, ino: int, buf: int, size: int, offset: int, fi: Any) -> None:
        written = self.files.get(fi.contents.fh).write(ctypes.string_at(buf, size), offset)
        self.r.reply_write(req, written)

    def flush(self, req: int, ino: int, fi: Any) -> None:
        """Nothing to do: every WRITE reached the layer file before its reply. ENOSYS tells
        the kernel so, and it sends no FLUSH again on this mount (one request less per
        close(2); fuse_flush still writes back dirty mmap pages first, as before)."""
        self.r.reply_err(req, errno.ENOSYS)

    def fsync(self, req: int, ino: int, datasync: int, fi: Any) -> None:
        self.files.get(fi.contents.fh).fsync(bool(datasync))
        self.r.reply_err(req, 0)

    def release(self, req: int, ino: int, fi: Any) -> None:
        self._release(ino, fi.contents.fh)
        self.r.reply_err(req, 0)

    def _release(self, ino: int, fh: int) -> None:
        handle = self.files.pop(fh)
        if handle is not None:
            if self._writers.get(ino) is handle:
                self._writers.pop(ino, None)
            handle.close()

    # -- directories ---------------------------------------------------------------------------
    def opendir(self, req: int, ino: int, fi: Any) -> None:
        """Where the kernel can open directories itself, ENOSYS says so, once for the mount:
        it then sends neither OPENDIR nor RELEASEDIR again (two requests per directory of
        every walk) and keeps listings as FOPEN_CACHE_DIR and keep_cache below would; READDIR
        comes with fh 0 and the listing is found by its offsets (`_page`). Else: let the
        kernel keep listings (FOPEN_CACHE_DIR, kept across opens): it drops one itself when
        a change through the mount touches the directory, the only way it can."""
        if self.no_opendir:
            self.r.reply_err(req, errno.ENOSYS)
            return
        node = self._resolved_dir(ino)
        if not node.is_dir:
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), node.path)
        info = fi.contents
        info.fh = self.dirs.add(DirHandle(node.path))
        info.cache_readdir = 1
        info.keep_cache = 1
        if self.r.reply_open(req, fi) != 0:
            self.dirs.pop(info.fh)

    def _names(self, ino: int, fi: Any, offset: int) -> tuple[DirHandle, list[str]]:
        handle: DirHandle = self.dirs.get(fi.contents.fh)
        if offset == 0 or handle.names is None:  # a new read, or a rewinddir
            node = self._dirs_resolved.get(ino)
            handle.names = self.union.readdir(handle.path) if node is None else self.union.readdir_of(node)
        return handle, handle.names

    def _page(self, ino: int, fi: Any, offset: int) -> tuple[str, Page]:
        """The directory's path and where this READDIR starts in which listing: the open
        handle's (offsets are indexes), or, without a handle (the kernel opened the directory
        itself), the listing its offset names (offsets are dir_cookies' cookies)."""
        if fi and fi.contents.fh:
            handle, names = self._names(ino, fi, offset)
            return handle.path, Page(names, offset, offset, 1)
        path = self.table.path(ino)

        def read() -> list[str]:  # resolved and kept, as OPENDIR did: READDIRPLUS then uses it
            return self.union.readdir_of(self._resolved_dir(ino))

        return path, self.listings.page(ino, offset, read)

    def readdir(self, req: int, ino: int, size: int, offset: int, fi: Any) -> None:
        """Names only, as many as fit: no node, no attributes (d_ino unknown, d_type 0)."""
        _, page = self._page(ino, fi, offset)
        encoding, errors = _FS_ENCODING, _FS_ERRORS
        data = pack_dirents(
            (name.encode(encoding, errors) for name in itertools.islice(page.names, page.index, None)),
            page.cookie,
            size,
            step=page.step,
        )
        self.r.reply_buf(req, data, len(data))

    def readdirplus(self, req: int, ino: int, size: int, offset: int, fi: Any) -> None:
        """Names with their nodes and attributes, so a cold walk needs no LOOKUP per entry.
        Only the entries that fit are worked out (the kernel asks a page at a time); each
        entry given counts a lookup."""
        dir_path, page = self._page(ino, fi, offset)
        names, start = page.names, page.index
        encoding, errors = _FS_ENCODING, _FS_ERRORS
        encoded: list[bytes] = []
        room = size
        for name in itertools.islice(names, start, None):
            raw = name.encode(encoding, errors)
            need = DIRENTPLUS_HEAD + ((len(raw) + 7) & ~7)
            if need > room:
                break
            room -= need
            encoded.append(raw)
        if not encoded:  # the end of the listing (or no room): nothing to work out
            self.r.reply_buf(req, b"", 0)
            return
        batch = names[start : start + len(encoded)]
        try:
            stats = stat_entries(self.union, dir_path, batch, self._dirs_resolved.get(ino))
        except OSError:
            stats = {}
        caching, packer = self._plus
        if caching is not self.caching:  # the timeouts changed (tests do): worked out again
            self._plus = (self.caching, packer := PlusPacker(self.caching.attr, self.caching.entry))
        entry, bare = packer.entry, packer.bare
        shown, plain = self._shown, self.caching.plain  # _shown only for uid=, gid=, umask=
        bind = self.table.bind
        debug = self.debug
        prefix = dir_path if dir_path == "/" else dir_path + "/"
        parts: list[bytes] = []
        off, step = page.cookie, page.step
        for name, raw in zip(batch, encoded, strict=True):
            off += step
            st = stats.get(name)
            if st is not None and (st.st_nlink == 1 or S_ISDIR(st.st_mode)):
                # as _entry(path, st, lasting=True) makes it: the node (lookup count + 1)
                path = prefix + name
                nid = bind(path, st.st_ino)
                if debug:
                    print(f"   layerfs: node {nid} = {path}", file=sys.stderr, flush=True)
                parts.append(entry(raw, off, nid, st if plain else shown(st)))
            else:  # ".", "..", a hard link (is it for good? a LOOKUP will say), or gone
                parts.append(bare(raw, off, 0 if st is None else st.st_mode))
        data = b"".join(parts)
        self.r.reply_buf(req, data, len(data))

    def releasedir(self, req: int, ino: int, fi: Any) -> None:
        self.dirs.pop(fi.contents.fh)
        self.r.reply_err(req, 0)

    def fsyncdir(self, req: int, ino: int, datasync: int, fi: Any) -> None:
        self.union.fsyncdir(self.table.path(ino))
        self.r.reply_err(req, 0)


def _from_os(real: os.stat_result, ino: int) -> ll.CStat:
    """An unlinked open file's attributes, from its real file (the union has no name for it)."""
    out = ll.CStat()
    out.st_ino, out.st_mode, out.st_nlink = real.st_ino, real.st_mode, 0
    out.st_uid, out.st_gid, out.st_size = real.st_uid, real.st_gid, real.st_size
    out.st_blocks, out.st_blksize = real.st_blocks, real.st_blksize
    out.st_atim.tv_sec, out.st_atim.tv_nsec = divmod(real.st_atime_ns, 1_000_000_000)
    out.st_mtim.tv_sec, out.st_mtim.tv_nsec = divmod(real.st_mtime_ns, 1_000_000_000)
    out.st_ctim.tv_sec, out.st_ctim.tv_nsec = divmod(real.st_ctime_ns, 1_000_000_000)
    return out


#: Requests that may change what a path resolves to (open for writing and create bracket
#: themselves).
CHANGING = frozenset(
    {"setattr", "mknod", "mkdir", "unlink", "rmdir", "symlink", "rename", "link", "setxattr", "removexattr"}
)  # and create, which brackets itself (it keeps its directory resolved)


def caching_of(fuse_options: dict[str, Any]) -> Caching:
    def number(key: str) -> int | None:
        value = fuse_options.get(key)
        return None if value is None else int(str(value), 8 if key == "umask" else 10)

    return Caching(
        entry=float(fuse_options.get("entry_timeout", 86400.0)),
        attr=float(fuse_options.get("attr_timeout", 86400.0)),
        negative=float(fuse_options.get("negative_timeout", 0.0)),
        keep_pages=bool(fuse_options.get("kernel_cache", False)),
        uid=number("uid"),
        gid=number("gid"),
        umask=number("umask"),
    )


def run_lowlevel(ops: LowLevelOps, mountpoint: str, fuse_options: dict[str, Any]) -> None:
    """Serve the union at `mountpoint` (a directory, or an already mounted `/dev/fd/N`) in
    this process until it is unmounted."""
    argv = ll.option_argv(session_options(fuse_options), bool(fuse_options.get("debug")))
    ops.max_read = int(fuse_options.get("max_read") or 0)
    session = ll.Session(ops.lib, ops.callbacks(), argv)
    try:
        session.mount(mountpoint)
        ops.session = session
        session.loop(threads=not fuse_options.get("nothreads"))
    finally:
        ops.session = None
        session.close()
