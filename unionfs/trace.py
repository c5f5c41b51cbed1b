"""The event log: copy-ups, whiteouts, opaque dirs and redirects, one JSON object per line.

A trace is what makes copy-on-write visible to a student: `layerfs trace FILE` prints it.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TextIO

Event = dict


@dataclass
class TraceFile:
    """Appends events to a file; each line is written whole, so readers never see half a line."""

    path: str
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, event: Event) -> None:
        line = json.dumps({"time": round(time.time(), 6), **event}, ensure_ascii=False) + "\n"
        with self._lock, open(self.path, "a", encoding="utf-8") as f:
            f.write(line)


@dataclass
class TraceList:
    """Keeps events in memory (for tests and the library)."""

    events: list[Event] = field(default_factory=list)

    def __call__(self, event: Event) -> None:
        self.events.append(event)


Tracer = Callable[[Event], None]


def describe(event: Event) -> str:
    """One event as a sentence for a person."""
    kind = event.get("event")
    path = event.get("path", "?")
    if kind == "copy_up":
        size = event.get("bytes", 0)
        return (
            f"copy-up   {path}  ({event.get('type', 'file')}, {size} bytes copied, "
            f"because of {event.get('trigger', '?')}) from {event.get('from', '?')} to {event.get('to', '?')}"
        )
    if kind in ("whiteout", "opaque"):
        where = f"{event.get('form', '?')} in {event.get('branch', '?')}"
        return f"{kind:<9} {path}  ({where}, because of {event.get('trigger', '?')})"
    if kind == "redirect":
        return f"redirect  {path}  -> lower {event.get('target', '?')} (rename of a lower directory)"
    return json.dumps(event, ensure_ascii=False)


def read_events(lines: Iterable[str]) -> list[Event]:
    events = []
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line:
            continue
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise ValueError(f"line {number}: not a trace event ({exc.msg})") from None
    return events


def print_trace(lines: Iterable[str], out: TextIO) -> None:
    for event in read_events(lines):
        stamp = time.strftime("%H:%M:%S", time.localtime(event.get("time", 0)))
        out.write(f"{stamp}  {describe(event)}\n")
