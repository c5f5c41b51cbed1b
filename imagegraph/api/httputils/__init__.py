"""The request and the response of one API call, and the form helpers moby's handlers share
(api/server/httputils: ParseForm, BoolValue, RepoTagReference, WriteJSON, filters.FromJSON,
registry.DecodeAuthConfig).

Handlers see a `Request` (method, path without the `/v1.NN` prefix, the API version, the
query as Go's `r.Form`, headers, a body stream) and write to a `ResponseWriter`, which sends
headers on the first flush: a short answer goes out with a Content-Length, a stream (pull
progress, events, save) chunked. `hijack()` hands over the raw socket, for attach.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import re
import socket
import urllib.parse
from dataclasses import dataclass, field
from email.message import Message
from typing import Any

from ...digest import go_json
from ...distribution.credentials import AuthConfig
from ...reference import InvalidReference, Reference, parse_normalized_named, tag_name_only, with_tag
from ...service import InvalidParameter

MAX_BUFFERED = 64 * 1024  # an answer longer than this goes out chunked


class BadRequest(InvalidParameter):
    """A malformed request: 400, and nothing changed."""


# ---- the request body --------------------------------------------------------------------------


class BodyReader(io.RawIOBase):
    """A request body: `Content-Length` bytes, or a chunked body decoded (Go clients stream
    `docker load` and `docker import` bodies chunked), or nothing."""

    def __init__(self, rfile: io.BufferedIOBase, length: int | None, chunked: bool) -> None:
        self._rfile = rfile
        self._left = length if length is not None else 0
        self._chunked = chunked
        self._chunk_left = 0
        self._done = not chunked and self._left == 0

    def readable(self) -> bool:
        return True

    @property
    def raw(self) -> io.BufferedIOBase:
        """The connection's reader past this body: a hijacked stream (attach, exec) reads on
        from here, so bytes the server's buffer already holds are not lost."""
        return self._rfile

    def _next_chunk(self) -> None:
        line = self._rfile.readline(1024)
        if not line.endswith(b"\n"):
            raise BadRequest("malformed chunked encoding")
        size_text = line.split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise BadRequest("malformed chunked encoding") from None
        if size < 0:
            raise BadRequest("malformed chunked encoding")
        if size == 0:
            while True:  # trailers, up to the blank line
                trailer = self._rfile.readline(8192)
                if trailer in (b"\r\n", b"\n", b""):
                    break
            self._done = True
        self._chunk_left = size

    def readinto(self, buffer: Any) -> int:
        if self._done:
            return 0
        view = memoryview(buffer).cast("B")
        if self._chunked:
            if self._chunk_left == 0:
                self._next_chunk()
                if self._done:
                    return 0
            n = self._rfile.readinto(view[: min(len(view), self._chunk_left)])
            if not n:
                raise BadRequest("unexpected EOF in a chunked body")
            self._chunk_left -= n
            if self._chunk_left == 0:
                self._rfile.readline(8)  # the CRLF after the chunk
            return n
        n = self._rfile.readinto(view[: min(len(view), self._left)])
        if not n:
            raise BadRequest("unexpected EOF in the request body")
        self._left -= n
        if self._left == 0:
            self._done = True
        return n

    def read_up_to(self, limit: int) -> bytes:
        """Everything up to `limit` bytes (a raw read may return one chunk at a time)."""
        parts, size = [], 0
        while size < limit:
            chunk = self.read(min(limit - size, 65536))
            if not chunk:
                break
            parts.append(chunk)
            size += len(chunk)
        return b"".join(parts)

    def drain(self, limit: int) -> bool:
        """Read and drop what the handler left, up to `limit` bytes; True if the body is done."""
        while not self._done and limit > 0:
            chunk = self.read(min(limit, 65536))
            if not chunk:
                break
            limit -= len(chunk)
        return self._done


_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})(.{0,2})")


def parse_form(query: str) -> dict[str, list[str]]:
    """Go's url.ParseQuery: `a=1&a=2&b` → {"a": ["1", "2"], "b": [""]}; a bad escape is a 400."""
    bad = _BAD_ESCAPE.search(query)
    if bad:
        raise BadRequest(f'invalid URL escape "%{bad.group(1)}"')
    form: dict[str, list[str]] = {}
    for key, value in urllib.parse.parse_qsl(query, keep_blank_values=True):
        form.setdefault(key, []).append(value)
    return form


@dataclass
class Request:
    """One API call, as a handler sees it (Go's *http.Request plus mux vars and the API version)."""

    method: str
    path: str  # decoded, without the /v1.NN prefix
    raw_target: str  # as sent: method and path for logs and the flow
    version: str
    form: dict[str, list[str]]
    headers: Message
    body: BodyReader
    vars: dict[str, str] = field(default_factory=dict)
    connection: socket.socket | None = None
    _stream: io.BufferedReader | None = field(default=None, repr=False)

    @property
    def stream(self) -> io.BufferedReader:
        """The body as a buffered binary file (for tar readers and the service layer)."""
        if self._stream is None:
            self._stream = io.BufferedReader(self.body, 1 << 16)
        return self._stream

    def get(self, key: str, default: str = "") -> str:
        """r.Form.Get: the first value, or ""."""
        values = self.form.get(key)
        return values[0] if values else default

    def values(self, key: str) -> list[str]:
        return list(self.form.get(key, []))

    def has(self, key: str) -> bool:
        return key in self.form

    def header(self, name: str, default: str = "") -> str:
        value = self.headers.get(name)
        return default if value is None else str(value)

    @property
    def content_length(self) -> int | None:
        text = self.header("Content-Length")
        try:
            return int(text) if text else None
        except ValueError:
            return None


def bool_value(r: Request, key: str) -> bool:
    """httputils.BoolValue: "", 0, no, false, none are false; anything else true."""
    return r.get(key).strip().lower() not in ("", "0", "no", "false", "none")


def bool_value_or_default(r: Request, key: str, default: bool) -> bool:
    return bool_value(r, key) if r.has(key) else default


def int_value(r: Request, key: str, default: int = 0) -> int:
    text = r.get(key)
    if not text:
        return default
    try:
        return int(text)
    except ValueError:
        raise BadRequest(f'strconv.Atoi: parsing "{text}": invalid syntax') from None


def filters_from_json(text: str) -> dict[str, list[str]]:
    """filters.FromJSON: `{"dangling":{"true":true}}` (or the legacy `{"dangling":["true"]}`)."""
    if not text:
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        raise BadRequest("invalid filter") from None
    if not isinstance(data, dict):
        raise BadRequest("invalid filter")
    out: dict[str, list[str]] = {}
    for key, value in data.items():
        if isinstance(value, dict) and all(isinstance(v, bool) for v in value.values()):
            out[key] = [k for k, on in value.items() if on]
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            out[key] = list(value)
        else:
            raise BadRequest("invalid filter")
    return out


def check_for_json(r: Request) -> None:
    """httputils.CheckForJSON: a body must say it is application/json."""
    ctype = r.header("Content-Type")
    if not ctype and not r.content_length and r.header("Transfer-Encoding").lower() != "chunked":
        return
    mime = ctype.split(";", 1)[0].strip().lower()
    if mime != "application/json":
        raise BadRequest(f"unsupported Content-Type header ({ctype}): must be 'application/json'")


def read_json(r: Request, limit: int = 16 << 20) -> Any:
    """The body as JSON (None when empty); a body that is not JSON is a 400 ("invalid JSON: …")."""
    check_for_json(r)
    data = r.body.read_up_to(limit + 1)
    if len(data) > limit:
        raise BadRequest("invalid JSON: request body too large")
    if not data.strip():
        return None
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"invalid JSON: {exc}") from None


def repo_tag_reference(repo: str, tag: str) -> Reference | None:
    """httputils.RepoTagReference: `repo` + `tag` (default latest); None when no repo is given."""
    if not repo:
        return None
    try:
        ref = parse_normalized_named(repo)
        if ref.digest is not None:
            raise BadRequest("cannot import digest reference")
        return with_tag(ref, tag) if tag else tag_name_only(ref)
    except InvalidReference as exc:
        raise BadRequest(str(exc)) from None


def decode_auth_config(encoded: str) -> AuthConfig:
    """registry.DecodeAuthConfig: base64url JSON; anything unreadable counts as no credentials
    (for a pull that is not an error, as the seed's postImagesCreate shows)."""
    if not encoded:
        return AuthConfig()
    try:
        raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        data = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return AuthConfig()
    if not isinstance(data, dict):
        return AuthConfig()

    def text(key: str) -> str:
        value = data.get(key)
        return value if isinstance(value, str) else ""

    username, password = text("username"), text("password")
    if not (username or password) and text("auth"):
        try:
            username, _, password = base64.b64decode(text("auth")).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            pass
    return AuthConfig(username, password, text("identitytoken"), text("serveraddress"))


def describe_auth(auth: AuthConfig) -> str:
    """X-Registry-Auth as the flow log shows it: decoded, the secret masked."""
    shown: dict[str, str] = {}
    if auth.username:
        shown["username"] = auth.username
    if auth.password:
        shown["password"] = "*" * 8
    if auth.identitytoken:
        shown["identitytoken"] = "*" * 8
    if auth.server_address:
        shown["serveraddress"] = auth.server_address
    return json.dumps(shown) if shown else "{} (no credentials)"


# ---- the response ------------------------------------------------------------------------------


def canonical_header(name: str) -> str:
    """Go's CanonicalMIMEHeaderKey: `api-version` → `Api-Version`."""
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


class ResponseWriter:
    """Go's http.ResponseWriter for one request, over the connection's socket file.

    Headers go out with the first flush, or when the body outgrows MAX_BUFFERED, or at the
    end: a short answer gets a Content-Length, a flushed one is chunked (HTTP/1.1).
    """

    def __init__(self, wfile: io.BufferedIOBase, method: str, http_version: str = "HTTP/1.1") -> None:
        self._wfile = wfile
        self._method = method
        self._http11 = http_version == "HTTP/1.1"
        self.headers: dict[str, str] = {}
        self.status: int | None = None
        self.sent = False  # headers on the wire
        self.hijacked = False
        self.close_connection = not self._http11
        self._chunked = False
        self._buffer = bytearray()
        self.flow_detail = ""  # what the flow log's reply line adds (a stream's last status)

    # headers
    def set_header(self, name: str, value: str) -> None:
        self.headers[canonical_header(name)] = value

    def write_header(self, status: int) -> None:
        if self.status is None:
            self.status = status

    @property
    def flushed(self) -> bool:
        """True once anything has reached the client (moby's WriteFlusher.Flushed)."""
        return self.sent

    # body
    def _bodyless(self) -> bool:
        return self._method == "HEAD" or self.status in (204, 304) or (self.status or 200) < 200

    def _send_headers(self, final: bool) -> None:
        if self.status is None:
            self.status = 200
        from http.server import BaseHTTPRequestHandler

        reason = BaseHTTPRequestHandler.responses.get(self.status, ("",))[0]
        if not self._bodyless() and "Content-Length" not in self.headers:
            if final:
                self.headers["Content-Length"] = str(len(self._buffer))
            elif self._http11:
                self.headers["Transfer-Encoding"] = "chunked"
                self._chunked = True
            else:
                self.close_connection = True
        if self.close_connection:
            self.headers["Connection"] = "close"
        lines = [f"HTTP/1.1 {self.status} {reason}"]
        lines += [f"{k}: {v}" for k, v in self.headers.items()]
        self._wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        self.sent = True

    def _emit(self, data: bytes) -> None:
        if not data or self._bodyless():
            return
        if self._chunked:
            self._wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        else:
            self._wfile.write(data)

    def write(self, data: bytes) -> int:
        if self.hijacked:
            raise RuntimeError("write on a hijacked connection")
        if not self.sent:
            self._buffer += data
            if len(self._buffer) > MAX_BUFFERED:
                self.flush()
            return len(data)
        self._emit(data)
        return len(data)

    def flush(self) -> None:
        if self.hijacked:
            return
        if not self.sent:
            self._send_headers(final=False)
            pending, self._buffer = bytes(self._buffer), bytearray()
            self._emit(pending)
        flush = getattr(self._wfile, "flush", None)
        if flush is not None:
            flush()

    def finish(self) -> None:
        """End the answer: headers and a short body in one go, or the last chunk."""
        if self.hijacked:
            return
        if not self.sent:
            self._send_headers(final=True)
            pending, self._buffer = bytes(self._buffer), bytearray()
            self._emit(pending)
        elif self._chunked:
            self._wfile.write(b"0\r\n\r\n")
        flush = getattr(self._wfile, "flush", None)
        if flush is not None:
            flush()

    def hijack(self) -> None:
        """Take the connection over (attach, exec): the caller speaks raw bytes on the request's
        socket from here on, and the server closes it when the handler returns."""
        if self.sent:
            raise RuntimeError("hijack after the answer started")
        self.hijacked = True
        self.close_connection = True


def write_json(w: ResponseWriter, status: int, value: Any) -> None:
    """httputils.WriteJSON: Go's encoder with HTML escaping off, a newline after."""
    w.set_header("Content-Type", "application/json")
    w.write_header(status)
    w.write(go_json(value, escape_html=False) + b"\n")
