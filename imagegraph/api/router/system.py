"""The system router (moby api/server/router/system): `_ping`, `/version`, `/info`, `/system/df`,
`/events` and `POST /auth`."""

from __future__ import annotations

import queue
import select
import socket
import time
from typing import TYPE_CHECKING

from ...digest import go_json
from ...distribution.credentials import AuthConfig
from .. import version_less
from ..httputils import BadRequest, Request, ResponseWriter, filters_from_json, read_json, write_json
from . import Router, new_get_route, new_head_route, new_options_route, new_post_route

if TYPE_CHECKING:
    from ...daemon import Daemon

DISK_USAGE_TYPES = ("container", "image", "volume", "build-cache")


def event_time(value: str) -> int | None:
    """timetypes.ParseTimestamps: `seconds[.nanoseconds]` (the CLI turns `10m` or a date into
    this before sending) → nanoseconds since the epoch; "" → None."""
    if not value:
        return None
    sec, _, frac = value.partition(".")
    try:
        seconds = int(sec)
        nanos = int((frac + "000000000")[:9]) if frac else 0
    except ValueError:
        raise BadRequest(f'strconv.ParseInt: parsing "{value}": invalid syntax') from None
    return seconds * 1_000_000_000 + nanos


def client_gone(conn: socket.socket | None) -> bool:
    """True when the client closed its end (a readable socket with nothing to read)."""
    if conn is None:
        return False
    try:
        readable, _, _ = select.select([conn], [], [], 0)
        if not readable:
            return False
        return conn.recv(1, socket.MSG_PEEK) == b""
    except (OSError, ValueError):
        return True


class SystemRouter(Router):
    def __init__(self, daemon: Daemon) -> None:
        self.backend = daemon
        super().__init__()

    def init_routes(self) -> None:
        self.routes = [
            new_options_route("/{anyroute:.*}", self.optionsHandler),
            new_get_route("/_ping", self.pingHandler),
            new_head_route("/_ping", self.pingHandler),
            new_get_route("/events", self.getEvents),
            new_get_route("/info", self.getInfo),
            new_get_route("/version", self.getVersion),
            new_get_route("/system/df", self.getDiskUsage),
            new_post_route("/auth", self.postAuth),
        ]

    def optionsHandler(self, w: ResponseWriter, r: Request) -> None:
        w.write_header(200)

    def pingHandler(self, w: ResponseWriter, r: Request) -> None:
        """`OK`, and the headers the client negotiates with (Api-Version, set by the version middleware)."""
        w.set_header("Cache-Control", "no-cache, no-store, must-revalidate")
        w.set_header("Pragma", "no-cache")
        w.set_header("Builder-Version", "1")
        w.set_header("Docker-Experimental", "false")
        w.set_header("Swarm", "inactive")
        if r.method == "HEAD":
            w.set_header("Content-Type", "text/plain; charset=utf-8")
            w.set_header("Content-Length", "0")
            return
        w.set_header("Content-Type", "text/plain; charset=utf-8")
        w.write(b"OK")

    def getVersion(self, w: ResponseWriter, r: Request) -> None:
        write_json(w, 200, self.backend.system.system_version())

    def getInfo(self, w: ResponseWriter, r: Request) -> None:
        info = self.backend.system.system_info()
        if version_less(r.version, "1.50"):  # omitted from 1.50 on, always false before
            info["BridgeNfIptables"] = False
            info["BridgeNfIp6tables"] = False
        write_json(w, 200, info)

    def getDiskUsage(self, w: ResponseWriter, r: Request) -> None:
        types = r.values("type")
        for t in types:
            if t not in DISK_USAGE_TYPES:
                raise BadRequest(f"unknown object type: {t}")
        want = set(types) if types else {"container", "image", "volume"}
        du = self.backend.system.system_disk_usage(images="image" in want, containers="container" in want)
        if "build-cache" in want:
            du["BuildCache"] = []
        write_json(w, 200, du)

    def getEvents(self, w: ResponseWriter, r: Request) -> None:
        """Past events between `since` and `until`, then new ones as they happen, until `until`,
        the client leaves, or the daemon stops."""
        since = event_time(r.get("since"))
        until = event_time(r.get("until"))
        if until is not None and since is not None and until < since:
            raise BadRequest(f"`since` time ({r.get('since')}) cannot be after `until` time ({r.get('until')})")
        from ...daemon.events import EventFilter

        flt = EventFilter(filters_from_json(r.get("filters")))
        events = self.backend.events
        past, q = events.subscribe(since, until, flt)
        try:
            w.set_header("Content-Type", "application/json")
            w.write_header(200)
            w.flush()
            for msg in past:
                w.write(go_json(msg) + b"\n")
            w.flush()
            only_past = until is not None and until < time.time_ns()
            if only_past:
                return
            while not self.backend.stopping.is_set():
                if until is not None and time.time_ns() > until:
                    return
                try:
                    msg = q.get(timeout=0.25)
                except queue.Empty:
                    if client_gone(r.connection):
                        return
                    continue
                w.write(go_json(msg) + b"\n")
                w.flush()
        finally:
            events.unsubscribe(q)

    def postAuth(self, w: ResponseWriter, r: Request) -> None:
        body = read_json(r)
        if not isinstance(body, dict):
            raise BadRequest("invalid JSON: the body must be an AuthConfig object")

        def text(key: str) -> str:
            value = body.get(key)
            return value if isinstance(value, str) else ""

        auth = AuthConfig(text("username"), text("password"), text("identitytoken"), text("serveraddress"))
        write_json(w, 200, self.backend.system.authenticate_to_registry(auth))
