"""A process that joins a running container: `docker exec` (runc's nsexec and setns_init).

`python -m imagegraph.runtime.nsexec --spec-fd N [--console-fd M] [--status-fd S]`

The spec (JSON on fd N) names the container's first process; this helper joins its cgroup
and its IPC, UTS, network, PID and mount namespaces (mount last: it changes the root), then
forks, because only a child enters the new PID namespace. The child sets up the process as
the container's first one was (terminal, user, capabilities) and execs. The helper waits and
exits with the child's exit code, so the caller sees `docker exec`'s status; the child's pid
(the host's number) goes to the status socket first.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import signal
import socket
import sys
import termios
from typing import Any

from . import process
from . import state as st
from . import stream as fr
from . import syscalls as sc
from .cgroups import Cgroup
from .spec import ProcessSpec

NAMESPACES = (
    ("ipc", sc.CLONE_NEWIPC),
    ("uts", sc.CLONE_NEWUTS),
    ("net", sc.CLONE_NEWNET),
    ("pid", sc.CLONE_NEWPID),
    ("mnt", sc.CLONE_NEWNS),
)


def join(pid: int) -> int | None:
    """Enter every namespace of `pid` that differs from ours but the mount namespace, whose fd
    is returned for the child to enter (after it joined the cgroup, by its host path)."""
    mnt = None
    for name, flag in NAMESPACES:
        theirs = f"/proc/{pid}/ns/{name}"
        if os.stat(theirs).st_ino == os.stat(f"/proc/self/ns/{name}").st_ino:
            continue
        fd = os.open(theirs, os.O_RDONLY)
        if flag == sc.CLONE_NEWNS:
            mnt = fd
            continue
        sc.setns(fd, flag)
        os.close(fd)
    return mnt


def child(proc: ProcessSpec, cgroup: Cgroup | None, mnt: int | None, console: socket.socket | None, errw: int) -> None:
    """In the container: cgroup, mount namespace, terminal, user, privileges, exec. Never returns."""
    try:
        process.default_signals()
        if cgroup is not None:
            cgroup.join(0)
        if mnt is not None:
            sc.setns(mnt, sc.CLONE_NEWNS)
            os.close(mnt)
        os.setsid()
        if proc.tty:
            assert console is not None
            master, slave = os.openpty()
            socket.send_fds(console, [b"pty"], [master])
            os.close(master)
            for fd in (0, 1, 2):
                os.dup2(slave, fd)
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)
            os.close(slave)
        user = process.lookup_user(proc.user)
        env = process.environment(proc, user)
        try:
            os.chdir(proc.cwd)
        except OSError as exc:
            raise process.ProcessError(
                f'chdir to cwd ("{proc.cwd}") set in config.json failed: {(exc.strerror or "").lower()}', 126
            ) from None
        process.drop_privileges(proc, user)
        os.closerange(3, errw)
        os.closerange(errw + 1, 65536)
        process.exec_process(proc, env)
    except process.ProcessError as exc:
        os.write(errw, json.dumps({"Error": str(exc), "ExitCode": exc.code}).encode())
        os._exit(exc.code)
    except BaseException as exc:
        os.write(errw, json.dumps({"Error": str(exc) or type(exc).__name__, "ExitCode": 126}).encode())
        os._exit(126)
    os._exit(126)


def run(spec: dict[str, Any], console: socket.socket | None, status: socket.socket | None) -> int:
    proc = ProcessSpec(**spec["process"])
    cgroup = Cgroup.from_json(spec["cgroup"]) if spec.get("cgroup") else None
    if proc.tty:
        if console is None:
            raise SystemExit("nsexec: a tty needs --console-fd")
    mnt = join(int(spec["pid"]))
    errr, errw = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(errr)
        child(proc, cgroup, mnt, console, errw)
    os.close(errw)
    if mnt is not None:
        os.close(mnt)
    if console is not None:
        console.close()
    data = b""
    while chunk := os.read(errr, 65536):
        data += chunk
    os.close(errr)
    if data:
        err = json.loads(data)
        if status is not None:
            fr.send_frame(status, fr.STARTED, json.dumps(err).encode())
        os.waitpid(pid, 0)
        return int(err["ExitCode"])
    if status is not None:
        fr.send_frame(status, fr.STARTED, json.dumps({"Pid": pid}).encode())
        status.close()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, lambda s, _f: _forward(pid, s))
    _, wstatus = os.waitpid(pid, 0)
    return st.exit_code_of(wstatus)


def _forward(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m imagegraph.runtime.nsexec")
    p.add_argument("--spec-fd", type=int, required=True)
    p.add_argument("--console-fd", type=int)
    p.add_argument("--status-fd", type=int)
    a = p.parse_args(argv)
    with os.fdopen(a.spec_fd, "rb") as f:
        spec = json.loads(f.read())
    console = socket.socket(fileno=a.console_fd) if a.console_fd is not None else None
    status = socket.socket(fileno=a.status_fd) if a.status_fd is not None else None
    try:
        return run(spec, console, status)
    except OSError as exc:
        msg = {"Error": f"unable to join the container: {exc.strerror or exc}", "ExitCode": 126}
        if status is not None:
            try:
                fr.send_frame(status, fr.STARTED, json.dumps(msg).encode())
            except OSError:
                pass
        print(msg["Error"], file=sys.stderr)
        return 126


if __name__ == "__main__":
    sys.exit(main())
