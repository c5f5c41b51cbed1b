"""Archives that lie to `load`: blobs under another digest, sizes that do not match, paths out
of the archive, index files too big or too deep. One line each, the store unchanged."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

from imagegraph import tarexport

from .conftest import assert_unchanged, snapshot
from .hostile import E, save_archive, sha256, tar_of

LAYER = tar_of([E("etc/", tarfile.DIRTYPE), E("etc/motd", data=b"loaded\n")])
OTHER = tar_of([E("etc/", tarfile.DIRTYPE), E("etc/motd", data=b"swapped\n")])


def members(data: bytes) -> dict[str, Any]:
    """name -> bytes (or the TarInfo of what is not a file)."""
    out: dict[str, Any] = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        for m in tf.getmembers():
            f = tf.extractfile(m)
            out[m.name] = f.read() if f else m
    return out


def rebuild(files: dict[str, tarfile.TarInfo | bytes]) -> bytes:
    b = io.BytesIO()
    with tarfile.open(fileobj=b, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in files.items():
            if isinstance(data, tarfile.TarInfo):
                tf.addfile(data)
                continue
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    return b.getvalue()


def blob(digest: str) -> str:
    return f"blobs/sha256/{digest[7:]}"


def _oci_manifest_name(files: dict) -> str:
    index = json.loads(files["index.json"])
    return blob(index["manifests"][0]["digest"])


def lie(case: str) -> bytes:
    oci = case.startswith("oci-")
    files = members(save_archive([LAYER], "lies:1", oci=oci))
    if case == "oci-layer-under-another-digest":
        files[blob(sha256(LAYER))] = OTHER
    elif case == "oci-config-under-another-digest":
        index = json.loads(files[_oci_manifest_name(files)])
        name = blob(index["config"]["digest"])
        files[name] = files[name].replace(b"amd64", b"arm64")
    elif case == "oci-manifest-under-another-digest":
        name = _oci_manifest_name(files)
        files[name] = files[name].replace(b'"schemaVersion": 2', b'"schemaVersion":2')
    elif case == "oci-layer-size-lies":
        name = _oci_manifest_name(files)
        m = json.loads(files[name])
        m["layers"][0]["size"] += 1
        body = json.dumps(m).encode()
        del files[name]
        files[blob(sha256(body))] = body
        index = json.loads(files["index.json"])
        index["manifests"][0].update(digest=sha256(body), size=len(body))
        files["index.json"] = json.dumps(index).encode()
    elif case == "docker-layer-under-another-digest":
        files[blob(sha256(LAYER))] = OTHER
    elif case == "config-path-escapes":
        m = json.loads(files["manifest.json"])
        m[0]["Config"] = "../../../etc/passwd"
        files["manifest.json"] = json.dumps(m).encode()
    elif case == "symlink-out-of-the-archive":
        link = tarfile.TarInfo("manifest.json")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        files["manifest.json"] = link
    elif case == "manifest-json-of-17-MiB":
        files["manifest.json"] = b"[" + b" " * (17 << 20) + b"]"
    elif case == "manifest-json-nested":
        files["manifest.json"] = b"[" * 100000 + b"]" * 100000
    elif case == "manifest-json-wrong-types":
        m = json.loads(files["manifest.json"])
        m[0]["Layers"] = 5
        files["manifest.json"] = json.dumps(m).encode()
    elif case == "config-of-5-MiB":
        m = json.loads(files["manifest.json"])
        big = json.dumps({"rootfs": {"type": "layers", "diff_ids": [sha256(LAYER)]}, "pad": "x" * (5 << 20)}).encode()
        files[blob(sha256(big))] = big
        m[0]["Config"] = blob(sha256(big))
        files["manifest.json"] = json.dumps(m).encode()
    elif case == "layers-length-mismatch":
        m = json.loads(files["manifest.json"])
        m[0]["Layers"] = m[0]["Layers"] * 2
        files["manifest.json"] = json.dumps(m).encode()
    elif case == "truncated-gzip-layer":
        gz = gzip.compress(LAYER)[:-30]
        m = json.loads(files["manifest.json"])
        files["layer.tar.gz"] = gz
        m[0]["Layers"] = ["layer.tar.gz"]
        files["manifest.json"] = json.dumps(m).encode()
    elif case == "gzip-archive-truncated":
        return gzip.compress(rebuild(files))[:300]
    elif case == "not-a-tar":
        return b"plain text, not a tar archive\n" * 50
    else:
        raise AssertionError(case)
    return rebuild(files)


LIES = {
    "oci-layer-under-another-digest": "does not match its digest",
    "oci-config-under-another-digest": "does not match its digest",
    "oci-manifest-under-another-digest": "does not match its digest",
    "oci-layer-size-lies": "its descriptor says",
    "docker-layer-under-another-digest": "does not match its digest",
    "config-path-escapes": "escapes the archive",
    "symlink-out-of-the-archive": "points outside the archive",
    "manifest-json-of-17-MiB": "over the 16 MiB limit",
    "manifest-json-nested": "nested too deeply",
    "manifest-json-wrong-types": "not a list of strings",
    "config-of-5-MiB": "over the 4 MiB limit",
    "layers-length-mismatch": "layers length mismatch",
    "truncated-gzip-layer": "invalid archive: layer",
    "gzip-archive-truncated": "archive/tar",
    "not-a-tar": "archive/tar: invalid tar header",
}


@pytest.mark.parametrize("case", sorted(LIES))
def test_a_lying_archive_changes_nothing(seeded: Path, ig, tmp_path: Path, case: str) -> None:
    f = tmp_path / "lie.tar"
    f.write_bytes(lie(case))
    before = snapshot(seeded)
    ig("load", "-q", "-i", str(f)).refused(LIES[case])
    assert_unchanged(seeded, before)
    assert not Path("/etc/passwd-loaded").exists()


def test_an_archive_with_too_many_members(seeded: Path, ig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tarexport, "MAX_ENTRIES", 100)
    files = members(save_archive([LAYER], "lies:1"))
    files.update({f"junk/{i}": b"" for i in range(200)})
    f = tmp_path / "many.tar"
    f.write_bytes(rebuild(files))
    before = snapshot(seeded)
    ig("load", "-q", "-i", str(f)).refused("more than 100 entries")
    assert_unchanged(seeded, before)


def test_an_honest_archive_loads(seeded: Path, ig, tmp_path: Path) -> None:
    for oci in (False, True):
        f = tmp_path / "ok.tar"
        f.write_bytes(save_archive([LAYER], f"honest{int(oci)}:1", oci=oci))
        r = ig("load", "-q", "-i", str(f))
        assert r.rc == 0 and r.out == f"Loaded image: honest{int(oci)}:1\n", r.err


def test_load_with_20000_tags_writes_the_tags_once(seeded: Path, ig, tmp_path: Path, monkeypatch) -> None:
    from imagegraph import refstore

    writes = []
    real = refstore.atomic_write
    monkeypatch.setattr(refstore, "atomic_write", lambda *a, **k: (writes.append(1), real(*a, **k)))
    files = members(save_archive([LAYER], "many:t0"))
    m = json.loads(files["manifest.json"])
    m[0]["RepoTags"] = [f"many:t{i}" for i in range(20000)]
    files["manifest.json"] = json.dumps(m).encode()
    f = tmp_path / "tags.tar"
    f.write_bytes(rebuild(files))
    r = ig("load", "-q", "-i", str(f))
    assert r.rc == 0, r.err
    assert len(r.out.splitlines()) == 20000 and len(writes) == 1
    assert len(ig("images", "-q", "many").out.splitlines()) == 20000
