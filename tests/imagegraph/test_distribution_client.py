"""The registry client against a real docker-registry: blobs, uploads, mounts, manifests, errors."""

from __future__ import annotations

import hashlib
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from imagegraph.distribution import manifest as M
from imagegraph.distribution.client import RegistryClient, is_insecure, registry_base_url
from imagegraph.distribution.errors import DigestMismatch, NotFound, RegistryError, Unreachable

from .registry_fixture import free_port

pytestmark = pytest.mark.registry


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def blob_data_path(reg, digest: str) -> Path:
    hexd = digest.split(":", 1)[1]
    return reg.storage / "docker/registry/v2/blobs/sha256" / hexd[:2] / hexd / "data"


def test_monolithic_upload_then_head_and_get(registry):
    c = RegistryClient(registry.domain)
    data = os.urandom(50_000)
    d = digest_of(data)
    assert c.head_blob("mono/one", d) is None
    c.upload_blob("mono/one", d, data, len(data))
    assert c.head_blob("mono/one", d) == len(data)
    assert c.get_blob("mono/one", d, len(data)) == data


def test_chunked_upload_from_a_file(registry, tmp_path):
    c = RegistryClient(registry.domain)
    data = os.urandom(200_001)
    d = digest_of(data)
    f = tmp_path / "blob"
    f.write_bytes(data)
    seen: list[int] = []
    with open(f, "rb") as fh:
        c.upload_blob("chunk/one", d, fh, len(data), chunk_size=65_536, on_chunk=seen.append)
    assert seen == [65_536, 131_072, 196_608, 200_001]
    assert c.get_blob("chunk/one", d) == data


def test_upload_with_wrong_digest_is_refused(registry):
    c = RegistryClient(registry.domain)
    data = b"some bytes"
    wrong = digest_of(b"other bytes")
    with pytest.raises(RegistryError, match="digest"):
        c.upload_blob("bad/digest", wrong, data, len(data))
    assert c.head_blob("bad/digest", wrong) is None


def test_cross_repository_mount(registry):
    c = RegistryClient(registry.domain)
    data = os.urandom(1000)
    d = digest_of(data)
    c.upload_blob("mount/src", d, data, len(data))
    assert c.head_blob("mount/dst", d) is None
    assert c.mount_blob("mount/dst", d, "mount/src") is True
    assert c.head_blob("mount/dst", d) == len(data)
    # a blob the source does not have cannot be mounted; the registry opens an upload instead
    missing = digest_of(b"never uploaded")
    assert c.mount_blob("mount/dst", missing, "mount/src") is False
    assert c.head_blob("mount/dst", missing) is None


def _push_image(c: RegistryClient, repo: str, tag: str) -> tuple[bytes, str]:
    layer = os.urandom(3000)
    config = (
        b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["%s"]}}'
        % digest_of(layer).encode()
    )
    c.upload_blob(repo, digest_of(layer), layer, len(layer))
    c.upload_blob(repo, digest_of(config), config, len(config))
    man = M.build_manifest(
        M.Descriptor(M.DOCKER_CONFIG, digest_of(config), len(config)),
        [M.Descriptor(M.DOCKER_LAYER, digest_of(layer), len(layer))],
    )
    assert c.put_manifest(repo, tag, man, M.DOCKER_MANIFEST) == digest_of(man)
    return man, digest_of(man)


def test_manifest_put_head_get(registry):
    c = RegistryClient(registry.domain)
    man, d = _push_image(c, "man/img", "v1")
    head = c.head_manifest("man/img", "v1")
    assert (head.digest, head.media_type) == (d, M.DOCKER_MANIFEST)
    got = c.get_manifest("man/img", "v1")
    assert (got.body, got.digest, got.media_type) == (man, d, M.DOCKER_MANIFEST)
    by_digest = c.get_manifest("man/img", d)
    assert by_digest.body == man
    parsed = M.parse(got.body, got.media_type)
    assert isinstance(parsed, M.Manifest) and len(parsed.layers) == 1
    assert c.tags("man/img") == ["v1"]


def test_oci_index_round_trip_and_platform_choice(registry):
    c = RegistryClient(registry.domain)
    _, amd = _push_image(c, "idx/img", "amd")
    _, arm = _push_image(c, "idx/img", "arm")

    def size(tag: str) -> int:
        return len(c.get_manifest("idx/img", tag).body)

    index = M.build_index(
        [
            M.Descriptor(M.DOCKER_MANIFEST, arm, size("arm"), platform=M.Platform("linux", "arm64", "v8")),
            M.Descriptor(M.DOCKER_MANIFEST, amd, size("amd"), platform=M.Platform("linux", "amd64")),
        ]
    )
    c.put_manifest("idx/img", "multi", index, M.OCI_INDEX)
    got = c.get_manifest("idx/img", "multi")
    assert got.media_type == M.OCI_INDEX
    parsed = M.parse(got.body, got.media_type)
    assert isinstance(parsed, M.Index)
    assert M.select_platform(parsed, M.parse_platform("linux/amd64")).digest == amd
    assert M.select_platform(parsed, M.parse_platform("linux/arm64")).digest == arm
    with pytest.raises(M.ManifestError, match="no matching manifest for linux/s390x in the manifest list entries"):
        M.select_platform(parsed, M.parse_platform("linux/s390x"))


def test_unknown_tag_and_repository(registry):
    c = RegistryClient(registry.domain)
    _push_image(c, "known/repo", "v1")
    with pytest.raises(NotFound) as exc:
        c.get_manifest("known/repo", "nope")
    assert str(exc.value) == "manifest unknown: manifest unknown"
    with pytest.raises(NotFound) as exc:
        c.head_manifest("unknown/repo", "latest")
    assert str(exc.value) == "manifest unknown: manifest unknown"
    with pytest.raises(NotFound) as exc:
        c.tags("unknown/repo")
    assert str(exc.value).startswith("name unknown: repository name not known to registry")


def test_corrupted_blob_fails_verification(registry):
    c = RegistryClient(registry.domain)
    data = os.urandom(10_000)
    d = digest_of(data)
    c.upload_blob("corrupt/one", d, data, len(data))
    path = blob_data_path(registry, d)
    path.write_bytes(b"X" + data[1:])  # same size, wrong bytes
    with pytest.raises(DigestMismatch) as exc:
        c.get_blob("corrupt/one", d, len(data))
    assert str(exc.value) == f"filesystem layer verification failed for digest {d}"


def test_truncated_blob_is_unexpected_eof(registry):
    c = RegistryClient(registry.domain)
    data = os.urandom(10_000)
    d = digest_of(data)
    c.upload_blob("trunc/one", d, data, len(data))
    blob_data_path(registry, d).write_bytes(data[:4000])
    with pytest.raises(RegistryError, match="^unexpected EOF$"):
        c.get_blob("trunc/one", d, len(data))


def test_registry_not_answering():
    port = free_port()  # nothing listens there
    with pytest.raises(Unreachable) as exc:
        RegistryClient(f"127.0.0.1:{port}").head_manifest("a/b", "latest")
    assert str(exc.value) == (
        f'Get "http://127.0.0.1:{port}/v2/": dial tcp 127.0.0.1:{port}: connect: connection refused'
    )


class _LyingRegistry(BaseHTTPRequestHandler):
    """Serves a manifest body that does not match the digest it claims (and was asked for)."""

    body = b'{"schemaVersion":2}'

    def log_message(self, *a):
        pass

    def do_GET(self):
        if self.path == "/v2/":
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", M.OCI_MANIFEST)
        self.send_header("Docker-Content-Digest", "sha256:" + "0" * 64)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)


def test_manifest_digest_is_verified():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _LyingRegistry)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        c = RegistryClient(f"127.0.0.1:{server.server_address[1]}")
        want = "sha256:" + "0" * 64
        with pytest.raises(DigestMismatch, match=f"manifest verification failed for digest {want}"):
            c.get_manifest("a/b", want)
        with pytest.raises(DigestMismatch):
            c.get_manifest("a/b", "latest")  # the header's digest disagrees with the body
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    "domain,insecure,expected",
    [
        ("localhost:5000", (), "http://localhost:5000"),
        ("localhost", (), "http://localhost"),
        ("127.0.0.1:5000", (), "http://127.0.0.1:5000"),
        ("127.8.9.10", (), "http://127.8.9.10"),
        ("[::1]:5000", (), "http://[::1]:5000"),
        ("registry.example.com", (), "https://registry.example.com"),
        ("registry.example.com:5000", ("registry.example.com:5000",), "http://registry.example.com:5000"),
        ("10.1.2.3:5000", ("10.0.0.0/8",), "http://10.1.2.3:5000"),
        ("10.1.2.3:5000", (), "https://10.1.2.3:5000"),
        ("docker.io", (), "https://registry-1.docker.io"),
    ],
)
def test_scheme_choice(domain, insecure, expected):
    assert registry_base_url(domain, insecure) == expected
    assert is_insecure(domain, insecure) == expected.startswith("http:")
