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
import os
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, Protocol

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
    source: str | None = None  # file whose bytes follow the header


def _is_ascii(b: bytes) -> bool:
    return all(0 < c < 0x80 for c in b)


def _to_ascii(b: bytes) -> bytes:
    return bytes(c for c in b if 0 < c < 0x80)


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


def encode_header(e: TarEntry) -> bytes:
    """The header block(s) Go's tar.Writer writes for `e` with Format=PAX (moby's choice)."""
    name = os.fsencode(e.name)
    link = os.fsencode(e.linkname)
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


def _walk(root: str) -> Iterator[tuple[str, str]]:
    """(real path, tar name) in Go's filepath.WalkDir order: pre-order, names sorted bytewise."""

    def rec(real: str, rel: str) -> Iterator[tuple[str, str]]:
        try:
            names = sorted(os.listdir(real), key=os.fsencode)
        except OSError as exc:
            raise ArchiveError(f"cannot read {real}: {exc.strerror}") from None
        for n in names:
            p = os.path.join(real, n)
            r = f"{rel}/{n}" if rel else n
            yield p, r
            if stat.S_ISDIR(os.lstat(p).st_mode):
                yield from rec(p, r)

    yield from rec(root, "")


def layer_entries(src_dir: str | os.PathLike[str]) -> Iterator[TarEntry]:
    """The tar entries of a layer directory, in order, with whiteouts in the OCI form.

    Either on-disk encoding is read: char 0/0 and the opaque xattr become `.wh.` files (moby's
    overlayWhiteoutConverter), `.wh.` files are kept; aufs bookkeeping (`.wh..wh.plnk` etc.)
    and sockets are left out, as moby leaves them out.
    """
    seen_inodes: dict[tuple[int, int], str] = {}
    for real, rel in _walk(os.fspath(src_dir)):
        base = rel.rsplit("/", 1)[-1]
        if base.startswith(WHITEOUT_META_PREFIX) and base != WHITEOUT_OPAQUE:
            continue
        st = os.lstat(real)
        m = st.st_mode
        e = TarEntry(
            name=rel, typeflag=TYPE_REG, mode=stat.S_IMODE(m), uid=st.st_uid, gid=st.st_gid, mtime=int(st.st_mtime)
        )
        if stat.S_ISSOCK(m):
            continue
        if stat.S_ISREG(m):
            e.size, e.source = st.st_size, real
        elif stat.S_ISDIR(m):
            e.typeflag, e.name = TYPE_DIR, rel + "/"
        elif stat.S_ISLNK(m):
            e.typeflag, e.linkname = TYPE_SYMLINK, os.readlink(real)
        elif stat.S_ISCHR(m) or stat.S_ISBLK(m):
            e.typeflag = TYPE_CHAR if stat.S_ISCHR(m) else TYPE_BLOCK
            e.devmajor, e.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        elif stat.S_ISFIFO(m):
            e.typeflag = TYPE_FIFO
        e.xattrs = _list_xattrs(real)
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
        if stat.S_ISDIR(m) and is_opaque_dir(real):
            yield TarEntry(
                name=rel + "/" + WHITEOUT_OPAQUE,
                typeflag=TYPE_REG,
                mode=stat.S_IMODE(m) & 0o777,
                uid=st.st_uid,
                gid=st.st_gid,
                mtime=0,
            )


def iter_layer_tar(src_dir: str | os.PathLike[str]) -> Iterator[bytes]:
    """The layer tar of `src_dir` as a stream of chunks, never held whole in memory."""
    for e in layer_entries(src_dir):
        yield encode_header(e)
        if e.source and e.size:
            written = 0
            with open(e.source, "rb") as f:
                while written < e.size:
                    chunk = f.read(min(_CHUNK, e.size - written))
                    if not chunk:
                        raise ArchiveError(f"{e.name}: file shrank while it was archived")
                    written += len(chunk)
                    yield chunk
            yield _pad(e.size)
    yield b"\0" * (2 * BLOCK)


@dataclass(frozen=True)
class TarResult:
    diff_id: str
    tar_size: int


def write_layer_tar(src_dir: str | os.PathLike[str], out: BinaryIO | None = None) -> TarResult:
    """Write (to `out`, if given) and hash the layer tar of `src_dir` in one pass."""
    h = hashlib.sha256()
    n = 0
    for chunk in iter_layer_tar(src_dir):
        h.update(chunk)
        n += len(chunk)
        if out is not None:
            out.write(chunk)
    return TarResult("sha256:" + h.hexdigest(), n)


# --------------------------------------------------------------------------------------
# Applying
# --------------------------------------------------------------------------------------


class _HashingReader:
    """Hashes every byte read, so the DiffID comes from the same pass that extracts."""

    def __init__(self, raw: ByteStream) -> None:
        self.raw = raw
        self.hash = hashlib.sha256()
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        b = self.raw.read(n)
        self.hash.update(b)
        self.count += len(b)
        return b

    def drain(self) -> None:
        while self.read(_CHUNK):
            pass


@dataclass(frozen=True)
class ApplyResult:
    diff_id: str
    size: int  # sum of the entries' sizes, as moby's UnpackLayer counts it


def _clean_name(name: str) -> str | None:
    """The entry's path relative to the layer root; None for the root itself. Refuses escapes."""
    if name.startswith("/"):
        raise ArchiveError(f"refusing to apply layer: absolute path {name!r} in archive")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ArchiveError(f"refusing to apply layer: {name!r} is outside of the layer root")
    return "/".join(parts) or None


def _ensure_parent(root: str, rel: str) -> str:
    """Create missing parents (0755, as moby does) and refuse a parent that is not a real dir."""
    cur = root
    for part in rel.split("/")[:-1]:
        cur = os.path.join(cur, part)
        try:
            st = os.lstat(cur)
        except FileNotFoundError:
            os.mkdir(cur, 0o755)
            continue
        if stat.S_ISLNK(st.st_mode):
            raise ArchiveError(f"refusing to apply layer: {rel!r} would be written through the symlink {part!r}")
        if not stat.S_ISDIR(st.st_mode):
            raise ArchiveError(f"refusing to apply layer: parent of {rel!r} is not a directory")
    return os.path.join(root, rel)


def _remove(path: str) -> None:
    st = os.lstat(path)
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def _set_meta(path: str, m: tarfile.TarInfo, is_link: bool, as_root: bool) -> None:
    if as_root:
        os.chown(path, m.uid, m.gid, follow_symlinks=False)
    if not is_link:
        os.chmod(path, m.mode & 0o7777)
    for k, v in m.pax_headers.items():
        if k.startswith("SCHILY.xattr."):
            name = k[len("SCHILY.xattr.") :]
            if name.startswith(PRIVATE_XATTR_PREFIXES):
                continue
            try:
                os.setxattr(path, name, v.encode("utf-8", "surrogateescape"), follow_symlinks=False)
            except OSError as exc:
                if exc.errno not in (errno.ENOTSUP, errno.EPERM, errno.EOPNOTSUPP):
                    raise


def _opaque_xattr() -> str:
    return OPAQUE_XATTRS[0] if os.geteuid() == 0 else OPAQUE_XATTRS[1]


def _mark_opaque(dir_path: str) -> None:
    os.setxattr(dir_path, _opaque_xattr(), b"y", follow_symlinks=False)


def _make_whiteout(path: str) -> None:
    try:
        os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(0, 0))
    except PermissionError:
        raise ArchiveError(
            "cannot create an overlay whiteout (char device 0/0) without root: use the aufs encoding"
        ) from None


def _extract_into(reader: _HashingReader, root: str, encoding: str) -> int:
    as_root = os.geteuid() == 0
    size = 0
    dirs: list[tuple[str, int]] = []
    seen: set[str] = set()
    try:
        tf = tarfile.open(fileobj=reader, mode="r|", format=tarfile.PAX_FORMAT)  # type: ignore[call-overload]  # a stream: the stub wants seek and write too
    except tarfile.ReadError as exc:
        raise ArchiveError(f"not a tar archive: {exc}") from None
    with tf:
        try:
            for m in tf:
                size += max(m.size, 0) if m.isfile() else 0
                rel = _clean_name(m.name)
                if rel is None:
                    continue
                base = rel.rsplit("/", 1)[-1]
                path = _ensure_parent(root, rel)
                if base.startswith(WHITEOUT_PREFIX) and encoding == ENCODING_OVERLAY:
                    if base == WHITEOUT_OPAQUE:
                        _mark_opaque(os.path.dirname(path))
                    elif base.startswith(WHITEOUT_META_PREFIX):
                        pass  # aufs bookkeeping: moby skips it
                    elif base == WHITEOUT_PREFIX:
                        raise ArchiveError(f"invalid whiteout {rel!r} in archive")
                    else:
                        target = os.path.join(os.path.dirname(path), base[len(WHITEOUT_PREFIX) :])
                        if os.path.lexists(target):
                            _remove(target)
                        _make_whiteout(target)
                        os.chown(target, m.uid, m.gid) if as_root else None
                        os.utime(target, (m.mtime, m.mtime), follow_symlinks=False)
                    continue
                if base.startswith(WHITEOUT_META_PREFIX) and base != WHITEOUT_OPAQUE:
                    continue
                if base == WHITEOUT_PREFIX:
                    raise ArchiveError(f"invalid whiteout {rel!r} in archive")
                if os.path.lexists(path):
                    if not (m.isdir() and os.path.isdir(path) and not os.path.islink(path)):
                        _remove(path)
                if m.isdir():
                    if not os.path.isdir(path):
                        os.mkdir(path, 0o700)
                    dirs.append((path, int(m.mtime)))
                elif m.isreg():
                    src = tf.extractfile(m)
                    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
                    with os.fdopen(fd, "wb") as out:
                        if src is not None:
                            shutil.copyfileobj(src, out, _CHUNK)
                elif m.issym():
                    if not m.linkname.startswith("/"):
                        target = os.path.normpath(os.path.join(os.path.dirname(rel), m.linkname))
                        if target == ".." or target.startswith("../"):
                            raise ArchiveError(f'invalid symlink "{rel}" -> "{m.linkname}"')
                    os.symlink(m.linkname, path)
                elif m.islnk():
                    target_rel = _clean_name(m.linkname.lstrip("/"))
                    if not target_rel or target_rel not in seen:
                        raise ArchiveError(f'invalid hardlink "{rel}" -> "{m.linkname}": target is not in the layer')
                    _ensure_parent(root, target_rel)
                    os.link(os.path.join(root, target_rel), path, follow_symlinks=False)
                elif m.ischr() or m.isblk():
                    kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
                    try:
                        os.mknod(path, kind | 0o600, os.makedev(m.devmajor, m.devminor))
                    except PermissionError:
                        raise ArchiveError(f"cannot create device {rel!r}: permission denied (run as root)") from None
                elif m.isfifo():
                    os.mkfifo(path, 0o600)
                else:
                    raise ArchiveError(f"unsupported tar entry type {m.type!r} for {rel!r}")
                seen.add(rel)
                if not m.islnk():
                    _set_meta(path, m, m.issym(), as_root)
                    if not m.isdir():
                        os.utime(path, (m.mtime, m.mtime), follow_symlinks=False)
        except tarfile.TarError as exc:
            raise ArchiveError(f"broken tar archive: {exc}") from None
        end = tf.offset
    reader.drain()
    _check_end(reader.raw, end)
    for path, mtime in reversed(dirs):
        os.utime(path, (mtime, mtime), follow_symlinks=False)
    return size


def _check_end(raw: ByteStream, end: int) -> None:
    """Python's tarfile stops quietly at a broken header; Go's reader fails. Where the stream can
    be re-read, the block where reading stopped must be the zero end-of-archive block."""
    try:
        if not isinstance(raw, io.IOBase) or not raw.seekable():
            return
        raw.seek(end)
    except (OSError, ValueError):
        return
    block = raw.read(BLOCK)
    if block.strip(b"\0"):
        raise ArchiveError("broken tar archive: invalid tar header")


def apply_layer_tar(stream: ByteStream, dest: str | os.PathLike[str], encoding: str | None = None) -> ApplyResult:
    """Extract a layer tar into the new directory `dest`, whole or not at all.

    `dest` must not exist yet: the tar is unpacked into a temporary sibling, which is
    renamed to `dest` only after the last entry was written. OCI whiteouts are stored in
    `encoding` (overlay: char 0/0 and opaque xattr; aufs: the `.wh.` files as they are).
    """
    dest = os.fspath(dest)
    encoding = encoding or default_encoding()
    parent = os.path.dirname(os.path.abspath(dest)) or "."
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".apply-", dir=parent)
    reader = _HashingReader(stream)
    try:
        size = _extract_into(reader, tmp, encoding)
        os.chmod(tmp, 0o755)
        os.rename(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ApplyResult("sha256:" + reader.hash.hexdigest(), size)
