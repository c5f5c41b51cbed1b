"""dockerd's JSON progress stream (moby pkg/streamformatter, pkg/jsonmessage), written as it goes.

Pull, push, load and import report through the same calls as the `imagegraph` command's
terminal display (`message`, `update`, `progress`); here each call becomes one JSON message
followed by `\\r\\n`, flushed at once, so the docker CLI draws its own progress bars:

    {"status":"Pulling from test/hello-world","id":"1.0"}                       progress.Message
    {"status":"Pulling fs layer","progressDetail":{},"id":"a8aa6e344528"}       progress.Update
    {"status":"Downloading","progressDetail":{"current":32768,"total":90},
     "progress":"[==>   ]  32.77kB/90B","id":"a8aa6e344528"}                     progress with counts
    {"errorDetail":{"message":"…"},"error":"…"}                                  FormatError
    {"stream":"Loaded image: tiny:latest\\n"}                                    load's stdout lines

Keys come in the order of Go's JSONMessage struct. The pre-rendered `progress` string is
what docker 28 still sends, at the width dockerd assumes without a terminal (200 columns).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from ...digest import go_json
from ...distribution.progress import progress_string
from . import ResponseWriter

NEWLINE = b"\r\n"
DAEMON_WIDTH = 200  # jsonmessage's width when the daemon's stdin is not a terminal


class Cancelled(Exception):
    """The daemon is shutting down: the operation stops here (and rolls back what it did)."""


def format_status(status: str, id: str = "") -> bytes:
    """FormatStatus: `{"status":…,"id":…}` (id omitted when empty)."""
    msg: dict[str, Any] = {"status": status} if status else {}
    if id:
        msg["id"] = id
    return go_json(msg, escape_html=True) + NEWLINE


def format_error(message: str) -> bytes:
    """FormatError: the error in both the new and the deprecated field."""
    return go_json({"errorDetail": {"message": message}, "error": message}) + NEWLINE


def format_progress(action: str, id: str, current: int = 0, total: int = 0, aux: Any = None) -> bytes:
    """jsonProgressFormatter.formatProgress: status, progressDetail (omitempty fields), the
    rendered bar, id, aux."""
    detail: dict[str, int] = {}
    if current:
        detail["current"] = current
    if total:
        detail["total"] = total
    msg: dict[str, Any] = {}
    if action:
        msg["status"] = action
    msg["progressDetail"] = detail
    bar = progress_string(current, total, DAEMON_WIDTH)
    if bar:
        msg["progress"] = bar
    if id:
        msg["id"] = id
    if aux is not None:
        msg["aux"] = aux
    return go_json(msg) + NEWLINE


class JSONProgressOutput:
    """The ProgressWriter interface of `imagegraph.distribution.progress`, as a JSON stream.

    `stream_lines=True` sends `message()` text as `{"stream": "…\\n"}` (load's "Loaded image:"
    lines, which moby writes through its stdout writer). `last_status` keeps the last status
    sent, for the flow log's reply line. `cancel` is checked before every message.
    """

    def __init__(
        self,
        w: ResponseWriter,
        stream_lines: bool = False,
        cancel: threading.Event | None = None,
        quiet: bool = False,
        on_status: Callable[[str], None] | None = None,
    ) -> None:
        self.w = w
        self.stream_lines = stream_lines
        self.cancel = cancel
        self.quiet = quiet  # load's quiet=1: only the stream lines
        self.on_status = on_status
        self.last_status = ""
        self._lock = threading.Lock()

    def _send(self, data: bytes) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled("the daemon is shutting down")
        with self._lock:
            self.w.write(data)
            self.w.flush()

    def message(self, status: str, id: str = "") -> None:
        self.last_status = status
        if self.on_status is not None:
            self.on_status(status)
        if self.stream_lines:
            self._send(go_json({"stream": status + "\n"}) + NEWLINE)
        else:
            self._send(format_status(status, id))

    def update(self, id: str, status: str) -> None:
        if not self.quiet:
            self._send(format_progress(status, id))

    def progress(self, id: str, status: str, current: int, total: int, start: float = 0.0) -> None:
        if not self.quiet:
            self._send(format_progress(status, id, current, total))

    def aux(self, value: Any, id: str = "") -> None:
        """AuxFormatter.Emit: out-of-band data (push's {Tag, Digest, Size})."""
        msg: dict[str, Any] = {}
        if id:
            msg["id"] = id
        msg["aux"] = value
        self._send(go_json(msg) + NEWLINE)

    def error(self, message: str) -> None:
        with self._lock:
            self.w.write(format_error(message))
            self.w.flush()
