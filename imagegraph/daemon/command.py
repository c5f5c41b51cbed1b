"""`imagegraph daemon`: the Engine API on a socket, in the foreground, as dockerd runs (cmd/dockerd).

    imagegraph daemon [-H unix:///PATH] [-H tcp://127.0.0.1:PORT] [--root ROOT] [--flow FILE|-]
                      [--log-level debug|info|warn|error|fatal] [--insecure-registry HOST:PORT]

The default socket is /run/imagegraph/docker.sock for root, $XDG_RUNTIME_DIR/imagegraph/docker.sock
otherwise; never /var/run/docker.sock unless asked. The socket is mode 0660 and group `docker`
where that group exists (as root), else 0600. TCP is served on loopback addresses only: the API
has no authentication, and whoever reaches it owns the store. SIGTERM or SIGINT stops accepting,
lets running requests finish (--shutdown-timeout seconds), then cancels what is left: an
interrupted pull rolls back, and a killed daemon leaves the store as a killed `imagegraph pull`
does, consistent.
"""

from __future__ import annotations

import argparse
import grp
import ipaddress
import logging
import os
import signal
import socket
import stat
import sys
import threading
import time
from pathlib import Path
from typing import TextIO

from ..api.router.container import ContainerRouter
from ..api.router.image import ImageRouter
from ..api.router.system import SystemRouter
from ..api.server import APIServer, Listener, listen_tcp, listen_unix
from . import Daemon, DaemonConfig
from .flow import Flow

log = logging.getLogger("imagegraph.daemon")

LOG_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR}
LOG_LEVELS["fatal"] = logging.CRITICAL
DEFAULT_TCP_PORT = 2375


class HostError(ValueError):
    """A -H address that cannot or must not be served; str() is the one line to print."""


def default_host(euid: int | None = None, env: dict[str, str] | None = None) -> str:
    """unix:///run/imagegraph/docker.sock for root, $XDG_RUNTIME_DIR/imagegraph/docker.sock otherwise."""
    euid = os.geteuid() if euid is None else euid
    env = dict(os.environ) if env is None else env
    if euid == 0:
        return "unix:///run/imagegraph/docker.sock"
    runtime = env.get("XDG_RUNTIME_DIR")
    if not runtime:
        raise HostError(
            "XDG_RUNTIME_DIR is not set, so there is no private place for the socket: "
            "give one with -H unix:///PATH (a folder only you can enter)"
        )
    return f"unix://{runtime}/imagegraph/docker.sock"


def parse_host(host: str) -> tuple[str, str, int]:
    """`unix:///path` → ("unix", path, 0); `tcp://127.0.0.1:2375` → ("tcp", "127.0.0.1", 2375).

    TCP must be loopback: anything else is refused with one line."""
    if host.startswith("unix://"):
        path = host[len("unix://") :]
        if not path.startswith("/"):
            raise HostError(f"invalid -H {host}: the socket path must be absolute (unix:///PATH)")
        return "unix", path, 0
    if host.startswith("tcp://"):
        rest = host[len("tcp://") :].rstrip("/")
        if rest.startswith("["):
            addr, _, port_text = rest[1:].partition("]")
            port_text = port_text.lstrip(":")
        else:
            addr, _, port_text = rest.partition(":")
        try:
            port = int(port_text) if port_text else DEFAULT_TCP_PORT
        except ValueError:
            raise HostError(f"invalid -H {host}: bad port {port_text!r}") from None
        if not (0 <= port < 65536):
            raise HostError(f"invalid -H {host}: bad port {port}")
        if not _is_loopback(addr):
            raise HostError(
                f"refusing to listen on {host}: only loopback addresses (127.0.0.1, ::1, localhost) are served, "
                "because the API has no authentication and gives whoever reaches it the whole store"
            )
        return "tcp", addr or "127.0.0.1", port
    if host.startswith("fd://"):
        raise HostError(f"invalid -H {host}: socket activation (fd://) is not supported; use unix:// or tcp://")
    raise HostError(f"invalid -H {host}: use unix:///PATH or tcp://127.0.0.1:PORT")


def _is_loopback(addr: str) -> bool:
    if addr == "localhost":
        return True
    try:
        return ipaddress.ip_address(addr).is_loopback
    except ValueError:
        return False


def docker_group() -> int | None:
    try:
        return grp.getgrnam("docker").gr_gid
    except KeyError:
        return None


def prepare_socket_path(path: str) -> None:
    """Make the socket's folder; take over a stale socket, refuse a live one or a non-socket."""
    parent = Path(path).parent
    if not parent.exists():
        parent.mkdir(parents=True, mode=0o755 if os.geteuid() == 0 else 0o700)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise HostError(f"{path} exists and is not a socket: not removing it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1)
        probe.connect(path)
    except OSError:
        os.unlink(path)  # nobody answers: a leftover of a daemon that was killed
        return
    finally:
        probe.close()
    raise HostError(f"another daemon is listening on {path}: stop it, or give another -H unix:///PATH")


def setup_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-H",
        "--host",
        action="append",
        dest="hosts",
        metavar="ADDRESS",
        help="unix:///PATH or tcp://127.0.0.1:PORT (repeatable; default: a private unix socket)",
    )
    p.add_argument("--root", dest="daemon_root", metavar="ROOT", help="the store (default: imagegraph's --root)")
    p.add_argument(
        "--flow", metavar="FILE", help="write one line per hop (client → daemon → registry) to FILE, - for stderr"
    )
    p.add_argument("--log-level", "-l", choices=sorted(LOG_LEVELS), default="info", help="as dockerd's (default info)")
    p.add_argument("-D", "--debug", action="store_true", dest="daemon_debug", help="same as --log-level debug")
    p.add_argument("--insecure-registry", action="append", default=[], metavar="HOST:PORT", help="plain-HTTP registry")
    p.add_argument(
        "--shutdown-timeout", type=float, default=10.0, metavar="SECONDS", help="grace for running requests (10)"
    )


class _LogrusFormatter(logging.Formatter):
    """dockerd's log lines: time="…" level=info msg="…"."""

    def format(self, record: logging.LogRecord) -> str:
        when = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(record.created))
        when += f".{int(record.msecs * 1000):06d}000" + time.strftime("%z", time.localtime(record.created))
        when = when[:-2] + ":" + when[-2:]
        level = {"WARNING": "warning", "CRITICAL": "fatal"}.get(record.levelname, record.levelname.lower())
        msg = record.getMessage().replace('"', '\\"')
        line = f'time="{when}" level={level} msg="{msg}"'
        if record.exc_info and record.levelno <= logging.DEBUG:
            line += "\n" + self.formatException(record.exc_info)
        return line


def run(a: argparse.Namespace, root: Path, err: TextIO) -> int:
    debug = getattr(a, "daemon_debug", False) or getattr(a, "debug", False)
    level = logging.DEBUG if debug else LOG_LEVELS[a.log_level]
    handler = logging.StreamHandler(err)
    handler.setFormatter(_LogrusFormatter())
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False

    hosts = list(a.hosts or [])
    try:
        if not hosts:
            hosts = [default_host()]
        parsed = [(h, *parse_host(h)) for h in hosts]
        for _, kind, where, _ in parsed:
            if kind == "unix":
                prepare_socket_path(where)
    except HostError as exc:
        err.write(f"imagegraph daemon: {exc}\n")
        return 1

    flow_out: TextIO | None = None
    if a.flow == "-":
        flow_out = err
    elif a.flow:
        flow_out = open(a.flow, "a", buffering=1, encoding="utf-8")
    try:
        config = DaemonConfig.load(root, a.whiteouts, tuple(a.insecure_registry), tuple(hosts), level <= logging.DEBUG)
        config.shutdown_timeout = a.shutdown_timeout
        daemon = Daemon(config, Flow(flow_out))
    except (ValueError, OSError) as exc:
        err.write(f"imagegraph daemon: {exc}\n")
        return 1
    api = APIServer([ImageRouter(daemon), ContainerRouter(daemon), SystemRouter(daemon)], daemon.flow)

    listeners: list[Listener] = []
    host = ""
    try:
        for host, kind, where, port in parsed:  # noqa: B007  (host is named in the error below)
            if kind == "unix":
                uid_root = os.geteuid() == 0
                gid = docker_group() if uid_root else None
                listeners.append(listen_unix(api, where, 0o660 if gid is not None else 0o600, gid))
            else:
                listeners.append(listen_tcp(api, where, port))
    except OSError as exc:
        for listener in listeners:
            listener.stop()
        err.write(f"imagegraph daemon: cannot listen on {host}: {exc.strerror or exc}\n")
        return 1

    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("Processing signal '%s'", signal.Signals(signum).name)
        stop.set()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        log.info("Starting up")
        log.info("Daemon has completed initialization (root %s, API %s)", root, api.default_version)
        for listener in listeners:
            listener.start()
            log.info("API listen on %s", listener.address[len("unix://") :] if listener.path else listener.address)
        first = listeners[0]
        print(f"export DOCKER_HOST={first.address}", flush=True)
        while not stop.wait(0.5):
            pass
        return _shutdown(daemon, api, listeners)
    finally:
        for s, handler_ in old.items():
            signal.signal(s, handler_)
        if flow_out is not None and flow_out is not err:
            flow_out.close()


def _shutdown(daemon: Daemon, api: APIServer, listeners: list[Listener]) -> int:
    """Stop accepting, give running requests the grace period, then cancel what is left."""
    daemon.stopping.set()  # event streams end now
    for listener in listeners:
        listener.stop()
    grace = daemon.config.shutdown_timeout
    if not api.wait_idle(grace):
        log.warning("%d request(s) still running after %gs: cancelling them", api.active, grace)
        daemon.cancel.set()
        api.wait_idle(5)
    log.info("Daemon shutdown complete")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit("run it as: imagegraph daemon")
