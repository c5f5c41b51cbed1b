"""A small Bearer token server for the tests (token spec: distribution docs/spec/auth/token.md).

It stands in front of the real docker-registry, which is configured with
`auth: token: {realm, service, issuer, rootcertbundle}`. Tokens are JWTs signed RS256 with a
self-made key; the certificate goes both in the registry's `rootcertbundle` and in each token's
`x5c` header, which is how distribution 2.8 finds the signing key. The signing is done by the
`openssl` command, since the standard library has no RSA.

Users and the actions each may have are given when the server is made; a request for more is
answered with the intersection (not an error), as the spec says. Every token request is recorded
so tests can check that the client caches tokens per scope.
"""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from ..support import require_tool

SERVICE = "layerlab-registry"
ISSUER = "layerlab-token-server"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_keypair(workdir: Path) -> tuple[Path, Path]:
    """A self-signed RSA certificate and key, made with openssl."""
    openssl = require_tool("openssl")
    key, cert = workdir / "token.key", workdir / "token.crt"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "7",
            "-subj",
            "/CN=layerlab-token-server",
        ],
        check=True,
        capture_output=True,
    )
    return key, cert


@dataclass
class TokenRequest:
    account: str
    scopes: list[str]
    service: str


@dataclass
class TokenServer:
    key: Path
    cert: Path
    users: dict[str, str]
    permissions: dict[str, set[str]] = field(default_factory=dict)  # user → allowed actions
    anonymous_actions: set[str] = field(default_factory=set)
    identity_tokens: dict[str, str] = field(default_factory=dict)  # refresh token → user
    expires_in: int = 300
    requests: list[TokenRequest] = field(default_factory=list)
    realm: str = ""
    _server: ThreadingHTTPServer | None = None

    def cert_der_b64(self) -> str:
        lines = self.cert.read_text().strip().splitlines()
        return "".join(line for line in lines if not line.startswith("-----"))

    def sign(self, payload: bytes) -> bytes:
        out = subprocess.run(
            ["openssl", "dgst", "-sha256", "-sign", str(self.key)], input=payload, check=True, capture_output=True
        )
        return out.stdout

    def issue(self, user: str, scopes: list[str], service: str) -> str:
        allowed = self.permissions.get(user, {"pull", "push"}) if user else self.anonymous_actions
        access = []
        for scope in scopes:
            parts = scope.split(":")
            if len(parts) < 3:
                continue
            typ, name, actions = parts[0], ":".join(parts[1:-1]), parts[-1].split(",")
            granted = [a for a in actions if a in allowed]
            access.append({"type": typ, "name": name, "actions": granted})
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self.cert_der_b64()]}
        claims = {
            "iss": ISSUER,
            "sub": user,
            "aud": service,
            "exp": now + self.expires_in,
            "nbf": now - 60,
            "iat": now,
            "jti": secrets.token_hex(8),
            "access": access,
        }
        signing_input = (b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())).encode()
        return signing_input.decode() + "." + b64url(self.sign(signing_input))

    def handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _reply(self, status: int, obj: dict) -> None:
                body = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                parts = urllib.parse.urlsplit(self.path)
                if parts.path != "/token":
                    return self._reply(404, {"details": "not found"})
                query = urllib.parse.parse_qs(parts.query)
                user = ""
                auth = self.headers.get("Authorization", "")
                if auth.startswith("Basic "):
                    try:
                        u, _, p = base64.b64decode(auth[6:]).decode().partition(":")
                    except Exception:
                        return self._reply(401, {"details": "incorrect username or password"})
                    if server.users.get(u) != p:
                        return self._reply(401, {"details": "incorrect username or password"})
                    user = u
                elif auth.startswith("Bearer "):
                    user = server.identity_tokens.get(auth[7:], "")
                    if not user:
                        return self._reply(401, {"details": "invalid identity token"})
                scopes = query.get("scope", [])
                service = (query.get("service") or [SERVICE])[0]
                server.requests.append(TokenRequest(user, scopes, service))
                token = server.issue(user, scopes, service)
                self._reply(
                    200,
                    {
                        "token": token,
                        "access_token": token,
                        "expires_in": server.expires_in,
                        "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    },
                )

        return Handler

    @contextlib.contextmanager
    def serve(self) -> Iterator[TokenServer]:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self.handler())
        port = self._server.server_address[1]
        self.realm = f"http://127.0.0.1:{port}/token"
        thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()
            thread.join(timeout=5)

    def registry_settings(self) -> dict:
        """What start_registry(token=…) needs to trust this server."""
        return {"realm": self.realm, "service": SERVICE, "issuer": ISSUER, "rootcertbundle": str(self.cert)}
