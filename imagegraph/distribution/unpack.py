"""A layer blob as it downloads: gunzipped, hashed, scanned and extracted, in one pass.

The download threads run it, outside the store lock: `LayerReader` is the tar inside the blob,
read by the layer store's extractor as the blob's bytes arrive, so no plain tar is read back
from disk and the layers of a pull are extracted side by side. The blob itself goes to a file
(the `tee`: compressed, it is a fraction of the tar), gunzipped again (`inflate_file`) only when
the extracted tree cannot give the tar back and the store must keep it.

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
from collections import deque
from collections.abc import Iterable, Iterator
from typing import BinaryIO, cast

from zlib_ng import zlib_ng as zlib  # zlib's API, its inflate about three times as fast

_ZLIB_ERROR = cast("type[Exception]", zlib.error)  # its stub calls the class an instance

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
    if digits.translate(None, b"01234567"):  # anything but octal digits (one pass in C)
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


class Inflater:
    """A layer blob's bytes in, its tar out, at most `OUT_CHUNK` at a time and only as the
    output is asked for: gunzipped when the blob starts with gzip's magic (several members, as
    Go's reader takes them, and zeros after the last, as Python's does), as it is otherwise.

    zlib-ng's `_ZlibDecompressor` (the one Python's gzip module reads with since 3.12) keeps
    the input it has not used yet itself: `decompressobj` copies it out as `unconsumed_tail`
    after every `OUT_CHUNK` of output and is handed it back, and gathers each output in blocks
    that it joins at the end, twice the CPU for the same bytes."""

    def __init__(self) -> None:
        self._head = b""
        self._gzip: bool | None = None
        self._z: zlib._ZlibDecompressor | None = None
        self._between = False  # a gzip member ended: zeros, or another member, may follow

    def pieces(self, data: bytes | memoryview) -> Iterator[bytes]:
        """The tar bytes that `data`, the blob's next bytes, gives (`data` may be a view of a
        buffer that is filled again once this returns: nothing here keeps it)."""
        if self._gzip is None:
            self._head += data
            if len(self._head) < 2:
                return
            data, self._head = self._head, b""
            self._gzip = data[:2] == GZIP_MAGIC
        if not self._gzip:
            if data:
                yield bytes(data)  # kept by the reader as a piece of the tar
            return
        while data:
            if self._between or self._z is None:
                if self._between:
                    data = bytes(data).lstrip(b"\0")
                    if not data:
                        return
                self._between = False
                self._z = zlib._ZlibDecompressor(16 + zlib.MAX_WBITS)
            z = self._z
            try:
                out = z.decompress(data, OUT_CHUNK)
                if out:
                    yield out
                # `needs_input` may be set with output still held when the input ran out
                # exactly: it comes with the next chunk. At the blob's end nothing is held,
                # since a member's 8-byte trailer is read only after its last output.
                while not z.needs_input and not z.eof:
                    out = z.decompress(b"", OUT_CHUNK)
                    if out:
                        yield out
            except _ZLIB_ERROR as exc:
                raise UnpackError(f"gzip: {exc}") from None
            if not z.eof:
                return
            data = z.unused_data
            self._between = True

    def end(self) -> Iterator[bytes]:
        """The blob has ended: what is left (a one-byte blob), and a gzip stream must have ended too."""
        if self._gzip is None and self._head:
            self._gzip = False
            yield self._head
            self._head = b""
        if self._gzip and not self._between:
            raise UnpackError("gzip: unexpected EOF: the compressed layer ends before its end-of-stream marker")


class LayerReader:
    """The tar inside a layer blob, read (as a file is: `read`, `readinto`) while the blob's
    chunks are pulled from `blob` (each copied to `tee`): each tar byte is hashed (`diff_id`)
    and scanned (`headers`) once, as it is made. A read returns at most what one piece holds (a
    short read, which tarfile and the extractor take); b"" once the blob, and its gzip stream,
    ended.

    Errors come out of the reads: the blob's own (a digest that does not match, a short body),
    and `UnpackError` for a gzip stream that breaks."""

    def __init__(self, blob: Iterable[bytes | memoryview], tee: BinaryIO | None = None) -> None:
        self._blob = iter(blob)
        self._tee = tee
        self.hash = hashlib.sha256()
        self.scan = TarScan()
        self.blob_size = 0
        self._inflater = Inflater()
        self._gen = self._generate()
        self._cur = b""  # the piece being read, from tar offset _cur_start, at _pos
        self._cur_start = 0
        self._pos = 0
        self._prev = b""  # the piece before it (the end-of-archive check may look back)
        self._prev_start = 0
        self._ahead: deque[bytes] = deque()  # made (hashed, teed) but not read yet
        self._failed: BaseException | None = None  # what ended the blob early, told again

    def _generate(self) -> Iterator[bytes]:
        for chunk in self._blob:
            self.blob_size += len(chunk)
            if self._tee is not None:
                self._tee.write(chunk)
            yield from self._inflater.pieces(chunk)
        yield from self._inflater.end()

    def _make(self) -> bytes | None:
        # A generator that raised is over: asked again it would say the blob ended, and the
        # short tar would pass for a DiffID mismatch. A full disk under the tee must stay one.
        if self._failed is not None:
            raise self._failed
        try:
            piece = next(self._gen, None)
        except BaseException as exc:
            self._failed = exc
            raise
        if piece is not None:
            self.hash.update(piece)
            self.scan.feed(piece)
        return piece

    def _advance(self) -> bool:
        """The next piece becomes the current one; False at the end of the tar."""
        piece = self._ahead.popleft() if self._ahead else self._make()
        if piece is None:
            return False
        self._prev, self._prev_start = self._cur, self._cur_start
        self._cur_start += len(self._cur)
        self._cur, self._pos = piece, 0
        return True

    def read(self, n: int = -1, /) -> bytes:
        while self._pos >= len(self._cur):
            if not self._advance():
                return b""
        if n < 0 or n >= len(self._cur) - self._pos:
            out = self._cur if self._pos == 0 else self._cur[self._pos :]
        else:
            out = self._cur[self._pos : self._pos + n]
        self._pos += len(out)
        return out

    def read_view(self, n: int) -> memoryview:
        """Up to `n` bytes of the piece being read, as a view of it: no copy (a big member's
        data goes from the inflater's output straight to its file). Empty at the end."""
        while self._pos >= len(self._cur):
            if not self._advance():
                return memoryview(b"")
        view = memoryview(self._cur)[self._pos : self._pos + n]
        self._pos += len(view)
        return view

    def readinto(self, view: memoryview) -> int:
        while self._pos >= len(self._cur):
            if not self._advance():
                return 0
        n = min(len(view), len(self._cur) - self._pos)
        view[:n] = memoryview(self._cur)[self._pos : self._pos + n]
        self._pos += n
        return n

    def block_at(self, offset: int, size: int = BLOCK) -> bytes | None:
        """The `size` tar bytes at `offset` (fewer at the end), without reading past them: where
        tarfile stopped, for the extractor to see whether the archive really ended there. None
        if `offset` lies further back than this reader still holds."""
        held = self._cur_start + len(self._cur) + sum(map(len, self._ahead))
        while held < offset + size:
            piece = self._make()
            if piece is None:
                break
            self._ahead.append(piece)
            held += len(piece)
        start = self._prev_start if self._prev else self._cur_start
        if offset < start:
            return None
        data = b"".join((self._prev if self._prev else b"", self._cur, *self._ahead))
        return data[offset - start : offset - start + size]

    def skip(self) -> None:
        """Hash the rest of the tar without keeping it (after the extractor refused it, the
        DiffID still tells whether it was the tar the image names)."""
        self._ahead.clear()  # made, so hashed already
        self._cur, self._pos = b"", 0
        while self._make() is not None:
            pass

    def discard(self) -> None:
        """Read the rest of the blob without unpacking it (its digest is still checked): after
        an error in the tar, the blob's own error, if it has one, is the one to tell."""
        for _ in self._blob:
            pass

    @property
    def diff_id(self) -> str:
        return "sha256:" + self.hash.hexdigest()

    @property
    def headers(self) -> str | None:
        return self.scan.digest()


def inflate_file(blob: BinaryIO, out: BinaryIO) -> None:
    """A layer blob saved by `LayerReader`'s tee, gunzipped (if it is gzip) into `out`, 1 MiB
    at a time: the tar to keep beside a layer whose tree cannot give it back. The blob was
    read whole once already, so its gzip stream is known to end."""
    inflater = Inflater()
    while chunk := blob.read(OUT_CHUNK):
        for piece in inflater.pieces(chunk):
            out.write(piece)
    for piece in inflater.end():
        out.write(piece)
