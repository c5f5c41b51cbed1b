"""The json-file log driver: `containers/<id>/<id>-json.log`, one JSON object per line.

Each line is what moby's jsonfilelog writes: `{"log":"hi\\n","stream":"stdout","time":"…Z"}`,
the output cut at newlines (a line longer than 16 KiB in pieces without one), the time in
RFC 3339 with nanoseconds. `docker logs` reads it back: --since, --until, --tail, -t, -f.
"""

from __future__ import annotations

import json
import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from ..digest import go_json

MAX_LINE = 16 * 1024  # moby's bufio size in the log copier


def format_ns(ns: int) -> str:
    """Go's time.RFC3339Nano in UTC: 2024-05-01T10:11:12.123456789Z (trailing zeros dropped)."""
    secs, frac = divmod(ns, 1_000_000_000)
    base = datetime.fromtimestamp(secs, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return base + (f".{frac:09d}".rstrip("0") if frac else "") + "Z"


def parse_ns(s: str) -> int:
    """RFC 3339 (with up to nanoseconds) to nanoseconds since the epoch."""
    s = s.strip()
    frac = 0
    if "." in s:
        head, rest = s.split(".", 1)
        digits = "".join(c for c in rest if c.isdigit())
        tz = rest[len(digits) :]
        frac = int((digits + "000000000")[:9]) if digits else 0
        s = head + tz
    dt = datetime.fromisoformat(s.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp()) * 1_000_000_000 + frac


class LogWriter:
    """Appends a container's output to its json log, a whole line per write(2)."""

    def __init__(self, path: str, clock: Callable[[], int] = time.time_ns) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        self.clock = clock
        self.pending: dict[str, bytes] = {}

    def _record(self, stream: str, data: bytes) -> None:
        line = go_json({"log": data.decode("utf-8", errors="replace"), "stream": stream}) + b"\n"
        line = line[:-2] + f',"time":"{format_ns(self.clock())}"}}\n'.encode()
        os.write(self.fd, line)

    def write(self, stream: str, data: bytes) -> None:
        buf = self.pending.pop(stream, b"") + data
        while True:
            nl = buf.find(b"\n")
            if nl < 0 or nl >= MAX_LINE:
                if len(buf) < MAX_LINE:
                    break
                self._record(stream, buf[:MAX_LINE])
                buf = buf[MAX_LINE:]
                continue
            self._record(stream, buf[: nl + 1])
            buf = buf[nl + 1 :]
        if buf:
            self.pending[stream] = buf

    def close(self) -> None:
        """At the end of the output a last partial line is written with a newline, as moby does."""
        for stream, buf in list(self.pending.items()):
            self._record(stream, buf + b"\n")
        self.pending.clear()
        os.close(self.fd)


@dataclass(frozen=True)
class Entry:
    stream: str
    data: bytes
    time_ns: int


def parse_line(line: bytes) -> Entry | None:
    try:
        obj = json.loads(line)
        return Entry(obj.get("stream", "stdout"), obj.get("log", "").encode("utf-8"), parse_ns(obj["time"]))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None  # a torn or foreign line


def read_entries(path: str, offset: int = 0) -> tuple[list[Entry], int]:
    """Whole lines from `offset` on, and the offset after the last whole line."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n") + 1
    out = [e for e in map(parse_line, data[:end].splitlines()) if e is not None]
    return out, offset + end


@dataclass
class LogQuery:
    """`docker logs` options, in the daemon's terms."""

    stdout: bool = True
    stderr: bool = True
    since_ns: int = 0
    until_ns: int = 0
    tail: int = -1  # -1: all
    follow: bool = False

    def keep(self, e: Entry) -> bool:
        if e.stream == "stdout" and not self.stdout or e.stream == "stderr" and not self.stderr:
            return False
        if self.since_ns and e.time_ns < self.since_ns:
            return False
        return not (self.until_ns and e.time_ns > self.until_ns)


def read_logs(path: str, query: LogQuery, still_running: Callable[[], bool], poll: float = 0.05) -> Iterator[Entry]:
    """The entries `query` asks for; with follow, new ones as they come until the container stops."""
    entries, offset = read_entries(path)
    kept = [e for e in entries if query.keep(e)]
    if query.tail >= 0:
        kept = list(deque(kept, maxlen=query.tail)) if query.tail else []
    yield from kept
    if not query.follow:
        return
    while True:
        running = still_running()
        entries, offset = read_entries(path, offset)
        for e in entries:
            if query.until_ns and e.time_ns > query.until_ns:
                return
            if query.keep(e):
                yield e
        if not running:
            return
        time.sleep(poll)


def parse_time_arg(value: str, now: float | None = None) -> int:
    """--since/--until: RFC 3339, a Unix time (with fraction), or a duration back from now (10m, 1h30m)."""
    now = time.time() if now is None else now
    value = value.strip()
    if not value:
        return 0
    unit = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    rest, total, matched = value, 0.0, False
    while rest:
        i = 0
        while i < len(rest) and (rest[i].isdigit() or rest[i] == "."):
            i += 1
        j = i
        while j < len(rest) and rest[j].isalpha() or j < len(rest) and rest[j] == "µ":
            j += 1
        number, suffix = rest[:i], rest[i:j]
        if not number or suffix not in unit:
            matched = False
            break
        total += float(number) * unit[suffix]
        rest, matched = rest[j:], True
    if matched:
        return int((now - total) * 1e9)
    try:
        return int(float(value) * 1e9)
    except ValueError:
        pass
    try:
        return parse_ns(value)
    except ValueError:
        raise ValueError(f'invalid value for "since": failed to parse value as time or duration: "{value}"') from None
