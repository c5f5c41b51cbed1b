"""Containers that run, driven through `imagegraph daemon` by the real docker CLI and docker-py:
start, stop, kill, restart, wait, resize, attach (hijacked, multiplexed), logs, top, exec."""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from imagegraph.runtime import state as st
from imagegraph.service import Services
from tutorials.images import build_busybox
from tutorials.runner import unmount_all

from .daemon_fixture import RunningDaemon, require_docker, start_daemon
from .runtime_helpers import pty_session, wait_until

pytestmark = [pytest.mark.mount, pytest.mark.namespaces]


@pytest.fixture
def daemon(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningDaemon]:
    """A daemon whose containers mount with this checkout's layerfs, with busybox in its store;
    whatever still runs at the end is stopped (monitors outlive daemons, as shims do)."""
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
    try:
        with start_daemon(tmp_path / "daemon", env=dict(os.environ)) as d:
            build_busybox(Services.open(d.root))
            yield d
    finally:
        unmount_all(str(tmp_path))


def state_of(d: RunningDaemon, name: str) -> dict:
    return json.loads(d.docker("inspect", name).stdout)[0]["State"]


def test_docker_run_rm_echo_hi(daemon: RunningDaemon) -> None:
    r = daemon.docker("run", "--rm", "busybox", "echo", "hi")
    assert (r.returncode, r.stdout, r.stderr) == (0, "hi\n", "")
    r = daemon.docker("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3", check=False)
    assert (r.returncode, r.stdout, r.stderr) == (3, "out\n", "err\n")  # multiplexed: the streams apart
    r = daemon.docker("run", "--rm", "busybox", "nonexistent", check=False)
    assert r.returncode == 127 and 'exec: "nonexistent": executable file not found in $PATH' in r.stderr
    assert daemon.docker("ps", "-aq").stdout == ""  # every --rm container went, the failed one too
    r = daemon.docker("run", "-i", "--rm", "busybox", "sh", "-c", "cat; echo done", input="from stdin\n")
    assert r.stdout == "from stdin\ndone\n"


def test_run_d_logs_f_wait_and_ps(daemon: RunningDaemon) -> None:
    cid = daemon.docker(
        "run", "-d", "--name", "bg", "busybox", "sh", "-c", "for i in 1 2 3; do echo line $i; sleep 0.3; done; exit 4"
    ).stdout.strip()
    assert len(cid) == 64
    ps = daemon.docker("ps", "--format", "{{.Names}} {{.Status}}").stdout
    assert ps.startswith("bg Up ") or ps == ""  # running, unless it already ended
    assert daemon.docker("logs", "-f", "bg").stdout == "line 1\nline 2\nline 3\n"
    assert daemon.docker("wait", "bg").stdout == "4\n"
    assert daemon.docker("ps", "-a", "--format", "{{.Status}}").stdout.startswith("Exited (4) ")
    assert daemon.docker("logs", "--tail", "1", "-t", "bg").stdout.endswith("Z line 3\n")
    state = state_of(daemon, "bg")
    assert state["Status"] == "exited" and state["ExitCode"] == 4 and not state["Running"]
    # the Engine API's own framing: a multiplexed stream of stdout frames
    reply = daemon.request("GET", f"/v1.50/containers/{cid}/logs?stdout=1&stderr=1")
    assert reply.headers["Content-Type"] == "application/vnd.docker.multiplexed-stream"
    assert reply.body[:8] == struct.pack(">B3xI", 1, len(b"line 1\n")) and reply.body[8:15] == b"line 1\n"


def test_start_stop_kill_restart_as_docker_answers(daemon: RunningDaemon) -> None:
    trap = 'trap "exit 42" TERM; trap "exit 10" USR1; while true; do sleep 0.1; done'
    daemon.docker("run", "-d", "--name", "t1", "busybox", "sh", "-c", trap)
    assert daemon.docker("stop", "t1").stdout == "t1\n"
    assert daemon.docker("wait", "t1").stdout == "42\n"  # SIGTERM reached the trap
    daemon.docker("start", "t1")
    assert daemon.request("POST", "/v1.50/containers/t1/start").status == 304  # already running
    daemon.docker("kill", "-s", "USR1", "t1")
    assert daemon.docker("wait", "t1").stdout == "10\n"
    r = daemon.docker("kill", "t1", check=False)
    assert r.returncode == 1 and "is not running" in r.stderr
    assert daemon.request("POST", "/v1.50/containers/t1/stop").status == 304  # already stopped
    daemon.docker("run", "-d", "--name", "t2", "busybox", "sleep", "1000")
    first = state_of(daemon, "t2")["Pid"]
    daemon.docker("restart", "-t", "0", "t2")
    assert state_of(daemon, "t2")["Running"] and state_of(daemon, "t2")["Pid"] != first
    daemon.docker("stop", "-t", "1", "t2")  # PID 1 ignores SIGTERM: killed after a second
    assert state_of(daemon, "t2")["ExitCode"] == 137
    daemon.docker("rm", "-f", "t1")
    assert daemon.docker("ps", "-aq", "--filter", "name=t1").stdout == ""


def test_exec_and_top(daemon: RunningDaemon) -> None:
    daemon.docker("run", "-d", "--name", "srv", "-e", "FROM_RUN=1", "busybox", "sleep", "1000")
    r = daemon.docker("exec", "-e", "X=y", "srv", "sh", "-c", "echo $X $FROM_RUN; echo to-err >&2; exit 5", check=False)
    assert (r.returncode, r.stdout, r.stderr) == (5, "y 1\n", "to-err\n")
    assert daemon.docker("exec", "-u", "65534", "-w", "/tmp", "srv", "sh", "-c", "id -u; pwd").stdout == "65534\n/tmp\n"
    r = daemon.docker("exec", "srv", "nonexistent", check=False)
    assert r.returncode == 127 and 'exec: "nonexistent": executable file not found in $PATH' in r.stdout + r.stderr
    assert daemon.docker("exec", "-i", "srv", "cat", input="piped\n").stdout == "piped\n"
    daemon.docker("exec", "-d", "srv", "sh", "-c", "echo later > /tmp/d")
    wait_until(lambda: daemon.docker("exec", "srv", "cat", "/tmp/d", check=False).stdout == "later\n", what="exec -d")
    top = daemon.docker("top", "srv").stdout.splitlines()
    assert top[0].split() == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    assert any(line.endswith("sleep 1000") for line in top[1:])
    daemon.docker("rm", "-f", "srv")
    r = daemon.docker("exec", "srv", "true", check=False)
    assert r.returncode == 1 and "No such container: srv" in r.stderr


def test_run_it_and_exec_it_through_a_pty(daemon: RunningDaemon) -> None:
    docker = require_docker()
    code, out = pty_session(
        [docker, "run", "-it", "--rm", "--name", "tty1", "busybox", "sh"],
        [(b"", b"# "), (b"tty; stty size; echo T=$TERM\r", b"T=xterm"), (b"exit 7\r", b"")],
        env=daemon.env,
    )
    assert code == 7, out
    assert "/dev/pts/0" in out and "33 101" in out
    daemon.docker("run", "-d", "--name", "box", "busybox", "sleep", "1000")
    code, out = pty_session(
        [docker, "exec", "-it", "box", "sh"],
        [(b"", b"# "), (b"stty size; echo $((40 + 2))\r", b"42"), (b"exit 3\r", b"")],
        rows=20,
        cols=70,
        env=daemon.env,
    )
    assert code == 3 and "20 70" in out, out


def test_attach_and_start_a(daemon: RunningDaemon) -> None:
    daemon.docker("create", "--name", "later", "busybox", "sh", "-c", "echo attached; echo e >&2; exit 2")
    r = daemon.docker("start", "-a", "later", check=False)
    assert (r.returncode, r.stdout, r.stderr) == (2, "attached\n", "e\n")
    # the hijacked attach by hand: 101 UPGRADED, then frames until the container ends
    daemon.docker("create", "--name", "raw", "busybox", "sh", "-c", "sleep 0.5; echo via-attach")
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(str(daemon.sock))
    sock.sendall(
        b"POST /v1.50/containers/raw/attach?stream=1&stdout=1&stderr=1 HTTP/1.1\r\nHost: d\r\n"
        b"Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n"
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101 UPGRADED\r\n")
    assert b"Content-Type: application/vnd.docker.multiplexed-stream" in head
    assert daemon.request("POST", "/v1.50/containers/raw/start").status == 204
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    sock.close()
    assert data == struct.pack(">B3xI", 1, 11) + b"via-attach\n"


def test_kill_9_of_the_daemon_leaves_the_container_running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
    try:
        with start_daemon(tmp_path / "d", env=dict(os.environ)) as first:
            build_busybox(Services.open(first.root))
            first.docker(
                "run", "-d", "--name", "survivor", "busybox", "sh", "-c", "while true; do echo tick; sleep 0.2; done"
            )
            cid = json.loads(first.docker("inspect", "survivor").stdout)[0]["Id"]
            first.process.send_signal(signal.SIGKILL)
            first.process.wait()
        monitor = st.monitor_alive(first.root / "containers" / cid)
        assert monitor is not None  # the monitor (containerd-shim's role) outlives the daemon
        with start_daemon(tmp_path / "d", env=dict(os.environ)) as second:
            assert second.docker("ps", "--format", "{{.Names}} {{.Status}}").stdout.startswith("survivor Up ")
            assert "tick\n" in second.docker("logs", "--tail", "2", "survivor").stdout
            second.docker("stop", "-t", "1", "survivor")
            assert state_of(second, "survivor")["ExitCode"] == 137
    finally:
        unmount_all(str(tmp_path))


def test_docker_py_containers_run(daemon: RunningDaemon) -> None:
    docker = pytest.importorskip("docker")
    client = docker.DockerClient(base_url=daemon.host)
    try:
        assert client.containers.run("busybox", "echo hi from docker-py", remove=True) == b"hi from docker-py\n"
        c = client.containers.run("busybox", ["sh", "-c", "echo out; echo err >&2; exit 9"], detach=True, name="py")
        assert c.wait()["StatusCode"] == 9
        assert c.logs(stdout=True, stderr=False) == b"out\n" and c.logs(stdout=False, stderr=True) == b"err\n"
        c.remove()
        c = client.containers.run("busybox", "sleep 1000", detach=True)
        code, output = c.exec_run(["sh", "-c", "echo from exec; exit 3"])
        assert (code, output) == (3, b"from exec\n")
        c.reload()
        assert c.status == "running"
        c.stop(timeout=1)
        c.reload()
        assert c.status == "exited" and c.attrs["State"]["ExitCode"] == 137
    finally:
        client.close()
