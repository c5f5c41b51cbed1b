"""What a running container offers the CLI and the daemon (moby daemon/start.go, stop.go, kill.go,
wait.go, attach.go, logs.go, top_unix.go, exec.go).

Every call takes the store lock only for short reads and writes, never while it waits for a
container: the monitor takes the same lock to record an exit.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from . import state as st
from . import stream as fr
from .cgroups import Cgroup
from .jsonlog import Entry, LogQuery, read_logs
from .monitor import ATTACH_SOCKET, CGROUP_FILE, log_path
from .spec import ProcessSpec, SpecError, no_new_privileges, process_env, replace_env, tweak_caps

if TYPE_CHECKING:
    from ..container import Container
    from ..service import Services

DEFAULT_STOP_TIMEOUT = 10


class ContainerRuntimeError(Exception):
    """A daemon error of the runtime; str() is Docker's text. `code` is docker run's exit status."""

    def __init__(self, message: str, code: int = 125) -> None:
        super().__init__(message)
        self.code = code


class NotRunning(ContainerRuntimeError):
    pass


def parse_signal(value: str | int) -> int:
    """SIGTERM, TERM, term or 15 (moby signal.ParseSignal); Docker's error otherwise."""
    text = str(value).strip()
    if text.isdigit():
        n = int(text)
        if 0 < n < signal.NSIG:
            return n
    else:
        name = text.upper()
        name = name if name.startswith("SIG") else "SIG" + name
        try:
            return int(signal.Signals[name])
        except KeyError:
            pass
    raise ContainerRuntimeError(f"Invalid signal: {value}")


@dataclass
class AttachOptions:
    stdin: bool = False
    stdout: bool = True
    stderr: bool = True

    def hello(self) -> bytes:
        return fr.json_frame(fr.HELLO, asdict(self))


@dataclass
class ExecConfig:
    """POST /containers/{id}/exec's body, in Python."""

    cmd: list[str]
    env: list[str] = field(default_factory=list)
    workdir: str = ""
    user: str = ""
    tty: bool = False
    privileged: bool = False
    detach: bool = False


@dataclass
class ExecProcess:
    """An exec'd process: the helper that waits for it, and its terminal if it has one."""

    helper: subprocess.Popen[bytes]
    pid: int
    master: int | None = None

    def wait(self) -> int:
        return self.helper.wait()


class Runtime:
    def __init__(self, svc: Services) -> None:
        self.svc = svc

    # ---- state ------------------------------------------------------------------------------

    def cdir(self, c: Container) -> Path:
        return self.svc.layout.container_dir(c.id)

    def refresh(self, c: Container) -> Container:
        """The record as on disk; a container whose monitor died is recorded as Exited (255)."""
        fresh = self.svc.containers.load(c.id)
        if fresh is None:
            return c
        if st.lost(fresh.state, self.cdir(fresh)):
            with self.svc.lock.held():
                fresh = self.svc.containers.load(c.id) or fresh
                if st.lost(fresh.state, self.cdir(fresh)):
                    self.record_crash(fresh)
        return fresh

    def record_crash(self, c: Container) -> None:
        """Under the lock: Exited (255), and what the monitor would have cleaned up."""
        cdir = self.cdir(c)
        st.record_crash(c.state, cdir)
        self.svc.containers.save(c)
        try:
            cg = json.loads((cdir / CGROUP_FILE).read_text())
            Cgroup.from_json(cg).remove()
        except (OSError, ValueError):
            pass
        (cdir / CGROUP_FILE).unlink(missing_ok=True)
        (cdir / ATTACH_SOCKET).unlink(missing_ok=True)
        try:
            self.svc.containers.umount(c)
        except Exception:
            pass
        if c.host_config.get("AutoRemove"):
            self.svc.containers.remove(c)

    def reconcile_all(self) -> None:
        """After a crash or a reboot (called under the lock when a store is opened)."""
        for c in self.svc.containers.containers():
            if st.lost(c.state, self.cdir(c)):
                self.record_crash(c)

    def get(self, ref: str) -> Container:
        return self.refresh(self.svc.get_container(ref))

    def running(self, c: Container) -> bool:
        return bool(self.refresh(c).state.get("Running"))

    def init_pid(self, c: Container) -> int | None:
        return st.init_alive(self.cdir(c))

    # ---- start --------------------------------------------------------------------------------

    def start(self, ref: str, *attaches: AttachOptions) -> list[socket.socket] | None:
        """Spawn the container's monitor, with a connection to it per `attaches`, made before
        the command starts so that none of its output (nor its exit) is missed. None if it
        already runs."""
        c = self.get(ref)
        if c.state.get("Running"):
            return None
        if os.geteuid() != 0:
            raise ContainerRuntimeError(
                "running a container needs root here (new namespaces, mounts, pivot_root); "
                "as another user, create, mount, diff and commit still work"
            )
        if c.state.get("RemovalInProgress") or c.state.get("Dead"):
            raise ContainerRuntimeError(f"container is marked for removal and cannot be started: {c.name}")
        status_parent, status_child = socket.socketpair()
        keep = [status_child.fileno()]
        cmd = [
            sys.executable,
            "-m",
            "imagegraph.runtime.monitor",
            "--root",
            str(self.svc.layout.root),
            "--id",
            c.id,
            "--status-fd",
            str(status_child.fileno()),
            "--whiteouts",
            self.svc.layers.encoding,
        ]
        ours: list[socket.socket] = []
        theirs: list[socket.socket] = []
        for options in attaches:
            mine, its = socket.socketpair()
            mine.sendall(options.hello())
            ours.append(mine)
            theirs.append(its)
            keep.append(its.fileno())
            cmd += ["--attach-fd", str(its.fileno())]
        log = open(self.cdir(c) / "monitor.log", "ab")
        try:
            helper = subprocess.Popen(
                cmd,
                pass_fds=keep,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd="/",
                start_new_session=True,
            )
        finally:
            log.close()
            status_child.close()
            for its in theirs:
                its.close()
        helper.wait()
        got = fr.recv_frame(status_parent)
        status_parent.close()
        if got is None or "Error" in json.loads(got[1]):
            for mine in ours:
                mine.close()
        if got is None:
            raise ContainerRuntimeError(
                f"the monitor of {c.short_id} ended before the container started (see monitor.log)"
            )
        reply = json.loads(got[1])
        if "Error" in reply:
            if c.host_config.get("AutoRemove"):  # moby: a --rm container that cannot start goes too
                with self.svc.lock.held():
                    self.svc.containers.remove(c)
            raise ContainerRuntimeError(reply["Error"], int(reply.get("ExitCode", 125)))
        return ours

    # ---- signals ------------------------------------------------------------------------------

    def kill(self, ref: str, sig: str | int = "KILL") -> Container:
        number = parse_signal(sig)
        c = self.get(ref)
        if not c.state.get("Running"):
            raise NotRunning(f"cannot kill container: {ref}: container {c.id} is not running")
        if not st.signal_pid_file(self.cdir(c) / st.INIT_PID, number):
            raise NotRunning(f"cannot kill container: {ref}: container {c.id} is not running")
        return c

    def stop(self, ref: str, timeout: int | None = None, sig: str | None = None) -> Container:
        """The stop signal (the image's StopSignal, else SIGTERM), then SIGKILL after `timeout`."""
        c = self.get(ref)
        if not c.state.get("Running"):
            return c
        number = parse_signal(sig or c.config.get("StopSignal") or "SIGTERM")
        if timeout is None:
            stop_timeout = c.config.get("StopTimeout")
            timeout = DEFAULT_STOP_TIMEOUT if stop_timeout is None else int(stop_timeout)
        st.signal_pid_file(self.cdir(c) / st.INIT_PID, number)
        if timeout < 0 or not self.wait_exit(c, float(timeout)):
            if timeout >= 0:
                st.signal_pid_file(self.cdir(c) / st.INIT_PID, signal.SIGKILL)
            self.wait_exit(c, None)
        return self.refresh(c)

    def restart(self, ref: str, timeout: int | None = None) -> Container:
        c = self.stop(ref, timeout)
        self.start(c.id)
        return self.refresh(c)

    # ---- waiting ------------------------------------------------------------------------------

    def connect(self, c: Container, opts: AttachOptions) -> socket.socket | None:
        """A connection to the container's monitor, its HELLO sent; None if nothing listens."""
        try:
            dirfd = os.open(self.cdir(c), os.O_DIRECTORY | os.O_RDONLY)
        except OSError:
            return None
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(f"/proc/self/fd/{dirfd}/{ATTACH_SOCKET}")
            sock.sendall(opts.hello())
        except OSError:
            sock.close()
            return None
        finally:
            os.close(dirfd)
        return sock

    def wait_exit(self, c: Container, timeout: float | None) -> bool:
        """Block until the container is not running (True), or `timeout` seconds pass (False)."""
        return self._await_exit(c, timeout)[0]

    def _await_exit(self, c: Container, timeout: float | None) -> tuple[bool, int | None]:
        """(ended, the exit code its monitor announced: the record may be gone with --rm)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        sock = self.connect(c, AttachOptions(stdin=False, stdout=False, stderr=False))
        if sock is not None:
            try:
                while True:
                    if deadline is not None:
                        left = deadline - time.monotonic()
                        if left <= 0:
                            return False, None
                        sock.settimeout(left)
                    got = fr.recv_frame(sock)
                    if got is not None and got[0] == fr.EXIT:
                        return True, int(json.loads(got[1]).get("ExitCode", 0))
                    if got is None:
                        break  # the monitor ended (or the time ran out): the record says which
            finally:
                sock.close()
        while self.running(c):  # no monitor to ask: it is gone, or between start and listen
            if deadline is not None and time.monotonic() >= deadline:
                return False, None
            time.sleep(0.05)
        return True, None

    def wait(self, ref: str, condition: str = "not-running") -> tuple[int, str | None]:
        """POST /containers/{id}/wait: (StatusCode, Error)."""
        if condition not in ("not-running", "next-exit", "removed", ""):
            raise ContainerRuntimeError(f"invalid condition: {condition!r}")
        c = self.get(ref)
        if condition == "next-exit":
            started = c.state.get("StartedAt")
            while not self.running(c) and self.svc.containers.load(c.id) is not None:
                fresh = self.svc.containers.load(c.id)
                if fresh is not None and fresh.state.get("StartedAt") != started:
                    break  # started and already ended meanwhile
                time.sleep(0.05)
        _, announced = self._await_exit(c, None)
        last = self.svc.containers.load(c.id)
        if condition == "removed":
            while self.svc.containers.load(c.id) is not None:
                time.sleep(0.05)
        if last is None:  # removed on its way out (--rm): the monitor said how it ended
            return (announced if announced is not None else int(c.state.get("ExitCode") or 0)), None
        err = last.state.get("Error") or None
        return int(last.state.get("ExitCode") or 0), err

    # ---- stdio ----------------------------------------------------------------------------------

    def attach(self, ref: str, opts: AttachOptions) -> socket.socket:
        c = self.get(ref)
        if not c.state.get("Running"):
            raise ContainerRuntimeError("You cannot attach to a stopped container, start it first")
        sock = self.connect(c, opts)
        if sock is None:
            raise ContainerRuntimeError(f"container {c.id} is not running")
        return sock

    def resize(self, ref: str, height: int, width: int) -> None:
        c = self.get(ref)
        if not c.state.get("Running"):
            raise NotRunning(f"Container {c.id} is not running")
        sock = self.connect(c, AttachOptions(stdin=False, stdout=False, stderr=False))
        if sock is not None:
            with sock:
                sock.sendall(fr.json_frame(fr.RESIZE, {"h": height, "w": width}))

    def logs(self, ref: str, query: LogQuery) -> Iterator[Entry]:
        c = self.get(ref)
        path = str(log_path(self.cdir(c), c.id))
        return read_logs(path, query, lambda: self.svc.containers.load(c.id) is not None and self.running(c))

    # ---- processes --------------------------------------------------------------------------------

    def top(self, ref: str, ps_args: str = "-ef") -> dict[str, Any]:
        """docker top: `ps` on the host, only the rows of the container's processes (its PID namespace)."""
        c = self.get(ref)
        pid = self.init_pid(c) if c.state.get("Running") else None
        if pid is None:
            raise NotRunning(f"container {c.id} is not running")
        ns = os.stat(f"/proc/{pid}/ns/pid").st_ino
        members = set()
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    if os.stat(f"/proc/{entry}/ns/pid").st_ino == ns:
                        members.add(int(entry))
                except OSError:
                    continue
        try:
            res = subprocess.run(["ps", *ps_args.split()], capture_output=True, text=True, check=False)
        except FileNotFoundError:
            raise ContainerRuntimeError("ps is not installed (apt-get install procps)") from None
        if res.returncode != 0:
            raise ContainerRuntimeError(f"Error running ps: {res.stderr.strip()}")
        lines = res.stdout.splitlines()
        titles = lines[0].split() if lines else []
        if "PID" not in titles:
            raise ContainerRuntimeError("Couldn't find PID field in ps output")
        at = titles.index("PID")
        rows = []
        for line in lines[1:]:
            fields = line.split()
            if len(fields) <= at or not fields[at].isdigit() or int(fields[at]) not in members:
                continue
            rows.append(fields[: len(titles) - 1] + [" ".join(fields[len(titles) - 1 :])])
        return {"Titles": titles, "Processes": rows}

    def exec_process_spec(self, c: Container, cfg: ExecConfig) -> ProcessSpec:
        hc = c.host_config
        try:
            caps = tweak_caps(hc.get("CapAdd"), hc.get("CapDrop"), bool(hc.get("Privileged") or cfg.privileged))
            nnp = no_new_privileges(hc.get("SecurityOpt"))
        except SpecError as exc:
            raise ContainerRuntimeError(str(exc)) from None
        hostname = c.config.get("Hostname") or c.id[:12]
        return ProcessSpec(
            args=list(cfg.cmd),
            env=process_env(replace_env(list(c.config.get("Env") or []), list(cfg.env)), hostname, cfg.tty),
            cwd=cfg.workdir or c.config.get("WorkingDir") or "/",
            user=cfg.user or c.config.get("User") or "",
            tty=cfg.tty,
            caps=caps,
            no_new_privileges=nnp,
        )

    def exec(
        self,
        ref: str,
        cfg: ExecConfig,
        stdin: int | BinaryIO | None = None,
        stdout: int | BinaryIO | None = None,
        stderr: int | BinaryIO | None = None,
    ) -> ExecProcess:
        """Start `cfg.cmd` in the running container. Without a tty its stdio are the files given
        (None: /dev/null); with one, its terminal's master is returned in ExecProcess.master."""
        if not cfg.cmd:
            raise ContainerRuntimeError("No exec command specified")
        c = self.get(ref)
        pid = self.init_pid(c) if c.state.get("Running") else None
        if pid is None:
            raise NotRunning(f"container {c.id} is not running")
        try:
            cgroup = json.loads((self.cdir(c) / CGROUP_FILE).read_text())
        except (OSError, ValueError):
            cgroup = None
        spec = {"pid": pid, "cgroup": cgroup, "process": asdict(self.exec_process_spec(c, cfg))}
        spec_r, spec_w = os.pipe()
        os.write(spec_w, json.dumps(spec).encode())
        os.close(spec_w)
        status_parent, status_child = socket.socketpair()
        keep = [spec_r, status_child.fileno()]
        cmd = [
            sys.executable,
            "-m",
            "imagegraph.runtime.nsexec",
            "--spec-fd",
            str(spec_r),
            "--status-fd",
            str(status_child.fileno()),
        ]
        console_parent = console_child = None
        if cfg.tty:
            console_parent, console_child = socket.socketpair()
            keep.append(console_child.fileno())
            cmd += ["--console-fd", str(console_child.fileno())]
            stdin = stdout = stderr = None
        devnull = subprocess.DEVNULL
        try:
            helper = subprocess.Popen(
                cmd,
                pass_fds=keep,
                stdin=devnull if stdin is None else stdin,
                stdout=devnull if stdout is None else stdout,
                stderr=devnull if stderr is None else stderr,
                cwd="/",
                start_new_session=cfg.detach,
            )
        finally:
            os.close(spec_r)
            status_child.close()
            if console_child is not None:
                console_child.close()
        master = None
        if console_parent is not None:
            _, fds, _, _ = socket.recv_fds(console_parent, 16, 1)
            console_parent.close()
            master = fds[0] if fds else None
        got = fr.recv_frame(status_parent)
        status_parent.close()
        reply: dict[str, Any] = json.loads(got[1]) if got else {"Error": "the exec helper ended early", "ExitCode": 126}
        if "Error" in reply:
            helper.wait()
            if master is not None:
                os.close(master)
            raise ContainerRuntimeError(
                f"OCI runtime exec failed: exec failed: {reply['Error']}", int(reply["ExitCode"])
            )
        return ExecProcess(helper, int(reply["Pid"]), master)
