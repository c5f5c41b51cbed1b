"""Hostile layer tars, built in memory: each one names a class of attack an image can carry.

`CASES` maps a case name to a builder returning the tar's bytes and the words its refusal
must contain. The suite feeds every case through `import`, `load` and `pull` alike.
"""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class E:
    """One tar entry: name, type, link target, data, extra PAX records, a size to claim instead."""

    name: str
    kind: bytes = tarfile.REGTYPE
    link: str = ""
    data: bytes = b""
    pax: dict[str, str] | None = None
    claim: int | None = None
    mode: int = 0o644


def tar_of(entries: list[E], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    b = io.BytesIO()
    with tarfile.open(fileobj=b, mode="w", format=fmt) as tf:
        for e in entries:
            ti = tarfile.TarInfo(e.name)
            ti.type = e.kind
            ti.linkname = e.link
            ti.mode = e.mode if e.kind != tarfile.DIRTYPE else 0o755
            ti.mtime = 1600000000
            if e.pax:
                ti.pax_headers = dict(e.pax)
            if e.kind == tarfile.REGTYPE:
                ti.size = len(e.data)
                tf.addfile(ti, io.BytesIO(e.data))
            else:
                tf.addfile(ti)
    raw = b.getvalue()
    for e in entries:  # a lying size field, patched after the fact
        if e.claim is not None:
            raw = _patch_size(raw, e.name, e.claim)
    return raw


def _patch_size(raw: bytes, name: str, size: int) -> bytes:
    """Rewrite the size field (and checksum) of the USTAR header named `name`."""
    buf = bytearray(raw)
    for off in range(0, len(buf), 512):
        block = buf[off : off + 512]
        if block[:100].rstrip(b"\0") == name.encode() and block[257:262] == b"ustar":
            field = b"\x80" + size.to_bytes(11, "big")  # base-256: any size
            buf[off + 124 : off + 136] = field
            buf[off + 148 : off + 156] = b" " * 8
            chk = sum(buf[off : off + 512])
            buf[off + 148 : off + 156] = f"{chk:06o}\0 ".encode()
            return bytes(buf)
    raise AssertionError(f"no header for {name}")


def pax_header_bomb(size: int = 2 << 20) -> bytes:
    """An extended header that claims `size` bytes of records (Python would read it whole)."""
    body = b"x" * size
    hdr = tarfile.TarInfo("PaxHeaders.0/f")
    hdr.type = tarfile.XHDTYPE
    hdr.size = len(body)
    out = hdr.tobuf(tarfile.USTAR_FORMAT) + body + b"\0" * (-len(body) % 512)
    f = tarfile.TarInfo("f")
    return out + f.tobuf(tarfile.USTAR_FORMAT) + b"\0" * 1024


def deep_tar(depth: int, name: str = "d") -> bytes:
    """`d/d/…/d/f`: `depth` directories (PAX paths far beyond PATH_MAX)."""
    entries = [E("/".join([name] * (i + 1)) + "/", tarfile.DIRTYPE) for i in range(depth)]
    entries.append(E("/".join([name] * depth) + "/f", data=b"bottom\n"))
    return tar_of(entries)


def wide_tar(width: int) -> bytes:
    """`width` empty files in one directory."""
    return tar_of([E("wide/", tarfile.DIRTYPE)] + [E(f"wide/f{i:05d}") for i in range(width)])


def gnu_sparse_tar(version: str, logical: int = 1 << 40) -> bytes:
    """A file of `logical` bytes (default 1 TiB) holding 3 bytes, as GNU tar writes sparse files:
    version "gnu" (old GNU 'S' headers) or a PAX format "0.0", "0.1", "1.0"."""
    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / "bomb"
        with open(f, "wb") as out:
            out.truncate(logical)
            out.seek(logical // 2)
            out.write(b"hi\n")
        args = ["--format=gnu"] if version == "gnu" else ["--format=posix", f"--sparse-version={version}"]
        res = subprocess.run(
            ["tar", "-C", d, "--sparse", *args, "--mtime=@1600000000", "-cf", "-", "bomb"],
            capture_output=True,
            check=True,
        )
        return res.stdout


def garbage(n: int = 4096) -> bytes:
    return (b"this is not a tar archive at all. " * (n // 32 + 1))[:n]


def truncated() -> bytes:
    raw = tar_of([E("a", data=b"x" * 5000), E("b", data=b"y" * 5000)])
    return raw[:2048]


def entries_case(entries: list[E]) -> Callable[[], bytes]:
    return lambda: tar_of(entries)


#: name -> (builder, words the one-line error must contain)
CASES: dict[str, tuple[Callable[[], bytes], str]] = {
    # path escapes
    "dotdot": (entries_case([E("ok"), E("../escape")]), "outside of the layer root"),
    "dotdot-inside": (entries_case([E("a/../../escape")]), "outside of the layer root"),
    "absolute": (entries_case([E("/etc/passwd-owned")]), "absolute path"),
    # links out of the layer
    "symlink-then-write": (
        entries_case([E("lnk", tarfile.SYMTYPE, "/tmp"), E("lnk/owned-by-image")]),
        "through the symlink",
    ),
    "symlink-relative-escape": (entries_case([E("lnk", tarfile.SYMTYPE, "../../..")]), "invalid symlink"),
    "hardlink-outside": (entries_case([E("hl", tarfile.LNKTYPE, "../../etc/passwd")]), "outside of the layer root"),
    "hardlink-absent": (entries_case([E("hl", tarfile.LNKTYPE, "etc/passwd")]), "target is not in the layer"),
    "hardlink-to-directory": (
        entries_case([E("dir/", tarfile.DIRTYPE), E("hl", tarfile.LNKTYPE, "dir")]),
        "target is a directory",
    ),
    # whiteout tricks
    "whiteout-dotdot": (entries_case([E("a/", tarfile.DIRTYPE), E("a/.wh...")]), "invalid whiteout"),
    "whiteout-dot": (entries_case([E("a/", tarfile.DIRTYPE), E("a/.wh..")]), "invalid whiteout"),
    "whiteout-empty": (entries_case([E(".wh.")]), "invalid whiteout"),
    # names
    "name-over-255-bytes": (entries_case([E("d/" + "n" * 256)]), "longer than 255 bytes"),
    # header and size lies
    "pax-header-bomb": (pax_header_bomb, "extended header of"),
    "size-claims-a-terabyte": (entries_case([E("big", data=b"x" * 10, claim=1 << 40)]), "unexpected end of data"),
    # truncated and garbage
    "truncated": (truncated, "broken tar archive"),
    "garbage": (garbage, "archive"),
    "empty-stream": (lambda: b"", "archive"),
}

SPARSE_VERSIONS = ("gnu", "0.0", "0.1", "1.0")


def allocated(path: str | os.PathLike[str]) -> int:
    """Bytes of disk a file really uses."""
    return os.lstat(path).st_blocks * 512


def sha256(data: bytes) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(data).hexdigest()


def save_archive(layers: list[bytes], tag: str = "evil:1", oci: bool = False) -> bytes:
    """A `docker save` archive (manifest.json) of one image made of `layers`; with `oci`, a bare
    OCI layout (index.json, oci-layout, blobs) instead."""
    import json

    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [sha256(x) for x in layers]}}
    ).encode()
    files: dict[str, bytes] = {f"blobs/sha256/{sha256(x)[7:]}": x for x in layers}
    files[f"blobs/sha256/{sha256(config)[7:]}"] = config
    if oci:
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": sha256(config),
                    "size": len(config),
                },
                "layers": [
                    {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha256(x), "size": len(x)}
                    for x in layers
                ],
            }
        ).encode()
        files[f"blobs/sha256/{sha256(manifest)[7:]}"] = manifest
        files["oci-layout"] = b'{"imageLayoutVersion":"1.0.0"}'
        files["index.json"] = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "manifests": [
                    {
                        "mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "digest": sha256(manifest),
                        "size": len(manifest),
                        "annotations": {
                            "io.containerd.image.name": f"docker.io/{tag}" if "/" in tag else f"docker.io/library/{tag}"
                        },
                    }
                ],
            }
        ).encode()
    else:
        files["manifest.json"] = json.dumps(
            [{"Config": f"blobs/sha256/{sha256(config)[7:]}", "RepoTags": [tag], "Layers": list(files)[: len(layers)]}]
        ).encode()
    return tar_files(files)


def tar_files(files: dict[str, bytes]) -> bytes:
    b = io.BytesIO()
    with tarfile.open(fileobj=b, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mtime = 1600000000
            tf.addfile(ti, io.BytesIO(data))
    return b.getvalue()
