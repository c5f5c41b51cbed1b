"""pgzip: push's block-parallel gzip must be an ordinary gzip file, the same whatever the threads."""

from __future__ import annotations

import gzip
import hashlib
import io
import random
import shutil
import subprocess
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from zlib_ng import zlib_ng

from imagegraph.distribution import pgzip

BLOCK = pgzip.BLOCK


def mixed(size: int, seed: int = 16) -> bytes:
    """Runs of random bytes (stored) and of text (deflated), not aligned with the blocks."""
    rng = random.Random(seed)
    out = bytearray()
    while len(out) < size:
        if rng.random() < 0.4:
            out += rng.randbytes(rng.randint(1, 3 * pgzip.SEGMENT))
        else:
            out += b"".join(b"line %d of some text\n" % i for i in range(rng.randint(1, 4000)))
    return bytes(out[:size])


def gz(data: bytes, threads: int = 2, chunk: int = 100_000) -> tuple[bytes, pgzip.Compressed]:
    out = io.BytesIO()
    done = pgzip.compress((data[i : i + chunk] for i in range(0, len(data), chunk)), out, threads=threads)
    return out.getvalue(), done


@pytest.mark.parametrize("size", [0, 1, pgzip.SAMPLE, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK + 517])
def test_round_trip_through_pythons_gzip_at_block_edges(size: int) -> None:
    data = mixed(size)
    blob, done = gz(data)
    assert gzip.decompress(blob) == data
    assert (done.size, done.raw_size) == (len(blob), len(data))
    assert done.digest == "sha256:" + hashlib.sha256(blob).hexdigest()


def test_one_gzip_member_with_a_fixed_header() -> None:
    """One member (no concatenated members: some readers stop after the first), mtime 0, no
    name, the CRC-32 and length of the whole input in the trailer."""
    data = mixed(5 * BLOCK + 99)
    blob, _ = gz(data)
    assert blob[:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    assert d.decompress(blob) == data
    assert d.eof and d.unused_data == b""
    assert blob[-8:] == zlib.crc32(data).to_bytes(4, "little") + len(data).to_bytes(4, "little")


def test_the_same_bytes_whatever_the_threads_and_chunks() -> None:
    """A layer always gives the same blob digest: a re-push finds what it pushed before."""
    data = mixed(7 * BLOCK + 3)
    one, _ = gz(data, threads=1, chunk=4096)
    assert gz(data, threads=4, chunk=1 << 20)[0] == one
    assert gz(data, threads=2, chunk=BLOCK)[0] == one


def test_random_data_is_stored_text_is_deflated() -> None:
    noise = random.Random(1).randbytes(4 * BLOCK)
    blob, _ = gz(noise)
    assert len(blob) < len(noise) * 1.01  # stored: a few bytes of framing per block
    text = b"".join(b"the quick brown fox %d\n" % (i % 50) for i in range(40_000))
    small, _ = gz(text)
    assert len(small) < len(text) // 20
    # as small as the deflater's own level 6 in one stream (zlib-ng: the layer is more than one
    # block), give or take the blocks' sync flushes
    one = zlib_ng.compressobj(6, zlib_ng.DEFLATED, -15)
    assert len(small) < (len(one.compress(text)) + len(one.flush())) * 1.1


@pytest.mark.skipif(shutil.which("gzip") is None, reason="gzip(1) is not installed")
def test_gzip_t_accepts_it(tmp_path: Path) -> None:
    data = mixed(3 * BLOCK + 1234)
    path = tmp_path / "layer.tar.gz"
    path.write_bytes(gz(data)[0])
    subprocess.run(["gzip", "-t", str(path)], check=True)
    assert subprocess.run(["gzip", "-dc", str(path)], check=True, capture_output=True).stdout == data


@settings(max_examples=30, deadline=None)
@given(st.lists(st.binary(max_size=3 * pgzip.SEGMENT), max_size=12), st.integers(1, 3))
def test_any_input_round_trips(pieces: list[bytes], threads: int) -> None:
    out = io.BytesIO()
    pgzip.compress(iter(pieces), out, threads=threads, block=2 * pgzip.SEGMENT)
    assert gzip.decompress(out.getvalue()) == b"".join(pieces)


def test_a_layer_under_one_block_compresses_as_before() -> None:
    """Under 128 KiB (the labs' layers) the blob is gzip.GzipFile's, byte for byte: the digests
    the labs print did not change."""
    data = b"".join(b"etc/file%d\0" % i + b"\0" * 500 for i in range(200))[: BLOCK - 1]
    before = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=before, compresslevel=6, mtime=0) as g:
        g.write(data)
    assert gz(data)[0] == before.getvalue()


def test_the_shared_sampler_sizes_each_sample_as_a_fresh_compressor() -> None:
    """One level-1 compressor per block, fully flushed after each sample, judges as a new one."""
    import zlib

    from imagegraph.distribution.pgzip import SAMPLE, SEGMENT, _incompressible

    rng = random.Random(7)
    text = b"".join(b"line %d of some text\n" % i for i in range(2000))
    segments = [rng.randbytes(SEGMENT), text[:SEGMENT], rng.randbytes(600) + text[:SEGMENT], bytes(SEGMENT)]
    shared = zlib.compressobj(1, zlib.DEFLATED, -15)
    for segment in segments * 2:
        fresh = zlib.compressobj(1, zlib.DEFLATED, -15)
        size = len(fresh.compress(segment[:SAMPLE])) + len(fresh.flush(zlib.Z_SYNC_FLUSH))
        assert _incompressible(memoryview(segment), shared) == (size >= 0.97 * SAMPLE)
        before = len(shared.compress(segment[:SAMPLE])) + len(shared.flush(zlib.Z_FULL_FLUSH))
        assert before == size  # the same size as a fresh compressor gives, sample after sample
