"""READDIR and READDIRPLUS records packed in Python (unionfs.dirent) against libfuse's own
fuse_add_direntry and fuse_add_direntry_plus, called through ctypes: the same bytes for any
name, attributes and timeouts, and the same cut where the kernel's buffer is full."""

from __future__ import annotations

import ctypes
import math
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from unionfs import lowlevel as ll
from unionfs.dirent import (
    DIRENT_HEAD,
    DIRENTPLUS_HEAD,
    UNKNOWN_INO,
    PlusPacker,
    dirent_size,
    direntplus_size,
    pack_dirents,
    timeout,
)
from unionfs.inode import Stat

LIB = ll.Library()
names = st.binary(min_size=1, max_size=255).filter(lambda b: b"/" not in b and b"\0" not in b)
u64, s64, u32 = st.integers(0, 2**64 - 1), st.integers(-(2**63), 2**63 - 1), st.integers(0, 2**32 - 1)
nsec = st.integers(0, 999_999_999)
modes = st.sampled_from([0o100644, 0o040755, 0o120777, 0o020600, 0o060600, 0o010644, 0o140755, 0, 0o104755])
#: struct stat's fields as pack_entry takes them: ino, mode, nlink, uid, gid, rdev, size, blksize,
#: blocks, then seconds and nanoseconds of atime, mtime and ctime
Shown = tuple[int, int, int, int, int, int, int, int, int, int, int, int, int, int, int]
shown_values = st.tuples(
    u64, modes, u64, u32, u32, u64, s64, s64, s64, s64, nsec, s64, nsec, s64, nsec
)  # fmt: skip
timeouts = st.one_of(
    st.sampled_from([0.0, 1.0, 1.5, 86400.0, 0.9999999999, -1.0, 1e30, math.inf, 2.0**64, 2.0**63]),
    st.floats(min_value=-10.0, max_value=1e20, allow_nan=False),
)


def parse_dirents(data: bytes) -> list[tuple[int, int, int, bytes]]:
    """(d_ino, d_off, d_type, name) of each fuse_dirent of a READDIR reply."""
    out, i = [], 0
    while i < len(data):
        ino, off, namelen, kind = struct.unpack_from("=QQII", data, i)
        out.append((ino, off, kind, data[i + 24 : i + 24 + namelen]))
        i += dirent_size(data[i + 24 : i + 24 + namelen])
    return out


def parse_plus(data: bytes) -> list[tuple[int, bytes, int, int, bytes]]:
    """(node id, fuse_entry_out, d_off, d_type, name) of each fuse_direntplus of a READDIRPLUS reply."""
    out, i = [], 0
    while i < len(data):
        (nodeid,) = struct.unpack_from("=Q", data, i)
        _, off, namelen, kind = struct.unpack_from("=QQII", data, i + 128)
        name = data[i + DIRENTPLUS_HEAD : i + DIRENTPLUS_HEAD + namelen]
        out.append((nodeid, data[i : i + 128], off, kind, name))
        i += direntplus_size(name)
    return out


def libfuse_dirent(name: bytes, ino: int, mode: int, off: int) -> bytes:
    stat = ll.CStat()
    stat.st_ino, stat.st_mode = ino, mode
    buf = ctypes.create_string_buffer(DIRENT_HEAD + 256)
    used = LIB.add_direntry(None, buf, len(buf), name, ctypes.byref(stat), off)
    return buf.raw[:used]


def as_stat(shown: Shown) -> Stat:
    """The core's Stat with the fields of `shown` (what PlusPacker.entry takes)."""
    ino, mode, nlink, uid, gid, rdev, size, blksize, blocks, a, an, m, mn, c, cn = shown
    ns = 1_000_000_000
    return Stat(mode, ino, 0, nlink, uid, gid, size, a * ns + an, m * ns + mn, c * ns + cn, rdev, blocks, blksize)


def libfuse_direntplus(name: bytes, nodeid: int, shown: Shown, attr: float, entry: float, off: int) -> bytes:
    e = ll.EntryParam()
    ll.pack_entry(e, nodeid, *shown, attr, entry)
    buf = ctypes.create_string_buffer(DIRENTPLUS_HEAD + 256)
    used = LIB.add_direntry_plus(None, buf, len(buf), name, ctypes.byref(e), off)
    return buf.raw[:used]


def libfuse_reply(add, records: list[tuple[bytes, object]], first_off: int, room: int) -> bytes:
    """What a handler calling libfuse's add function per entry sends: up to the first that does not fit."""
    buf = ctypes.create_string_buffer(max(room, 1))
    base, used = ctypes.addressof(buf), 0
    for i, (name, arg) in enumerate(records):
        length = add(None, base + used, room - used, name, arg, first_off + i + 1)
        if length > room - used:
            break
        used += length
    return buf.raw[:used]


@settings(max_examples=300, deadline=None)
@given(name=names, off=st.integers(0, 2**62))
def test_a_dirent_is_libfuses(name, off):
    assert pack_dirents([name], off - 1, 4096) == libfuse_dirent(name, UNKNOWN_INO, 0, off)
    assert pack_dirents([name], off - 1, 4096, ino=12345, mode=0o040755) == libfuse_dirent(name, 12345, 0o040755, off)


@settings(max_examples=300, deadline=None)
@given(name=names, nodeid=u64, shown=shown_values, attr=timeouts, entry=timeouts, off=st.integers(1, 2**62))
def test_a_direntplus_is_libfuses(name, nodeid, shown, attr, entry, off):
    # struct stat holds what _shown gives as C does (64-bit nlink, rdev, blksize on x86_64; a
    # 32-bit one elsewhere): give libfuse values its struct can hold, as a real stat would be
    if ll.GENERIC_STAT:
        shown = (*shown[:2], shown[2] & 0xFFFFFFFF, *shown[3:7], (shown[7] & 0x7FFFFFFF), *shown[8:])
    assert PlusPacker(attr, entry).entry(name, off, nodeid, as_stat(shown)) == libfuse_direntplus(
        name, nodeid, shown, attr, entry, off
    )


@settings(max_examples=100, deadline=None)
@given(name=names, mode=modes, off=st.integers(1, 2**62))
def test_a_direntplus_without_a_node_is_libfuses(name, mode, off):
    e = ll.EntryParam()  # what the adapter gave libfuse for ".", "..", hard links and vanished names
    e.attr.st_ino, e.attr.st_mode = UNKNOWN_INO, mode
    buf = ctypes.create_string_buffer(DIRENTPLUS_HEAD + 256)
    used = LIB.add_direntry_plus(None, buf, len(buf), name, ctypes.byref(e), off)
    assert PlusPacker(86400.0, 86400.0).bare(name, off, mode) == buf.raw[:used]


@settings(max_examples=100, deadline=None)
@given(batch=st.lists(names, min_size=0, max_size=40), first=st.integers(0, 1000), room=st.integers(0, 4096))
def test_a_reply_holds_what_fits_as_libfuses_does(batch, first, room):
    stat = ll.CStat()
    stat.st_ino = UNKNOWN_INO
    plain = libfuse_reply(LIB.add_direntry, [(n, ctypes.byref(stat)) for n in batch], first, room)
    assert pack_dirents(batch, first, room) == plain
    # sizes as libfuse reckons them with no buffer (the adapter works out only what fits)
    for n in batch[:3]:
        assert dirent_size(n) == LIB.add_direntry(None, None, 0, n, None, 1)
        assert direntplus_size(n) == LIB.add_direntry_plus(None, None, 0, n, None, 1)


def test_timeouts_are_cut_as_libfuse_cuts_them():
    assert timeout(86400.0) == (86400, 0)
    assert timeout(1.5) == (1, 500_000_000)
    assert timeout(-3.0) == (0, 0)
    assert timeout(0.9999999999) == (0, 999_999_999)
    assert timeout(math.inf) == (2**64 - 1, 999_999_999)


def test_records_are_the_kernels_layout():
    """fuse_kernel.h: fuse_dirent is 24 bytes before its name, fuse_direntplus 128 + 24."""
    rec = PlusPacker(2.25, 3.5).entry(
        b"abc", 9, 77, as_stat((5, 0o100644, 1, 10, 20, 0, 100, 4096, 8, 1, 2, 3, 4, 5, 6))
    )
    assert len(rec) == 160
    nodeid, gen, entry_valid, attr_valid, entry_nsec, attr_nsec = struct.unpack_from("=QQQQII", rec, 0)
    assert (nodeid, gen, entry_valid, attr_valid, entry_nsec, attr_nsec) == (77, 0, 3, 2, 500_000_000, 250_000_000)
    ino, size, blocks, a, m, c, an, mn, cn, mode, nlink, uid, gid, rdev, blksize, flags = struct.unpack_from(
        "=QQQQQQIIIIIIIIII", rec, 40
    )
    assert (ino, size, blocks, a, m, c, an, mn, cn) == (5, 100, 8, 1, 3, 5, 2, 4, 6)
    assert (mode, nlink, uid, gid, rdev, blksize, flags) == (0o100644, 1, 10, 20, 0, 4096, 0)
    assert struct.unpack_from("=QQII", rec, 128) == (5, 9, 3, 0o100644 >> 12) and rec[152:] == b"abc\0\0\0\0\0"
