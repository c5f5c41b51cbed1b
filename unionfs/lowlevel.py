"""A ctypes binding of libfuse 3's low-level (inode-based) API: what the adapter in ll_ops uses.

Why our own: mfusepy binds the high-level (path-based) API only, and the high-level library
cannot give the kernel what makes a union fast (cached listings, one kernel inode per file);
pyfuse3 and llfuse are no longer developed. The structs here are libfuse 3.14's ABI
(fuse_lowlevel.h, fuse_common.h; struct stat and statvfs of Linux on x86_64 and aarch64):
tests/unionfs/test_lowlevel.py compares their sizes and offsets with the C headers.

No semantics here: structs, function prototypes, and a `Session` that mounts (or takes an
already mounted `/dev/fd/N`), runs the loop and sends notifications.
"""

from __future__ import annotations

import ctypes
import os
import struct

from . import libfuse

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without typing: the daemon imports this before it answers FUSE_INIT
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

c_ino = ctypes.c_uint64
c_req = ctypes.c_void_p
c_off = ctypes.c_int64
c_mode = ctypes.c_uint32
c_dev = ctypes.c_uint64


class Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_int64), ("tv_nsec", ctypes.c_int64)]


GENERIC_STAT = os.uname().machine in (
    "aarch64",
    "arm64",
    "riscv64",
)  # the generic Linux layout (no `platform`: it imports re)

if GENERIC_STAT:

    class CStat(ctypes.Structure):
        _fields_ = [
            ("st_dev", ctypes.c_uint64),
            ("st_ino", ctypes.c_uint64),
            ("st_mode", ctypes.c_uint32),
            ("st_nlink", ctypes.c_uint32),
            ("st_uid", ctypes.c_uint32),
            ("st_gid", ctypes.c_uint32),
            ("st_rdev", ctypes.c_uint64),
            ("_pad1", ctypes.c_uint64),
            ("st_size", ctypes.c_int64),
            ("st_blksize", ctypes.c_int32),
            ("_pad2", ctypes.c_int32),
            ("st_blocks", ctypes.c_int64),
            ("st_atim", Timespec),
            ("st_mtim", Timespec),
            ("st_ctim", Timespec),
            ("_unused", ctypes.c_int32 * 2),
        ]

else:  # x86_64

    class CStat(ctypes.Structure):  # type: ignore[no-redef]
        _fields_ = [
            ("st_dev", ctypes.c_uint64),
            ("st_ino", ctypes.c_uint64),
            ("st_nlink", ctypes.c_uint64),
            ("st_mode", ctypes.c_uint32),
            ("st_uid", ctypes.c_uint32),
            ("st_gid", ctypes.c_uint32),
            ("_pad0", ctypes.c_int32),
            ("st_rdev", ctypes.c_uint64),
            ("st_size", ctypes.c_int64),
            ("st_blksize", ctypes.c_int64),
            ("st_blocks", ctypes.c_int64),
            ("st_atim", Timespec),
            ("st_mtim", Timespec),
            ("st_ctim", Timespec),
            ("_unused", ctypes.c_int64 * 3),
        ]


# struct stat's leading fields (all that we set) in one pack_into: setting ctypes fields one by
# one, the nested timespecs most, costs ~10 times as much, and a stat is in every reply.
# pack_stat(buf, offset, ino, mode, nlink, uid, gid, rdev, size, blksize, blocks, atime_s,
# atime_ns, mtime_s, mtime_ns, ctime_s, ctime_ns): zeros for st_dev and the padding.
if GENERIC_STAT:
    _STAT_HEAD = struct.Struct("=QQIIIIQQqiiqqqqqqq")

    def pack_stat(
        buf: Any, offset: int, ino: int, mode: int, nlink: int, uid: int, gid: int, rdev: int, size: int,
        blksize: int, blocks: int, a: int, an: int, m: int, mn: int, c: int, cn: int,
    ) -> None:  # fmt: skip
        _STAT_HEAD.pack_into(
            buf, offset, 0, ino, mode, nlink, uid, gid, rdev, 0, size, blksize, 0, blocks, a, an, m, mn, c, cn
        )

else:
    _STAT_HEAD = struct.Struct("=QQQIIIiQqqqqqqqqq")

    def pack_stat(
        buf: Any, offset: int, ino: int, mode: int, nlink: int, uid: int, gid: int, rdev: int, size: int,
        blksize: int, blocks: int, a: int, an: int, m: int, mn: int, c: int, cn: int,
    ) -> None:  # fmt: skip
        _STAT_HEAD.pack_into(
            buf, offset, 0, ino, nlink, mode, uid, gid, 0, rdev, size, blksize, blocks, a, an, m, mn, c, cn
        )


class CStatvfs(ctypes.Structure):
    _fields_ = [
        ("f_bsize", ctypes.c_ulong),
        ("f_frsize", ctypes.c_ulong),
        ("f_blocks", ctypes.c_uint64),
        ("f_bfree", ctypes.c_uint64),
        ("f_bavail", ctypes.c_uint64),
        ("f_files", ctypes.c_uint64),
        ("f_ffree", ctypes.c_uint64),
        ("f_favail", ctypes.c_uint64),
        ("f_fsid", ctypes.c_ulong),
        ("f_flag", ctypes.c_ulong),
        ("f_namemax", ctypes.c_ulong),
        ("_spare", ctypes.c_int * 6),
    ]


class FileInfo(ctypes.Structure):
    """struct fuse_file_info (fuse_common.h, 3.14)."""

    _fields_ = [
        ("flags", ctypes.c_int),
        ("writepage", ctypes.c_uint, 1),
        ("direct_io", ctypes.c_uint, 1),
        ("keep_cache", ctypes.c_uint, 1),
        ("flush", ctypes.c_uint, 1),
        ("nonseekable", ctypes.c_uint, 1),
        ("flock_release", ctypes.c_uint, 1),
        ("cache_readdir", ctypes.c_uint, 1),
        ("noflush", ctypes.c_uint, 1),
        ("padding", ctypes.c_uint, 24),
        ("padding2", ctypes.c_uint, 32),
        ("fh", ctypes.c_uint64),
        ("lock_owner", ctypes.c_uint64),
        ("poll_events", ctypes.c_uint32),
    ]


class EntryParam(ctypes.Structure):
    """struct fuse_entry_param: a name's node, its attributes and how long both may be kept."""

    _fields_ = [
        ("ino", c_ino),
        ("generation", ctypes.c_uint64),
        ("attr", CStat),
        ("attr_timeout", ctypes.c_double),
        ("entry_timeout", ctypes.c_double),
    ]


# struct fuse_entry_param in one pack_into as well: node id, generation 0, the struct stat as
# pack_stat writes it, then the attribute and entry timeouts. pack_entry(buf, nid, ino, mode,
# nlink, uid, gid, rdev, size, blksize, blocks, a, an, m, mn, c, cn, attr_timeout, entry_timeout).
_ENTRY_PAD = EntryParam.attr_timeout.offset - EntryParam.attr.offset - _STAT_HEAD.size
_ENTRY = struct.Struct("=QQ" + _STAT_HEAD.format[1:] + f"{_ENTRY_PAD}x" + "dd")
if GENERIC_STAT:

    def pack_entry(
        buf: Any, nid: int, ino: int, mode: int, nlink: int, uid: int, gid: int, rdev: int, size: int,
        blksize: int, blocks: int, a: int, an: int, m: int, mn: int, c: int, cn: int, attr: float, entry: float,
    ) -> None:  # fmt: skip
        _ENTRY.pack_into(
            buf, 0, nid, 0, 0, ino, mode, nlink, uid, gid, rdev, 0, size, blksize, 0, blocks,
            a, an, m, mn, c, cn, attr, entry,
        )  # fmt: skip

else:

    def pack_entry(
        buf: Any, nid: int, ino: int, mode: int, nlink: int, uid: int, gid: int, rdev: int, size: int,
        blksize: int, blocks: int, a: int, an: int, m: int, mn: int, c: int, cn: int, attr: float, entry: float,
    ) -> None:  # fmt: skip
        _ENTRY.pack_into(
            buf, 0, nid, 0, 0, ino, nlink, mode, uid, gid, 0, rdev, size, blksize, blocks,
            a, an, m, mn, c, cn, attr, entry,
        )  # fmt: skip


# The same two from a stat in the core's order (`inode.Stat`: mode, ino, dev, nlink, uid, gid,
# size, atime_ns, mtime_ns, ctime_ns, rdev, blocks, blksize; st_dev is not sent), unpacked here:
# a LOOKUP's reply is then one Python call, not a tuple of struct stat's order built first and
# spread into another call. pack_entry_of(buf, nid, st, attr_timeout, entry_timeout);
# pack_stat_of(buf, offset, st). tests/unionfs/test_lowlevel.py checks the order against Stat's.
_NS = 1_000_000_000
if GENERIC_STAT:

    def pack_entry_of(buf: Any, nid: int, st: Sequence[int], attr: float, entry: float) -> None:
        mode, ino, _dev, nlink, uid, gid, size, a, m, c, rdev, blocks, blksize = st
        _ENTRY.pack_into(
            buf, 0, nid, 0, 0, ino, mode, nlink, uid, gid, rdev, 0, size, blksize, 0, blocks,
            a // _NS, a % _NS, m // _NS, m % _NS, c // _NS, c % _NS, attr, entry,
        )  # fmt: skip

    def pack_stat_of(buf: Any, offset: int, st: Sequence[int]) -> None:
        mode, ino, _dev, nlink, uid, gid, size, a, m, c, rdev, blocks, blksize = st
        _STAT_HEAD.pack_into(
            buf, offset, 0, ino, mode, nlink, uid, gid, rdev, 0, size, blksize, 0, blocks,
            a // _NS, a % _NS, m // _NS, m % _NS, c // _NS, c % _NS,
        )  # fmt: skip

else:

    def pack_entry_of(buf: Any, nid: int, st: Sequence[int], attr: float, entry: float) -> None:
        mode, ino, _dev, nlink, uid, gid, size, a, m, c, rdev, blocks, blksize = st
        _ENTRY.pack_into(
            buf, 0, nid, 0, 0, ino, nlink, mode, uid, gid, 0, rdev, size, blksize, blocks,
            a // _NS, a % _NS, m // _NS, m % _NS, c // _NS, c % _NS, attr, entry,
        )  # fmt: skip

    def pack_stat_of(buf: Any, offset: int, st: Sequence[int]) -> None:
        mode, ino, _dev, nlink, uid, gid, size, a, m, c, rdev, blocks, blksize = st
        _STAT_HEAD.pack_into(
            buf, offset, 0, ino, nlink, mode, uid, gid, 0, rdev, size, blksize, blocks,
            a // _NS, a % _NS, m // _NS, m % _NS, c // _NS, c % _NS,
        )  # fmt: skip


class ConnInfo(ctypes.Structure):
    _fields_ = [
        ("proto_major", ctypes.c_uint),
        ("proto_minor", ctypes.c_uint),
        ("max_write", ctypes.c_uint),
        ("max_read", ctypes.c_uint),
        ("max_readahead", ctypes.c_uint),
        ("capable", ctypes.c_uint),
        ("want", ctypes.c_uint),
        ("max_background", ctypes.c_uint),
        ("congestion_threshold", ctypes.c_uint),
        ("time_gran", ctypes.c_uint),
        ("reserved", ctypes.c_uint * 22),
    ]


#: fuse_conn_info.want: replies may splice(2) their data into /dev/fuse (fuse_common.h)
CAP_SPLICE_WRITE = 1 << 7
#: fuse_conn_info.capable: the kernel (5.1+) opens directories itself if OPENDIR says ENOSYS
CAP_NO_OPENDIR_SUPPORT = 1 << 24


def init_conn(conn: Any, max_read: int = 0) -> bool:
    """What `init` sets in `struct fuse_conn_info` before libfuse replies to FUSE_INIT; both
    inits call it (the bootstrap's, which answers FUSE_INIT for a root mount, and the core's,
    which then gets None). `conn` is a pointer to `ConnInfo`, or None. Returns whether the
    kernel opens directories itself (then OPENDIR is to be answered ENOSYS).

    - FUSE_CAP_SPLICE_WRITE where the kernel offers it (libfuse 3.14 leaves it off): lets
      `fuse_reply_data` splice a layer file's pages into /dev/fuse. It changes nothing in the
      INIT reply, only how libfuse sends data replies.
    - FUSE_CAP_NO_OPENDIR_SUPPORT where the kernel offers it: wanted, to say we use it
      (libfuse 3.14 sends nothing for it; the kernel needs only the ENOSYS).
    - `max_read`: the `max_read=` mount option, which libfuse 3.14 requires `init` to repeat
      in `conn.max_read` (else it refuses FUSE_INIT: "init() and fuse_session_new() requested
      different maximum read size"); 0 where the option is not given."""
    if not conn:
        return False
    info = conn.contents
    info.want |= info.capable & (CAP_SPLICE_WRITE | CAP_NO_OPENDIR_SUPPORT)
    info.max_read = max_read
    return bool(info.capable & CAP_NO_OPENDIR_SUPPORT)


class FuseBuf(ctypes.Structure):
    """struct fuse_buf (fuse_common.h, 3.14): memory, or a descriptor and a position."""

    _fields_ = [
        ("size", ctypes.c_size_t),
        ("flags", ctypes.c_int),
        ("mem", ctypes.c_void_p),
        ("fd", ctypes.c_int),
        ("pos", c_off),
    ]


class BufVec(ctypes.Structure):
    """struct fuse_bufvec with one buffer (FUSE_BUFVEC_INIT)."""

    _fields_ = [("count", ctypes.c_size_t), ("idx", ctypes.c_size_t), ("off", ctypes.c_size_t), ("buf", FuseBuf * 1)]


BUF_IS_FD, BUF_FD_SEEK = 1 << 1, 1 << 2  # enum fuse_buf_flags
# A BufVec of `size` bytes of descriptor `fd` from `pos` (FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK), in
# one pack_into: count 1, idx 0, off 0, then the fuse_buf (its padding after flags and fd).
_FD_BUFVEC = struct.Struct("=QQQQi4xQi4xq")


def splice_limit(pipe_max_file: str = "/proc/sys/fs/pipe-max-size") -> int:
    """The largest READ reply libfuse 3.14 can splice (0 if unknown). Its pipe must hold the
    reply's header, the data and three pages of slack (`fuse_send_data_iov`), and a pipe grows
    past /proc/sys/fs/pipe-max-size only with CAP_SYS_RESOURCE: without it a bigger reply falls
    back to a buffer libfuse allocates (and the kernel zero-fills) for each request, which costs
    more than our own read."""
    try:
        with open(pipe_max_file, "rb") as f:
            pipe_max = int(f.read())
    except (OSError, ValueError):
        return 0
    page = os.sysconf("SC_PAGE_SIZE")
    return max(0, pipe_max - 3 * page - 16)  # 16: struct fuse_out_header


def fd_bufvec(size: int, fd: int, pos: int) -> BufVec:
    """What `fuse_reply_data` sends for a READ: `size` bytes of `fd` at `pos`, read by libfuse."""
    vec = BufVec()
    _FD_BUFVEC.pack_into(vec, 0, 1, 0, 0, size, BUF_IS_FD | BUF_FD_SEEK, 0, fd, pos)
    return vec


class Ctx(ctypes.Structure):
    _fields_ = [("uid", ctypes.c_uint32), ("gid", ctypes.c_uint32), ("pid", ctypes.c_int32), ("umask", c_mode)]


class ForgetData(ctypes.Structure):
    _fields_ = [("ino", c_ino), ("nlookup", ctypes.c_uint64)]


class Args(ctypes.Structure):
    _fields_ = [("argc", ctypes.c_int), ("argv", ctypes.POINTER(ctypes.c_char_p)), ("allocated", ctypes.c_int)]


FI = ctypes.POINTER(FileInfo)
_F = ctypes.CFUNCTYPE
_V = None  # void

#: struct fuse_lowlevel_ops, in the header's order: (name, prototype). Slots we leave NULL make
#: libfuse answer ENOSYS (access: the kernel then checks permissions itself, or grants).
OPS: list[tuple[str, Any]] = [
    ("init", _F(_V, ctypes.c_void_p, ctypes.POINTER(ConnInfo))),
    ("destroy", _F(_V, ctypes.c_void_p)),
    ("lookup", _F(_V, c_req, c_ino, ctypes.c_char_p)),
    ("forget", _F(_V, c_req, c_ino, ctypes.c_uint64)),
    ("getattr", _F(_V, c_req, c_ino, FI)),
    ("setattr", _F(_V, c_req, c_ino, ctypes.POINTER(CStat), ctypes.c_int, FI)),
    ("readlink", _F(_V, c_req, c_ino)),
    ("mknod", _F(_V, c_req, c_ino, ctypes.c_char_p, c_mode, c_dev)),
    ("mkdir", _F(_V, c_req, c_ino, ctypes.c_char_p, c_mode)),
    ("unlink", _F(_V, c_req, c_ino, ctypes.c_char_p)),
    ("rmdir", _F(_V, c_req, c_ino, ctypes.c_char_p)),
    ("symlink", _F(_V, c_req, ctypes.c_char_p, c_ino, ctypes.c_char_p)),
    ("rename", _F(_V, c_req, c_ino, ctypes.c_char_p, c_ino, ctypes.c_char_p, ctypes.c_uint)),
    ("link", _F(_V, c_req, c_ino, c_ino, ctypes.c_char_p)),
    ("open", _F(_V, c_req, c_ino, FI)),
    ("read", _F(_V, c_req, c_ino, ctypes.c_size_t, c_off, FI)),
    ("write", _F(_V, c_req, c_ino, ctypes.c_void_p, ctypes.c_size_t, c_off, FI)),
    ("flush", _F(_V, c_req, c_ino, FI)),
    ("release", _F(_V, c_req, c_ino, FI)),
    ("fsync", _F(_V, c_req, c_ino, ctypes.c_int, FI)),
    ("opendir", _F(_V, c_req, c_ino, FI)),
    ("readdir", _F(_V, c_req, c_ino, ctypes.c_size_t, c_off, FI)),
    ("releasedir", _F(_V, c_req, c_ino, FI)),
    ("fsyncdir", _F(_V, c_req, c_ino, ctypes.c_int, FI)),
    ("statfs", _F(_V, c_req, c_ino)),
    ("setxattr", _F(_V, c_req, c_ino, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)),
    ("getxattr", _F(_V, c_req, c_ino, ctypes.c_char_p, ctypes.c_size_t)),
    ("listxattr", _F(_V, c_req, c_ino, ctypes.c_size_t)),
    ("removexattr", _F(_V, c_req, c_ino, ctypes.c_char_p)),
    ("access", ctypes.c_void_p),
    ("create", _F(_V, c_req, c_ino, ctypes.c_char_p, c_mode, FI)),
    ("getlk", ctypes.c_void_p),
    ("setlk", ctypes.c_void_p),
    ("bmap", ctypes.c_void_p),
    ("ioctl", ctypes.c_void_p),
    ("poll", ctypes.c_void_p),
    ("write_buf", ctypes.c_void_p),
    ("retrieve_reply", ctypes.c_void_p),
    ("forget_multi", _F(_V, c_req, ctypes.c_size_t, ctypes.POINTER(ForgetData))),
    ("flock", ctypes.c_void_p),
    ("fallocate", ctypes.c_void_p),
    ("readdirplus", _F(_V, c_req, c_ino, ctypes.c_size_t, c_off, FI)),
    ("copy_file_range", ctypes.c_void_p),
    ("lseek", ctypes.c_void_p),
]


class LowLevelOps(ctypes.Structure):
    _fields_ = [(name, proto) for name, proto in OPS]


PROTOTYPES = dict(OPS)

# fuse_lowlevel.h: setattr's to_set
SET_ATTR_MODE, SET_ATTR_UID, SET_ATTR_GID, SET_ATTR_SIZE = 1, 2, 4, 8
SET_ATTR_ATIME, SET_ATTR_MTIME, SET_ATTR_ATIME_NOW, SET_ATTR_MTIME_NOW = 16, 32, 128, 256
ROOT_ID = 1  # FUSE_ROOT_ID


class Library:
    """libfuse 3's low-level functions, with their prototypes set. AttributeError where the
    library lacks one (libfuse 2, or a libfuse 3 before 3.2)."""

    def __init__(self, lib: ctypes.CDLL | None = None) -> None:
        lib = lib if lib is not None else libfuse.load()
        self.lib = lib

        def fn(name: str, restype: Any, *argtypes: Any) -> Any:
            f = getattr(lib, name)
            f.restype = restype
            f.argtypes = list(argtypes)
            return f

        vp, sz, cs, ci = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_int
        self.session_new = fn("fuse_session_new", vp, ctypes.POINTER(Args), ctypes.POINTER(LowLevelOps), sz, vp)
        self.session_mount = fn("fuse_session_mount", ci, vp, cs)
        self.session_unmount = fn("fuse_session_unmount", None, vp)
        self.session_destroy = fn("fuse_session_destroy", None, vp)
        self.session_loop = fn("fuse_session_loop", ci, vp)
        self.session_exit = fn("fuse_session_exit", None, vp)
        self.set_signal_handlers = fn("fuse_set_signal_handlers", ci, vp)
        self.remove_signal_handlers = fn("fuse_remove_signal_handlers", None, vp)
        self.req_ctx = fn("fuse_req_ctx", ctypes.POINTER(Ctx), vp)
        self.reply_err = fn("fuse_reply_err", ci, vp, ci)
        self.reply_none = fn("fuse_reply_none", None, vp)
        # The struct of an entry or attribute reply as a void pointer (`ctypes.byref(e)`): ctypes
        # checks a POINTER(EntryParam) argument's type at ~0.6 µs a call, half of the call.
        self.reply_entry = fn("fuse_reply_entry", ci, vp, vp)
        self.reply_create = fn("fuse_reply_create", ci, vp, vp, FI)
        self.reply_attr = fn("fuse_reply_attr", ci, vp, vp, ctypes.c_double)
        self.reply_readlink = fn("fuse_reply_readlink", ci, vp, cs)
        self.reply_open = fn("fuse_reply_open", ci, vp, FI)
        self.reply_write = fn("fuse_reply_write", ci, vp, sz)
        self.reply_buf = fn("fuse_reply_buf", ci, vp, vp, sz)
        self.reply_data = fn("fuse_reply_data", ci, vp, ctypes.POINTER(BufVec), ci)
        self.reply_statfs = fn("fuse_reply_statfs", ci, vp, ctypes.POINTER(CStatvfs))
        self.reply_xattr = fn("fuse_reply_xattr", ci, vp, sz)
        self.add_direntry = fn("fuse_add_direntry", sz, vp, vp, sz, cs, ctypes.POINTER(CStat), c_off)
        self.add_direntry_plus = fn("fuse_add_direntry_plus", sz, vp, vp, sz, cs, ctypes.POINTER(EntryParam), c_off)
        self.notify_inval_inode = fn("fuse_lowlevel_notify_inval_inode", ci, vp, c_ino, c_off, c_off)


def available() -> str | None:
    """Why the low-level adapter cannot run here, or None."""
    if libfuse.user_choice():
        return "the user chose another libfuse"
    try:
        Library()
    except (OSError, AttributeError) as exc:
        return str(exc)
    return None


def option_argv(options: Sequence[str], debug: bool) -> list[bytes]:
    """argv for fuse_session_new: a program name, then one `-o a,b=c` (and `-d`)."""
    argv = [b"layerfs"]
    if options:
        argv += [b"-o", ",".join(options).encode("utf-8", "surrogateescape")]
    if debug:
        argv.append(b"-d")
    return argv


class Session:
    """One `struct fuse_session`: made from `ops` (callbacks by slot name), mounted, looped."""

    def __init__(self, lib: Library, callbacks: dict[str, Callable[..., None]], argv: list[bytes]) -> None:
        from . import loop

        self.lib = lib
        # The union's lock, once the adapter has a union (ll_ops), and the pool while `loop`
        # runs: a slow request goes to the pool, one that takes the lock only if it is taken.
        self.gate: Any = None
        self.pool: loop.Pool | None = None
        ops = LowLevelOps()
        self._keep: list[Any] = []  # the C callbacks must outlive the session
        for name, func in loop.dispatching(self, callbacks).items():
            proto = PROTOTYPES[name]
            cfunc = proto(func)
            self._keep.append(cfunc)
            setattr(ops, name, cfunc)
        arr = (ctypes.c_char_p * (len(argv) + 1))(*argv, None)
        self._keep += [ops, arr]
        args = Args(len(argv), arr, 0)
        se = lib.session_new(ctypes.byref(args), ctypes.byref(ops), ctypes.sizeof(ops), None)
        if not se:
            raise RuntimeError("fuse_session_new failed (libfuse says why on stderr)")
        self.se: int = se

    def mount(self, mountpoint: str) -> None:
        """A directory (libfuse mounts, through fusermount3 unless root) or `/dev/fd/N`."""
        if self.lib.session_mount(self.se, os.fsencode(mountpoint)) != 0:
            raise RuntimeError("fuse_session_mount failed")

    def loop(self, threads: bool = True) -> int:
        """Serve until unmounted (or a signal): libfuse's single-threaded loop, the slow
        requests handed to a small pool (loop.py), or with `threads` False every request on
        this thread (`-s`, fuse-overlayfs's default)."""
        lib = self.lib
        if lib.set_signal_handlers(self.se) != 0:
            raise RuntimeError("fuse_set_signal_handlers failed")
        try:
            if not threads:
                return int(lib.session_loop(self.se))
            from . import loop

            return loop.run(self)
        finally:
            lib.remove_signal_handlers(self.se)

    def close(self) -> None:
        self.lib.session_unmount(self.se)
        self.lib.session_destroy(self.se)
        self.se = 0

    def inval_inode(self, ino: int, offset: int = -1, length: int = 0) -> int:
        """Drop the kernel's attributes of `ino` (and, from `offset` >= 0, its cached pages or,
        for a directory, its cached listing)."""
        return int(self.lib.notify_inval_inode(self.se, ino, offset, length)) if self.se else 0
