"""Answering a registry's 401 challenge: Basic, or Bearer tokens fetched per scope.

Source: docker/distribution registry/client/auth (challenge parsing, token handler) and the
token spec (docs/spec/auth/token.md). The flow: `GET /v2/` returns 401 with
`WWW-Authenticate: Bearer realm="…",service="…",scope="…"` (or `Basic realm="…"`); for Bearer
the client asks `<realm>?service=…&scope=repository:<name>:pull[,push]`, with Basic
credentials if it has any, and sends `Authorization: Bearer <token>` from then on.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from .credentials import AuthConfig
from .errors import RegistryError, Unauthorized


@dataclass(frozen=True)
class Challenge:
    """One scheme from a WWW-Authenticate header; scheme lower-cased, parameter names too."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict)


def parse_www_authenticate(header: str) -> list[Challenge]:
    """Parse RFC 7235 challenges: `Bearer realm="x",service="y", Basic realm="z"`.

    Quoted strings may contain commas and backslash escapes; a token followed by `=` is a
    parameter, a token followed by space and another token starts a new challenge.
    """
    challenges: list[Challenge] = []
    i, n = 0, len(header)

    def skip_ws(j: int) -> int:
        while j < n and header[j] in " \t,":
            j += 1
        return j

    def token(j: int) -> tuple[str, int]:
        k = j
        while k < n and header[k] not in ' \t,="':
            k += 1
        return header[j:k], k

    current: Challenge | None = None
    while True:
        i = skip_ws(i)
        if i >= n:
            break
        word, j = token(i)
        if not word:
            i = j + 1
            continue
        k = j
        while k < n and header[k] in " \t":
            k += 1
        if k < n and header[k] == "=" and current is not None:
            k += 1
            while k < n and header[k] in " \t":
                k += 1
            if k < n and header[k] == '"':
                k += 1
                value = []
                while k < n and header[k] != '"':
                    if header[k] == "\\" and k + 1 < n:
                        k += 1
                    value.append(header[k])
                    k += 1
                k += 1
                current.params[word.lower()] = "".join(value)
            else:
                val, k = token(k)
                current.params[word.lower()] = val
            i = k
        else:
            current = Challenge(word.lower(), {})
            challenges.append(current)
            i = j
    return challenges


def repository_scope(path: str, actions: str = "pull") -> str:
    """`repository:<path>:<actions>` (token spec §Requesting a Token)."""
    return f"repository:{path}:{actions}"


# A function that does one plain HTTP GET: (url, headers) → (status, headers, body)
Fetch = Callable[[str, Mapping[str, str]], tuple[int, Mapping[str, str], bytes]]


def error_text(status: int, body: bytes, default: str = "") -> str:
    """The registry's error body as docker prints it: `<code words>: <message>`.

    Handles the distribution error envelope `{"errors":[{code,message}]}`, the token
    server's `{"details": …}`, and falls back to docker's texts for a bare status.
    """
    try:
        data = json.loads(body or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        data = None
    if isinstance(data, dict):
        errs = data.get("errors")
        if isinstance(errs, list) and errs and isinstance(errs[0], dict):
            parts = []
            for e in errs:
                code = str(e.get("code", "")).lower().replace("_", " ")
                msg = str(e.get("message", "")) or code
                parts.append(f"{code}: {msg}" if code else msg)
            return "; ".join(parts) if len(parts) == 1 else "errors:\n" + "\n".join(parts)
        if data.get("details") and status == 401:
            return f"unauthorized: {data['details']}"
    if default:
        return default
    if status == 401:
        return "unauthorized: authentication required"
    return f"unexpected status code {status}"


@dataclass
class Authenticator:
    """Holds one registry's challenge and credentials, and caches Bearer tokens per scope set.

    `authorization(scopes)` gives the value for the Authorization header (or None before any
    challenge was seen); `handle_challenge` records a 401's header so the next call can answer.
    """

    credentials: AuthConfig
    fetch: Fetch
    clock: Callable[[], float] = time.monotonic
    challenge: Challenge | None = None
    _tokens: dict[tuple[str, ...], tuple[str, float]] = field(default_factory=dict)

    def handle_challenge(self, header: str | None) -> bool:
        """Remember the challenge from a 401; False if it is one we cannot answer."""
        for ch in parse_www_authenticate(header or ""):
            if ch.scheme in ("bearer", "basic"):
                if ch.scheme == "bearer" and "realm" not in ch.params:
                    continue
                self.challenge = ch
                return True
        return False

    def basic_header(self) -> str | None:
        if not (self.credentials.username or self.credentials.password):
            return None
        raw = f"{self.credentials.username}:{self.credentials.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()

    def authorization(self, scopes: tuple[str, ...]) -> str | None:
        ch = self.challenge
        if ch is None:
            return None
        if ch.scheme == "basic":
            return self.basic_header()
        return "Bearer " + self.token(scopes)

    def forget(self, scopes: tuple[str, ...]) -> None:
        """Drop a cached token the registry no longer accepts."""
        self._tokens.pop(tuple(sorted(scopes)), None)

    def token(self, scopes: tuple[str, ...]) -> str:
        key = tuple(sorted(scopes))
        cached = self._tokens.get(key)
        now = self.clock()
        if cached and cached[1] > now:
            return cached[0]
        token, expires_in = self._fetch_token(key)
        # Renew a little before expiry, as docker's token handler does (it keeps a 10 s margin).
        self._tokens[key] = (token, now + max(expires_in - 10, 1))
        return token

    def _fetch_token(self, scopes: tuple[str, ...]) -> tuple[str, int]:
        assert self.challenge is not None
        params = self.challenge.params
        realm = params["realm"]
        query: list[tuple[str, str]] = []
        if params.get("service"):
            query.append(("service", params["service"]))
        query.extend(("scope", s) for s in scopes)
        if self.credentials.username:
            query.append(("account", self.credentials.username))
        url = realm + ("&" if "?" in realm else "?") + urllib.parse.urlencode(query)
        headers: dict[str, str] = {}
        if self.credentials.identitytoken:
            # docker exchanges an identity (refresh) token with an OAuth2 POST; we present it as
            # a Bearer credential on the GET, which the test token server accepts.
            headers["Authorization"] = "Bearer " + self.credentials.identitytoken
        else:
            basic = self.basic_header()
            if basic:
                headers["Authorization"] = basic
        status, _, body = self.fetch(url, headers)
        if status != 200:
            # The caller prefixes the request it was making, as docker's client does.
            raise Unauthorized(error_text(status, body))
        try:
            data = json.loads(body)
            token = data.get("token") or data.get("access_token")
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError, RecursionError):
            token = None
        if not token:
            raise RegistryError("authorization server did not include a token in the response")
        expires = data.get("expires_in") or 60
        return token, int(expires)
