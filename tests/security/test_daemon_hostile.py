"""The same hostile inputs through `imagegraph daemon` (the Engine API): POST /images/load,
/images/create (import and pull), PUT /containers/{id}/archive, /commit, GET /images/{name}/get.

Each refusal is one line in dockerd's JSON (`{"message": …}`, or the `error` of a progress
stream), never a traceback, a bare `[Errno N]` or an internal name, with a 4xx status where the
client was wrong, and the store byte-for-byte unchanged. 5,000 levels deep pass through every
route that takes or gives a tree.
"""

from __future__ import annotations

import gzip
import http.client
import io
import json
import os
import socket
import tarfile
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from imagegraph.service import Services
from tests.imagegraph.daemon_fixture import Reply, RunningDaemon, start_daemon

from .conftest import snapshot
from .hostile import CASES, SPARSE_VERSIONS, allocated, deep_tar, gnu_sparse_tar, save_archive, tar_of
from .lying_registry import LyingRegistry
from .test_load_lies import LIES as LOAD_LIES
from .test_load_lies import lie
from .test_registry_lies import LIES as REGISTRY_LIES
from .test_registry_lies import _tell
from .trees import deep_exists, make_deep

DEPTH = 5000
INTERNAL = (".apply-", ".tmp-", "/proc/self", "[Errno", "imagegraph-save-", "Traceback", "internal error")


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDaemon]:
    """One daemon for the module, with base:1 in its store."""
    tmp = tmp_path_factory.mktemp("hostile-daemon")
    env = dict(os.environ, SOURCE_DATE_EPOCH="1700000000")
    with start_daemon(tmp, env=env) as d:
        rootfs = io.BytesIO()
        with tarfile.open(fileobj=rootfs, mode="w") as tf:
            for name, data in (("etc/motd", b"hello\n"), ("bin/sh", b"#!fake\n")):
                ti = tarfile.TarInfo(name)
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
        base = rootfs.getvalue()
        create = "/v1.50/images/create?fromSrc=-&repo=base&tag=1&changes=" + urllib.parse.quote('CMD ["/bin/sh"]')
        r = d.request("POST", create, base, _tar_headers())
        assert r.status == 200 and b'"error"' not in r.body, r.body
        yield d
        for sub in tmp.iterdir():  # deep trees: removed without recursion
            from imagegraph.fstree import remove_tree

            remove_tree(sub)


@pytest.fixture(scope="module")
def registry() -> Iterator[LyingRegistry]:
    reg = LyingRegistry()
    yield reg
    reg.close()


def _tar_headers() -> dict[str, str]:
    return {"Content-Type": "application/x-tar"}


def _stream_error(body: bytes) -> str | None:
    """The `error` of a JSON progress stream (None when it ended well)."""
    for line in body.decode(errors="replace").splitlines():
        if line.strip():
            msg = json.loads(line)
            if "error" in msg:
                return str(msg["error"])
    return None


def _one_clean_line(message: str, words: str | None = None) -> None:
    assert message and "\n" not in message, message
    for internal in INTERNAL:
        assert internal not in message, message
    if words is not None:
        assert words in message, message


def _refused_in_stream(r, words: str | None = None, server_side: bool = False) -> None:
    """A progress route (load, create): 200 and an error in the stream, or a 4xx answer (a 500
    where dockerd gives one too: a registry that lies is the server side's fault, not the client's)."""
    if r.status == 200:
        message = _stream_error(r.body)
        assert message is not None, r.body[-500:]
    else:
        assert 400 <= r.status < 500 or server_side and r.status == 500, (r.status, r.body[:500])
        message = r.json()["message"]
    _one_clean_line(message, words)


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_layers_through_load_and_import(daemon: RunningDaemon, case: str) -> None:
    build, words = CASES[case]
    layer = build()
    before = snapshot(daemon.root)
    r = daemon.request("POST", "/v1.50/images/load?quiet=1", save_archive([layer]), _tar_headers())
    _refused_in_stream(r, words)
    r = daemon.request("POST", "/v1.50/images/create?fromSrc=-&repo=evil&tag=1", layer, _tar_headers())
    _refused_in_stream(r)
    assert snapshot(daemon.root) == before


@pytest.mark.parametrize("case", sorted(LOAD_LIES))
def test_lying_archives_through_load(daemon: RunningDaemon, case: str) -> None:
    before = snapshot(daemon.root)
    r = daemon.request("POST", "/v1.50/images/load?quiet=1", lie(case), _tar_headers())
    _refused_in_stream(r, LOAD_LIES[case])
    assert snapshot(daemon.root) == before


@pytest.mark.parametrize("case", sorted(REGISTRY_LIES))
def test_a_lying_registry_through_images_create(daemon: RunningDaemon, registry: LyingRegistry, case: str) -> None:
    _tell(case, registry)
    before = snapshot(daemon.root)
    image = urllib.parse.quote(f"{registry.domain}/lies/img")
    r = daemon.request("POST", f"/v1.50/images/create?fromImage={image}&tag=1")
    _refused_in_stream(r, REGISTRY_LIES[case], server_side=True)
    assert snapshot(daemon.root) == before


@pytest.mark.parametrize("version", SPARSE_VERSIONS)
def test_sparse_bombs_stay_small_through_load_and_cp(daemon: RunningDaemon, version: str) -> None:
    bomb = gnu_sparse_tar(version)  # a 1 TiB file holding 3 bytes
    r = daemon.request("POST", "/v1.50/images/load?quiet=1", save_archive([bomb], f"sparse:{version}"), _tar_headers())
    assert r.status == 200 and _stream_error(r.body) is None, r.body
    svc = Services.open(daemon.root)
    img = svc.get_image(f"sparse:{version}")
    on_disk = svc.layers.diff_dir(svc.layers.get(img.top_chain_id)) / "bomb"
    assert on_disk.stat().st_size == 1 << 40 and allocated(on_disk) < 1 << 20
    r = daemon.request("POST", "/v1.50/containers/create", json.dumps({"Image": "base:1"}).encode(), _json())
    assert r.status == 201, r.body
    cid = r.json()["Id"]
    try:
        r = daemon.request("PUT", f"/v1.50/containers/{cid}/archive?path=/", bomb, _tar_headers())
        assert r.status == 200, r.body
        top = svc.layout.layer_dir(svc.layers.get_mount(cid).mount_id) / "diff" / "bomb"
        assert top.stat().st_size == 1 << 40 and allocated(top) < 1 << 20
        with open(top, "rb") as f:
            f.seek((1 << 40) // 2)
            assert f.read(3) == b"hi\n"
        for route in ("export", "archive?path=/bomb"):  # docker export, docker cp out: holes stay holes
            r = daemon.request("GET", f"/v1.50/containers/{cid}/{route}")
            assert r.status == 200 and len(r.body) < 1 << 20, (route, r.status, len(r.body))
            with tarfile.open(fileobj=io.BytesIO(r.body)) as tf:
                bomb_member = next(m for m in tf if m.name.endswith("bomb"))
                assert bomb_member.size == 1 << 40 and bomb_member.sparse
    finally:
        assert daemon.request("DELETE", f"/v1.50/containers/{cid}?force=1").status == 204
    assert daemon.request("DELETE", f"/v1.50/images/sparse:{version}").status == 200


def _json() -> dict[str, str]:
    return {"Content-Type": "application/json"}


def _put_early_answer(daemon: RunningDaemon, path: str, body: bytes) -> Reply:
    """PUT `body` while reading the answer, as Go's client does: the daemon may refuse (and
    close) before the whole body is sent."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(60)
        s.connect(str(daemon.sock))
        head = f"PUT {path} HTTP/1.1\r\nHost: d\r\nContent-Type: application/x-tar\r\n"
        head += f"Content-Length: {len(body)}\r\n\r\n"

        def send() -> None:
            try:
                s.sendall(head.encode() + body)
            except OSError:
                pass  # answered and closed early

        sender = threading.Thread(target=send)
        sender.start()
        resp = http.client.HTTPResponse(s, method="PUT")  # reads s.makefile
        resp.begin()
        data = resp.read()
        sender.join()
        return Reply(resp.status, dict(resp.getheaders()), data)


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_tars_through_docker_cp(daemon: RunningDaemon, case: str) -> None:
    """PUT /containers/{id}/archive writes only inside the container, in one line when it cannot."""
    build, _ = CASES[case]
    r = daemon.request("POST", "/v1.50/containers/create", json.dumps({"Image": "base:1"}).encode(), _json())
    assert r.status == 201, r.body
    cid = r.json()["Id"]
    try:
        r = _put_early_answer(daemon, f"/v1.50/containers/{cid}/archive?path=/", build())
        if r.status != 200:
            assert 400 <= r.status < 500, (r.status, r.body)
            _one_clean_line(r.json()["message"])
        assert not Path("/tmp/owned-by-image").exists() and not Path("/etc/passwd-owned").exists()
    finally:
        assert daemon.request("DELETE", f"/v1.50/containers/{cid}?force=1").status == 204


def test_5000_deep_through_load_get_changes_commit_and_rm(daemon: RunningDaemon) -> None:
    r = daemon.request("POST", "/v1.50/images/load?quiet=1", save_archive([deep_tar(DEPTH)], "deep:1"), _tar_headers())
    assert r.status == 200 and _stream_error(r.body) is None, r.body
    r = daemon.request("GET", "/v1.50/images/deep:1/get")
    assert r.status == 200
    with tarfile.open(fileobj=io.BytesIO(r.body)) as outer:
        names = outer.getnames()
        layer = next(n for n in names if n.startswith("blobs/") and outer.getmember(n).size > 1 << 20)
        member = outer.extractfile(layer)
        assert member is not None
        with tarfile.open(fileobj=member) as inner:
            assert sum(1 for _ in inner) == DEPTH + 1
    r = daemon.request("POST", "/v1.50/containers/create", json.dumps({"Image": "base:1"}).encode(), _json())
    cid = r.json()["Id"]
    svc = Services.open(daemon.root)
    make_deep(svc.layout.layer_dir(svc.layers.get_mount(cid).mount_id) / "diff", DEPTH)
    r = daemon.request("GET", f"/v1.50/containers/{cid}/changes")
    assert r.status == 200 and len(r.json()) == DEPTH + 1, r.body[:300]
    r = daemon.request("POST", f"/v1.50/commit?container={cid}&repo=deep&tag=committed")
    assert r.status == 201, r.body
    img = Services.open(daemon.root).get_image("deep:committed")
    assert deep_exists(svc.layers.diff_dir(svc.layers.get(img.top_chain_id)), DEPTH)
    assert daemon.request("DELETE", f"/v1.50/containers/{cid}?force=1").status == 204
    for name in ("deep:1", "deep:committed"):
        assert daemon.request("DELETE", f"/v1.50/images/{name}").status == 200
    assert daemon.request("GET", "/v1.50/images/json").status == 200


@pytest.mark.parametrize(
    ("method", "path", "headers"),
    [
        ("POST", "/v1.50/containers/create", {"Content-Type": "application/json"}),
        ("GET", "/v1.50/images/json?filters=DEEP", {}),
        ("GET", "/v1.50/images/json", {"X-Registry-Auth": "DEEP"}),
    ],
)
def test_json_nested_too_deep(daemon: RunningDaemon, method: str, path: str, headers: dict[str, str]) -> None:
    depth = 100000 if method == "POST" else 5000  # a request line or header is at most 64 KiB
    deep = "[" * depth + "]" * depth
    if "DEEP" in path:
        path = path.replace("DEEP", urllib.parse.quote(deep))
        body = None
    elif headers.get("X-Registry-Auth") == "DEEP":
        import base64

        headers = {"X-Registry-Auth": base64.urlsafe_b64encode(deep.encode()).decode()}
        body = None
    else:
        body = deep.encode()
    before = snapshot(daemon.root)
    r = daemon.request(method, path, body, headers)
    assert r.status in (200, 400), (r.status, r.body[:300])
    if r.status == 400:
        _one_clean_line(r.json()["message"])
    assert snapshot(daemon.root) == before


def _raw(daemon: RunningDaemon, head: bytes, body: bytes) -> bytes:
    """Send a request by hand, close the sending side, read the whole answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(60)
        s.connect(str(daemon.sock))
        s.sendall(head + body)
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_body_that_claims_a_terabyte(daemon: RunningDaemon, framing: str) -> None:
    """The declared size is not trusted: a body that ends early is one line, nothing is kept."""
    before = snapshot(daemon.root)
    body = gzip.compress(save_archive([tar_of([])]))[:3000]
    if framing == "content-length":
        head = f"POST /v1.50/images/load HTTP/1.1\r\nHost: d\r\nContent-Length: {1 << 40}\r\n\r\n".encode()
    else:
        head = b"POST /v1.50/images/load HTTP/1.1\r\nHost: d\r\nTransfer-Encoding: chunked\r\n\r\n"
        body = f"{1 << 40:x}\r\n".encode() + body
    answer = _raw(daemon, head, body).decode(errors="replace")
    assert answer.startswith("HTTP/1.1 "), answer[:200]
    status = int(answer.split()[1])
    assert status == 200 or 400 <= status < 500, answer[:300]
    errors = [json.loads(line)["error"] for line in answer.splitlines() if line.startswith('{"error')]
    messages = errors or [json.loads(line)["message"] for line in answer.splitlines() if line.startswith('{"message')]
    assert messages, answer[-500:]
    _one_clean_line(messages[0])
    assert snapshot(daemon.root) == before
