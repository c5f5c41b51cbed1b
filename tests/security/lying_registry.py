"""A registry that lies, for the tests: a small http.server on 127.0.0.1 serving the OCI
distribution API's read side from dictionaries, with hooks to lie about digests, sizes and
lengths, or to send bodies without end.

`LyingRegistry.image(...)` publishes an image (gzip or plain layers) under a tag and returns
its parts, so a test can then spoil exactly one of them.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


Body = bytes | Callable[[], Iterable[bytes]]  # a callable streams (an endless body, say)


@dataclass
class Served:
    """What one path answers: body, content type, and extra or lying headers."""

    body: Body
    content_type: str = "application/octet-stream"
    headers: dict[str, str] = field(default_factory=dict)
    content_length: int | None = None  # None: the true length (or none for a stream)


@dataclass
class PublishedImage:
    repo: str
    tag: str
    manifest: bytes
    config: bytes
    layers: list[bytes]  # blobs as served
    diff_ids: list[str]

    @property
    def manifest_digest(self) -> str:
        return sha(self.manifest)


class LyingRegistry:
    def __init__(self) -> None:
        self.paths: dict[str, Served] = {}
        self.requests: list[str] = []
        registry = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_HEAD(self) -> None:
                self._answer(head=True)

            def do_GET(self) -> None:
                self._answer(head=False)

            def _answer(self, head: bool) -> None:
                path = self.path.split("?", 1)[0]
                registry.requests.append(f"{self.command} {path}")
                if path == "/v2/":
                    self._send(Served(b"{}", "application/json"), head)
                    return
                served = registry.paths.get(path)
                if served is None:
                    body = json.dumps({"errors": [{"code": "MANIFEST_UNKNOWN", "message": "unknown"}]}).encode()
                    self._send(Served(body, "application/json"), head, status=404)
                    return
                self._send(served, head)

            def _send(self, served: Served, head: bool, status: int = 200) -> None:
                self.send_response(status)
                self.send_header("Content-Type", served.content_type)
                for k, v in served.headers.items():
                    self.send_header(k, v)
                if isinstance(served.body, bytes):
                    length = served.content_length if served.content_length is not None else len(served.body)
                    self.send_header("Content-Length", str(length))
                    self.end_headers()
                    if not head:
                        self._write(served.body)
                else:
                    if served.content_length is not None:
                        self.send_header("Content-Length", str(served.content_length))
                    self.send_header("Connection", "close")
                    self.end_headers()
                    if not head:
                        for chunk in served.body():
                            if not self._write(chunk):
                                break
                self.close_connection = True

            def _write(self, data: bytes) -> bool:
                try:
                    self.wfile.write(data)
                    return True
                except (BrokenPipeError, ConnectionResetError):
                    return False

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.domain = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # ---- publishing ------------------------------------------------------------------------------

    def blob(self, repo: str, digest: str, served: Served) -> None:
        self.paths[f"/v2/{repo}/blobs/{digest}"] = served

    def manifest(self, repo: str, ref: str, served: Served) -> None:
        self.paths[f"/v2/{repo}/manifests/{ref}"] = served

    def image(
        self,
        repo: str,
        tag: str,
        layer_tars: list[bytes],
        compress: bool = True,
        config_extra: dict | None = None,
    ) -> PublishedImage:
        """Publish an image whose layers are `layer_tars` (served gzip-compressed by default)."""
        blobs = [gzip.compress(t, mtime=0) if compress else t for t in layer_tars]
        diff_ids = [sha(t) for t in layer_tars]
        config_obj = {
            "architecture": "amd64",
            "os": "linux",
            "created": "2024-01-02T03:04:05Z",
            "config": {"Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created": "2024-01-02T03:04:05Z", "created_by": f"layer {i}"} for i in range(len(blobs))],
        }
        config_obj.update(config_extra or {})
        config = json.dumps(config_obj).encode()
        layer_type = OCI_LAYER_GZIP if compress else OCI_LAYER
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": sha(config), "size": len(config)},
                "layers": [{"mediaType": layer_type, "digest": sha(b), "size": len(b)} for b in blobs],
            }
        ).encode()
        self.blob(repo, sha(config), Served(config))
        for b in blobs:
            self.blob(repo, sha(b), Served(b))
        for ref in (tag, sha(manifest)):
            self.manifest(repo, ref, Served(manifest, OCI_MANIFEST, {"Docker-Content-Digest": sha(manifest)}))
        return PublishedImage(repo, tag, manifest, config, blobs, diff_ids)

    def publish_manifest(self, repo: str, tag: str, manifest: bytes) -> None:
        for ref in (tag, sha(manifest)):
            self.manifest(repo, ref, Served(manifest, OCI_MANIFEST, {"Docker-Content-Digest": sha(manifest)}))


def endless(chunk: bytes = b" " * 65536, total: int | None = None) -> Callable[[], Iterable[bytes]]:
    """A body that never ends (or ends after `total` bytes)."""

    def gen() -> Iterable[bytes]:
        sent = 0
        while total is None or sent < total:
            yield chunk
            sent += len(chunk)

    return gen
