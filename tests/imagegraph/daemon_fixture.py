"""A real `imagegraph daemon` for the tests, and the real clients that talk to it.

`start_daemon(tmp)` runs `python -m imagegraph --root tmp/root daemon -H unix://tmp/d.sock
--flow tmp/flow.log` as its own process, waits for `_ping`, and stops it with SIGTERM
afterwards. The `docker` CLI is pointed at it with DOCKER_HOST, with a private DOCKER_CONFIG
(so `docker login` never touches ~/.docker). Without the docker CLI the tests skip, except where
every real component is required (tests/support.py).
"""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from imagegraph.cli import main as imagegraph_main
from tests.support import require_tool

REPO = Path(__file__).resolve().parents[2]


def require_docker() -> str:
    """The docker CLI (scripts/setup-system.sh installs the docker.io package's client if none)."""
    return require_tool("docker")


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over a unix socket (what curl --unix-socket does)."""

    def __init__(self, path: str, timeout: float = 30) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class IGResult:
    rc: int
    out: str
    err: str


@dataclass
class RunningDaemon:
    root: Path
    sock: Path
    flow_path: Path
    log_path: Path
    config_dir: Path
    process: subprocess.Popen[bytes]

    @property
    def host(self) -> str:
        return f"unix://{self.sock}"

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            DOCKER_HOST=self.host,
            DOCKER_CONFIG=str(self.config_dir),
            DOCKER_CLI_HINTS="false",
            IMAGEGRAPH_ROOT=str(self.root),
        )
        env.pop("DOCKER_API_VERSION", None)
        return env

    def docker(
        self, *args: str, input: bytes | str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run the real docker CLI against this daemon; stdout and stderr as text."""
        data = input.encode() if isinstance(input, str) else input
        proc = subprocess.run(
            [require_docker(), *args],
            input=data if data is not None else b"",
            capture_output=True,
            env=self.env,
            timeout=timeout,
        )
        result = subprocess.CompletedProcess(
            proc.args, proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} failed ({proc.returncode}):\n{result.stdout}{result.stderr}")
        return result

    def docker_bytes(self, *args: str, input: bytes | None = None) -> bytes:
        proc = subprocess.run(
            [require_docker(), *args], input=input or b"", capture_output=True, env=self.env, timeout=120
        )
        assert proc.returncode == 0, proc.stderr.decode(errors="replace")
        return proc.stdout

    def ig(self, *args: str) -> IGResult:
        """The `imagegraph` command on the same store, in this process."""
        out, err = io.StringIO(), io.StringIO()
        rc = imagegraph_main(["--root", str(self.root), *args], out, err)
        return IGResult(rc, out.getvalue(), err.getvalue())

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> Reply:
        conn = UnixHTTPConnection(str(self.sock))
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
            return Reply(resp.status, {k.title(): v for k, v in resp.getheaders()}, data)
        finally:
            conn.close()

    def flow(self) -> list[str]:
        try:
            return self.flow_path.read_text().splitlines()
        except FileNotFoundError:
            return []

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def ping(sock: Path) -> bool:
    try:
        conn = UnixHTTPConnection(str(sock), timeout=2)
        conn.request("GET", "/_ping")
        ok = conn.getresponse().status == 200
        conn.close()
        return ok
    except OSError:
        return False


@contextlib.contextmanager
def start_daemon(tmp: Path, *extra: str, env: dict[str, str] | None = None) -> Iterator[RunningDaemon]:
    """Run a daemon on a fresh root under `tmp` until the block ends."""
    require_docker()
    tmp.mkdir(parents=True, exist_ok=True)
    root, sock, flow, log = tmp / "root", tmp / "d.sock", tmp / "flow.log", tmp / "daemon.log"
    config_dir = tmp / "docker-config"
    config_dir.mkdir(exist_ok=True)
    logf = open(log, "wb")
    cmd = [sys.executable, "-m", "imagegraph", "--root", str(root), "daemon", "-H", f"unix://{sock}"]
    cmd += ["--flow", str(flow), "--shutdown-timeout", "5", *extra]
    proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, cwd=REPO, env=env, start_new_session=True)
    logf.close()
    d = RunningDaemon(root, sock, flow, log, config_dir, proc)
    deadline = time.monotonic() + 30
    try:
        while not ping(sock):
            if proc.poll() is not None:
                raise RuntimeError(f"the daemon exited with {proc.returncode}:\n{d.log()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the daemon did not answer within 30 s:\n{d.log()}")
            time.sleep(0.05)
        yield d
    finally:
        d.stop()


@pytest.fixture
def daemon(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningDaemon]:
    """A daemon on a fresh store; SOURCE_DATE_EPOCH fixed (for it and for in-process imagegraph)
    so IDs and dates are reproducible."""
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    with start_daemon(tmp_path / "daemon", env=dict(os.environ)) as d:
        yield d
