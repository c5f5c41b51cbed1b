"""The compressions Docker detects in a build context and in ADD's archives (go-archive compression.Detect)."""

from __future__ import annotations

import bz2
import gzip
import lzma
from typing import IO, cast

MAGIC = {"gzip": b"\x1f\x8b\x08", "bzip2": b"BZh", "xz": b"\xfd7zXZ\x00", "zstd": b"\x28\xb5\x2f\xfd"}


def detect(head: bytes) -> str | None:
    for name, magic in MAGIC.items():
        if head.startswith(magic):
            return name
    return None


def decompressed(raw: IO[bytes]) -> IO[bytes]:
    """A reader of the uncompressed bytes (the stream itself when it is not compressed).
    zstd is recognised but not read: the standard library has no zstd."""
    head = raw.read(6)
    raw.seek(0)
    kind = detect(head)
    if kind == "gzip":
        return cast(IO[bytes], gzip.GzipFile(fileobj=raw, mode="rb"))
    if kind == "bzip2":
        return cast(IO[bytes], bz2.BZ2File(raw, "rb"))
    if kind == "xz":
        return cast(IO[bytes], lzma.LZMAFile(raw, "rb"))
    return raw


ERRORS = (OSError, EOFError, lzma.LZMAError)
