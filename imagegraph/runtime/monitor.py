"""One small process per running container: containerd-shim's role, with runc's create inside.

`python -m imagegraph.runtime.monitor --root R --id ID --status-fd N [--attach-fd M]`

The starter (the CLI or the daemon) spawns it and reads one STARTED frame on the status
socket. The monitor detaches at once (its parent exits, so no caller is left with a zombie),
mounts the container's layers, makes the cgroup, and forks the container's first process in
a new PID namespace; that process builds the rest (`rootfs`, `process`) and execs the
command. From then on the monitor:

- holds the container's stdio (pipes, or the pty master it receives from the container);
- writes the output to `<id>-json.log` and to every attached client (`attach.sock`, reached
  as /proc/self/fd/N/attach.sock so the path's length never matters);
- reaps the process and records its exit in config.v2.json, unmounts, removes the cgroup and,
  with --rm, the container; then tells every client the exit status and ends.

So a crash of whatever started the container loses nothing; a kill -9 of the monitor kills
the container (it is its parent-death signal), and `state.record_crash` later shows it as
Exited (255).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import selectors
import signal
import socket
import struct
import sys
import termios
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from ..container import Container, ContainerStore
from ..imagestore import ImageStore
from ..layerstore import LayerStore
from ..store import Layout, StoreLock
from . import cgroups, network, process, rootfs
from . import state as st
from . import stream as fr
from . import syscalls as sc
from .jsonlog import LogWriter
from .spec import ContainerSpec, container_spec

ATTACH_SOCKET = "attach.sock"
TRACE_FILE = "layerfs-trace.jsonl"
CGROUP_FILE = "cgroup.json"  # where an exec'd process joins the container's cgroup
CLIENT_BUFFER_LIMIT = 64 * 1024 * 1024
DRAIN_SECONDS = 2.0


class StartError(Exception):
    """The container could not start; `code` is what `docker run` exits with (125, 126, 127)."""

    def __init__(self, message: str, code: int = 125) -> None:
        super().__init__(message)
        self.code = code


def log_path(container_dir: Path, cid: str) -> Path:
    return container_dir / f"{cid}-json.log"


def set_winsize(fd: int, rows: int, cols: int) -> None:
    if rows > 0 and cols > 0:
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


# ---- the container's first process (runs in the forked child) ------------------------------------


@dataclass
class ChildEnds:
    """What the forked child keeps: its stdio ends, the error pipe, the console socket."""

    stdin: int | None
    stdout: int | None
    stderr: int | None
    errw: int
    console: socket.socket | None
    cgroup: cgroups.Cgroup | None


def container_init(spec: ContainerSpec, ends: ChildEnds) -> None:
    """runc init: namespaces, hostname, lo, the root file system, the terminal, the user, exec.

    Never returns: the command replaces this process, or the error goes down the error pipe
    (closed on exec, so the monitor reads EOF when the command is running).
    """
    code = 125
    try:
        process.default_signals()
        sc.prctl(sc.PR_SET_PDEATHSIG, signal.SIGKILL)
        os.setsid()
        if ends.cgroup is not None:
            ends.cgroup.join(0)
        if not spec.process.tty:
            devnull = os.open("/dev/null", os.O_RDWR)
            os.dup2(ends.stdin if ends.stdin is not None else devnull, 0)
            os.dup2(ends.stdout if ends.stdout is not None else devnull, 1)
            os.dup2(ends.stderr if ends.stderr is not None else devnull, 2)
        flags = sc.CLONE_NEWNS | sc.CLONE_NEWUTS | sc.CLONE_NEWIPC
        if spec.new_netns:
            flags |= sc.CLONE_NEWNET
        sc.unshare(flags)
        socket.sethostname(spec.hostname)
        if spec.new_netns:
            network.loopback_up()
        rootfs.setup(spec)
        if spec.process.tty:
            master, slave = os.openpty()  # /dev/ptmx is the container's own devpts now
            assert ends.console is not None
            socket.send_fds(ends.console, [b"pty"], [master])
            os.close(master)
            rootfs.mount_console(os.ttyname(slave))
            for fd in (0, 1, 2):
                os.dup2(slave, fd)
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)
            os.close(slave)
        rootfs.finalize(spec)
        user = process.lookup_user(spec.process.user)
        env = process.environment(spec.process, user)
        process.prepare_cwd(spec.process.cwd, user)
        process.drop_privileges(spec.process, user)
        sc.prctl(sc.PR_SET_PDEATHSIG, signal.SIGKILL)  # a change of credentials cleared it
        os.closerange(3, ends.errw)
        os.closerange(ends.errw + 1, 65536)
        code = 127
        process.exec_process(spec.process, env)
    except process.ProcessError as exc:
        _report(ends.errw, str(exc), exc.code)
    except BaseException as exc:  # anything else: one line for the starter, never a traceback
        _report(ends.errw, _one_line(exc), code if code != 127 else 125)
    os._exit(1)


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror if exc.filename is None else f"{exc.strerror}: {exc.filename}"
    else:
        text = str(exc) or type(exc).__name__
    return text.splitlines()[0] if text else type(exc).__name__


def _report(fd: int, message: str, code: int) -> None:
    try:
        os.write(fd, json.dumps({"Error": message, "ExitCode": code}).encode())
    finally:
        os._exit(code)


# ---- the monitor ----------------------------------------------------------------------------------


@dataclass
class Client:
    sock: socket.socket
    stdin: bool = False
    stdout: bool = True
    stderr: bool = True
    reader: fr.FrameReader = field(default_factory=fr.FrameReader)
    out: bytearray = field(default_factory=bytearray)


class Monitor:
    def __init__(
        self, root: str, cid: str, status: socket.socket, first: list[socket.socket], encoding: str | None = None
    ) -> None:
        layout = Layout(Path(root))
        # What a monitor needs of the store (Services.wire's stores, without the CLI's imports):
        # the layer store asks the image store which layers images hold before --rm releases any.
        holder: dict[str, ImageStore] = {}
        layers = LayerStore(layout, encoding, image_tops=lambda: holder["images"].top_chain_ids())
        holder["images"] = ImageStore(layout, layers)
        self.containers = ContainerStore(layout, layers)
        self.lock = StoreLock(layout.lock_file)
        self.cid = cid
        self.cdir = layout.container_dir(cid)
        self.status = status
        self.first = first
        self.clients: list[Client] = []
        self.sel = selectors.DefaultSelector()
        self.pid = 0
        self.tty_master: int | None = None
        self.stdin_w: int | None = None
        self.stdin_buf = bytearray()
        self.outputs: dict[int, str] = {}  # fd -> stream name
        self.stdin_once = False
        self.mounted_here = False
        self.cgroup: cgroups.Cgroup | None = None
        self.log: LogWriter | None = None
        self.listener: socket.socket | None = None
        self.dirfd: int | None = None

    # -- start ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Everything up to a running command, or StartError with nothing left behind."""
        with self.lock.held():
            c = self.containers.load(self.cid)
            if c is None:
                raise StartError(f"No such container: {self.cid}")
            if c.state.get("Running") and st.monitor_alive(self.cdir):
                raise StartError(f"container {self.cid} is already running")
            try:
                mountpoint = self.containers.mountpoint(c)
                self.mounted_here = mountpoint is None
                if mountpoint is None:
                    mountpoint = self.containers.mount(c, trace=self.cdir / TRACE_FILE)
                spec = container_spec(self.cid, c.config, c.host_config, str(mountpoint), self.cdir)
                self.cgroup = cgroups.create(self.cid, spec.resources)
                if self.cgroup is not None:
                    (self.cdir / CGROUP_FILE).write_text(json.dumps(self.cgroup.to_json()))
            except Exception as exc:  # SpecError, CgroupError, a failed mount: one line each
                self._undo()
                raise StartError(_one_line(exc)) from None
            st.write_pid_file(self.cdir / st.MONITOR_PID, os.getpid())
            self.stdin_once = bool(c.config.get("StdinOnce"))
            open_stdin = bool(c.config.get("OpenStdin"))
            console_size = c.host_config.get("ConsoleSize") or [0, 0]
        try:
            try:
                self._spawn(spec, open_stdin, console_size)
            except OSError as exc:  # unshare or fork refused: say which, undo the rest
                raise StartError(f"unable to start container process: {_one_line(exc)}") from None
        except StartError as exc:
            self._undo()
            (self.cdir / st.MONITOR_PID).unlink(missing_ok=True)
            with self.lock.held():
                c = self.containers.load(self.cid)
                if c is not None:
                    c.state.update(Error=str(exc), ExitCode=exc.code)
                    self.containers.save(c)
            raise
        with self.lock.held():
            c = self.containers.load(self.cid)
            if c is not None:
                st.set_running(c.state, self.pid)
                c.data["LogPath"] = str(log_path(self.cdir, self.cid))
                self.containers.save(c)
            st.write_pid_file(self.cdir / st.INIT_PID, self.pid)

    def _undo(self) -> None:
        if self.cgroup is not None:
            self.cgroup.remove()
            (self.cdir / CGROUP_FILE).unlink(missing_ok=True)
        if self.mounted_here:
            c = self.containers.load(self.cid)
            if c is not None:
                try:
                    self.containers.umount(c)
                except Exception:
                    pass

    def _spawn(self, spec: ContainerSpec, open_stdin: bool, console_size: list[int]) -> None:
        tty = spec.process.tty
        errr, errw = os.pipe()
        keep: list[int] = [errw]
        ends = ChildEnds(None, None, None, errw, None, self.cgroup)
        console_parent: socket.socket | None = None
        if tty:
            console_parent, ends.console = socket.socketpair()
        else:
            out_r, ends.stdout = os.pipe()
            err_r, ends.stderr = os.pipe()
            self.outputs = {out_r: "stdout", err_r: "stderr"}
            keep += [ends.stdout, ends.stderr]
            if open_stdin:
                ends.stdin, self.stdin_w = os.pipe()
                keep.append(ends.stdin)
        self.log = LogWriter(str(log_path(self.cdir, self.cid)))
        pidns = os.open("/proc/self/ns/pid", os.O_RDONLY)
        try:
            sc.unshare(sc.CLONE_NEWPID)  # only this process's children go there
            pid = os.fork()
            if pid == 0:
                container_init(spec, ends)
            sc.setns(pidns, sc.CLONE_NEWPID)  # later children (umount helpers) stay with us
        finally:
            os.close(pidns)
        self.pid = pid
        for fd in keep:
            os.close(fd)
        if ends.console is not None:
            ends.console.close()
        if console_parent is not None:
            _, fds, _, _ = socket.recv_fds(console_parent, 16, 1)
            console_parent.close()
            if fds:
                self.tty_master = fds[0]
                self.outputs = {self.tty_master: "stdout"}
                set_winsize(self.tty_master, *(console_size + [0, 0])[:2])
        data = b""
        while chunk := os.read(errr, 65536):
            data += chunk
        os.close(errr)
        if data:
            os.waitpid(pid, 0)
            try:
                err = json.loads(data)
                raise StartError(f"unable to start container process: {err['Error']}", int(err["ExitCode"]))
            except (ValueError, KeyError):
                raise StartError("unable to start container process: " + data.decode(errors="replace")) from None
        if self.tty_master is None and tty:
            os.waitpid(pid, 0)
            raise StartError("unable to start container process: no terminal was made")

    # -- clients ---------------------------------------------------------------------------------

    def _listen(self) -> None:
        self.dirfd = os.open(self.cdir, os.O_DIRECTORY | os.O_RDONLY)
        path = f"/proc/self/fd/{self.dirfd}/{ATTACH_SOCKET}"
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        os.chmod(path, 0o600)
        self.listener.listen(16)
        self.listener.setblocking(False)
        self.sel.register(self.listener, selectors.EVENT_READ, "listen")

    def _add_client(self, sock: socket.socket) -> None:
        """Read the client's HELLO first (it sends it at once), then serve it without blocking."""
        sock.settimeout(2.0)
        got = fr.recv_frame(sock)
        if got is None or got[0] != fr.HELLO:
            sock.close()
            return
        opts = json.loads(got[1] or b"{}")
        client = Client(sock, bool(opts.get("stdin")), bool(opts.get("stdout", True)), bool(opts.get("stderr", True)))
        sock.setblocking(False)
        self.clients.append(client)
        self.sel.register(sock, selectors.EVENT_READ, client)

    def _drop(self, client: Client) -> None:
        if client in self.clients:
            self.clients.remove(client)
            try:
                self.sel.unregister(client.sock)
            except (KeyError, ValueError):
                pass
            client.sock.close()
            if client.stdin and self.stdin_once:
                self._close_stdin()

    def _send(self, client: Client, data: bytes) -> None:
        client.out += data
        if len(client.out) > CLIENT_BUFFER_LIMIT:
            self._drop(client)  # a client that does not read must not stop the container
            return
        self._flush(client)

    def _flush(self, client: Client) -> None:
        try:
            n = client.sock.send(client.out)
            del client.out[:n]
        except BlockingIOError:
            pass
        except OSError:
            self._drop(client)
            return
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if client.out else 0)
        try:
            self.sel.modify(client.sock, events, client)
        except (KeyError, ValueError):
            pass

    def _client_input(self, client: Client) -> None:
        try:
            data = client.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._drop(client)
            return
        for kind, payload in client.reader.feed(data):
            if kind == fr.STDIN and client.stdin:
                self._write_stdin(payload)
            elif kind == fr.STDIN_CLOSE and client.stdin and self.stdin_once:
                self._close_stdin()
            elif kind == fr.RESIZE and self.tty_master is not None:
                size = json.loads(payload)
                set_winsize(self.tty_master, int(size.get("h", 0)), int(size.get("w", 0)))

    def _write_stdin(self, data: bytes) -> None:
        fd = self.tty_master if self.tty_master is not None else self.stdin_w
        if fd is None:
            return
        self.stdin_buf += data
        self._flush_stdin()

    def _flush_stdin(self) -> None:
        fd = self.tty_master if self.tty_master is not None else self.stdin_w
        if fd is None:
            self.stdin_buf.clear()
            return
        try:
            n = os.write(fd, self.stdin_buf)
            del self.stdin_buf[:n]
        except BlockingIOError:
            pass
        except OSError:
            self.stdin_buf.clear()
            if fd == self.stdin_w:
                self._close_stdin()
            return
        if fd == self.stdin_w:
            self._watch_stdin()

    def _watch_stdin(self) -> None:
        if self.stdin_w is None:
            return
        want = bool(self.stdin_buf)
        registered = self.stdin_w in self.sel.get_map()
        if want and not registered:
            self.sel.register(self.stdin_w, selectors.EVENT_WRITE, "stdin")
        elif not want and registered:
            self.sel.unregister(self.stdin_w)

    def _close_stdin(self) -> None:
        if self.stdin_w is not None:
            if self.stdin_w in self.sel.get_map():
                self.sel.unregister(self.stdin_w)
            os.close(self.stdin_w)
            self.stdin_w = None
            self.stdin_buf.clear()

    # -- output ------------------------------------------------------------------------------------

    def _output(self, fd: int) -> bool:
        """Read from one of the container's outputs; False at its end."""
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return True
        except OSError:  # EIO: the pty's last slave closed
            data = b""
        if not data:
            self.sel.unregister(fd)
            self.outputs.pop(fd)
            if fd != self.tty_master:
                os.close(fd)
            return False
        name = self.outputs[fd]
        assert self.log is not None
        self.log.write(name, data)
        kind = fr.STDOUT if name == "stdout" else fr.STDERR
        framed = fr.frame(kind, data)
        for c in list(self.clients):
            if (c.stdout and kind == fr.STDOUT) or (c.stderr and kind == fr.STDERR):
                self._send(c, framed)
        return True

    # -- the loop ----------------------------------------------------------------------------------

    def serve(self) -> int:
        """Until the container's process ends and its output is drained; its exit code."""
        for fd in self.outputs:
            os.set_blocking(fd, False)
            self.sel.register(fd, selectors.EVENT_READ, "output")
        if self.stdin_w is not None:
            os.set_blocking(self.stdin_w, False)
        pidfd = os.pidfd_open(self.pid)
        self.sel.register(pidfd, selectors.EVENT_READ, "exit")
        exited_at: float | None = None
        while True:
            timeout = None if exited_at is None else max(0.0, exited_at + DRAIN_SECONDS - time.monotonic())
            if exited_at is not None and (not self.outputs or timeout == 0):
                break
            for key, events in self.sel.select(timeout):
                what = key.data
                if what == "exit":
                    self.sel.unregister(pidfd)
                    os.close(pidfd)
                    exited_at = time.monotonic()
                elif what == "output":
                    self._output(int(key.fd))
                elif what == "listen":
                    assert self.listener is not None
                    try:
                        sock, _ = self.listener.accept()
                    except BlockingIOError:
                        continue
                    self._add_client(sock)
                elif what == "stdin":
                    self._flush_stdin()
                elif isinstance(what, Client):
                    if events & selectors.EVENT_WRITE:
                        self._flush(what)
                    if events & selectors.EVENT_READ and what in self.clients:
                        self._client_input(what)
        for fd in list(self.outputs):
            self.sel.unregister(fd)
            os.close(fd)
        self.outputs.clear()
        _, wstatus = os.waitpid(self.pid, 0)
        return st.exit_code_of(wstatus)

    def finish(self, code: int) -> None:
        """Record the exit, clean up, tell the clients, end."""
        if self.log is not None:
            self.log.close()
        if self.tty_master is not None:
            os.close(self.tty_master)
        self._close_stdin()
        oom = self.cgroup.oom_killed() if self.cgroup is not None else False
        if self.cgroup is not None:
            self.cgroup.remove()
            (self.cdir / CGROUP_FILE).unlink(missing_ok=True)
        with self.lock.held():
            c = self.containers.load(self.cid)
            if c is not None:
                st.set_stopped(c.state, code, oom=oom)
                self.containers.save(c)
                for name in (st.MONITOR_PID, st.INIT_PID):
                    (self.cdir / name).unlink(missing_ok=True)
                if self.mounted_here:
                    self._umount(c)
                if c.host_config.get("AutoRemove"):
                    self._close_listener()
                    self.containers.remove(c)
        self._close_listener()
        exit_frame = fr.json_frame(fr.EXIT, {"ExitCode": code})
        for client in list(self.clients):
            try:
                client.sock.setblocking(True)
                client.sock.settimeout(5.0)
                client.sock.sendall(bytes(client.out) + exit_frame)
                client.sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            client.sock.close()

    def _umount(self, c: Container) -> None:
        """umount(2) of the union (the layerfs daemon then ends), else the store's way."""
        path = self.containers.mountpoint(c)
        if path is not None:
            try:
                sc.umount2(str(path))
                (self.cdir / "mount.json").unlink(missing_ok=True)
                return
            except OSError:
                pass
        try:
            self.containers.umount(c)
        except Exception:
            traceback.print_exc()

    def _close_listener(self) -> None:
        if self.listener is not None:
            try:
                self.sel.unregister(self.listener)
            except (KeyError, ValueError):
                pass
            self.listener.close()
            self.listener = None
            if self.dirfd is not None:
                try:
                    os.unlink(f"/proc/self/fd/{self.dirfd}/{ATTACH_SOCKET}")
                except OSError:
                    pass
                os.close(self.dirfd)
                self.dirfd = None

    def run(self) -> int:
        try:
            for sock in self.first:
                self._add_client(sock)
            self.start()
        except StartError as exc:
            fr.send_frame(self.status, fr.STARTED, json.dumps({"Error": str(exc), "ExitCode": exc.code}).encode())
            return exc.code
        self._listen()
        fr.send_frame(self.status, fr.STARTED, json.dumps({"Pid": self.pid}).encode())
        self.status.close()
        code = self.serve()
        self.finish(code)
        return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m imagegraph.runtime.monitor")
    p.add_argument("--root", required=True)
    p.add_argument("--id", required=True)
    p.add_argument("--status-fd", type=int, required=True)
    p.add_argument("--attach-fd", type=int, action="append", default=[], help="a client connected before the start")
    p.add_argument("--whiteouts", choices=("overlay", "aufs"), help="the top layer's whiteout encoding")
    a = p.parse_args(argv)
    status = socket.socket(fileno=a.status_fd)
    first = [socket.socket(fileno=fd) for fd in a.attach_fd]
    if os.fork() > 0:
        os._exit(0)  # the starter waits for this one; the monitor carries on, re-parented
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGPIPE, signal.SIGTTOU, signal.SIGTTIN):
        signal.signal(sig, signal.SIG_IGN)
    os.chdir("/")
    try:
        return Monitor(a.root, a.id, status, first, a.whiteouts).run()
    except Exception as exc:
        traceback.print_exc()
        try:
            fr.send_frame(status, fr.STARTED, json.dumps({"Error": _one_line(exc), "ExitCode": 125}).encode())
        except OSError:
            pass
        return 125


if __name__ == "__main__":
    sys.exit(main())
