"""A real registry for the tests: Debian's `docker-registry` (distribution 2.8) on 127.0.0.1.

`start_registry()` writes a config file and a storage folder under a temporary directory,
starts the binary on a free port, waits until `GET /v2/` answers, and stops it afterwards.
Variants: htpasswd Basic auth (`users=`), and token auth in front of a token server
(`token=` settings from token_server.py).

Without the binary the tests skip, except in CI, where a missing install step must be a
failure (tests/support.py's rule).
"""

from __future__ import annotations

import contextlib
import http.client
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..support import require_tool

REGISTRY_BIN = "/usr/bin/docker-registry"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def require_registry() -> str:
    """The registry binary's path; skip (or fail in CI) when it is not installed."""
    if os.access(REGISTRY_BIN, os.X_OK):
        return REGISTRY_BIN
    return require_tool("docker-registry")


@dataclass
class RunningRegistry:
    """A started registry: `domain` is what goes in image references (`127.0.0.1:PORT`)."""

    domain: str
    url: str
    storage: Path
    config: Path
    log: Path
    process: subprocess.Popen
    users: dict[str, str]


def _htpasswd(path: Path, users: dict[str, str]) -> None:
    """bcrypt entries, made with apache2-utils' htpasswd (the registry accepts bcrypt only)."""
    tool = require_tool("htpasswd")
    lines = []
    for user, password in users.items():
        out = subprocess.run([tool, "-nbB", user, password], check=True, capture_output=True, text=True)
        lines.append(out.stdout.strip())
    path.write_text("\n".join(lines) + "\n")


def _config_text(port: int, storage: Path, htpasswd: Path | None, token: dict | None) -> str:
    text = f"""version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {storage}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:{port}
  secret: layerlab-test-secret
"""
    if htpasswd is not None:
        text += f"""auth:
  htpasswd:
    realm: layerlab-basic-realm
    path: {htpasswd}
"""
    elif token is not None:
        text += f"""auth:
  token:
    realm: {token["realm"]}
    service: {token["service"]}
    issuer: {token["issuer"]}
    rootcertbundle: {token["rootcertbundle"]}
"""
    return text


def wait_for_v2(url: str, process: subprocess.Popen | None, timeout: float = 15.0) -> None:
    """Poll `GET /v2/` until any HTTP answer (200 or 401) comes back."""
    deadline = time.monotonic() + timeout
    host = url.split("://", 1)[1]
    while True:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"registry exited with status {process.returncode}")
        try:
            conn = http.client.HTTPConnection(host, timeout=1)
            conn.request("GET", "/v2/")
            status = conn.getresponse().status
            conn.close()
            if status in (200, 401):
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"registry at {url} did not answer within {timeout} s")
        time.sleep(0.05)


@contextlib.contextmanager
def start_registry(
    workdir: Path, users: dict[str, str] | None = None, token: dict | None = None
) -> Iterator[RunningRegistry]:
    """Run docker-registry until the block ends. `users` turns on htpasswd Basic auth."""
    binary = require_registry()
    workdir.mkdir(parents=True, exist_ok=True)
    storage = workdir / "storage"
    storage.mkdir(exist_ok=True)
    htpasswd = None
    if users:
        htpasswd = workdir / "htpasswd"
        _htpasswd(htpasswd, users)
    last_error: Exception | None = None
    for _ in range(5):  # a free port can be taken between choosing it and binding it
        port = free_port()
        config = workdir / "config.yml"
        config.write_text(_config_text(port, storage, htpasswd, token))
        log = workdir / "registry.log"
        logf = open(log, "wb")
        proc = subprocess.Popen(
            [binary, "serve", str(config)], stdout=logf, stderr=subprocess.STDOUT, start_new_session=True
        )
        logf.close()
        url = f"http://127.0.0.1:{port}"
        try:
            wait_for_v2(url, proc)
        except RuntimeError as exc:
            last_error = RuntimeError(f"{exc}\n{log.read_text(errors='replace')}")
            _stop(proc)
            continue
        try:
            yield RunningRegistry(f"127.0.0.1:{port}", url, storage, config, log, proc, dict(users or {}))
        finally:
            _stop(proc)
        return
    raise RuntimeError(f"could not start docker-registry: {last_error}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
