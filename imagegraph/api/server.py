"""The API server (moby api/server): listeners, connections, the route table, versions, errors.

Each listener (`unix:///path`, `tcp://127.0.0.1:port`) is a `socketserver` server with a
thread per connection; a connection serves requests until the client closes it (HTTP/1.1
keep-alive, as the docker CLI and docker-py use). For each request:

1. the path's `/v1.NN` prefix gives the API version (none: the newest);
2. the first route whose method and pattern match gives the handler; no route is a 404
   `{"message":"page not found"}`;
3. the version middleware sets `Server`, `Api-Version` and `Ostype`, and refuses a version
   above DEFAULT_VERSION or below MIN_VERSION with a 400;
4. the handler runs; an error it raises becomes `{"message": "<dockerd's text>"}` with the
   status `httpstatus.from_error` gives.

The flow log gets a line for the request (method, path and query, handler, the decoded
X-Registry-Auth) and one for the reply.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import socketserver
import threading
import time
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from ..daemon.flow import Flow
from . import DEFAULT_VERSION, MIN_VERSION, httpstatus, version_less
from .httputils import BadRequest, BodyReader, Request, ResponseWriter, decode_auth_config, describe_auth, parse_form
from .httputils import write_json as _write_json
from .router import Route, Router

log = logging.getLogger("imagegraph.daemon")

_VERSIONED = re.compile(r"^/v([0-9.]+)(/.*)$", re.DOTALL)
SERVER_VERSION = "0.1.0"
DRAIN_LIMIT = 1 << 20  # a body left unread up to this size is skipped; beyond, the connection closes


class VersionError(BadRequest):
    """A request for an API version this daemon does not serve (400)."""


@dataclass
class APIServer:
    """The route table and the request dispatch, shared by every listener."""

    routers: list[Router]
    flow: Flow = field(default_factory=Flow)
    default_version: str = DEFAULT_VERSION
    min_version: str = MIN_VERSION
    server_version: str = SERVER_VERSION
    active: int = 0
    _cond: threading.Condition = field(default_factory=threading.Condition)

    def routes(self) -> Iterable[Route]:
        for router in self.routers:
            yield from router.routes

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for route in self.routes():
            if route.method != method:
                continue
            found = route.match(path)
            if found is not None:
                return route, found
        return None

    # ---- one request ----------------------------------------------------------------------------

    def dispatch(self, w: ResponseWriter, r: Request) -> None:
        """Route, check the version, run the handler, turn an error into dockerd's answer."""
        found = self.match(r.method, r.path)
        if found is None:
            self.flow.client_request(r.method, r.raw_target, "(no route)", None)
            _write_json(w, 404, {"message": "page not found"})
            self.flow.reply(404, "Not Found", "page not found")
            return
        route, r.vars = found
        name = getattr(route.handler, "__name__", "handler")
        auth_header = r.header("X-Registry-Auth")
        auth = describe_auth(decode_auth_config(auth_header)) if auth_header else None
        self.flow.client_request(r.method, r.raw_target, name, auth)
        log.debug("Calling %s %s", r.method, r.raw_target)
        w.set_header("Server", f"Docker/{self.server_version} (linux)")
        w.set_header("Api-Version", self.default_version)
        w.set_header("Ostype", "linux")
        try:
            if version_less(r.version, self.min_version):
                raise VersionError(
                    f"client version {r.version} is too old. Minimum supported API version is "
                    f"{self.min_version}, please upgrade your client to a newer version"
                )
            if version_less(self.default_version, r.version):
                raise VersionError(
                    f"client version {r.version} is too new. Maximum supported API version is {self.default_version}"
                )
            route.handler(w, r)
        except Exception as exc:  # every error becomes dockerd's JSON answer, never a traceback
            self._fail(w, r, exc)
            return
        detail = getattr(w, "flow_detail", "")
        self.flow.reply(w.status or 200, _reason(w.status or 200), detail)

    def _fail(self, w: ResponseWriter, r: Request, exc: Exception) -> None:
        status = httpstatus.from_error(exc)
        message = str(exc) or type(exc).__name__
        if status >= 500:
            log.error("Handler for %s %s returned error: %s", r.method, r.path, message)
            log.debug("the error's traceback", exc_info=exc)
        else:
            log.debug("Handler for %s %s returned error: %s", r.method, r.path, message)
        self.flow.reply(status, _reason(status), message)
        if w.sent or w.hijacked:
            w.close_connection = True  # too late for a status: the stream ends here
            return
        w.headers.pop("Content-Type", None)
        w.status = None
        _write_json(w, status, {"message": message})

    # ---- counting requests in flight (for a graceful stop) --------------------------------------

    def enter(self) -> None:
        with self._cond:
            self.active += 1

    def leave(self) -> None:
        with self._cond:
            self.active -= 1
            self._cond.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.active > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True


def _reason(status: int) -> str:
    return BaseHTTPRequestHandler.responses.get(status, ("",))[0]


class _Connection(BaseHTTPRequestHandler):
    """One client connection: requests one after another until it closes."""

    protocol_version = "HTTP/1.1"
    server_version = f"imagegraph/{SERVER_VERSION}"
    server: Any  # _UnixServer | _TCPServer

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http: " + format, *args)

    def address_string(self) -> str:
        return "unix" if not isinstance(self.client_address, tuple) else str(self.client_address[0])

    def _serve(self) -> None:
        api: APIServer = self.server.api
        api.enter()
        try:
            self._serve_one(api)
        finally:
            api.leave()

    def _serve_one(self, api: APIServer) -> None:
        target = self.path
        split = urllib.parse.urlsplit(target)
        path = urllib.parse.unquote(split.path)
        version = api.default_version
        m = _VERSIONED.match(path)
        if m:
            version, path = m.group(1), m.group(2)
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        body = BodyReader(self.rfile, max(length, 0), "chunked" in te)
        w = ResponseWriter(self.wfile, self.command)
        if self.close_connection:
            w.close_connection = True
        try:
            if length < 0:
                raise BadRequest("bad Content-Length")
            form = parse_form(split.query)
        except BadRequest as exc:
            _write_json(w, 400, {"message": str(exc)})
            w.close_connection = True
            self._finish(w, body)
            return
        r = Request(self.command, path, target, version, form, self.headers, body, connection=self.connection)
        api.dispatch(w, r)
        self._finish(w, body)

    def _finish(self, w: ResponseWriter, body: BodyReader) -> None:
        try:
            if not w.hijacked and not w.close_connection:
                try:
                    if not body.drain(DRAIN_LIMIT):
                        w.close_connection = True
                except (BadRequest, OSError):
                    w.close_connection = True
            w.finish()
        except OSError:
            w.close_connection = True  # the client went away
        if w.close_connection or w.hijacked:
            self.close_connection = True

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_OPTIONS = _serve


class _ServerMixin(socketserver.ThreadingMixIn):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    api: APIServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection error", exc_info=True)


class _UnixServer(_ServerMixin, socketserver.UnixStreamServer):
    pass


class _TCPServer(_ServerMixin, socketserver.TCPServer):
    pass


class _TCP6Server(_TCPServer):
    address_family = socket.AF_INET6


@dataclass
class Listener:
    """One `-H` address being served."""

    address: str  # as given: unix:///run/imagegraph/docker.sock, tcp://127.0.0.1:2375
    server: socketserver.BaseServer
    path: str | None = None  # the socket file, removed at stop
    thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self.server.serve_forever, name=f"listen {self.address}", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        if self.path:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass


def listen_unix(api: APIServer, path: str, mode: int, gid: int | None) -> Listener:
    """Bind a unix socket with its final mode from the start (umask), then give it the group."""
    old = os.umask(0o777 & ~mode)
    try:
        server = _UnixServer(path, _Connection, bind_and_activate=True)
    finally:
        os.umask(old)
    os.chmod(path, mode)
    if gid is not None:
        os.chown(path, 0, gid)
    server.api = api
    return Listener(f"unix://{path}", server, path)


def listen_tcp(api: APIServer, host: str, port: int) -> Listener:
    cls = _TCP6Server if ":" in host else _TCPServer
    server = cls((host, port), _Connection)
    server.api = api
    bound = server.server_address
    shown = f"[{host}]" if ":" in host else host
    return Listener(f"tcp://{shown}:{bound[1]}", server)
