"""A layer blob as it downloads: gunzipped, hashed and scanned into a tar file, in one pass.

The download threads run it, outside the store lock, so the registration (in the manifest's
order, under the lock) only extracts a plain tar file: no second decompression, no spool.

While the tar goes by, `TarScan` hashes its header bytes (everything but file data, its
padding and the end-of-archive blocks) the way `archive.headers_digest` hashes the headers our
own writer would write for the extracted tree. When the two digests agree, the tree gives the
tar back byte for byte (its files hold the data the tar gave them) and the layer store need not
write it again to find out. Anything the scan does not follow exactly (GNU or global headers,
sparse members, data on a member that has none, nonzero padding, bytes after the end) leaves
it without a digest, and the layer store checks the slow way.

Nothing here trusts a declared size for memory: decompression goes 1 MiB at a time (a gzip
bomb never sits in memory whole), a PAX header over 1 MiB ends the scan, and nothing recurses.
"""

from __future__ import annotations

import hashlib
import zlib
from typing import BinaryIO

BLOCK = 512
OUT_CHUNK = 1 << 20
MAX_PAX = 1 << 20  # Go's maxSpecialFileSize
GZIP_MAGIC = b"\x1f\x8b"
_REGULAR = (b"0", b"\0", b"7")
_NO_DATA = (b"1", b"2", b"3", b"4", b"5", b"6")


def _octal(field: bytes) -> int | None:
    """A header's octal number, as our writer writes it (NUL- or space-terminated); None for
    anything else (base-256 and garbage alike: the scan gives up, the store checks)."""
    digits = field.split(b"\0", 1)[0].strip(b" ")
    if not digits:
        return 0
    if not all(48 <= c <= 55 for c in digits):
        return None
    return int(digits, 8)


class UnpackError(Exception):
    """The blob is not a gzip stream (or a tar) that ends where it should; str() is one line."""


class TarScan:
    """Follows a tar stream's structure as it is fed, hashing its header bytes."""

    def __init__(self) -> None:
        self.headers = hashlib.sha256()
        self.ok = True  # False: the scan gave up, the stream is still extracted as it is
        self._block = bytearray()  # a header block being gathered
        self._skip = 0  # file data (and padding) still to pass over
        self._pad = 0  # of which, padding at the end that must be zeros
        self._pax_left = 0  # PAX data (and padding) still to hash and keep
        self._pax = bytearray()
        self._pax_data_size = 0
        self._size_override: int | None = None
        self._zeros = 0  # end-of-archive bytes seen (a zero block starts the end)

    def feed(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while self.ok and len(view):
            if self._zeros:
                self._end(view)
                return
            if self._skip:
                n = min(self._skip, len(view))
                if self._skip - n < self._pad:  # reaches into the padding, which must be zeros
                    self._check_padding(view[:n], self._skip)
                self._skip -= n
                view = view[n:]
                continue
            if self._pax_left:
                n = min(self._pax_left, len(view))
                self.headers.update(view[:n])
                self._pax += view[:n]
                self._pax_left -= n
                view = view[n:]
                if not self._pax_left:
                    self._parse_pax()
                continue
            n = min(BLOCK - len(self._block), len(view))
            self._block += view[:n]
            view = view[n:]
            if len(self._block) == BLOCK:
                block = bytes(self._block)
                self._block.clear()
                self._header(block)

    def _check_padding(self, part: memoryview, skip_before: int) -> None:
        """`part` is the next len(part) bytes of the data being skipped, `skip_before` bytes of
        which were left: the ones within the last `_pad` are padding and must be zeros."""
        data_left = skip_before - self._pad  # data bytes still before the padding
        if data_left < len(part) and bytes(part[max(0, data_left) :]).strip(b"\0"):
            self.ok = False

    def _header(self, block: bytes) -> None:
        if not block.strip(b"\0"):
            self._zeros = BLOCK
            return
        kind = block[156:157]
        size = _octal(block[124:136])
        if size is None:
            self.ok = False
            return
        self.headers.update(block)
        if kind == b"x":
            if size < 0 or size > MAX_PAX or self._size_override is not None:
                self.ok = False
                return
            self._pax_left = size + (-size % BLOCK)
            self._pax_data_size = size
            self._pax.clear()
            if not self._pax_left:
                self._parse_pax()
            return
        if self._size_override is not None:
            size, self._size_override = self._size_override, None
        if kind in _REGULAR:
            if size < 0:
                self.ok = False
                return
            self._pad = -size % BLOCK
            self._skip = size + self._pad
        elif kind not in _NO_DATA or size != 0:
            self.ok = False  # GNU, global, sparse or unknown headers; data on a link or folder

    def _parse_pax(self) -> None:
        """Only `size` changes where the next member's data ends; every record is hashed anyway."""
        data = bytes(self._pax[: self._pax_data_size])
        pos = 0
        while pos < len(data):
            space = data.find(b" ", pos)
            if space < 0 or not data[pos:space].isdigit():
                self.ok = False
                return
            length = int(data[pos:space])
            record = data[space + 1 : pos + length]
            if length <= space - pos or pos + length > len(data) or not record.endswith(b"\n"):
                self.ok = False
                return
            key, eq, value = record[:-1].partition(b"=")
            if not eq:
                self.ok = False
                return
            if key == b"size":
                if not value.isdigit():
                    self.ok = False
                    return
                self._size_override = int(value)
            pos += length

    def _end(self, view: memoryview) -> None:
        """After the first zero block: exactly one more, then nothing (as our writer ends)."""
        if bytes(view).strip(b"\0") or self._zeros + len(view) > 2 * BLOCK:
            self.ok = False
            return
        self._zeros += len(view)

    def digest(self) -> str | None:
        """The header bytes' sha256, if the stream was followed to a clean end."""
        if not self.ok or self._zeros != 2 * BLOCK or self._skip or self._pax_left or self._block:
            return None
        return "sha256:" + self.headers.hexdigest()


class Unpacker:
    """Takes a layer blob's bytes as they come and writes its tar to `out`: gunzipped when the
    blob starts with gzip's magic (several members, as Go's reader takes them, and zeros after
    the last, as Python's does), as it is otherwise. `diff_id` and `headers` at the end."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.hash = hashlib.sha256()
        self.scan = TarScan()
        self._head = b""
        self._gzip: bool | None = None
        self._z: zlib._Decompress | None = None
        self._between = False  # a gzip member ended: zeros, or another member, may follow

    def feed(self, data: bytes) -> None:
        if self._gzip is None:
            self._head += data
            if len(self._head) < 2:
                return
            data, self._head = self._head, b""
            self._gzip = data[:2] == GZIP_MAGIC
            if self._gzip:
                self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        if not self._gzip:
            self._emit(data)
            return
        self._inflate(data)

    def _inflate(self, data: bytes) -> None:
        while data:
            if self._between:
                data = data.lstrip(b"\0")
                if not data:
                    return
                self._between = False
                self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
            z = self._z
            assert z is not None
            try:
                out = z.decompress(data, OUT_CHUNK)
                self._emit(out)
                while z.unconsumed_tail and not z.eof:
                    self._emit(z.decompress(z.unconsumed_tail, OUT_CHUNK))
            except zlib.error as exc:
                raise UnpackError(f"gzip: {exc}") from None
            if not z.eof:
                return
            data = z.unused_data
            self._between = True

    def _emit(self, data: bytes) -> None:
        if data:
            self.hash.update(data)
            self.scan.feed(data)
            self.out.write(data)

    def finish(self) -> None:
        """The blob has ended: a gzip stream must have ended too."""
        if self._gzip is None and self._head:
            self._gzip = False
            self._emit(self._head)
            self._head = b""
        if self._gzip and not self._between:
            raise UnpackError("gzip: unexpected EOF: the compressed layer ends before its end-of-stream marker")

    @property
    def diff_id(self) -> str:
        return "sha256:" + self.hash.hexdigest()

    @property
    def headers(self) -> str | None:
        return self.scan.digest()
