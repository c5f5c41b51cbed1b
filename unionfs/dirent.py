"""READDIR and READDIRPLUS replies packed in Python: the kernel's `struct fuse_dirent` and
`struct fuse_direntplus` (fuse_kernel.h), byte for byte what libfuse's fuse_add_direntry and
fuse_add_direntry_plus write (a test compares them through ctypes).

Why not libfuse's functions: they only fill the records, and a ctypes call per entry, with a
`struct stat` or `struct fuse_entry_param` built for it, cost more than the listing itself
(a 10,000-entry READDIR is ten replies of ~1,000 entries). Here a record is one
`Struct.pack`, and a reply one `bytes.join`.

Layouts (little or big endian as the machine, no padding between fields):

    fuse_dirent:     ino u64, off u64, namelen u32, type u32, name, NULs to a multiple of 8
    fuse_entry_out:  nodeid u64, generation u64, entry_valid u64, attr_valid u64,
                     entry_valid_nsec u32, attr_valid_nsec u32, fuse_attr
    fuse_attr:       ino, size, blocks, atime, mtime, ctime (u64); atimensec, mtimensec,
                     ctimensec, mode, nlink, uid, gid, rdev, blksize, flags (u32)
    fuse_direntplus: fuse_entry_out, then fuse_dirent

libfuse copies `struct stat` into `fuse_attr` field by field (convert_stat), so 64-bit
st_nlink, st_rdev and st_blksize are cut to their low 32 bits, as here; signed 64-bit fields
(size, blocks, times) keep their two's complement bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence

DIRENT_HEAD = 24  # fuse_dirent before its name (FUSE_NAME_OFFSET)
DIRENTPLUS_HEAD = 152  # fuse_entry_out (128) + fuse_dirent head (FUSE_NAME_OFFSET_DIRENTPLUS)
UNKNOWN_INO = 0xFFFFFFFF  # d_ino of an entry given without attributes (libfuse's high-level API's)
_LOW32 = 0xFFFFFFFF
_ULONG_MAX = 0xFFFFFFFFFFFFFFFF
_DIRENT = struct.Struct("=QQII")
_DIRENTPLUS = struct.Struct("=QQQQII" + "QqqqqqIIIIIIIIII" + "QQII")
assert _DIRENT.size == DIRENT_HEAD and _DIRENTPLUS.size == DIRENTPLUS_HEAD
#: a whole fuse_dirent for names of each padded length: head, name, NULs ("s" pads with them)
_RECORDS: dict[int, struct.Struct] = {}
_PLUS_RECORDS: dict[int, struct.Struct] = {}


def padded(length: int) -> int:
    """FUSE_DIRENT_ALIGN: a record's length rounded up to 8 bytes."""
    return (length + 7) & ~7


def dirent_size(name: bytes) -> int:
    """What fuse_add_direntry needs for `name` (what it returns when the buffer is too small)."""
    return DIRENT_HEAD + ((len(name) + 7) & ~7)


def direntplus_size(name: bytes) -> int:
    """What fuse_add_direntry_plus needs for `name`."""
    return DIRENTPLUS_HEAD + ((len(name) + 7) & ~7)


def _record(length: int) -> struct.Struct:
    rec = _RECORDS.get(length)
    if rec is None:
        rec = _RECORDS[length] = struct.Struct(f"=QQII{padded(length)}s")
    return rec


def _plus_record(length: int) -> struct.Struct:
    rec = _PLUS_RECORDS.get(length)
    if rec is None:
        rec = _PLUS_RECORDS[length] = struct.Struct(_DIRENTPLUS.format + f"{padded(length)}s")
    return rec


def timeout(seconds: float) -> tuple[int, int]:
    """(seconds, nanoseconds) of a timeout as libfuse's calc_timeout_sec/_nsec cut a double."""
    if seconds > float(_ULONG_MAX):
        whole = _ULONG_MAX
    elif seconds < 0.0:
        whole = 0
    else:
        whole = int(seconds) & _ULONG_MAX  # exactly 2**64: C's cast wraps to 0 there too
    frac = seconds - float(whole)
    if frac < 0.0:
        return whole, 0
    if frac >= 0.999999999:
        return whole, 999999999
    return whole, int(frac * 1.0e9)


def pack_dirents(
    names: Iterable[bytes], first_off: int, room: int, ino: int = UNKNOWN_INO, mode: int = 0, step: int = 1
) -> bytes:
    """A READDIR reply: the `names` that fit in `room` bytes, each with the offset of the next
    entry (`first_off` + `step`, + 2 `step`, …: `step` 1 for indexes, more for cookies that
    carry a listing's slot in their low bits, dir_cookies), inode number `ino` and the type of
    `mode`; the first name that does not fit ends the reply."""
    parts: list[bytes] = []
    used = 0
    off = first_off
    kind = (mode & 0o170000) >> 12
    records = _RECORDS
    for raw in names:
        length = len(raw)
        need = DIRENT_HEAD + ((length + 7) & ~7)
        if used + need > room:
            break
        used += need
        off += step
        rec = records.get(length) or _record(length)
        parts.append(rec.pack(ino, off, length, kind, raw))
    return b"".join(parts)


class PlusPacker:
    """READDIRPLUS records with a mount's attribute and entry timeouts worked out once."""

    def __init__(self, attr_timeout: float, entry_timeout: float) -> None:
        self.attr_valid, self.attr_nsec = timeout(attr_timeout)
        self.entry_valid, self.entry_nsec = timeout(entry_timeout)

    def entry(self, raw: bytes, off: int, nodeid: int, st: Sequence[int]) -> bytes:
        """One fuse_direntplus: node `nodeid` with the attributes `st` (the core's `Stat`, as
        ll_ops shows it), for the name `raw` at offset `off` (the next entry's)."""
        mode, ino, _dev, nlink, uid, gid, size, at, mt, ct, rdev, blocks, blksize = st
        a, an = divmod(at, 1_000_000_000)
        m, mn = divmod(mt, 1_000_000_000)
        c, cn = divmod(ct, 1_000_000_000)
        length = len(raw)
        rec = _PLUS_RECORDS.get(length) or _plus_record(length)
        return rec.pack(
            nodeid, 0, self.entry_valid, self.attr_valid, self.entry_nsec, self.attr_nsec,
            ino, size, blocks, a, m, c, an & _LOW32, mn & _LOW32, cn & _LOW32, mode & _LOW32, nlink & _LOW32,
            uid & _LOW32, gid & _LOW32, rdev & _LOW32, blksize & _LOW32, 0,
            ino, off, length, (mode & 0o170000) >> 12, raw,
        )  # fmt: skip

    @staticmethod
    def bare(raw: bytes, off: int, mode: int = 0) -> bytes:
        """A fuse_direntplus without a node (the kernel takes only the name and type): what
        libfuse writes for a zeroed fuse_entry_param whose st_ino is UNKNOWN_INO."""
        length = len(raw)
        rec = _PLUS_RECORDS.get(length) or _plus_record(length)
        return rec.pack(
            0, 0, 0, 0, 0, 0,
            UNKNOWN_INO, 0, 0, 0, 0, 0, 0, 0, 0, mode & _LOW32, 0, 0, 0, 0, 0, 0,
            UNKNOWN_INO, off, length, (mode & 0o170000) >> 12, raw,
        )  # fmt: skip
