"""Layer tars: written byte for byte as moby's archive package and Go's archive/tar write them, and applied safely.

Why byte for byte: a layer's DiffID is the sha256 of its tar, so the same directory must give
the same tar (and the same ID) as Docker gives. Moby asks Go for PAX format, which Go turns into
a plain USTAR header whenever USTAR can hold the entry, and into a `PaxHeaders.0/<name>` extended
header plus a USTAR-shaped header otherwise (long names, xattrs, big uids). The archive ends with
two zero blocks and nothing more: an empty layer is 1024 zero bytes (spec §3.3).

Applying refuses anything that would write outside the target (`../`, absolute names, writes
through a symlink, links that leave the layer) and builds the layer in a temporary directory
that is renamed into place only when the whole tar was good.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import io
import json
import os
import re
import shutil
import stat
import struct
import tarfile
import tempfile
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Protocol, TypeVar

from . import fstree

BLOCK = 512
WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."
WHITEOUT_OPAQUE = ".wh..wh..opq"
OPAQUE_XATTRS = ("trusted.overlay.opaque", "user.overlay.opaque")
PRIVATE_XATTR_PREFIXES = ("trusted.overlay.", "user.overlay.", "user.layerfs.", "user.fuseoverlayfs.")

#: On-disk whiteout encodings a layer directory can use.
ENCODING_OVERLAY = "overlay"  # char device 0/0, opaque xattr
ENCODING_AUFS = "aufs"  # `.wh.NAME` files, `.wh..wh..opq`

_CHUNK = 1 << 20
HOLE_MIN = 1 << 20  # holes at least this long are kept as holes when a layer tar is written
MAX_SPECIAL = 1 << 20  # PAX/long-name headers and sparse maps (Go's maxSpecialFileSize)
MAX_SPARSE_REGIONS = 1 << 16
MAX_TRAILING = 16 << 20  # bytes after the end-of-archive blocks that are still hashed
COPY_DIRECT = 64 << 10  # members this big are copied from under tarfile's 10 KiB records (Applier.copy_direct)
NAME_MAX = 255


_T = TypeVar("_T")


class ArchiveError(ValueError):
    """A tar that cannot be written or applied; str() is one line for the user."""


class ByteStream(Protocol):
    """What a layer tar is read from: a file, a pipe, a gzip reader or a progress wrapper."""

    def read(self, n: int = -1, /) -> bytes: ...


@functools.cache
def default_encoding() -> str:
    """The kernel's marks where this process can write them: root always; another user where
    the kernel lets anyone make the 0/0 whiteout device (Linux 5.8 and later), with
    `user.overlay.*` xattrs, as the kernel's OverlayFS itself does with `userxattr`. Else the
    aufs/OCI `.wh.` files, which need no privilege."""
    if os.geteuid() == 0:
        return ENCODING_OVERLAY
    try:
        with tempfile.TemporaryDirectory(prefix="imagegraph-probe-") as d:
            os.mknod(os.path.join(d, "wh"), stat.S_IFCHR | 0o600, os.makedev(0, 0))
    except OSError:
        return ENCODING_AUFS
    return ENCODING_OVERLAY


# --------------------------------------------------------------------------------------
# Writing: Go's archive/tar header encoding
# --------------------------------------------------------------------------------------

TYPE_REG, TYPE_LINK, TYPE_SYMLINK, TYPE_CHAR, TYPE_BLOCK, TYPE_DIR, TYPE_FIFO = b"0", b"1", b"2", b"3", b"4", b"5", b"6"


@dataclass
class TarEntry:
    """One tar header as moby builds it (archive.FileInfoHeader) before Go encodes it."""

    name: str
    typeflag: bytes
    mode: int = 0
    uid: int = 0
    gid: int = 0
    size: int = 0
    mtime: int = 0
    linkname: str = ""
    devmajor: int = 0
    devminor: int = 0
    xattrs: dict[str, bytes] = field(default_factory=dict)
    source: Callable[[], int] | None = None  # opens the file whose bytes follow the header
    pax: dict[bytes, bytes] = field(default_factory=dict)  # extra PAX records (sparse files)


_NOT_ASCII = bytes([0, *range(0x80, 0x100)])


def _is_ascii(b: bytes) -> bool:
    return b.isascii() and b"\0" not in b


def _to_ascii(b: bytes) -> bytes:
    return b.translate(None, _NOT_ASCII)


def _fits_octal(width: int, n: int) -> bool:
    return 0 <= n < (1 << (3 * (width - 1)))


def _fmt_string(buf: bytearray, off: int, width: int, s: bytes) -> None:
    """Go's formatter.formatString: copy, NUL-terminate if room, never end a cut name in '/'."""
    if len(s) > width:
        cut = s[:width]
        if cut.endswith(b"/"):
            cut = cut.rstrip(b"/")
        buf[off : off + len(cut)] = cut
        return
    buf[off : off + len(s)] = s


def _fmt_octal(buf: bytearray, off: int, width: int, n: int) -> None:
    """Go's formatter.formatOctal: zero-padded to width-1 digits and a NUL; 0 when it cannot fit."""
    if not _fits_octal(width, n):
        n = 0
    s = format(n, "o").encode()
    s = s.rjust(width - 1, b"0")
    _fmt_string(buf, off, width, s)


def _set_format_ustar(buf: bytearray) -> None:
    buf[257:263] = b"ustar\x00"
    buf[263:265] = b"00"
    buf[148:156] = b" " * 8
    chk = sum(buf)
    field_ = bytearray(8)
    _fmt_octal(field_, 0, 7, chk)
    field_[7] = 0x20
    buf[148:156] = field_


def _split_ustar_path(name: bytes) -> tuple[bytes, bytes] | None:
    """Go's splitUSTARPath: a long ASCII name split into the 155-byte prefix and 100-byte name."""
    length = len(name)
    if length <= 100 or not _is_ascii(name):
        return None
    if length > 156:
        length = 156
    elif name[length - 1 : length] == b"/":
        length -= 1
    i = name.rfind(b"/", 0, length)
    nlen = len(name) - i - 1
    if i <= 0 or nlen > 100 or nlen == 0 or i > 155:
        return None
    return name[:i], name[i + 1 :]


def _v7_plus(e: TarEntry, name: bytes, fmt_name: Callable[[bytearray, int, int, bytes], None]) -> bytearray:
    """Go's templateV7Plus: every USTAR field but magic and checksum."""
    buf = bytearray(BLOCK)
    buf[156:157] = e.typeflag
    fmt_name(buf, 0, 100, name)
    fmt_name(buf, 157, 100, os.fsencode(e.linkname))
    _fmt_octal(buf, 100, 8, e.mode)
    _fmt_octal(buf, 108, 8, e.uid)
    _fmt_octal(buf, 116, 8, e.gid)
    _fmt_octal(buf, 124, 12, e.size)
    _fmt_octal(buf, 136, 12, e.mtime)
    _fmt_string(buf, 265, 32, b"")  # uname: moby does no user lookups
    _fmt_string(buf, 297, 32, b"")
    _fmt_octal(buf, 329, 8, e.devmajor)
    _fmt_octal(buf, 337, 8, e.devminor)
    return buf


def _pax_record(key: bytes, value: bytes) -> bytes:
    size = len(key) + len(value) + 3
    size += len(str(size))
    rec = str(size).encode() + b" " + key + b"=" + value + b"\n"
    if len(rec) != size:
        size = len(rec)
        rec = str(size).encode() + b" " + key + b"=" + value + b"\n"
    return rec


def _pad(n: int) -> bytes:
    return b"\0" * (-n % BLOCK)


_USTAR_MAGIC_AND_OWNERS = b"ustar\x0000" + bytes(64)  # magic, version, empty uname and gname
_MAGIC_SUM = sum(_USTAR_MAGIC_AND_OWNERS)
_PREFIX_AND_END = bytes(167)
_OCTAL7, _OCTAL11 = 1 << 21, 1 << 33  # what 7 and 11 octal digits hold


def _plain_ustar(e: TarEntry, name: bytes, link: bytes) -> bytes | None:
    """The common case in one formatting step: a short ASCII name and link target, numbers
    that fit, no xattrs. The same bytes `encode_header` builds field by field; None otherwise."""
    if len(name) > 100 or len(link) > 100 or e.xattrs or e.pax or not (_is_ascii(name) and _is_ascii(link)):
        return None
    if not (
        0 <= e.mode < _OCTAL7
        and 0 <= e.uid < _OCTAL7
        and 0 <= e.gid < _OCTAL7
        and 0 <= e.size < _OCTAL11
        and 0 <= e.mtime < _OCTAL11
        and 0 <= e.devmajor < _OCTAL7
        and 0 <= e.devminor < _OCTAL7
    ):
        return None
    numbers = b"%07o\0%07o\0%07o\0%011o\0%011o\0" % (e.mode, e.uid, e.gid, e.size, e.mtime)
    devices = b"%07o\0%07o\0" % (e.devmajor, e.devminor)
    # The checksum counts its own field as spaces; NULs add nothing.
    checksum = sum(name) + sum(numbers) + 8 * 0x20 + e.typeflag[0] + sum(link) + _MAGIC_SUM + sum(devices)
    return b"".join(
        (
            name.ljust(100, b"\0"),
            numbers,
            b"%06o\0 " % checksum,
            e.typeflag,
            link.ljust(100, b"\0"),
            _USTAR_MAGIC_AND_OWNERS,
            devices,
            _PREFIX_AND_END,
        )
    )


def encode_header(e: TarEntry) -> bytes:
    """The header block(s) Go's tar.Writer writes for `e` with Format=PAX (moby's choice)."""
    name = os.fsencode(e.name)
    link = os.fsencode(e.linkname)
    plain = _plain_ustar(e, name, link)
    if plain is not None:
        return plain
    return _encode_header(e, name, link)


def _encode_header(e: TarEntry, name: bytes, link: bytes) -> bytes:
    pax: dict[bytes, bytes] = {}
    ustar_ok = True
    if not _is_ascii(name) or len(name) > 100:
        pax[b"path"] = name
        if _split_ustar_path(name) is None:
            ustar_ok = False
    if not _is_ascii(link) or len(link) > 100:
        pax[b"linkpath"] = link
        ustar_ok = False
    for key, value, width in ((b"uid", e.uid, 8), (b"gid", e.gid, 8), (b"size", e.size, 12), (b"mtime", e.mtime, 12)):
        if not _fits_octal(width, value):
            pax[key] = str(value).encode()
            ustar_ok = False
    for k, v in e.xattrs.items():
        pax[b"SCHILY.xattr." + k.encode()] = v
        ustar_ok = False
    if e.pax:
        pax.update(e.pax)
        ustar_ok = False
    if ustar_ok:
        prefix = b""
        split = _split_ustar_path(name)
        if split:
            prefix, name = split
        buf = _v7_plus(e, name, _fmt_string)
        _fmt_string(buf, 345, 155, prefix)
        _set_format_ustar(buf)
        return bytes(buf)
    # PAX: an extended header file named PaxHeaders.0 beside the entry, then the entry.
    data = b"".join(_pax_record(k, pax[k]) for k in sorted(pax))
    head, _, tail = name.rpartition(b"/") if not name.endswith(b"/") else (name.rstrip(b"/"), b"", b"")
    xname = (head + b"/" if head else b"") + b"PaxHeaders.0" + (b"/" + tail if tail else b"")
    xname = _to_ascii(xname)[:100].rstrip(b"/")
    xbuf = bytearray(BLOCK)
    xbuf[156:157] = b"x"
    _fmt_string(xbuf, 0, 100, xname)
    for off, width, n in ((100, 8, 0), (108, 8, 0), (116, 8, 0), (124, 12, len(data)), (136, 12, 0)):
        _fmt_octal(xbuf, off, width, n)
    _set_format_ustar(xbuf)
    buf = _v7_plus(e, name, lambda b, o, w, s: _fmt_string(b, o, w, _to_ascii(s)))
    _set_format_ustar(buf)
    return bytes(xbuf) + data + _pad(len(data)) + bytes(buf)


def _list_xattrs(path: str) -> dict[str, bytes]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    out = {}
    for n in sorted(names):
        if n.startswith(PRIVATE_XATTR_PREFIXES):
            continue
        try:
            out[n] = os.getxattr(path, n, follow_symlinks=False)
        except OSError:
            continue
    return out


def is_opaque_dir(path: str) -> bool:
    """Whether the directory carries an overlay opaque mark (trusted. or user.)."""
    for n in OPAQUE_XATTRS:
        try:
            if os.getxattr(path, n, follow_symlinks=False) == b"y":
                return True
        except OSError:
            continue
    return False


class _Opener:
    """Opens an entry's file relative to its directory: valid while the walk stands at the entry."""

    def __init__(self, dir_fd: int, name: str, rel: str) -> None:
        self.dir_fd, self.name, self.rel = dir_fd, name, rel

    def __call__(self) -> int:
        fd = os.open(self.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=self.dir_fd)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise ArchiveError(f"{self.rel}: changed while it was archived")
        return fd


def layer_entries(src_dir: str | os.PathLike[str]) -> Generator[TarEntry, None, None]:
    """The tar entries of a layer directory, in order, with whiteouts in the OCI form.

    Either on-disk encoding is read: char 0/0 and the opaque xattr become `.wh.` files (moby's
    overlayWhiteoutConverter), `.wh.` files are kept; aufs bookkeeping (`.wh..wh.plnk` etc.)
    and sockets are left out, as moby leaves them out. The walk never recurses and names
    every entry relative to its open directory, so any depth works (fstree).
    """
    seen_inodes: dict[tuple[int, int], str] = {}
    try:
        for ent in fstree.walk(src_dir):
            rel, base, st = ent.rel, ent.name, ent.st
            if base.startswith(WHITEOUT_META_PREFIX) and base != WHITEOUT_OPAQUE:
                ent.descend = False
                continue
            m = st.st_mode
            if stat.S_ISSOCK(m):
                continue
            dfd = ent.dir_fd()
            assert dfd is not None
            xpath = fstree.xattr_path(dfd, base)
            e = TarEntry(
                name=rel, typeflag=TYPE_REG, mode=stat.S_IMODE(m), uid=st.st_uid, gid=st.st_gid, mtime=int(st.st_mtime)
            )
            if stat.S_ISREG(m):
                e.size, e.source = st.st_size, _Opener(dfd, base, rel)
            elif stat.S_ISDIR(m):
                e.typeflag, e.name = TYPE_DIR, rel + "/"
            elif stat.S_ISLNK(m):
                e.typeflag, e.linkname = TYPE_SYMLINK, os.readlink(base, dir_fd=dfd)
            elif stat.S_ISCHR(m) or stat.S_ISBLK(m):
                e.typeflag = TYPE_CHAR if stat.S_ISCHR(m) else TYPE_BLOCK
                e.devmajor, e.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
            elif stat.S_ISFIFO(m):
                e.typeflag = TYPE_FIFO
            e.xattrs = _list_xattrs(xpath)
            if not stat.S_ISDIR(m) and st.st_nlink > 1:
                key = (st.st_dev, st.st_ino)
                if key in seen_inodes:
                    e.typeflag, e.linkname, e.size, e.source = TYPE_LINK, seen_inodes[key], 0, None
                else:
                    seen_inodes[key] = rel
            if stat.S_ISCHR(m) and st.st_rdev == 0:  # overlay whiteout -> OCI whiteout file
                head, _, tail = rel.rpartition("/")
                e.name = (head + "/" if head else "") + WHITEOUT_PREFIX + tail
                e.typeflag, e.mode, e.size, e.source, e.linkname = TYPE_REG, 0o600, 0, None, ""
            yield e
            if stat.S_ISDIR(m) and is_opaque_dir(xpath):
                yield TarEntry(
                    name=rel + "/" + WHITEOUT_OPAQUE,
                    typeflag=TYPE_REG,
                    mode=stat.S_IMODE(m) & 0o777,
                    uid=st.st_uid,
                    gid=st.st_gid,
                    mtime=0,
                )
    except fstree.TreeError as exc:
        raise ArchiveError(f"cannot archive {os.fspath(src_dir)}: {exc}") from None
    except PermissionError as exc:
        raise ArchiveError(f"cannot read {os.fspath(src_dir)}: {exc.strerror}") from None


def data_regions(fd: int, size: int) -> list[tuple[int, int]] | None:
    """The file's data as (offset, length) when it has holes of at least HOLE_MIN, else None.

    SEEK_DATA/SEEK_HOLE find the holes the filesystem knows; smaller holes are read as zeros,
    as Docker writes every hole.
    """
    if size < HOLE_MIN:
        return None
    found: list[tuple[int, int]] = []
    pos = 0
    try:
        while pos < size:
            try:
                data = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno == errno.ENXIO:
                    break  # a hole from here to the end
                raise
            if data >= size:
                break
            hole = min(os.lseek(fd, data, os.SEEK_HOLE), size)
            found.append((data, hole))
            pos = hole
    except OSError as exc:
        if exc.errno in (errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP):
            return None
        raise
    finally:
        os.lseek(fd, 0, os.SEEK_SET)
    merged: list[list[int]] = []
    for start, end in found:  # holes smaller than HOLE_MIN stay inside the data, as zeros
        if merged and start - merged[-1][1] < HOLE_MIN:
            merged[-1][1] = end
        elif not merged and start < HOLE_MIN:
            merged.append([0, end])
        else:
            merged.append([start, end])
    if merged and size - merged[-1][1] < HOLE_MIN:
        merged[-1][1] = size
    if size - sum(end - start for start, end in merged) < HOLE_MIN:
        return None
    regions = [(start, end - start) for start, end in merged]
    if not regions or regions[-1][0] + regions[-1][1] < size:
        regions.append((size, 0))  # GNU tar's convention: the map ends at the real size
    return regions


def _sparse_entry(e: TarEntry, regions: list[tuple[int, int]]) -> tuple[TarEntry, bytes]:
    """The entry as a PAX sparse file (GNU format 1.0, which Go's and Python's readers apply)."""
    text = f"{len(regions)}\n" + "".join(f"{off}\n{n}\n" for off, n in regions)
    map_block = text.encode() + _pad(len(text))
    head, _, tail = e.name.rpartition("/")
    fallback = (head + "/" if head else "") + "GNUSparseFile.0/" + tail  # for readers without sparse support
    if len(os.fsencode(fallback)) > 100 or not _is_ascii(os.fsencode(fallback)):
        fallback = "GNUSparseFile.0/" + _to_ascii(os.fsencode(tail))[:80].decode()  # no PAX path: the name is
    sparse = TarEntry(  # in GNU.sparse.name, which Python would let a later `path` record override
        name=fallback,
        typeflag=TYPE_REG,
        mode=e.mode,
        uid=e.uid,
        gid=e.gid,
        size=len(map_block) + sum(n for _, n in regions),
        mtime=e.mtime,
        xattrs=e.xattrs,
        pax={
            b"GNU.sparse.major": b"1",
            b"GNU.sparse.minor": b"0",
            b"GNU.sparse.name": os.fsencode(e.name),
            b"GNU.sparse.realsize": str(e.size).encode(),
        },
    )
    return sparse, map_block


def _copy_range(f: BinaryIO, offset: int, length: int, short: str) -> Iterator[bytes]:
    """`length` bytes of `f` from `offset`, in chunks; `short` is the error if they are not there."""
    f.seek(offset)
    left = length
    while left:
        chunk = f.read(min(_CHUNK, left))
        if not chunk:
            raise ArchiveError(short)
        left -= len(chunk)
        yield chunk


@dataclass(frozen=True)
class FileRange:
    """`length` bytes of the open file `fd` from `offset`: a part of a tar that a writer can
    copy inside the kernel (sendfile) instead of through Python. Valid until the next part."""

    fd: int
    offset: int
    length: int
    name: str  # for the error when the file is shorter


def layer_tar_parts(src_dir: str | os.PathLike[str]) -> Iterator[bytes | FileRange]:
    """The layer tar of `src_dir` as headers and padding (bytes) and file data (FileRange).

    A file with large holes is written as a sparse member, so a 1 TiB sparse file stays small.
    """
    for e in layer_entries(src_dir):
        if e.source is None or not e.size:
            yield encode_header(e)
            continue
        fd = e.source()
        try:
            yield from _file_parts(e, fd)
        finally:
            os.close(fd)
    yield b"\0" * (2 * BLOCK)


def _file_parts(e: TarEntry, fd: int) -> Iterator[bytes | FileRange]:
    """One regular file's member: a file with large holes becomes a sparse member."""
    regions = data_regions(fd, e.size)
    if regions is None:
        yield encode_header(e)
        yield FileRange(fd, 0, e.size, e.name)
        yield _pad(e.size)
        return
    sparse, map_block = _sparse_entry(e, regions)
    yield encode_header(sparse)
    yield map_block
    for off, n in regions:
        yield FileRange(fd, off, n, e.name)
    yield _pad(sparse.size)


def read_range(part: FileRange) -> Iterator[bytes]:
    """A FileRange's bytes, in chunks; a file shorter than the range is an error."""
    pos, end = part.offset, part.offset + part.length
    while pos < end:
        chunk = os.pread(part.fd, min(_CHUNK, end - pos), pos)
        if not chunk:
            raise ArchiveError(f"{part.name}: file shrank while it was archived")
        pos += len(chunk)
        yield chunk


def iter_layer_tar(src_dir: str | os.PathLike[str]) -> Iterator[bytes]:
    """The layer tar of `src_dir` as a stream of chunks, never held whole in memory."""
    for part in layer_tar_parts(src_dir):
        if isinstance(part, bytes):
            yield part
        else:
            yield from read_range(part)


def file_member(e: TarEntry, f: BinaryIO) -> Iterator[bytes]:
    """One regular file's header and data (`e.size` bytes of `f`); a file with large holes
    becomes a sparse member, so a 1 TiB sparse file stays small in any tar we write."""
    for part in _file_parts(e, f.fileno()):
        if isinstance(part, bytes):
            yield part
        else:
            yield from read_range(part)


@dataclass(frozen=True)
class TarResult:
    diff_id: str
    tar_size: int
    headers: str  # headers_digest of the tree, from the same pass


def write_layer_tar(src_dir: str | os.PathLike[str], out: BinaryIO | None = None) -> TarResult:
    """Write (to `out`, if given) and hash the layer tar of `src_dir` in one pass."""
    h, heads = hashlib.sha256(), hashlib.sha256()
    n = 0
    for e in layer_entries(src_dir):
        heads.update(encode_header(e))
        if e.source is None or not e.size:
            chunks: Iterable[bytes] = (encode_header(e),)
        else:
            f = os.fdopen(e.source(), "rb")
            chunks = _closing_chunks(f, file_member(e, f))
        for chunk in chunks:
            h.update(chunk)
            n += len(chunk)
            if out is not None:
                out.write(chunk)
    end = b"\0" * (2 * BLOCK)
    h.update(end)
    if out is not None:
        out.write(end)
    return TarResult("sha256:" + h.hexdigest(), n + len(end), "sha256:" + heads.hexdigest())


def _closing_chunks(f: BinaryIO, chunks: Iterator[bytes]) -> Iterator[bytes]:
    with f:
        yield from chunks


def is_empty_layer(src_dir: str | os.PathLike[str]) -> bool:
    """Whether the layer tar of `src_dir` has no entry (it is the empty layer's 1024 zero bytes)."""
    entries = layer_entries(src_dir)
    try:
        return next(entries, None) is None
    finally:
        entries.close()  # the walk's open directories


def headers_digest(src_dir: str | os.PathLike[str]) -> str:
    """The sha256 of the headers alone of `src_dir`'s layer tar (no file is read).

    Two trees with the same headers digest give the same tar wherever their files hold the
    same bytes (and none is sparse): how a layer extracted from our own tar is checked to
    reproduce it, without reading and hashing its data a second time."""
    h = hashlib.sha256()
    for e in layer_entries(src_dir):
        h.update(encode_header(e))
    return "sha256:" + h.hexdigest()


def layer_tar_size(src_dir: str | os.PathLike[str]) -> int:
    """The length of `iter_layer_tar(src_dir)` without reading its files' data: what a tar
    that embeds the layer (save) must declare before the bytes follow."""
    total = 2 * BLOCK
    for e in layer_entries(src_dir):
        if e.source is None or not e.size:
            total += len(encode_header(e))
            continue
        fd = e.source()
        try:
            regions = data_regions(fd, e.size)
        finally:
            os.close(fd)
        if regions is None:
            total += len(encode_header(e)) + e.size + len(_pad(e.size))
        else:
            sparse, map_block = _sparse_entry(e, regions)
            total += len(encode_header(sparse)) + sparse.size + len(_pad(sparse.size))
    return total


# --------------------------------------------------------------------------------------
# Applying
# --------------------------------------------------------------------------------------


class _HashingReader:
    """Hashes every byte read, so the DiffID comes from the same pass that extracts."""

    def __init__(self, raw: ByteStream, hashing: bool = True) -> None:
        self.raw = raw
        self.hash = hashlib.sha256()
        self.hashing = hashing
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        b = self.raw.read(n)
        if self.hashing:
            self.hash.update(b)
        self.count += len(b)
        return b

    def view_unhashed(self) -> Callable[[int], memoryview] | None:
        """The stream's own `read_view` (unpack.LayerReader: up to n bytes of what it holds,
        without a copy) when this reader has nothing to hash; else None."""
        read_view: Callable[[int], memoryview] | None = getattr(self.raw, "read_view", None)
        return None if self.hashing else read_view

    def readinto_unhashed(self, view: memoryview) -> int:
        """Read into `view`, counted but not hashed: the caller hashes it, in order."""
        raw_readinto = getattr(self.raw, "readinto", None)
        if raw_readinto is None:
            b = self.raw.read(len(view))
            n = len(b)
            view[:n] = b
        else:
            n = raw_readinto(view) or 0
        self.count += n
        return n

    def drain(self, limit: int | None = None) -> None:
        """Read (and hash) to the end; more than `limit` bytes is refused (an endless stream)."""
        start = self.count
        while self.read(_CHUNK):
            if limit is not None and self.count - start > limit:
                raise ArchiveError(
                    f"refusing to apply layer: more than {limit >> 20} MiB of data after the end of the archive"
                )


@dataclass(frozen=True)
class ApplyResult:
    diff_id: str
    size: int  # sum of the entries' sizes, as moby's UnpackLayer counts it
    sparse: bool = False  # a member was a sparse file: the directory may not give the same tar back


def write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _write_views(
    read_view: Callable[[int], memoryview], reader: _HashingReader, out: int, size: int, short: str
) -> None:
    """`size` bytes from a stream that hands out views of what it holds, written to the fd `out`
    as they come (a pull's big member: the inflater's output is written where it lies)."""
    left = size
    while left:
        view = read_view(min(left, _CHUNK))
        if not view:
            raise ArchiveError(short)
        write_all(out, view)
        reader.count += len(view)
        left -= len(view)


class HashedCopy:
    """Big data copied to a file in 1 MiB chunks while a second thread hashes each chunk:
    hashlib and os.write both release the GIL, so the hash costs no time of its own. Two
    buffers: the next chunk is read while the last is still hashed."""

    def __init__(self) -> None:
        self.pool: ThreadPoolExecutor | None = None
        self.buffers = (bytearray(_CHUNK), bytearray(_CHUNK))

    def copy(self, fill: Callable[[memoryview], int], out: int, size: int, h: Any, short: str) -> None:
        """`size` bytes from `fill` (readinto) to the fd `out`, each hashed into `h` (None: not
        hashed) in order; fewer bytes than `size` raise ArchiveError(`short`)."""
        if self.pool is None and h is not None:
            self.pool = ThreadPoolExecutor(1, thread_name_prefix="imagegraph-hash")
        pending: Future[None] | None = None
        left, i = size, 0
        try:
            while left:
                view = memoryview(self.buffers[i % 2])[: min(left, _CHUNK)]
                n = fill(view)
                if not n:
                    raise ArchiveError(short)
                if pending is not None:
                    pending.result()
                    pending = None
                if self.pool is not None and h is not None:
                    pending = self.pool.submit(h.update, view[:n])
                write_all(out, view[:n])
                left -= n
                i += 1
        finally:
            if pending is not None:
                pending.result()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()


def _q(name: str) -> str:
    """A name for an error message: quoted and escaped as Go's %q (one line), long ones shortened."""
    if len(name) > 160:
        name = name[:80] + "…" + name[-60:]
    return json.dumps(name, ensure_ascii=False)


def os_error_text(exc: OSError) -> str:
    """strerror as Go prints it ("no space left on device"), without the path Python adds."""
    text = exc.strerror or str(exc)
    return text[:1].lower() + text[1:]


_LONG_NAME = re.compile(rb"[^/]{%d}" % (NAME_MAX + 1))


def clean_name(name: str) -> str | None:
    """The entry's path relative to the layer root; None for the root itself. Refuses escapes.

    String operations only (no loop per component): a 5,000-deep layer has 5,000 names of
    5,000 components each.
    """
    if name.startswith("/"):
        raise ArchiveError(f"refusing to apply layer: absolute path {_q(name)} in archive")
    if "\0" in name:
        raise ArchiveError(f"refusing to apply layer: {_q(name)} holds a NUL byte")
    padded = f"/{name}/"
    if "//" in padded or "/./" in padded:
        parts = [p for p in name.split("/") if p not in ("", ".")]
        padded = "/" + "/".join(parts) + "/"
    if "/../" in padded:
        raise ArchiveError(f"refusing to apply layer: {_q(name)} is outside of the layer root")
    rel = padded[1:-1]
    if rel and _LONG_NAME.search(os.fsencode(rel)):
        raise ArchiveError(f"refusing to apply layer: a name in {_q(name)} is longer than {NAME_MAX} bytes")
    return rel or None


_SPECIAL_TYPES: tuple[bytes, ...] = (
    tarfile.XHDTYPE,
    tarfile.XGLTYPE,
    tarfile.SOLARIS_XHDTYPE,
    tarfile.GNUTYPE_LONGNAME,
    tarfile.GNUTYPE_LONGLINK,
)


# name, mode, uid, gid, size, mtime, chksum, typeflag, linkname, magic, version, uname, gname,
# devmajor, devminor, prefix (and 12 unused bytes): a USTAR header's fields.
_HEADER_FIELDS = struct.Struct("100s8s8s8s12s12s8sc100s6s2s32s32s8s8s155s12x")
# Types whose header tarfile's frombuf reads with no rule of their own (not the old-style
# regular file "\0", a GNU long name or link, or an old GNU sparse file).
_PLAIN_HEADER_TYPES = frozenset(b"01234567xg")
_TI = TypeVar("_TI", bound=tarfile.TarInfo)


def _octal_number(field: bytes) -> int:
    """tarfile's `nti` for a field in octal digits; ValueError for anything else (base-256)."""
    return int(field.split(b"\0", 1)[0].strip() or b"0", 8)


def _plain_frombuf(cls: type[_TI], buf: bytes | bytearray, encoding: str, errors: str) -> _TI | None:
    """tarfile's `TarInfo.frombuf` for the usual header (octal numbers, a valid unsigned
    checksum, a type without a rule of its own) in one unpack: the same object, a third of its
    time. None for any other header, which tarfile's own parser then reads (and refuses)."""
    if len(buf) != BLOCK or buf[156] not in _PLAIN_HEADER_TYPES:
        return None
    name, mode, uid, gid, size, mtime, chk, kind, link, _, _, uname, gname, major, minor, prefix = (
        _HEADER_FIELDS.unpack(buf)
    )
    try:
        chksum = _octal_number(chk)
        if chksum != 256 + sum(buf) - sum(chk):
            return None  # a signed checksum, or a bad one: tarfile decides
        obj = cls()
        obj.name = name.split(b"\0", 1)[0].decode(encoding, errors)
        obj.mode = _octal_number(mode)
        obj.uid = _octal_number(uid)
        obj.gid = _octal_number(gid)
        obj.size = _octal_number(size)
        obj.mtime = _octal_number(mtime)
        obj.devmajor = _octal_number(major)
        obj.devminor = _octal_number(minor)
        obj.linkname = link.split(b"\0", 1)[0].decode(encoding, errors)
        obj.uname = uname.split(b"\0", 1)[0].decode(encoding, errors)
        obj.gname = gname.split(b"\0", 1)[0].decode(encoding, errors)
        head = prefix.split(b"\0", 1)[0].decode(encoding, errors)
    except ValueError:
        return None
    obj.chksum = chksum
    obj.type = kind
    if kind == tarfile.DIRTYPE:
        obj.name = obj.name.rstrip("/")
    if head:
        obj.name = head + "/" + obj.name
    return obj


class BoundedTarInfo(tarfile.TarInfo):
    """Python's header parsing with Go's limits: tarfile reads a PAX or long-name header, and a
    sparse map, whole into memory whatever size the archive declares; Go stops at 1 MiB. The
    usual header is parsed in one step (`_plain_frombuf`), the rest by tarfile.

    It overrides tarfile's private `_proc_*` steps, which the stubs do not know: `Any` stands
    for them below."""

    @classmethod
    def frombuf(cls, buf: bytes | bytearray, encoding: str, errors: str) -> BoundedTarInfo:
        plain = _plain_frombuf(cls, buf, encoding, errors)
        if plain is not None:
            return plain
        parsed: Any = super().frombuf(buf, encoding, errors)
        return parsed

    def _proc_member(self, tarfile_: tarfile.TarFile) -> tarfile.TarInfo | None:
        if self.type in _SPECIAL_TYPES and self.size > MAX_SPECIAL:
            raise ArchiveError(
                f"refusing to apply layer: an extended header of {self.size} bytes (more than {MAX_SPECIAL >> 20} MiB)"
            )
        parent: Any = super()
        result: tarfile.TarInfo | None = parent._proc_member(tarfile_)
        return result

    def _proc_gnusparse_10(
        self, next_: tarfile.TarInfo, pax_headers: dict[str, str], tarfile_: tarfile.TarFile
    ) -> None:
        buf = tarfile_.fileobj.read(BLOCK)
        head, buf = buf.split(b"\n", 1)
        fields = int(head)
        if not 0 <= fields <= MAX_SPARSE_REGIONS:
            raise ArchiveError(f"refusing to apply layer: a sparse map of {fields} regions")
        numbers: list[int] = []
        read = BLOCK
        while len(numbers) < fields * 2:
            if b"\n" not in buf:
                more = tarfile_.fileobj.read(BLOCK)
                read += BLOCK
                if not more or read > MAX_SPECIAL:
                    raise ArchiveError("broken tar archive: invalid sparse map")
                buf += more
            number, buf = buf.split(b"\n", 1)
            numbers.append(int(number))
        target: Any = next_  # the stubs type `sparse` as bytes; tarfile keeps (offset, size) pairs
        target.offset_data = tarfile_.fileobj.tell()
        target.sparse = list(zip(numbers[::2], numbers[1::2], strict=True))

    def _proc_sparse(self, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:
        me: Any = self  # _sparse_structs, sparse and _block are tarfile's private parts
        structs, isextended, origsize = me._sparse_structs
        del me._sparse_structs
        nti: Any = vars(tarfile)["nti"]  # tarfile's number parser, not in the stubs
        blocks = 0
        while isextended:
            blocks += 1
            if blocks * BLOCK > MAX_SPECIAL:
                raise ArchiveError("refusing to apply layer: a sparse map of more than 1 MiB")
            buf = tarfile_.fileobj.read(BLOCK)
            if len(buf) < BLOCK:
                raise ArchiveError("broken tar archive: unexpected end of data")
            pos = 0
            for _ in range(21):
                try:
                    offset = nti(buf[pos : pos + 12])
                    numbytes = nti(buf[pos + 12 : pos + 24])
                except ValueError:
                    break
                if offset and numbytes:
                    structs.append((offset, numbytes))
                pos += 24
            isextended = bool(buf[504])
        me.sparse = structs
        self.offset_data = tarfile_.fileobj.tell()
        tarfile_.offset = self.offset_data + me._block(self.size)
        self.size = origsize
        return self


def _check_sparse(m: tarfile.TarInfo, rel: str, data_end: int) -> list[tuple[int, int]]:
    """Go's validateSparseEntries: regions in order, apart, inside the file and inside the archive."""
    regions = [(off, n) for off, n in getattr(m, "sparse", None) or [] if n]  # empty slots carry no data
    if len(regions) > MAX_SPARSE_REGIONS:
        raise ArchiveError(f"refusing to apply layer: {_q(rel)} has a sparse map of {len(regions)} regions")
    pos = 0
    stored = 0
    for off, n in regions:
        if off < pos or n < 0 or off + n > m.size:
            raise ArchiveError(f"refusing to apply layer: invalid sparse map for {_q(rel)}")
        pos = off + n
        stored += n
    if m.offset_data + stored > data_end:
        raise ArchiveError(f"refusing to apply layer: the sparse map of {_q(rel)} claims more data than it holds")
    return regions


def set_xattr(path: str, name: str, value: bytes) -> None:
    """Set an xattr from a layer; one this filesystem or user cannot hold is left out, as moby does."""
    try:
        os.setxattr(path, name, value, follow_symlinks=False)
    except OSError as exc:
        if exc.errno not in (errno.ENOTSUP, errno.EPERM, errno.EOPNOTSUPP, errno.E2BIG, errno.ERANGE):
            raise


def _opaque_xattr() -> str:
    return OPAQUE_XATTRS[0] if os.geteuid() == 0 else OPAQUE_XATTRS[1]


@dataclass
class Applier:
    """One layer tar going into one new directory (open as `root_fd`), entry by entry."""

    tf: tarfile.TarFile
    root_fd: int
    encoding: str
    as_root: bool = field(default_factory=lambda: os.geteuid() == 0)
    size: int = 0
    sparse: bool = False
    seen: set[str] = field(default_factory=set)
    dirs: dict[str, tuple[int, int]] = field(default_factory=dict)  # rel -> (mtime, mode), set last

    def __post_init__(self) -> None:
        self.cursor = fstree.DirCursor(os.dup(self.root_fd))
        self.links = fstree.DirCursor(os.dup(self.root_fd))
        self.copier = HashedCopy()
        # What a new entry gets without asking, so that chown and chmod run only where they
        # change something: our own ids (unless a set-group-ID folder hands its group down),
        # and for a regular file the mode it was created with, less the umask.
        inherits_group = bool(os.fstat(self.root_fd).st_mode & stat.S_ISGID)
        self.own_ids = None if inherits_group else (os.geteuid(), os.getegid())
        self.umask = _umask()
        self.mode_set = False

    def close(self) -> None:
        self.cursor.close()
        self.links.close()
        self.copier.close()

    def run(self) -> None:
        while True:
            try:
                m = self.tf.next()
            except ArchiveError:
                raise
            except (tarfile.TarError, ValueError, EOFError, UnicodeError) as exc:
                raise ArchiveError(f"broken tar archive: {exc}") from None
            if m is None:
                break
            vars(self.tf)["members"].clear()  # stream mode would keep every header in memory
            data_end = self.tf.offset
            rel = clean_name(m.name)
            if rel is None:
                continue
            try:
                self.entry(m, rel, data_end)
            except fstree.TreeError as exc:
                raise ArchiveError(f"refusing to apply layer: {_q(rel)} would be written through {exc}") from None
            except (OverflowError, ValueError) as exc:
                if isinstance(exc, ArchiveError):
                    raise
                raise ArchiveError(f"refusing to apply layer: invalid header for {_q(rel)}: {exc}") from None
            except tarfile.TarError as exc:
                raise ArchiveError(f"broken tar archive: {exc}") from None
            except OSError as exc:
                raise ArchiveError(f"write /{rel}: {os_error_text(exc)}") from None
        self.finish_dirs()

    def entry(self, m: tarfile.TarInfo, rel: str, data_end: int) -> None:
        self.size += max(m.size, 0) if m.isfile() else 0
        head, _, base = rel.rpartition("/")
        dfd = self.cursor.goto(head)
        if base.startswith(WHITEOUT_PREFIX):
            if base.startswith(WHITEOUT_META_PREFIX):
                if base != WHITEOUT_OPAQUE:
                    return  # aufs bookkeeping (.wh..wh.plnk…): moby skips it
                if self.encoding == ENCODING_OVERLAY:
                    os.setxattr(dfd, _opaque_xattr(), b"y")
                    return
            elif base[len(WHITEOUT_PREFIX) :] in ("", ".", ".."):
                raise ArchiveError(f"invalid whiteout {_q(rel)} in archive: it names no entry")
            elif self.encoding == ENCODING_OVERLAY:
                self.whiteout(dfd, base[len(WHITEOUT_PREFIX) :], m)
                return
        self.mode_set = False  # set by `regular` when it created the file with its mode
        # Created without a look first (the layer is new: a name is rarely there already); the
        # call that finds the name taken removes what is there (a folder for a folder stays)
        # and runs again.
        old: os.stat_result | None = None  # a folder kept in place of a folder, else made new
        try:
            self.create(dfd, base, rel, m, data_end)
        except FileExistsError:
            old = os.lstat(base, dir_fd=dfd)
            if not (m.isdir() and stat.S_ISDIR(old.st_mode)):
                fstree.remove_at(dfd, base)
                self.create(dfd, base, rel, m, data_end)
                old = None
        if m.isdir():
            self.dirs.pop(rel, None)
            self.dirs[rel] = (int(m.mtime), m.mode & 0o7777)
        self.seen.add(rel)
        if m.islnk():
            return
        if self.as_root and not (old is None and (m.uid, m.gid) == self.own_ids):
            os.chown(base, m.uid, m.gid, dir_fd=dfd, follow_symlinks=False)
        if not m.issym() and not m.isdir() and not self.mode_set:
            os.chmod(base, m.mode & 0o7777, dir_fd=dfd)
        self.xattrs(dfd, base, m)
        if not m.isdir():
            os.utime(base, (m.mtime, m.mtime), dir_fd=dfd, follow_symlinks=False)

    def create(self, dfd: int, base: str, rel: str, m: tarfile.TarInfo, data_end: int) -> None:
        """Make the entry `base` (FileExistsError if the name is taken; nothing is read from the
        tar before the name is made)."""
        if m.isdir():
            os.mkdir(base, 0o700, dir_fd=dfd)
        elif m.isreg():
            self.regular(dfd, base, rel, m, data_end)
        elif m.issym():
            if not m.linkname.startswith("/"):
                target = os.path.normpath(os.path.join(os.path.dirname(rel), m.linkname))
                if target == ".." or target.startswith("../"):
                    raise ArchiveError(f"invalid symlink {_q(rel)} -> {_q(m.linkname)}")
            os.symlink(m.linkname, base, dir_fd=dfd)
        elif m.islnk():
            self.hardlink(dfd, base, rel, m)
        elif m.ischr() or m.isblk():
            kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
            try:
                os.mknod(base, kind | 0o600, os.makedev(m.devmajor, m.devminor), dir_fd=dfd)
            except PermissionError:
                raise ArchiveError(f"cannot create device {_q(rel)}: permission denied (run as root)") from None
        elif m.isfifo():
            os.mkfifo(base, 0o600, dir_fd=dfd)
        else:
            raise ArchiveError(f"unsupported tar entry type {m.type!r} for {_q(rel)}")

    def whiteout(self, dfd: int, target: str, m: tarfile.TarInfo) -> None:
        """An OCI whiteout in the overlay encoding: a char device 0/0 in the deleted name's place."""
        try:
            fstree.remove_at(dfd, target)
        except FileNotFoundError:
            pass
        try:
            os.mknod(target, stat.S_IFCHR | 0o600, os.makedev(0, 0), dir_fd=dfd)
        except PermissionError:
            raise ArchiveError(
                "cannot create an overlay whiteout (char device 0/0) without root: use the aufs encoding"
            ) from None
        if self.as_root and (m.uid, m.gid) != self.own_ids:
            os.chown(target, m.uid, m.gid, dir_fd=dfd, follow_symlinks=False)
        os.utime(target, (m.mtime, m.mtime), dir_fd=dfd, follow_symlinks=False)

    def regular(self, dfd: int, base: str, rel: str, m: tarfile.TarInfo, data_end: int) -> None:
        """Create the file and write its data; `mode_set` when it has its mode already (the
        umask took nothing from the permission bits, and there are no others)."""
        mode = m.mode & 0o7777
        created = mode & 0o777 & ~self.umask if self.umask is not None else -1
        fd = os.open(
            base,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            mode & 0o777 if created == mode else 0o600,
            dir_fd=dfd,
        )
        try:
            direct = getattr(m, "sparse", None) is None and (
                self.small_direct(m, fd, rel) if m.size < COPY_DIRECT else self.copy_direct(m, fd, rel)
            )
        except BaseException:
            os.close(fd)
            raise
        if direct:
            os.close(fd)
            self.mode_set = created == mode
            return
        with os.fdopen(fd, "wb") as out:
            if getattr(m, "sparse", None) is None:
                src = self.tf.extractfile(m)
                if src is not None:
                    shutil.copyfileobj(src, out, _CHUNK)
                self.mode_set = created == mode
                return
            # A sparse member: only its data regions are written, the holes stay holes.
            regions = _check_sparse(m, rel, data_end)
            self.sparse = True
            out.truncate(m.size)
            raw: Any = self.tf.fileobj  # tarfile's stream: it seeks forward, which is all the regions need
            tape = m.offset_data
            for off, n in regions:
                out.seek(off)
                for chunk in _copy_range(raw, tape, n, f"broken tar archive: unexpected end of data in {_q(rel)}"):
                    out.write(chunk)
                tape += n
        self.mode_set = created == mode

    def small_direct(self, m: tarfile.TarInfo, out: int, rel: str) -> bool:
        """A small member's data and padding taken from tarfile's stream in one read (under
        COPY_DIRECT, so at most 64 KiB in memory), not through an ExFileObject, its buffer and
        a seek past the padding: most of a small file's extraction time. False where the
        stream is not tarfile's plain one, where the member starts (then tarfile copies)."""
        stream: Any = self.tf.fileobj  # tarfile's _Stream: `pos` read so far
        if not 0 <= m.size < COPY_DIRECT or getattr(stream, "comptype", None) != "tar":
            return False
        if getattr(stream, "pos", None) != m.offset_data:
            return False
        if not m.size:
            return True
        data = stream.read(m.size + -m.size % BLOCK)  # the next header starts after the padding
        if len(data) < m.size:
            raise ArchiveError(f"broken tar archive: unexpected end of data in {_q(rel)}")
        write_all(out, memoryview(data)[: m.size])
        return True

    def copy_direct(self, m: tarfile.TarInfo, out: int, rel: str) -> bool:
        """A big member's data read from under tarfile's stream in 1 MiB reads into one buffer
        (hashed there), not through its 10 KiB records and their copies. False where the
        stream is not the plain one this expects (then tarfile copies)."""
        stream: Any = self.tf.fileobj  # tarfile's _Stream: `pos` read so far, `buf` read ahead
        reader = getattr(stream, "fileobj", None)
        if not isinstance(reader, _HashingReader) or getattr(stream, "pos", None) != m.offset_data:
            return False
        ahead = getattr(stream, "buf", None)
        if not isinstance(ahead, bytes) or getattr(stream, "comptype", None) != "tar":
            return False
        head = ahead[: m.size]
        stream.buf = ahead[len(head) :]
        write_all(out, head)
        short = f"broken tar archive: unexpected end of data in {_q(rel)}"
        read_view = reader.view_unhashed()
        if read_view is not None:
            _write_views(read_view, reader, out, m.size - len(head), short)
        else:
            h = reader.hash if reader.hashing else None
            self.copier.copy(reader.readinto_unhashed, out, m.size - len(head), h, short)
        stream.pos += m.size
        return True

    def hardlink(self, dfd: int, base: str, rel: str, m: tarfile.TarInfo) -> None:
        target_rel = clean_name(m.linkname.lstrip("/"))
        if target_rel is None or target_rel not in self.seen:
            raise ArchiveError(f"invalid hardlink {_q(rel)} -> {_q(m.linkname)}: target is not in the layer")
        thead, _, tbase = target_rel.rpartition("/")
        tfd = self.links.goto(thead, create=False)
        if stat.S_ISDIR(os.lstat(tbase, dir_fd=tfd).st_mode):
            raise ArchiveError(f"invalid hardlink {_q(rel)} -> {_q(m.linkname)}: target is a directory")
        os.link(tbase, base, src_dir_fd=tfd, dst_dir_fd=dfd, follow_symlinks=False)

    def xattrs(self, dfd: int, base: str, m: tarfile.TarInfo) -> None:
        for k, v in m.pax_headers.items():
            if not k.startswith("SCHILY.xattr."):
                continue
            name = k[len("SCHILY.xattr.") :]
            if name.startswith(PRIVATE_XATTR_PREFIXES):
                continue
            set_xattr(fstree.xattr_path(dfd, base), name, v.encode("utf-8", "surrogateescape"))

    def finish_dirs(self) -> None:
        """Directories' modes and times last, deepest first: writing into them changed their
        mtimes, and a read-only mode set earlier would have stopped the writes."""
        for rel, (mtime, mode) in reversed(self.dirs.items()):
            head, _, base = rel.rpartition("/")
            try:
                dfd = self.cursor.goto(head, create=False)
                os.chmod(base, mode, dir_fd=dfd)
                os.utime(base, (mtime, mtime), dir_fd=dfd, follow_symlinks=False)
            except FileNotFoundError:
                continue  # replaced by a later entry
            except OSError as exc:
                raise ArchiveError(f"write /{rel}: {os_error_text(exc)}") from None


def _umask() -> int | None:
    """The process's umask, read without changing it (os.umask would, for every thread)."""
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _check_end(raw: ByteStream, end: int) -> None:
    """Python's tarfile stops quietly at a broken header; Go's reader fails. Where the stream can
    be re-read, the block where reading stopped must be the zero end-of-archive block."""
    try:
        if not isinstance(raw, io.IOBase) or not raw.seekable():
            return
        raw.seek(end)
    except (OSError, ValueError):
        return
    _check_end_block(raw.read(BLOCK))


def _check_end_block(block: bytes | None) -> None:
    if block is not None and block.strip(b"\0"):
        raise ArchiveError("broken tar archive: invalid tar header")


def _extract_into(reader: _HashingReader, root_fd: int, encoding: str) -> tuple[int, bool]:
    try:
        tf = tarfile.open(fileobj=reader, mode="r|", format=tarfile.PAX_FORMAT, tarinfo=BoundedTarInfo)  # type: ignore[call-overload]  # a stream: the stub wants seek and write too
    except ArchiveError:
        raise
    except (tarfile.TarError, ValueError, EOFError) as exc:
        raise ArchiveError(f"not a tar archive: {exc}") from None
    with tf:
        applier = Applier(tf, root_fd, encoding)
        try:
            applier.run()
        finally:
            applier.close()
        end = tf.offset
    block_at = getattr(reader.raw, "block_at", None)  # a stream that keeps what it read (unpack.LayerReader)
    if block_at is not None:
        _check_end_block(block_at(end))
    reader.drain(MAX_TRAILING)
    _check_end(reader.raw, end)
    return applier.size, applier.sparse


def apply_layer_tar(
    stream: ByteStream, dest: str | os.PathLike[str], encoding: str | None = None, diff_id: str | None = None
) -> ApplyResult:
    """Extract a layer tar into the new directory `dest`, whole or not at all.

    `dest` must not exist yet: the tar is unpacked into a temporary sibling, which is
    renamed to `dest` only after the last entry was written. OCI whiteouts are stored in
    `encoding` (overlay: char 0/0 and opaque xattr; aufs: the `.wh.` files as they are).
    Every entry is written relative to its open parent directory, so no depth is too deep.
    `diff_id`: the tar's sha256 when the caller hashed it as it wrote it (no second hash).
    """
    dest = os.fspath(dest)
    encoding = encoding or default_encoding()
    os.makedirs(os.path.dirname(os.path.abspath(dest)) or ".", exist_ok=True)
    reader = _HashingReader(stream, hashing=diff_id is None)
    size, sparse = build_dir(dest, lambda root_fd: _extract_into(reader, root_fd, encoding))
    return ApplyResult(diff_id or "sha256:" + reader.hash.hexdigest(), size, sparse)


def build_dir(dest: str, fill: Callable[[int], _T]) -> _T:
    """Make the new directory `dest` whole or not at all: `fill` writes into a temporary
    sibling (given as an open fd), which is renamed to `dest` only when it returns."""
    tmp = tempfile.mkdtemp(prefix=".apply-", dir=os.path.dirname(os.path.abspath(dest)) or ".")
    try:
        root_fd = fstree.open_dir(tmp)
        try:
            result = fill(root_fd)
            os.chmod(root_fd, 0o755)
        finally:
            os.close(root_fd)
        os.rename(tmp, dest)
    except BaseException:
        fstree.remove_quietly(tmp)
        raise
    return result
