"""A registry that lies about digests, sizes and lengths, or sends without end: every pull stops
with one line naming the object, reads no more than the descriptor allows, and leaves the
store byte for byte as it was."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import REPO, assert_unchanged, snapshot
from .hostile import E, tar_of
from .lying_registry import OCI_MANIFEST, LyingRegistry, Served, endless, sha


@pytest.fixture
def registry() -> Iterator[LyingRegistry]:
    reg = LyingRegistry()
    yield reg
    reg.close()


def _layer(text: str = "hello") -> bytes:
    return tar_of([E("etc/", b"5"), E("etc/file", data=text.encode())])


def _pull(ig, registry: LyingRegistry, name: str = "lies/img:1"):
    return ig("pull", "-q", f"{registry.domain}/{name}")


def _spoil_config(registry: LyingRegistry, img, served: Served) -> None:
    registry.blob(img.repo, sha(img.config), served)


def _republish(registry: LyingRegistry, img, manifest: dict) -> None:
    body = json.dumps(manifest).encode()
    registry.publish_manifest(img.repo, img.tag, body)


LIES = {
    # manifests
    "manifest-of-300-MB": "larger than 4 MiB",
    "manifest-without-end": "larger than 4 MiB",
    "manifest-digest-header-lies": "manifest verification failed",
    "manifest-nested-100000-deep": "nested too deeply",
    "manifest-wrong-types": "invalid descriptor",
    # configs
    "config-longer-than-its-size": "image config sha256:",
    "config-declares-a-terabyte": "over the 4 MiB limit",
    "config-digest-lies": "image config verification failed",
    "config-nested-100000-deep": "nested too deeply",
    "config-not-json": "invalid image config",
    # layers
    "layer-longer-than-its-size": "filesystem layer sha256:",
    "layer-without-end": "filesystem layer sha256:",
    "layer-shorter-than-its-size": "unexpected EOF",
    "layer-digest-lies": "filesystem layer verification failed",
    "layer-content-length-lies": "filesystem layer sha256:",
    "diff-id-lies": "layers from manifest don't match image configuration",
    "layer-not-gzip-though-it-says": "failed to register layer",
}


def _tell(case: str, registry: LyingRegistry) -> None:
    """Publish lies/img:1 with one lie in it."""
    img = registry.image("lies/img", "1", [_layer(), _layer("second")])
    manifest = json.loads(img.manifest)
    layer0 = img.layers[0]
    if case == "manifest-of-300-MB":
        registry.manifest(img.repo, "1", Served(endless(total=300 << 20), OCI_MANIFEST, content_length=300 << 20))
    elif case == "manifest-without-end":
        registry.manifest(img.repo, "1", Served(endless(), OCI_MANIFEST))
    elif case == "manifest-digest-header-lies":  # asked for by its digest, it sends other bytes
        other = img.manifest.replace(b'"schemaVersion": 2', b'"schemaVersion":  2')
        registry.manifest(img.repo, sha(img.manifest), Served(other, OCI_MANIFEST))
    elif case == "manifest-nested-100000-deep":
        registry.publish_manifest(img.repo, "1", b"[" * 100000 + b"]" * 100000)
    elif case == "manifest-wrong-types":
        manifest["layers"][0]["annotations"] = ["not", "an", "object"]
        _republish(registry, img, manifest)
    elif case == "config-longer-than-its-size":
        _spoil_config(registry, img, Served(img.config + b" " * 1000))
    elif case == "config-declares-a-terabyte":
        manifest["config"]["size"] = 1 << 40
        _republish(registry, img, manifest)
    elif case == "config-digest-lies":
        _spoil_config(registry, img, Served(img.config.replace(b"amd64", b"arm64")))
    elif case in ("config-nested-100000-deep", "config-not-json"):
        bad = b"[" * 100000 + b"]" * 100000 if case == "config-nested-100000-deep" else b"\xff not json"
        registry.blob(img.repo, sha(bad), Served(bad))
        manifest["config"] = {"mediaType": manifest["config"]["mediaType"], "digest": sha(bad), "size": len(bad)}
        _republish(registry, img, manifest)
    elif case == "layer-longer-than-its-size":
        registry.blob(img.repo, sha(layer0), Served(layer0 + b"\0" * 5000))
    elif case == "layer-without-end":
        registry.blob(img.repo, sha(layer0), Served(endless(b"\0" * 65536)))
    elif case == "layer-shorter-than-its-size":
        registry.blob(img.repo, sha(layer0), Served(endless(layer0[:20], total=20)))
    elif case == "layer-digest-lies":
        registry.blob(img.repo, sha(layer0), Served(layer0[:-1] + bytes([layer0[-1] ^ 1])))
    elif case == "layer-content-length-lies":
        registry.blob(img.repo, sha(layer0), Served(layer0, content_length=len(layer0) + 100000))
    elif case == "diff-id-lies":
        other = gzip.compress(_layer("swapped"), mtime=0)
        registry.blob(img.repo, sha(other), Served(other))
        manifest["layers"][1] = dict(manifest["layers"][1], digest=sha(other), size=len(other))
        _republish(registry, img, manifest)
    elif case == "layer-not-gzip-though-it-says":
        junk = b"\x1f\x8b" + b"not really gzip" * 100
        registry.blob(img.repo, sha(junk), Served(junk))
        manifest["layers"][1] = dict(manifest["layers"][1], digest=sha(junk), size=len(junk))
        _republish(registry, img, manifest)
    else:
        raise AssertionError(case)


@pytest.mark.parametrize("case", sorted(LIES))
def test_a_lying_registry_changes_nothing(seeded: Path, ig, registry: LyingRegistry, case: str) -> None:
    _tell(case, registry)
    before = snapshot(seeded)
    _pull(ig, registry).refused(LIES[case])
    assert_unchanged(seeded, before)


def test_an_honest_registry_still_works(seeded: Path, ig, registry: LyingRegistry) -> None:
    registry.image("lies/img", "1", [_layer(), _layer("second")])
    r = _pull(ig, registry)
    assert r.rc == 0, r.err
    assert ig("create", "--name", "pulled", f"{registry.domain}/lies/img:1", "/bin/sh").rc == 0


def test_a_300_MB_manifest_costs_no_memory(seeded: Path, registry: LyingRegistry) -> None:
    """The pull stops after 4 MiB: its peak RSS stays far below the 300 MB it was offered (it
    was 626 MB before). VmHWM, not ru_maxrss: the latter keeps the RSS of the forked pytest
    from before exec, which a long run makes hundreds of MB."""
    _tell("manifest-of-300-MB", registry)
    code = (
        "import sys; from imagegraph.cli import main; "
        f"rc = main(['--root', {str(seeded)!r}, 'pull', '-q', '{registry.domain}/lies/img:1']); "
        "print(next(line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM:'))); "
        "sys.exit(rc)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert res.returncode == 1 and "larger than 4 MiB" in res.stderr
    peak_kib = int(res.stdout.split()[-1])
    assert peak_kib < 150 * 1024, f"peak RSS {peak_kib} KiB"
