"""`imagegraph daemon` as a server: sockets and their modes, API versions, dockerd's errors,
malformed requests, a graceful stop, and `docker version`/`docker info` from the real CLI."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from imagegraph.api import DEFAULT_VERSION, MIN_VERSION
from imagegraph.daemon.command import HostError, default_host, parse_host
from tests.support import require_tool

from .daemon_fixture import REPO, RunningDaemon, UnixHTTPConnection, start_daemon
from .registry_fixture import free_port


def test_ping_answers_ok_with_the_headers_the_client_negotiates_with(daemon: RunningDaemon) -> None:
    for method in ("GET", "HEAD"):
        reply = daemon.request(method, "/_ping")
        assert reply.status == 200
        assert reply.body == (b"OK" if method == "GET" else b"")
        assert reply.headers["Api-Version"] == DEFAULT_VERSION
        assert reply.headers["Ostype"] == "linux"
        assert reply.headers["Server"].startswith("Docker/")
        assert reply.headers["Cache-Control"] == "no-cache, no-store, must-revalidate"
        assert reply.headers["Swarm"] == "inactive"


def test_versioned_and_unversioned_paths_and_the_limits(daemon: RunningDaemon) -> None:
    assert daemon.request("GET", "/version").json()["ApiVersion"] == DEFAULT_VERSION
    assert daemon.request("GET", f"/v{MIN_VERSION}/version").status == 200
    assert daemon.request("GET", "/v1.45/images/json").json() == []
    old = daemon.request("GET", "/v1.24/version")
    assert old.status == 400
    assert old.json() == {
        "message": f"client version 1.24 is too old. Minimum supported API version is {MIN_VERSION}, "
        "please upgrade your client to a newer version"
    }
    new = daemon.request("GET", "/v9.99/images/json")
    assert new.status == 400
    assert (
        new.json()["message"] == f"client version 9.99 is too new. Maximum supported API version is {DEFAULT_VERSION}"
    )


def test_unknown_routes_are_dockerds_404(daemon: RunningDaemon) -> None:
    for method, path in (("GET", "/nope"), ("GET", "/v1.50/nope/x"), ("PUT", "/images/json"), ("GET", "/v1.50")):
        reply = daemon.request(method, path)
        assert (reply.status, reply.json()) == (404, {"message": "page not found"}), (method, path)


def test_errors_are_json_with_dockerds_status_and_text(daemon: RunningDaemon) -> None:
    reply = daemon.request("GET", "/v1.50/images/nothere:1/json")
    assert (reply.status, reply.json()) == (404, {"message": "No such image: nothere:1"})
    assert reply.headers["Content-Type"] == "application/json"
    reply = daemon.request("GET", "/v1.50/containers/nothere/json")
    assert (reply.status, reply.json()) == (404, {"message": "No such container: nothere"})
    reply = daemon.request("DELETE", "/v1.50/images/Bad:Name")
    assert reply.status == 400 and "invalid reference format" in reply.json()["message"]


def test_malformed_requests_are_400_and_change_nothing(daemon: RunningDaemon) -> None:
    before = sorted(str(p.relative_to(daemon.root)) for p in daemon.root.rglob("*"))
    cases = [
        ("GET", "/v1.50/images/json?filters=%7Bnot-json", None, {}),
        ("GET", "/v1.50/images/json?all=%zz", None, {}),
        ("POST", "/v1.50/containers/create", b"{not json", {"Content-Type": "application/json"}),
        ("POST", "/v1.50/containers/create", b'{"Image": "x"}', {"Content-Type": "text/plain"}),
        ("POST", "/v1.50/containers/create", b"", {"Content-Type": "application/json"}),
        ("POST", "/v1.50/images/x/tag?repo=Bad:Name", None, {}),
        ("GET", "/v1.50/events?since=yesterday", None, {}),
        ("POST", "/v1.50/auth", b"[1,2]", {"Content-Type": "application/json"}),
    ]
    for method, path, body, headers in cases:
        reply = daemon.request(method, path, body, headers)
        assert reply.status == 400, (method, path, reply.status, reply.body)
        assert set(reply.json()) == {"message"} and reply.json()["message"], reply.body
    after = sorted(str(p.relative_to(daemon.root)) for p in daemon.root.rglob("*"))
    assert after == before


def test_a_malformed_request_sent_with_curl_over_the_socket(daemon: RunningDaemon) -> None:
    curl = require_tool("curl")
    out = subprocess.run(
        [curl, "-s", "--unix-socket", str(daemon.sock), "-X", "POST", "-H", "Content-Type: application/json",
         "-d", "{oops", "-w", "\n%{http_code}", "http://localhost/v1.50/containers/create"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    body, code = out.rsplit("\n", 1)
    assert code == "400"
    assert json.loads(body)["message"].startswith("invalid JSON: ")


def test_keep_alive_and_a_chunked_request_body(daemon: RunningDaemon) -> None:
    """Two requests on one connection; a chunked body (as Go clients stream) is read whole."""
    conn = UnixHTTPConnection(str(daemon.sock))
    try:
        for _ in range(2):
            conn.request("GET", "/_ping")
            resp = conn.getresponse()
            assert (resp.status, resp.read()) == (200, b"OK")
        body = iter([b'{"username": "alice", ', b'"password": "x", "serveraddress": "127.0.0.1:1"}'])
        conn.request("POST", "/v1.50/auth", body=body, headers={"Content-Type": "application/json"},
                     encode_chunked=True)  # fmt: skip
        resp = conn.getresponse()
        payload = json.loads(resp.read())
        assert resp.status == 500 and "connection refused" in payload["message"], payload
    finally:
        conn.close()


def test_the_socket_is_private_and_the_daemon_says_how_to_use_it(daemon: RunningDaemon) -> None:
    mode = stat.S_IMODE(os.stat(daemon.sock).st_mode)
    try:
        import grp

        grp.getgrnam("docker")
        assert mode == 0o660 and os.stat(daemon.sock).st_gid == grp.getgrnam("docker").gr_gid
    except KeyError:
        assert mode == 0o600
    assert f"export DOCKER_HOST=unix://{daemon.sock}" in daemon.log()
    assert "API listen on" in daemon.log()


def test_default_hosts_and_refused_addresses() -> None:
    assert default_host(0, {}) == "unix:///run/imagegraph/docker.sock"
    assert default_host(1000, {"XDG_RUNTIME_DIR": "/run/user/1000"}) == "unix:///run/user/1000/imagegraph/docker.sock"
    with pytest.raises(HostError, match="XDG_RUNTIME_DIR is not set"):
        default_host(1000, {})
    assert parse_host("tcp://127.0.0.1:2375") == ("tcp", "127.0.0.1", 2375)
    assert parse_host("tcp://[::1]:2376") == ("tcp", "::1", 2376)
    assert parse_host("tcp://localhost") == ("tcp", "localhost", 2375)
    for bad in ("tcp://0.0.0.0:2375", "tcp://10.1.2.3:2375", "tcp://example.com:2375"):
        with pytest.raises(HostError, match="only loopback addresses"):
            parse_host(bad)
    with pytest.raises(HostError, match="must be absolute"):
        parse_host("unix://relative.sock")
    with pytest.raises(HostError, match="fd://"):
        parse_host("fd://")


def _run_daemon(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "imagegraph", "--root", str(tmp_path / "root"), "daemon", *args],
        capture_output=True, text=True, cwd=REPO, timeout=60,
    )  # fmt: skip


def test_a_public_tcp_address_is_refused_with_one_line(tmp_path: Path) -> None:
    res = _run_daemon(tmp_path, "-H", "tcp://0.0.0.0:2375")
    assert res.returncode == 1
    assert res.stderr.count("\n") == 1 and "refusing to listen on tcp://0.0.0.0:2375" in res.stderr
    assert "Traceback" not in res.stderr


def test_a_live_socket_is_not_taken_over_and_a_stale_one_is(daemon: RunningDaemon, tmp_path: Path) -> None:
    res = _run_daemon(tmp_path, "-H", f"unix://{daemon.sock}")
    assert res.returncode == 1 and "another daemon is listening on" in res.stderr
    stale = tmp_path / "stale.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(stale))
    s.close()  # bound, never listening: what a kill -9 leaves
    with start_daemon(tmp_path / "second", "-H", f"unix://{stale}") as second:
        assert second.request("GET", "/_ping").status == 200


def test_loopback_tcp_serves_the_docker_client(tmp_path: Path) -> None:
    port = free_port()
    with start_daemon(tmp_path / "d", "-H", f"tcp://127.0.0.1:{port}") as d:
        env = dict(d.env, DOCKER_HOST=f"tcp://127.0.0.1:{port}")
        out = subprocess.run(["docker", "version", "--format", "{{.Server.APIVersion}}"], env=env,
                             capture_output=True, text=True, timeout=60)  # fmt: skip
        assert out.stdout.strip() == DEFAULT_VERSION, out.stderr


def test_sigterm_lets_a_running_request_finish_then_exits(daemon: RunningDaemon) -> None:
    """A slow request (an events stream with `until` in the future) is let finish; new
    connections are refused meanwhile; the socket goes away; exit status 0."""
    until = time.time() + 2
    result: dict[str, object] = {}

    def slow() -> None:
        conn = UnixHTTPConnection(str(daemon.sock))
        conn.request("GET", f"/v1.50/events?since=0&until={until:.9f}")
        resp = conn.getresponse()
        result["status"] = resp.status
        result["body"] = resp.read()

    t = threading.Thread(target=slow)
    t.start()
    time.sleep(0.5)
    daemon.process.send_signal(signal.SIGTERM)
    t.join(20)
    assert daemon.process.wait(20) == 0
    assert result.get("status") == 200
    assert not daemon.sock.exists()
    assert "Daemon shutdown complete" in daemon.log()


def test_docker_version_and_info(daemon: RunningDaemon) -> None:
    out = daemon.docker("version").stdout
    assert f"API version:      {DEFAULT_VERSION} (minimum version {MIN_VERSION})" in out
    assert "Server: layerlab imagegraph" in out
    info = daemon.docker("info").stdout
    assert "Storage Driver: layerfs" in info
    assert f"Docker Root Dir: {daemon.root}" in info
    assert " Images: 0" in info and " Containers: 0" in info
    data = json.loads(daemon.docker("info", "--format", "{{json .}}").stdout)
    assert data["Driver"] == "layerfs" and data["OSType"] == "linux"
    assert "127.0.0.0/8" in daemon.docker("info", "--format", "{{json .RegistryConfig}}").stdout
