"""Parallel gzip for push, as pigz and Go's pgzip (skopeo's compressor) write it.

The input is cut into blocks compressed by threads (zlib releases the GIL), each primed with
the last 32 KiB of the block before it as its dictionary, so matches reach across blocks as in
one stream. Every block but the last ends with a sync flush (byte-aligned, not final); the last
ends the deflate stream. The blocks joined in order are one raw deflate stream, wrapped in one
gzip member whose CRC-32 is computed over the input as it goes by. Readers see an ordinary
gzip file (Python's gzip, `gzip -t`, Go's compress/gzip).

Blocks whose samples do not compress (already-compressed or random data: zlib spends as long on
them as on text, for nothing) are stored instead, as Go's compress/flate does at its fast
levels. The output depends only on the input and the settings, never on thread timing: the same
layer always gives the same blob digest. A layer of one block is deflated by Python's zlib, so
it gives `gzip.GzipFile`'s bytes; bigger ones by zlib-ng (a third faster at the same level and
size), whose version is held to a minor release so that its bytes do not move under a user
(as a Go release can move Docker's).
"""

from __future__ import annotations

import hashlib
import os
import struct
import zlib
from collections import deque
from collections.abc import Generator, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, BinaryIO

from zlib_ng import zlib_ng

BLOCK = 128 << 10  # pigz's default block size
WINDOW = 32 << 10  # deflate's window: the dictionary each block is primed with
SEGMENT = 16 << 10  # what is judged compressible or not
SAMPLE = 1 << 10  # the part of a segment tried at level 1
#: A sample that level 1 shrinks by less than this is incompressible.
STORE_RATIO = 0.97
#: Go's gzip.DefaultCompression (level 6), what Docker and skopeo push with.
LEVEL = 6
HEADER = b"\x1f\x8b\x08\x00" + b"\x00\x00\x00\x00" + b"\x00\xff"  # no name, mtime 0, OS unknown


def _incompressible(segment: memoryview, z: Any) -> bool:
    """Whether a sample from the segment resists level-1 deflate (random or compressed data).
    `z` is a level-1 compressor used for samples only: a full flush after each one forgets it
    (the sizes are a fresh compressor's), and costs a fifth of setting up a new one."""
    sample = segment[:SAMPLE]
    if len(sample) < SAMPLE:
        return False
    return len(z.compress(sample)) + len(z.flush(zlib.Z_FULL_FLUSH)) >= STORE_RATIO * len(sample)


def _runs(block: memoryview) -> Iterator[tuple[int, int, bool]]:
    """(start, end, stored) of the block's runs of compressible and incompressible segments."""
    start, stored = 0, None
    sampler = zlib.compressobj(1, zlib.DEFLATED, -15)
    for i in range(0, len(block), SEGMENT):
        kind = _incompressible(block[i : i + SEGMENT], sampler)
        if stored is None:
            stored = kind
        elif kind != stored:
            yield start, i, stored
            start, stored = i, kind
    yield start, len(block), bool(stored)


def _deflate(block: memoryview, dictionary: memoryview, last: bool, level: int, lib: Any = zlib) -> bytes:
    """One block as a piece of a raw deflate stream (a thread's work): each run of segments
    compressed by `lib` (zlib or zlib-ng, primed with the 32 KiB of input before it) or stored;
    every run but the very last ends with a sync flush, so the pieces join."""
    out = []
    runs = list(_runs(block))
    for n, (start, end, stored) in enumerate(runs):
        flush = zlib.Z_FINISH if last and n == len(runs) - 1 else zlib.Z_SYNC_FLUSH
        if stored:
            z = zlib.compressobj(0, zlib.DEFLATED, -15)
        else:
            need = max(0, WINDOW - start)  # from the block before, when the run starts early in this one
            before = bytes(dictionary[max(0, len(dictionary) - need) :]) + bytes(block[max(0, start - WINDOW) : start])
            z = (
                lib.compressobj(level, zlib.DEFLATED, -15, zdict=before)
                if before
                else lib.compressobj(level, zlib.DEFLATED, -15)
            )
        out.append(z.compress(block[start:end]))
        out.append(z.flush(flush))
    return b"".join(out)


def _blocks(chunks: Iterable[bytes], size: int) -> Iterator[memoryview]:
    """Regroup chunks into blocks of `size` bytes (the last may be shorter, or empty), copying
    each byte once."""
    pieces: list[bytes] = []
    held = 0
    for chunk in chunks:
        pieces.append(chunk)
        held += len(chunk)
        if held >= size:
            data = memoryview(b"".join(pieces))
            whole = len(data) - len(data) % size
            for i in range(0, whole, size):
                yield data[i : i + size]
            rest = bytes(data[whole:])
            pieces, held = ([rest] if rest else []), len(rest)
    yield memoryview(b"".join(pieces))


@dataclass(frozen=True)
class Compressed:
    digest: str  # sha256 of the gzip bytes written
    size: int  # gzip bytes written
    raw_size: int  # input bytes


def compress(
    chunks: Iterable[bytes],
    out: BinaryIO,
    level: int = LEVEL,
    threads: int | None = None,
    block: int = BLOCK,
) -> Compressed:
    """gzip `chunks` into `out` with `threads` compressing blocks at once (default: the CPUs)."""
    stream = compress_stream(chunks, level, threads, block)
    while True:
        try:
            out.write(next(stream))
        except StopIteration as done:
            result: Compressed = done.value
            return result


def compress_stream(
    chunks: Iterable[bytes],
    level: int = LEVEL,
    threads: int | None = None,
    block: int = BLOCK,
) -> Generator[bytes, None, Compressed]:
    """The gzip bytes of `chunks` as they are made (a push streams them to the registry);
    the generator's return value says their digest and size."""
    threads = max(1, threads or os.cpu_count() or 1)
    digest = hashlib.sha256(HEADER)
    crc, raw_size, written = 0, 0, len(HEADER)
    yield HEADER
    in_flight: deque[Future[bytes]] = deque()
    with ThreadPoolExecutor(threads, "gzip") as pool:
        try:
            previous = memoryview(b"")
            blocks = _blocks(chunks, block)
            current = next(blocks)
            lib: Any = None
            while True:
                following = next(blocks, None)  # known before `current` goes: is it the last?
                if lib is None:  # one block: Python's gzip's bytes (zlib); more: zlib-ng, faster
                    lib = zlib if following is None else zlib_ng
                crc = zlib_ng.crc32(current, crc)  # the same CRC-32, six times as fast
                raw_size += len(current)
                in_flight.append(pool.submit(_deflate, current, previous[-WINDOW:], following is None, level, lib))
                while len(in_flight) > 2 * threads:  # bounded memory: a few blocks per thread
                    data = in_flight.popleft().result()
                    digest.update(data)
                    written += len(data)
                    yield data
                if following is None:
                    break
                previous, current = current, following
            while in_flight:
                data = in_flight.popleft().result()
                digest.update(data)
                written += len(data)
                yield data
        finally:
            for future in in_flight:
                future.cancel()
    trailer = struct.pack("<II", crc & 0xFFFFFFFF, raw_size & 0xFFFFFFFF)
    digest.update(trailer)
    yield trailer
    return Compressed("sha256:" + digest.hexdigest(), written + len(trailer), raw_size)
