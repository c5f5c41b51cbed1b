"""unpack: a layer blob gunzipped, hashed, scanned and read as a tar as it downloads."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from imagegraph import archive
from imagegraph.distribution.unpack import OUT_CHUNK, LayerReader, UnpackError, inflate_file


def tree(base: Path) -> Path:
    """Entries of every kind our writer makes, long and non-ASCII names (PAX headers) too."""
    (base / "etc").mkdir(parents=True)
    (base / "etc" / "hostname").write_text("box\n")
    (base / "etc" / "block").write_bytes(b"x" * 512)  # no padding
    (base / "etc" / "odd").write_bytes(b"y" * 513)
    (base / "empty").write_bytes(b"")
    (base / ("n" * 150)).write_text("a long name\n")
    (base / "café").write_text("utf-8\n")
    os.symlink("etc/hostname", base / "link")
    os.link(base / "etc" / "hostname", base / "hard")
    return base


def chunks(blob: bytes, chunk: int) -> list[bytes]:
    return [blob[i : i + chunk] for i in range(0, len(blob), chunk)]


def unpack(blob: bytes, chunk: int = 1000, read: int = 4096) -> tuple[LayerReader, bytes]:
    """Read the tar out of `blob`, which comes `chunk` bytes at a time; the tee gets the blob,
    which `inflate_file` turns into the same tar."""
    tee = io.BytesIO()
    u = LayerReader(chunks(blob, chunk), tee)
    got = bytearray()
    while piece := u.read(read):
        assert len(piece) <= read
        got += piece
    assert tee.getvalue() == blob and u.blob_size == len(blob)
    again = io.BytesIO()
    inflate_file(io.BytesIO(blob), again)
    assert again.getvalue() == got
    return u, bytes(got)


@pytest.mark.parametrize("chunk", [1, 511, 512, 4096, 1 << 20])
def test_our_tar_gives_the_trees_headers_digest(tmp_path: Path, chunk: int) -> None:
    src = tree(tmp_path / "t")
    buf = io.BytesIO()
    written = archive.write_layer_tar(src, buf)
    u, tar = unpack(gzip.compress(buf.getvalue()), chunk)
    assert tar == buf.getvalue()
    assert u.diff_id == written.diff_id
    assert u.headers == written.headers == archive.headers_digest(src)


def test_a_plain_tar_passes_as_it_is(tmp_path: Path) -> None:
    buf = io.BytesIO()
    written = archive.write_layer_tar(tree(tmp_path / "t"), buf)
    u, tar = unpack(buf.getvalue())
    assert tar == buf.getvalue() and u.diff_id == written.diff_id and u.headers == written.headers


def our_tar(tmp_path: Path) -> bytes:
    buf = io.BytesIO()
    archive.write_layer_tar(tree(tmp_path / "t"), buf)
    return buf.getvalue()


def test_tars_that_differ_outside_the_headers_get_no_digest(tmp_path: Path) -> None:
    """Whatever our writer would not write again byte for byte leaves the slow check to the store."""
    tar = our_tar(tmp_path)
    end = len(tar) - 1024
    # more zeros at the end (tar(1) and Python pad to a 10 KiB record)
    assert unpack(tar + b"\0" * 512)[0].headers is None
    # data after the end-of-archive blocks
    assert unpack(tar[:end] + b"\0" * 1023 + b"x")[0].headers is None
    # no end-of-archive blocks at all
    assert unpack(tar[:end])[0].headers is None
    # a file's padding that is not zeros: etc/odd has 511 bytes of it
    at = tar.index(b"y" * 513) + 513
    spoiled = tar[:at] + b"z" + tar[at + 1 :]
    assert unpack(spoiled)[0].headers is None


def test_python_and_gnu_headers_get_no_digest(tmp_path: Path) -> None:
    src = tree(tmp_path / "t")
    for fmt in (tarfile.GNU_FORMAT, tarfile.PAX_FORMAT):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
            tf.add(src, arcname=".")
        # GNU long names (type L), and in any case tarfile's 10 KiB record of zeros
        assert unpack(buf.getvalue())[0].headers is None


def test_several_gzip_members_and_zeros_after_them(tmp_path: Path) -> None:
    """Go's gzip reader reads on across members; Python's skips zeros after the last."""
    tar = our_tar(tmp_path)
    half = len(tar) // 2
    blob = gzip.compress(tar[:half]) + gzip.compress(tar[half:]) + b"\0" * 100
    u, out = unpack(blob, 333)
    assert out == tar and u.diff_id == "sha256:" + hashlib.sha256(tar).hexdigest()


def test_broken_gzip_is_one_line(tmp_path: Path) -> None:
    blob = gzip.compress(our_tar(tmp_path))
    with pytest.raises(UnpackError, match="^gzip: unexpected EOF"):
        unpack(blob[:-20])
    with pytest.raises(UnpackError, match="^gzip: "):
        unpack(blob[:-1] + bytes([blob[-1] ^ 1]))  # the length check
    with pytest.raises(UnpackError, match="^gzip: "):
        unpack(blob + b"junk after the member")
    with pytest.raises(UnpackError, match="^gzip: "):
        unpack(b"\x1f\x8b" + b"not really gzip" * 100)


def test_a_gzip_bomb_is_never_whole_in_memory() -> None:
    """64 MiB of zeros compress to 64 KiB: each piece stays at 1 MiB, whatever one chunk holds,
    and is made only when it is read."""
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    blob = z.compress(b"\0" * (64 << 20)) + z.flush()
    u = LayerReader([blob])  # one chunk holding it all
    total = 0
    while piece := u.read(OUT_CHUNK):
        total += len(piece)
        assert len(u._cur) <= OUT_CHUNK and not u._ahead  # the piece being read, nothing more
    assert total == 64 << 20
    assert u.headers is None  # zeros are no tar that ends as ours does


@pytest.mark.parametrize("level", [0, 1, 9])
@pytest.mark.parametrize("chunk", [1 << 20, (1 << 20) + 1, 65536, 7])
def test_inflate_across_out_chunks_and_blob_chunks(level: int, chunk: int) -> None:
    """Output cut at `OUT_CHUNK` while input is left (zeros), or none is (random, stored at
    level 0): every byte comes out, whichever chunk of the blob ends where."""
    data = os.urandom((1 << 20) + 3) + b"\0" * (3 << 20) + os.urandom(5) + b"\0" * OUT_CHUNK
    blob = gzip.compress(data, compresslevel=level)
    u = LayerReader(chunks(blob, chunk))
    got = bytearray()
    while piece := u.read():
        assert len(piece) <= OUT_CHUNK
        got += piece
    assert bytes(got) == data and u.blob_size == len(blob)


def reused(blob: bytes, chunk: int) -> Iterator[memoryview]:
    """`blob` as a pull reads it: each chunk a view of one buffer, filled again for the next."""
    buffer = bytearray(chunk)
    for i in range(0, len(blob), chunk):
        part = blob[i : i + chunk]
        buffer[: len(part)] = part
        yield memoryview(buffer)[: len(part)]
    buffer[:] = b"\xff" * chunk  # what a reader kept of the last chunk would now be wrong


@pytest.mark.parametrize("chunk", [1, 333, 4096])
def test_chunks_read_into_one_buffer_are_not_kept(tmp_path: Path, chunk: int) -> None:
    """Plain, gzip, and several gzip members with zeros between: the reader copies what it
    keeps of a chunk (a plain tar's bytes, the start of the blob) before the buffer is reused."""
    tar = our_tar(tmp_path)
    half = len(tar) // 2
    for blob in (tar, gzip.compress(tar), gzip.compress(tar[:half]) + b"\0" * 7 + gzip.compress(tar[half:])):
        tee = io.BytesIO()
        u = LayerReader(reused(blob, chunk), tee)
        assert u.block_at(len(tar) - 2048, 1024) == tar[-2048:-1024]  # every piece made ahead
        got = bytearray()
        while piece := u.read(5000):
            got += piece
        assert bytes(got) == tar and tee.getvalue() == blob and u.headers is not None


def test_read_view_is_the_piece_without_a_copy(tmp_path: Path) -> None:
    tar = our_tar(tmp_path)
    u = LayerReader(chunks(gzip.compress(tar), 100))
    first = u.read_view(10)
    assert first.obj is u._cur and bytes(first) == tar[:10]
    got = bytearray(first)
    while view := u.read_view(333):
        assert len(view) <= 333
        got += view
    assert bytes(got) == tar and not u.read_view(1)


def test_big_members_are_written_from_the_readers_pieces(tmp_path: Path) -> None:
    """A member over `archive.COPY_DIRECT` goes from the inflater's pieces to its file (no
    buffer in between); its bytes, the DiffID and a short member's error are as before."""
    src = tmp_path / "src"
    src.mkdir()
    big = os.urandom(3 << 20) + b"text" * (1 << 18)
    (src / "big").write_bytes(big)
    (src / "small").write_bytes(b"x" * 100)
    tar = io.BytesIO()
    written = archive.write_layer_tar(src, tar)
    blob = gzip.compress(tar.getvalue(), compresslevel=1)
    u = LayerReader(chunks(blob, 65536))
    result = archive.apply_layer_tar(u, tmp_path / "out", diff_id=written.diff_id)
    assert (tmp_path / "out" / "big").read_bytes() == big
    assert u.diff_id == written.diff_id == result.diff_id
    cut = tar.getvalue()[: len(tar.getvalue()) // 2]  # inside the big member's data
    u = LayerReader(chunks(gzip.compress(cut), 65536))
    with pytest.raises(archive.ArchiveError, match='unexpected end of data in "big"'):
        archive.apply_layer_tar(u, tmp_path / "cut", diff_id="sha256:" + "0" * 64)


def test_readinto_and_short_reads(tmp_path: Path) -> None:
    tar = our_tar(tmp_path)
    u = LayerReader(chunks(gzip.compress(tar), 100))
    got = bytearray()
    buf = bytearray(777)
    while n := u.readinto(memoryview(buf)):
        got += buf[:n]
    assert bytes(got) == tar


def test_block_at_looks_back_and_ahead_without_reading(tmp_path: Path) -> None:
    """Where tarfile stopped (behind what it read ahead, or further on), for the end check."""
    tar = our_tar(tmp_path)
    u = LayerReader(chunks(tar, 300))
    first = u.read(1000)
    assert u.block_at(500) == tar[500:1012]  # behind the read position, and ahead of it
    assert u.block_at(len(tar) - 100) == tar[-100:]  # the end: fewer bytes
    rest = bytearray()
    while piece := u.read(1 << 20):
        rest += piece
    assert first + bytes(rest) == tar  # nothing lost by looking ahead
    assert u.block_at(0) is None  # long passed


def test_skip_hashes_the_rest_and_discard_checks_the_blob(tmp_path: Path) -> None:
    tar = our_tar(tmp_path)
    tee = io.BytesIO()
    u = LayerReader(chunks(gzip.compress(tar), 100), tee)
    u.read(10)
    u.skip()
    assert u.diff_id == "sha256:" + hashlib.sha256(tar).hexdigest()

    class Liar(Exception):
        pass

    def blob() -> Iterator[bytes]:
        yield gzip.compress(tar)[:50]
        yield b"more"
        raise Liar("digest")

    u = LayerReader(blob())
    with pytest.raises(UnpackError):
        u.read(1 << 20)
        u.read(1 << 20)
    with pytest.raises(Liar):
        u.discard()  # the blob's own error, raised when it is read to its end


def test_a_failed_tee_is_told_again_not_taken_for_the_end(tmp_path: Path) -> None:
    """A full disk under the saved blob ends the reads with ENOSPC; asked again (the extractor
    gave up, and the pull hashes the rest to tell a wrong DiffID from a broken tar), the reader
    must say ENOSPC again, not end early as if the tar were short (a DiffID "mismatch")."""
    tar = our_tar(tmp_path)

    class FullDisk(io.BytesIO):
        def write(self, data: object) -> int:
            if self.tell() > 0:
                raise OSError(28, "No space left on device")
            return super().write(data)  # type: ignore[arg-type]

    u = LayerReader(chunks(gzip.compress(tar), 100), FullDisk())
    with pytest.raises(OSError) as first:
        while u.read(1 << 20):
            pass
    with pytest.raises(OSError) as again:
        u.skip()
    assert again.value is first.value and again.value.errno == 28
