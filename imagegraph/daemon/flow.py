"""The flow log (`imagegraph daemon --flow FILE`): one line per hop, in order, so the seed's
client → daemon → registry path can be read as it happens.

    client → daemon    POST /v1.50/images/create?fromImage=…&tag=1.0 → postImagesCreate  X-Registry-Auth: {…}
    daemon             postImagesCreate → PullImage(127.0.0.1:5000/test/hello-world:1.0)
    daemon → registry  GET http://127.0.0.1:5000/v2/ → 401 Unauthorized  challenge: Basic realm="…"
    graph              layer sha256:a8aa… stored: layerdb/sha256/<chain-id>, cache-id <id> (layerfs/<id>/diff)
    daemon → client    200 OK  stream ended: Status: Downloaded newer image for …

Secrets never reach the file: X-Registry-Auth is decoded with the password masked, and an
Authorization header shows its scheme and user only.
"""

from __future__ import annotations

import base64
import binascii
import threading
import urllib.parse
from collections.abc import Mapping
from typing import TextIO

HOP_WIDTH = 18


class Flow:
    """Writes hop lines to a text stream (or nowhere), whole lines at a time, from any thread."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.out is not None

    def hop(self, hop: str, text: str) -> None:
        if self.out is None:
            return
        line = f"{hop:<{HOP_WIDTH}} {text}".rstrip() + "\n"
        with self._lock:
            try:
                self.out.write(line)
                self.out.flush()
            except (OSError, ValueError):
                pass  # the flow file went away: the daemon goes on

    # ---- the hops -----------------------------------------------------------------------------

    def client_request(self, method: str, target: str, handler: str, auth: str | None) -> None:
        text = f"{method} {readable_target(target)} → {handler}"
        if auth is not None:
            text += f"  X-Registry-Auth: {auth}"
        self.hop("client → daemon", text)

    def reply(self, status: int, reason: str, detail: str = "") -> None:
        self.hop("daemon → client", f"{status} {reason}" + (f"  {detail}" if detail else ""))

    def call(self, handler: str, backend: str, args: str) -> None:
        self.hop("daemon", f"{handler} → {backend}({args})")

    def graph(self, text: str) -> None:
        self.hop("graph", text)

    def registry_request(
        self, method: str, url: str, status: int, reason: str, sent: Mapping[str, str], got: Mapping[str, str]
    ) -> None:
        """One daemon → registry exchange: what was asked, with which credentials, and the answer
        (the auth challenge of a 401, the scope a token was asked for)."""
        text = f"{method} {readable_target(url)} → {status} {reason}".rstrip()
        auth = describe_authorization(sent.get("Authorization", ""))
        if auth:
            text += f"  ({auth})"
        challenge = got.get("WWW-Authenticate") or got.get("Www-Authenticate")
        if status == 401 and challenge:
            text += f"  challenge: {challenge}"
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
        if "scope" in query:
            text += "  token scope: " + " ".join(query["scope"])
        self.hop("daemon → registry", text)


def readable_target(target: str, longest: int = 40) -> str:
    """A request target as a student reads it: the query decoded, opaque long values cut short
    (an upload's `_state=…`)."""
    path, sep, query = target.partition("?")
    if not sep:
        return urllib.parse.unquote(path)
    parts = []
    for key, value in urllib.parse.parse_qsl(query, keep_blank_values=True):
        if len(value) > longest and not value.startswith("sha256:"):
            value = value[:12] + "…"
        parts.append(f"{key}={value}")
    return urllib.parse.unquote(path) + "?" + "&".join(parts)


def describe_authorization(value: str) -> str:
    """`Basic alice:********`, `Bearer ********`: what was presented, never the secret."""
    if not value:
        return ""
    scheme, _, rest = value.partition(" ")
    if scheme.lower() == "basic":
        try:
            user = base64.b64decode(rest).decode().partition(":")[0]
        except (binascii.Error, UnicodeDecodeError):
            user = "?"
        return f"Basic {user}:********"
    return f"{scheme} ********"
