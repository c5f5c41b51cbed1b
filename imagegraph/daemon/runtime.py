"""The running-container service (moby daemon/start.go, stop.go, kill.go, restart.go, wait.go,
resize.go, attach.go, logs.go, top_unix.go, exec.go), over `imagegraph.runtime.manager`.

What the daemon keeps in memory, as dockerd does:

- attaches that arrived before the container started (the docker CLI attaches, then starts):
  the start hands the first one the monitor's connection, made before the command runs, so
  no output is lost;
- exec instances (`POST /containers/{id}/exec` makes one, `/exec/{id}/start` runs it, its
  exit code stays for `/exec/{id}/json`).

A container's monitor is its own process, in its own session: a daemon that dies (kill -9)
takes no container with it, and the next daemon finds them running.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..container import Container
from ..runtime import stream as fr
from ..runtime.jsonlog import Entry, LogQuery
from ..runtime.manager import AttachOptions, ContainerRuntimeError, ExecConfig, ExecProcess, NotRunning
from ..runtime.monitor import set_winsize
from ..service import Conflict, InvalidParameter, NotFound, Services
from . import errdefs

if TYPE_CHECKING:
    from . import Daemon

#: How long an attach made before the start waits for it (the docker CLI starts at once).
PENDING_ATTACH_SECONDS = 300.0


class NotModified(errdefs.DaemonError):
    """304: start of a running container, stop of a stopped one (moby errdefs.NotModified)."""


def runtime_error(exc: ContainerRuntimeError) -> errdefs.DaemonError:
    """The daemon's kind for a runtime error: not running is a conflict (409), the rest 500."""
    if isinstance(exc, NotRunning):
        return Conflict(str(exc))
    return errdefs.System(str(exc))


@dataclass
class PendingAttach:
    """An attach waiting for its container to start."""

    options: AttachOptions
    ready: threading.Event = field(default_factory=threading.Event)
    sock: socket.socket | None = None
    error: str = ""


@dataclass
class WaitTicket:
    """A wait registered before its answer's head: what it waits on, and how."""

    container: Container
    condition: str
    sock: socket.socket | None = None
    pending: PendingAttach | None = None


@dataclass
class ExecInstance:
    """One `docker exec`: its config, and once started its process and exit code."""

    id: str
    container_id: str
    config: ExecConfig
    attach_stdin: bool
    attach_stdout: bool
    attach_stderr: bool
    detach_keys: str = ""
    running: bool = False
    exit_code: int | None = None
    pid: int = 0
    process: ExecProcess | None = None
    console_size: tuple[int, int] | None = None

    def inspect(self) -> dict[str, Any]:
        """GET /exec/{id}/json (ExecInspect)."""
        return {
            "ID": self.id,
            "Running": self.running,
            "ExitCode": self.exit_code,
            "ProcessConfig": {
                "tty": self.config.tty,
                "entrypoint": self.config.cmd[0],
                "arguments": self.config.cmd[1:],
                "privileged": self.config.privileged,
                "user": self.config.user,
            },
            "OpenStdin": self.attach_stdin,
            "OpenStderr": self.attach_stderr,
            "OpenStdout": self.attach_stdout,
            "CanRemove": False,
            "ContainerID": self.container_id,
            "DetachKeys": self.detach_keys,
            "Pid": self.pid,
        }


@dataclass
class RuntimeService:
    daemon: Daemon
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _pending: dict[str, list[PendingAttach]] = field(default_factory=dict)
    _execs: dict[str, ExecInstance] = field(default_factory=dict)

    def svc(self) -> Services:
        return self.daemon.services()

    def container(self, name: str) -> Container:
        return self.svc().runtime.get(name)

    def _event(self, c: Container, action: str, extra: dict[str, str] | None = None) -> None:
        self.daemon.containers.log_container_event(c, action, extra)

    # ---- start, stop, kill, restart ------------------------------------------------------------

    def start(self, name: str) -> None:
        """POST /containers/{name}/start: 304 if it runs; a waiting attach gets the monitor's line."""
        svc = self.svc()
        c = svc.runtime.get(name)
        if c.state.get("Running"):
            raise NotModified("container already started")
        with self._lock:
            waiting = self._pending.pop(c.id, [])
        self.daemon.flow.call("postContainersStart", "ContainerStart", c.name)
        try:
            socks = svc.runtime.start(c.id, *(p.options for p in waiting))
        except ContainerRuntimeError as exc:
            for p in waiting:
                p.error = str(exc)
                p.ready.set()
            raise errdefs.System(str(exc)) from None
        for p, sock in zip(waiting, socks or [], strict=False):
            p.sock = sock
            p.ready.set()
        self._event(c, "start")

    def stop(self, name: str, timeout: int | None, sig: str | None) -> None:
        svc = self.svc()
        c = svc.runtime.get(name)
        if not c.state.get("Running"):
            raise NotModified("container already stopped")
        try:
            svc.runtime.stop(c.id, timeout, sig)
        except ContainerRuntimeError as exc:
            raise runtime_error(exc) from None
        self._event(c, "stop")

    def kill(self, name: str, sig: str) -> None:
        svc = self.svc()
        c = svc.runtime.get(name)
        if not c.state.get("Running"):
            raise Conflict(f"cannot kill container: {name}: container {c.id} is not running")
        try:
            svc.runtime.kill(c.id, sig or "KILL")
        except ContainerRuntimeError as exc:
            if "Invalid signal" in str(exc):
                raise InvalidParameter(str(exc)) from None
            raise runtime_error(exc) from None
        self._event(c, "kill", {"signal": str(sig or "9")})

    def restart(self, name: str, timeout: int | None) -> None:
        svc = self.svc()
        c = svc.runtime.get(name)
        try:
            svc.runtime.restart(c.id, timeout)
        except ContainerRuntimeError as exc:
            raise runtime_error(exc) from None
        self._event(c, "restart")

    # ---- wait, resize, top, logs -----------------------------------------------------------------

    def wait_begin(self, name: str, condition: str) -> WaitTicket:
        """POST /containers/{name}/wait, before its head goes out: a wait for the next exit (or the
        removal) of a container not started yet joins the start as a silent attach, so even a
        command that ends at once has its status reported and --rm cannot take it away first."""
        condition = condition or "not-running"
        if condition not in ("not-running", "next-exit", "removed"):
            raise InvalidParameter(f"invalid condition: {condition!r}")
        svc = self.svc()
        c = svc.runtime.get(name)
        ticket = WaitTicket(c, condition)
        silent = AttachOptions(stdin=False, stdout=False, stderr=False)
        if c.state.get("Running"):
            ticket.sock = svc.runtime.connect(c, silent)
        elif condition != "not-running":
            ticket.pending = PendingAttach(silent)
            with self._lock:
                self._pending.setdefault(c.id, []).append(ticket.pending)
        return ticket

    def wait_end(self, ticket: WaitTicket) -> tuple[int, str | None]:
        """The container's exit status (and error), once the ticket's condition is met."""
        svc = self.svc()
        c, pending = ticket.container, ticket.pending
        if pending is not None:
            while not pending.ready.wait(1.0):
                if self.daemon.stopping.is_set() or svc.containers.load(c.id) is None:
                    self.forget(c.id, pending)
                    break
            ticket.sock = pending.sock
        code = None
        if ticket.sock is not None:
            with ticket.sock:
                while (got := fr.recv_frame(ticket.sock)) is not None:
                    if got[0] == fr.EXIT:
                        code = int(json.loads(got[1]).get("ExitCode", 0))
                        break
        last = svc.runtime.refresh(c)
        if ticket.condition == "removed":
            while svc.containers.load(c.id) is not None and not self.daemon.stopping.is_set():
                time.sleep(0.05)
        if code is None:
            code = int(last.state.get("ExitCode") or 0)
        return code, last.state.get("Error") or None

    def resize(self, name: str, height: int, width: int) -> None:
        try:
            self.svc().runtime.resize(name, height, width)
        except ContainerRuntimeError as exc:
            raise runtime_error(exc) from None

    def top(self, name: str, ps_args: str) -> dict[str, Any]:
        try:
            return self.svc().runtime.top(name, ps_args or "-ef")
        except ContainerRuntimeError as exc:
            raise runtime_error(exc) from None

    def logs(self, name: str, query: LogQuery) -> tuple[Container, Iterator[Entry]]:
        svc = self.svc()
        c = svc.runtime.get(name)
        return c, svc.runtime.logs(c.id, query)

    # ---- attach --------------------------------------------------------------------------------------

    def attach(self, name: str, options: AttachOptions) -> tuple[Container, PendingAttach]:
        """A connection to the container's monitor: now if it runs, else once it starts."""
        svc = self.svc()
        c = svc.runtime.get(name)
        pending = PendingAttach(options)
        if c.state.get("Running"):
            try:
                pending.sock = svc.runtime.attach(c.id, options)
            except ContainerRuntimeError as exc:
                raise runtime_error(exc) from None
            pending.ready.set()
        else:
            with self._lock:
                self._pending.setdefault(c.id, []).append(pending)
        self._event(c, "attach")
        return c, pending

    def forget(self, cid: str, pending: PendingAttach) -> None:
        with self._lock:
            waiting = self._pending.get(cid, [])
            if pending in waiting:
                waiting.remove(pending)

    # ---- exec ------------------------------------------------------------------------------------------

    def exec_create(self, name: str, body: dict[str, Any]) -> str:
        """POST /containers/{name}/exec: an exec instance, kept until the daemon ends."""
        svc = self.svc()
        c = svc.runtime.get(name)
        if not c.state.get("Running"):
            raise Conflict(f"container {c.id} is not running")
        cmd = body.get("Cmd") or []
        if isinstance(cmd, str):
            cmd = [cmd]
        if not cmd:
            raise InvalidParameter("No exec command specified")
        size = body.get("ConsoleSize")
        inst = ExecInstance(
            id=secrets.token_hex(32),
            container_id=c.id,
            config=ExecConfig(
                cmd=[str(x) for x in cmd],
                env=[str(x) for x in body.get("Env") or []],
                workdir=str(body.get("WorkingDir") or ""),
                user=str(body.get("User") or ""),
                tty=bool(body.get("Tty")),
                privileged=bool(body.get("Privileged")),
            ),
            attach_stdin=bool(body.get("AttachStdin")),
            attach_stdout=bool(body.get("AttachStdout")),
            attach_stderr=bool(body.get("AttachStderr")),
            detach_keys=str(body.get("DetachKeys") or ""),
            console_size=(int(size[0]), int(size[1])) if isinstance(size, list) and len(size) == 2 else None,
        )
        with self._lock:
            self._execs[inst.id] = inst
        self._event(c, "exec_create: " + " ".join(inst.config.cmd), {"execID": inst.id})
        return inst.id

    def exec_get(self, exec_id: str) -> ExecInstance:
        with self._lock:
            inst = self._execs.get(exec_id)
        if inst is None:
            raise NotFound(f"No such exec instance: {exec_id}")
        return inst

    def exec_start(self, exec_id: str, detach: bool, tty: bool | None = None) -> ExecInstance:
        """Run the exec'd process: detached, or with pipes (or a pty) for the caller to relay."""
        inst = self.exec_get(exec_id)
        if inst.running or inst.exit_code is not None:
            raise Conflict(f"Error: Exec command {exec_id} has already run")
        if tty is not None:
            inst.config.tty = tty
        inst.config.detach = detach
        pipe = subprocess.PIPE
        try:
            proc = self.svc().runtime.exec(
                inst.container_id,
                inst.config,
                stdin=pipe if inst.attach_stdin and not detach else None,
                stdout=pipe if not detach else None,
                stderr=pipe if not detach else None,
            )
        except NotRunning as exc:
            raise Conflict(str(exc)) from None
        except ContainerRuntimeError as exc:
            inst.exit_code = exc.code
            raise errdefs.System(str(exc)) from None
        inst.process, inst.pid, inst.running = proc, proc.pid, True
        if proc.master is not None and inst.console_size:
            set_winsize(proc.master, *inst.console_size)
        if detach:
            threading.Thread(target=self._reap, args=(inst,), daemon=True).start()
        try:
            self._event(self.container(inst.container_id), "exec_start: " + " ".join(inst.config.cmd))
        except Exception:
            pass
        return inst

    def _reap(self, inst: ExecInstance) -> None:
        assert inst.process is not None
        inst.exit_code = inst.process.wait()
        inst.running = False

    def exec_finished(self, inst: ExecInstance) -> None:
        """After the relay: the exit code for /exec/{id}/json."""
        self._reap(inst)
        if inst.process is None:
            return
        for f in (inst.process.helper.stdout, inst.process.helper.stderr):
            if f is not None:
                f.close()
        if inst.process.master is not None:
            try:
                os.close(inst.process.master)
            except OSError:
                pass

    def exec_resize(self, exec_id: str, height: int, width: int) -> None:
        inst = self.exec_get(exec_id)
        if inst.process is None or inst.process.master is None:
            if inst.process is None:
                inst.console_size = (height, width)
                return
            raise Conflict(f"Exec {exec_id} has no terminal to resize")
        set_winsize(inst.process.master, height, width)
