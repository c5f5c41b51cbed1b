"""The container router's routes for running containers (moby api/server/router/container:
container_routes.go and exec.go), joined to `ContainerRouter` by `run_routes`.

Attach and exec start hijack the connection: after a `101 UPGRADED` (or `200 OK`) head the
socket carries raw bytes. Without a tty the output is multiplexed with stdcopy headers
(`application/vnd.docker.multiplexed-stream` from API 1.42), which is exactly what a monitor
sends, so stdout and stderr frames pass through unchanged; with a tty it is the terminal's
raw bytes. The client's bytes are the container's stdin; the client closing its side ends
stdin. Logs use the same framing over an ordinary chunked answer.
"""

from __future__ import annotations

import io
import json
import os
import socket
import threading
from typing import TYPE_CHECKING, Any

from ...runtime import stream as fr
from ...runtime.jsonlog import LogQuery, format_ns, parse_time_arg
from ...runtime.manager import AttachOptions
from .. import version_less
from ..httputils import BadRequest, Request, ResponseWriter, bool_value, read_json, write_json
from . import Route, new_get_route, new_post_route

if TYPE_CHECKING:
    from ...daemon import Daemon
    from ...daemon.runtime import ExecInstance

RAW_STREAM = "application/vnd.docker.raw-stream"
MULTIPLEXED_STREAM = "application/vnd.docker.multiplexed-stream"


def _int_arg(r: Request, key: str) -> int | None:
    text = r.get(key)
    if text == "":
        return None
    try:
        return int(text)
    except ValueError:
        raise BadRequest(f"invalid value for {key}: {text!r}") from None


def stream_type(r: Request, tty: bool) -> str:
    """moby: multiplexed from API 1.42 when there is no tty, raw otherwise."""
    return MULTIPLEXED_STREAM if not tty and not version_less(r.version, "1.42") else RAW_STREAM


def hijack(w: ResponseWriter, r: Request, content_type: str) -> socket.socket:
    """httputils.HijackConnection plus the head moby writes by hand: 101 UPGRADED if the client
    asked to upgrade, else 200 OK; the middleware's headers follow."""
    conn = r.connection
    if conn is None:
        raise BadRequest("the connection cannot be hijacked")
    w.hijack()
    if r.header("Upgrade"):
        head = f"HTTP/1.1 101 UPGRADED\r\nContent-Type: {content_type}\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
    else:
        head = f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in w.headers.items() if k != "Content-Type") + "\r\n"
    conn.sendall(head.encode("latin-1"))
    return conn


def _client_input(r: Request) -> io.BufferedIOBase:
    """What the client sends after the head: read through the server's buffered reader, which
    may already hold its first bytes."""
    return r.body.raw


def _pump_stdin_to_monitor(src: io.BufferedIOBase, monitor: socket.socket) -> None:
    """The client's bytes → STDIN frames; its end of input → STDIN_CLOSE."""
    try:
        while True:
            data = src.read1(32 * 1024)
            if not data:
                fr.send_frame(monitor, fr.STDIN_CLOSE)
                return
            fr.send_frame(monitor, fr.STDIN, data)
    except (OSError, ValueError):
        return


def relay_attach(conn: socket.socket, client: io.BufferedIOBase | None, monitor: socket.socket, tty: bool) -> None:
    """Monitor → client until the container's exit frame; client → monitor in a thread."""
    if client is not None:
        threading.Thread(target=_pump_stdin_to_monitor, args=(client, monitor), daemon=True).start()
    reader = fr.FrameReader()
    try:
        while True:
            data = monitor.recv(64 * 1024)
            if not data:
                return
            for kind, payload in reader.feed(data):
                if kind in (fr.STDOUT, fr.STDERR):
                    conn.sendall(payload if tty else fr.frame(kind, payload))
                elif kind == fr.EXIT:
                    return
    except OSError:
        return
    finally:
        monitor.close()
        try:
            conn.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _pump(src: int, conn: socket.socket, kind: int | None, lock: threading.Lock) -> None:
    """An exec'd process's pipe (or pty master) → the client, framed unless it is a tty."""
    try:
        while True:
            try:
                data = os.read(src, 64 * 1024)
            except OSError:  # EIO: the pty's last slave closed
                data = b""
            if not data:
                return
            with lock:
                conn.sendall(data if kind is None else fr.frame(kind, data))
    except OSError:
        return


def _feed(client: io.BufferedIOBase, dest: int, close: bool) -> None:
    """The client's bytes → the exec'd process's stdin (or pty master); its end closes a pipe."""
    try:
        while True:
            data = client.read1(32 * 1024)
            if not data:
                break
            os.write(dest, data)
    except (OSError, ValueError):
        pass
    finally:
        if close:
            try:
                os.close(dest)
            except OSError:
                pass


class ContainerRunRoutes:
    """The handlers, as methods of the container router (their names are moby's)."""

    backend: Daemon

    def run_routes(self) -> list[Route]:
        return [
            new_get_route("/containers/{name:.*}/logs", self.getContainersLogs),
            new_get_route("/containers/{name:.*}/top", self.getContainersTop),
            new_get_route("/exec/{id:.*}/json", self.getExecByID),
            new_post_route("/containers/{name:.*}/start", self.postContainersStart),
            new_post_route("/containers/{name:.*}/stop", self.postContainersStop),
            new_post_route("/containers/{name:.*}/kill", self.postContainersKill),
            new_post_route("/containers/{name:.*}/restart", self.postContainersRestart),
            new_post_route("/containers/{name:.*}/wait", self.postContainersWait),
            new_post_route("/containers/{name:.*}/resize", self.postContainersResize),
            new_post_route("/containers/{name:.*}/attach", self.postContainersAttach),
            new_post_route("/containers/{name:.*}/exec", self.postContainerExecCreate),
            new_post_route("/exec/{name:.*}/start", self.postContainerExecStart),
            new_post_route("/exec/{name:.*}/resize", self.postContainerExecResize),
        ]

    # ---- start, stop, kill, restart, wait, resize, top -------------------------------------------

    def postContainersStart(self, w: ResponseWriter, r: Request) -> None:
        from ...daemon.runtime import NotModified

        try:
            self.backend.runtime.start(r.vars["name"])
        except NotModified:
            w.write_header(304)
            return
        w.write_header(204)

    def postContainersStop(self, w: ResponseWriter, r: Request) -> None:
        from ...daemon.runtime import NotModified

        try:
            self.backend.runtime.stop(r.vars["name"], _int_arg(r, "t"), r.get("signal") or None)
        except NotModified:
            w.write_header(304)
            return
        w.write_header(204)

    def postContainersKill(self, w: ResponseWriter, r: Request) -> None:
        self.backend.runtime.kill(r.vars["name"], r.get("signal"))
        w.write_header(204)

    def postContainersRestart(self, w: ResponseWriter, r: Request) -> None:
        self.backend.runtime.restart(r.vars["name"], _int_arg(r, "t"))
        w.write_header(204)

    def postContainersWait(self, w: ResponseWriter, r: Request) -> None:
        """The head at once (the CLI starts the container only then), the status when it ends."""
        ticket = self.backend.runtime.wait_begin(r.vars["name"], r.get("condition"))  # errors before the head
        w.set_header("Content-Type", "application/json")
        w.write_header(200)
        w.flush()
        code, error = self.backend.runtime.wait_end(ticket)
        body: dict[str, Any] = {"StatusCode": code}
        if error:
            body["Error"] = {"Message": error}
        w.write(json.dumps(body).encode() + b"\n")

    def postContainersResize(self, w: ResponseWriter, r: Request) -> None:
        self.backend.runtime.resize(r.vars["name"], _int_arg(r, "h") or 0, _int_arg(r, "w") or 0)
        w.write_header(200)

    def getContainersTop(self, w: ResponseWriter, r: Request) -> None:
        write_json(w, 200, self.backend.runtime.top(r.vars["name"], r.get("ps_args")))

    # ---- logs and attach --------------------------------------------------------------------------

    def getContainersLogs(self, w: ResponseWriter, r: Request) -> None:
        stdout, stderr = bool_value(r, "stdout"), bool_value(r, "stderr")
        if not (stdout or stderr):
            raise BadRequest("Bad parameters: you must choose at least one stream")
        try:
            since = parse_time_arg(r.get("since")) if r.get("since") not in ("", "0") else 0
            until = parse_time_arg(r.get("until")) if r.get("until") not in ("", "0") else 0
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        tail_text = r.get("tail") or "all"
        tail = -1 if tail_text == "all" else int(tail_text) if tail_text.lstrip("-").isdigit() else -1
        query = LogQuery(stdout, stderr, since, until, tail, bool_value(r, "follow"))
        c, entries = self.backend.runtime.logs(r.vars["name"], query)
        tty = bool(c.config.get("Tty"))
        timestamps = bool_value(r, "timestamps")
        w.set_header("Content-Type", stream_type(r, tty))
        w.write_header(200)
        w.flush()
        for e in entries:
            if self.backend.stopping.is_set():
                break
            data = (format_ns(e.time_ns).encode() + b" " + e.data) if timestamps else e.data
            w.write(data if tty else fr.frame(fr.STDERR if e.stream == "stderr" else fr.STDOUT, data))
            w.flush()

    def postContainersAttach(self, w: ResponseWriter, r: Request) -> None:
        name = r.vars["name"]
        options = AttachOptions(bool_value(r, "stdin"), bool_value(r, "stdout"), bool_value(r, "stderr"))
        c, pending = self.backend.runtime.attach(name, options)
        tty = bool(c.config.get("Tty"))
        conn = hijack(w, r, stream_type(r, tty))
        if bool_value(r, "logs"):
            query = LogQuery(options.stdout, options.stderr)
            for e in self.backend.runtime.logs(c.id, query)[1]:
                conn.sendall(e.data if tty else fr.frame(fr.STDERR if e.stream == "stderr" else fr.STDOUT, e.data))
        if not bool_value(r, "stream"):
            self.backend.runtime.forget(c.id, pending)
            return
        from ...daemon.runtime import PENDING_ATTACH_SECONDS

        if not pending.ready.wait(PENDING_ATTACH_SECONDS) or pending.sock is None:
            self.backend.runtime.forget(c.id, pending)
            if pending.error:
                message = (pending.error + "\r\n").encode()
                conn.sendall(message if tty else fr.frame(fr.STDERR, message))
            return
        relay_attach(conn, _client_input(r) if options.stdin else None, pending.sock, tty)

    # ---- exec ----------------------------------------------------------------------------------------

    def postContainerExecCreate(self, w: ResponseWriter, r: Request) -> None:
        body = read_json(r)
        if not isinstance(body, dict):
            raise BadRequest("invalid JSON: the body must be an exec config")
        write_json(w, 201, {"Id": self.backend.runtime.exec_create(r.vars["name"], body)})

    def postContainerExecStart(self, w: ResponseWriter, r: Request) -> None:
        body = read_json(r) or {}
        if not isinstance(body, dict):
            raise BadRequest("invalid JSON: the body must be an exec start config")
        exec_id = r.vars["name"]
        detach = bool(body.get("Detach"))
        tty = body.get("Tty")
        size = body.get("ConsoleSize")
        inst = self.backend.runtime.exec_get(exec_id)
        if isinstance(size, list) and len(size) == 2:
            inst.console_size = (int(size[0]), int(size[1]))
        if detach:
            self.backend.runtime.exec_start(exec_id, True, None if tty is None else bool(tty))
            w.write_header(200)
            return
        is_tty = bool(inst.config.tty if tty is None else tty)
        conn = hijack(w, r, stream_type(r, is_tty))
        try:
            inst = self.backend.runtime.exec_start(exec_id, False, is_tty)
        except Exception as exc:  # moby: the error goes down the stream (as stdout), the exit code to /json
            message = (str(exc) + "\r\n").encode()
            conn.sendall(message if is_tty else fr.frame(fr.STDOUT, message))
            return
        self._relay_exec(conn, _client_input(r), inst, is_tty)

    def _relay_exec(self, conn: socket.socket, client: io.BufferedIOBase, inst: ExecInstance, tty: bool) -> None:
        proc = inst.process
        assert proc is not None
        lock = threading.Lock()
        pumps: list[threading.Thread] = []
        if tty:
            assert proc.master is not None
            if inst.attach_stdin:
                threading.Thread(target=_feed, args=(client, proc.master, False), daemon=True).start()
            pumps.append(threading.Thread(target=_pump, args=(proc.master, conn, None, lock), daemon=True))
        else:
            helper = proc.helper
            if helper.stdin is not None:  # the pipe's fd is the client's to close, not the file object's
                stdin_fd = os.dup(helper.stdin.fileno())
                helper.stdin.close()
                threading.Thread(target=_feed, args=(client, stdin_fd, True), daemon=True).start()
            for src, kind in ((helper.stdout, fr.STDOUT), (helper.stderr, fr.STDERR)):
                if src is not None:
                    pumps.append(threading.Thread(target=_pump, args=(src.fileno(), conn, kind, lock), daemon=True))
        for t in pumps:
            t.start()
        for t in pumps:
            t.join()
        self.backend.runtime.exec_finished(inst)
        try:
            conn.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def getExecByID(self, w: ResponseWriter, r: Request) -> None:
        write_json(w, 200, self.backend.runtime.exec_get(r.vars["id"]).inspect())

    def postContainerExecResize(self, w: ResponseWriter, r: Request) -> None:
        self.backend.runtime.exec_resize(r.vars["name"], _int_arg(r, "h") or 0, _int_arg(r, "w") or 0)
        w.write_header(200)
