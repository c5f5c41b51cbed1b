"""The daemon's first moments: answer FUSE_INIT and the mount point's own requests at once,
import the core only when a request needs it.

Why: umount(8) stats and statfs()es the mount point before it unmounts, podman stats and
chowns it right after the mount program returns, and each of them waits until the daemon has
answered. A daemon that imported the core (dataclasses, the union's modules: ~95 ms of CPU on
a loaded machine) and opened the union first made every mount+umount cycle wait for that, though
neither needs a file of the union. Here the session is served at once, with the libfuse binding
only (`lowlevel`, which imports `ctypes` and `struct`); the root's GETATTR, STATFS, a chown of the
root and FORGETs are answered from the layers' roots, and OPENDIR is declined where the kernel
opens directories itself (as the core declines it); any other request (and a chown where the
union has no upper, or anything but the owners changed) loads the core once, opens the union
and hands every slot to the `ll_ops` adapter from then on.

What the root shows here must be what the core shows (`inode.stat_of` for `/`, displayed as
`ll_ops.LowLevelOps._fill` displays it): tests/unionfs/test_bootstrap.py compares the two
replies byte for byte across configurations. The root is the top branch's directory, merged
(nlink 1) when there is more than one branch, numbered as `super.InodeNumbers` numbers it.

No dataclasses, typing or core imports here (a test runs the daemon's import under
`-X importtime`). Used only where the command mounted by itself (root: `mount.kernel_mount`);
a user's mount opens the union before libfuse mounts, so that an error is still the
command's one line.
"""

from __future__ import annotations

import ctypes
import errno
import os
from _thread import allocate_lock  # threading imports functools and collections: ~8 ms

from . import lowlevel as ll

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from .ll_ops import LowLevelOps
    from .mountopts import Parsed

ROOT_ID = ll.ROOT_ID
#: Every slot the core's adapter fills (ll_ops.LowLevelOps.callbacks): the FUSE prototypes of
#: struct fuse_lowlevel_ops; the others stay NULL, as the adapter leaves them.
SLOTS = tuple(name for name, proto in ll.OPS if proto is not ctypes.c_void_p)
SET_OWNER = ll.SET_ATTR_UID | ll.SET_ATTR_GID
_MASK64 = (1 << 64) - 1


def _number(value: object, base: int = 10) -> int | None:
    return None if value is None else int(str(value), base)


class RootView:
    """The union's root as the core would show it, from the parsed options alone."""

    def __init__(self, union: Parsed, fuse_options: dict[str, Any]) -> None:
        self.top = union.branches[0].path
        self.roots = [b.path for b in union.branches]
        # super.Super.open: the upper is the top branch, if writable and the union is not read-only
        # (mountopts refuses a writable branch anywhere else); every branch's root is merged at /.
        self.upper = self.top if union.branches[0].role == "upper" and not union.readonly else None
        values, flags = union.values, union.flags
        self.static_nlink = "static_nlink" in flags
        self.xino = values.get("xino", "auto")
        self.ino32 = "ino32_t" in flags
        # Owners mapped by uidmapping=, gidmapping=, squash_to_*: the core's own maps (idmap.py).
        self.uid_map = self.gid_map = None
        if {"uidmapping", "gidmapping", "squash_to_uid", "squash_to_gid"} & set(values) or "squash_to_root" in flags:
            from .idmap import maps_of

            self.uid_map, self.gid_map = maps_of(flags, values)
        # libfuse's high-level display options, which the low-level adapter applies (ll_ops.Caching).
        self.uid = _number(fuse_options.get("uid"))
        self.gid = _number(fuse_options.get("gid"))
        self.umask = _number(fuse_options.get("umask"), 8)
        self.attr_timeout = float(fuse_options.get("attr_timeout", 86400.0))

    def number(self, st: os.stat_result) -> int:
        """st_ino as super.InodeNumbers gives it to the root: the top branch is filesystem 0,
        and the root is the first object the union numbers (`Loader` asks the core for it first)."""
        ino = st.st_ino
        devs: list[int] = []
        for root in self.roots:
            dev = os.stat(root).st_dev
            if dev not in devs:
                devs.append(dev)
        if len(devs) > 1:
            shift = 64 - ((len(devs) - 1).bit_length() + 1)
            if self.xino == "off" or ino >> shift:
                ino = (1 << 63) | 1  # the first per-mount number
        return ino & 0xFFFFFFFF if self.ino32 else ino & _MASK64

    def fill(self, out: Any) -> None:
        """The root's struct stat into `out` (a CStat)."""
        st = os.lstat(self.top)
        mode, uid, gid = st.st_mode, st.st_uid, st.st_gid
        if self.uid_map is not None and self.gid_map is not None:  # inode.stat_of
            uid, gid = self.uid_map.shown(uid), self.gid_map.shown(gid)
        if self.umask is not None:
            mode = (mode & 0o170000) | (0o777 & ~self.umask)
        if self.uid is not None:
            uid = self.uid
        if self.gid is not None:
            gid = self.gid
        nlink = 1 if len(self.roots) > 1 or self.static_nlink else st.st_nlink
        a, an = divmod(st.st_atime_ns, 1_000_000_000)
        m, mn = divmod(st.st_mtime_ns, 1_000_000_000)
        c, cn = divmod(st.st_ctime_ns, 1_000_000_000)
        ll.pack_stat(
            out, 0, self.number(st), mode, nlink, uid, gid,
            st.st_rdev, st.st_size, st.st_blksize, st.st_blocks, a, an, m, mn, c, cn,
        )  # fmt: skip


class Loader:
    """The session's callbacks until the core is needed, then the core's (`ll_ops`)."""

    def __init__(
        self,
        lib: ll.Library,
        root: RootView,
        make_ops: Callable[[], LowLevelOps],
    ) -> None:
        self.lib = lib
        self.root = root
        self._make_ops = make_ops
        self._lock = allocate_lock()
        self.core: LowLevelOps | None = None
        self.session: ll.Session | None = None
        self._initialised = False
        self._failed = False
        self.max_read = 0  # the max_read= mount option, repeated in init (lowlevel.init_conn)
        self.no_opendir = False  # the kernel opens directories itself (lowlevel.init_conn)
        # slot name -> the handler a request goes to: ours until the core is loaded
        self.handlers: dict[str, Callable[..., None]] = {name: self._loading(name) for name in SLOTS}
        self.handlers.update(
            init=self._init,
            destroy=self._destroy,
            getattr=self._getattr,
            statfs=self._statfs,
            setattr=self._setattr,
            opendir=self._opendir,
            forget=self._forget,
            forget_multi=self._forget_multi,
        )

    def callbacks(self) -> dict[str, Callable[..., None]]:
        """One trampoline per slot: libfuse copies the ops struct when the session is made, so
        the slots stay ours and send each request to the current handler."""
        handlers = self.handlers

        def trampoline(name: str) -> Callable[..., None]:
            def call(*args: Any) -> None:
                handlers[name](*args)

            call.__name__ = name
            return call

        return {name: trampoline(name) for name in SLOTS}

    # -- the core -------------------------------------------------------------------------------
    def load(self) -> LowLevelOps | None:
        """The core's adapter, made once (None if the union could not be opened: the session
        then ends, and the daemon unmounts, as when opening failed before serving)."""
        core = self.core
        if core is not None or self._failed:
            return core
        with self._lock:
            if self.core is None and not self._failed:
                try:
                    core = self._make_ops()
                    core.session = self.session
                    core.no_opendir = self.no_opendir  # as agreed in FUSE_INIT, which we answered
                    core.union.getattr("/")  # the root numbered first, as RootView.number says
                    callbacks = core.callbacks()
                    if self._initialised:  # libfuse called our init: the core's hooks start now
                        callbacks["init"](None, None)
                except BaseException:
                    self._failed = True
                    if self.session is not None and self.session.se:
                        self.lib.session_exit(self.session.se)
                    return None
                self.handlers.update(callbacks)
                self.core = core
        return self.core

    def _loading(self, name: str) -> Callable[..., None]:
        def call(req: int, *args: Any) -> None:
            core = self.load()
            if core is None:
                self.lib.reply_err(req, errno.EIO)
                return
            self.handlers[name](req, *args)

        call.__name__ = name
        return call

    def _delegate(self, name: str, *args: Any) -> None:
        core = self.load()
        if core is None:
            if name not in ("forget", "forget_multi"):
                self.lib.reply_err(args[0], errno.EIO)
            else:
                self.lib.reply_none(args[0])
            return
        self.handlers[name](*args)

    def _answer(self, req: int, work: Callable[[], None]) -> None:
        """Run one early answer; every request is answered once, errors by their errno."""
        try:
            work()
        except OSError as exc:
            self.lib.reply_err(req, exc.errno or errno.EIO)
        except BaseException:
            self.lib.reply_err(req, errno.EIO)

    # -- what is answered without the core -----------------------------------------------------
    def _init(self, _userdata: Any, conn: Any) -> None:
        self.no_opendir = ll.init_conn(conn, self.max_read)  # as the core's init (ll_ops) does
        self._initialised = True

    def _destroy(self, _userdata: Any) -> None:
        pass  # nothing was opened before the core: the core's destroy replaces this once loaded

    def _reply_root(self, req: int) -> None:
        out = ll.CStat()
        self.root.fill(out)
        self.lib.reply_attr(req, ctypes.byref(out), self.root.attr_timeout)

    def _getattr(self, req: int, ino: int, fi: Any) -> None:
        if ino != ROOT_ID:
            return self._delegate("getattr", req, ino, fi)
        self._answer(req, lambda: self._reply_root(req))

    def _statfs(self, req: int, ino: int) -> None:
        if ino != ROOT_ID:
            return self._delegate("statfs", req, ino)

        def reply() -> None:
            sv = os.statvfs(self.root.top)  # inode.statfs: the top branch's filesystem
            out = ll.CStatvfs()
            out.f_bsize, out.f_frsize, out.f_blocks = sv.f_bsize, sv.f_frsize, sv.f_blocks
            out.f_bfree, out.f_bavail, out.f_files = sv.f_bfree, sv.f_bavail, sv.f_files
            out.f_ffree, out.f_favail, out.f_namemax = sv.f_ffree, sv.f_favail, sv.f_namemax
            self.lib.reply_statfs(req, ctypes.byref(out))

        self._answer(req, reply)

    def _setattr(self, req: int, ino: int, attr: Any, to_set: int, fi: Any) -> None:
        """A chown of the root (podman's, right after the mount): the root is the upper's own
        directory, so the core would chown it there (inode.chown) and show it again."""
        upper = self.root.upper
        if ino != ROOT_ID or to_set & ~SET_OWNER or not to_set or upper is None:
            return self._delegate("setattr", req, ino, attr, to_set, fi)
        with self._lock:  # not while the core is being loaded
            if self.core is not None:
                return self._delegate("setattr", req, ino, attr, to_set, fi)
            a = attr.contents
            uid = a.st_uid if to_set & ll.SET_ATTR_UID else -1
            gid = a.st_gid if to_set & ll.SET_ATTR_GID else -1
            root = self.root
            if root.uid_map is not None and root.gid_map is not None:  # inode.chown: stored mapped back
                uid, gid = root.uid_map.stored(uid), root.gid_map.stored(gid)

            def chown() -> None:
                os.chown(upper, uid, gid, follow_symlinks=False)
                self._reply_root(req)

            self._answer(req, chown)

    def _opendir(self, req: int, ino: int, fi: Any) -> None:
        """Declined for the mount where the kernel opens directories itself (the core's answer,
        ll_ops.LowLevelOps.opendir), without loading the core: a listing will need it, an
        open directory alone (a `cd`, fchdir, an O_DIRECTORY open of the root) does not."""
        if self.no_opendir:
            self.lib.reply_err(req, errno.ENOSYS)
            return
        self._delegate("opendir", req, ino, fi)

    def _forget(self, req: int, ino: int, nlookup: int) -> None:
        if self.core is not None:
            return self.handlers["forget"](req, ino, nlookup)
        self.lib.reply_none(req)  # nothing but the root is known before the core

    def _forget_multi(self, req: int, count: int, forgets: Any) -> None:
        if self.core is not None:
            return self.handlers["forget_multi"](req, count, forgets)
        self.lib.reply_none(req)


def serve(
    lib: ll.Library,
    union: Parsed,
    mountpoint: str,
    fuse_options: dict[str, Any],
    open_union: Callable[[], Any],
    after_init: Callable[[], object] | None = None,
) -> None:
    """Serve an already mounted `/dev/fd/N` (`mountpoint`) until it is unmounted, loading the
    core on the first request that needs it."""
    debug = bool(fuse_options.get("debug"))

    def make_ops() -> LowLevelOps:
        from .ll_ops import LowLevelOps, caching_of

        return LowLevelOps(open_union(), caching_of(fuse_options), None, after_init, lib=lib, debug=debug)

    loader = Loader(lib, RootView(union, fuse_options), make_ops)
    loader.max_read = int(fuse_options.get("max_read") or 0)
    argv = ll.option_argv(session_options(fuse_options), debug)
    session = ll.Session(lib, loader.callbacks(), argv)
    loader.session = session
    try:
        session.mount(mountpoint)
        session.loop(threads=not fuse_options.get("nothreads"))
    finally:
        if loader.core is not None:
            loader.core.session = None
        session.close()


#: libfuse high-level options: the adapter does their work (ll_ops.Caching), libfuse must not
#: see them. Here, not in ll_ops, as the daemon starts its session before it imports ll_ops.
HIGH_LEVEL_OPTIONS = frozenset(
    {"kernel_cache", "entry_timeout", "attr_timeout", "negative_timeout", "use_ino", "uid", "gid", "umask", "nothreads"}
)


def session_options(fuse_options: dict[str, Any]) -> list[str]:
    """The options fuse_session_new parses (mount and low-level ones), as `-o` items."""
    out = []
    for key, value in fuse_options.items():
        if key in HIGH_LEVEL_OPTIONS or key == "debug" or value is False or value is None:
            continue
        out.append(key if value is True else f"{key}={value}")
    return out
