"""The daemon's event log (moby daemon/events): the last 256 events kept in memory, and every
new one published to the `/events` streams that are listening.

A message is what `docker events` reads: `{"status","id","from","Type","Action","Actor":{"ID",
"Attributes"},"scope":"local","time","timeNano"}` (the first three are deprecated copies kept
for container and image events, as dockerd still sends them).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..reference import InvalidReference, familiar_name, parse_normalized_named

EVENTS_LIMIT = 256
SUBSCRIBER_BUFFER = 1024

Message = dict[str, Any]


def make_message(action: str, type_: str, actor_id: str, attributes: dict[str, str], now_ns: int) -> Message:
    msg: Message = {}
    if type_ in ("container", "image"):
        msg["status"] = action
        msg["id"] = actor_id
        if type_ == "container" and attributes.get("image"):
            msg["from"] = attributes["image"]
    msg.update(
        {
            "Type": type_,
            "Action": action,
            "Actor": {"ID": actor_id, "Attributes": dict(sorted(attributes.items()))},
            "scope": "local",
            "time": now_ns // 1_000_000_000,
            "timeNano": now_ns,
        }
    )
    return msg


def _strip_tag(image: str) -> str:
    try:
        return familiar_name(parse_normalized_named(image))
    except InvalidReference:
        return image


@dataclass
class EventFilter:
    """moby daemon/events.Filter: `type`, `event`, `container`, `image`, `label`, `scope`, …"""

    filters: dict[str, list[str]] = field(default_factory=dict)

    def _exact(self, key: str, value: str) -> bool:
        wanted = self.filters.get(key)
        return not wanted or value in wanted

    def _fuzzy_name(self, msg: Message, type_: str) -> bool:
        wanted = self.filters.get(type_)
        if not wanted:
            return True
        actor = msg["Actor"]
        name = actor["Attributes"].get("name", "")
        return any(actor["ID"].startswith(w) or name.startswith(w) for w in wanted if w)

    def _image(self, msg: Message) -> bool:
        wanted = self.filters.get("image")
        if not wanted:
            return True
        actor = msg["Actor"]
        name = actor["Attributes"].get("name" if msg["Type"] == "image" else "image", "")
        candidates = {actor["ID"], name, _strip_tag(actor["ID"]), _strip_tag(name)}
        return any(w in candidates for w in wanted)

    def _labels(self, msg: Message) -> bool:
        wanted = self.filters.get("label")
        if not wanted:
            return True
        attrs = msg["Actor"]["Attributes"]
        for spec in wanted:
            key, sep, value = spec.partition("=")
            if key not in attrs or (sep and attrs[key] != value):
                return False
        return True

    def include(self, msg: Message) -> bool:
        return (
            self._exact("event", msg["Action"])
            and self._exact("type", msg["Type"])
            and self._exact("scope", msg.get("scope", ""))
            and self._fuzzy_name(msg, "container")
            and self._fuzzy_name(msg, "daemon")
            and self._image(msg)
            and self._labels(msg)
        )


class Events:
    """Pub/sub of events with a ring of the last 256, from any thread."""

    def __init__(self, clock: Callable[[], int] = time.time_ns) -> None:
        self._lock = threading.Lock()
        self._events: list[Message] = []
        self._subscribers: list[tuple[queue.Queue[Message], EventFilter]] = []
        self.clock = clock

    def log(self, action: str, type_: str, actor_id: str, attributes: dict[str, str] | None = None) -> Message:
        msg = make_message(action, type_, actor_id, dict(attributes or {}), self.clock())
        with self._lock:
            self._events.append(msg)
            del self._events[:-EVENTS_LIMIT]
            subscribers = list(self._subscribers)
        for q, flt in subscribers:
            if flt.include(msg):
                try:
                    q.put_nowait(msg)
                except queue.Full:
                    pass  # a subscriber that does not read loses events, as with dockerd's 100 ms timeout
        return msg

    def subscribe(
        self, since_ns: int | None, until_ns: int | None, flt: EventFilter
    ) -> tuple[list[Message], queue.Queue[Message]]:
        """The stored events between `since` and `until` that pass the filter, and a queue of new ones."""
        q: queue.Queue[Message] = queue.Queue(SUBSCRIBER_BUFFER)
        with self._lock:
            past = []
            if since_ns is not None or until_ns is not None:
                for msg in self._events:
                    t = msg["timeNano"]
                    if since_ns is not None and t < since_ns:
                        continue
                    if until_ns is not None and t > until_ns:
                        continue
                    if flt.include(msg):
                        past.append(msg)
            self._subscribers.append((q, flt))
        return past, q

    def unsubscribe(self, q: queue.Queue[Message]) -> None:
        with self._lock:
            self._subscribers = [(s, f) for s, f in self._subscribers if s is not q]

    @property
    def listeners(self) -> int:
        with self._lock:
            return len(self._subscribers)
