"""An HTTP client for the OCI distribution API (one registry, many repositories).

Built on http.client rather than a library: the protocol needs streaming bodies, HEAD,
manual redirects (no Authorization to another host) and exact control of the 401 retry,
all of which http.client gives directly. Source: OCI distribution-spec spec.md, and
docker/distribution registry/client/repository.go for what docker sends and expects.

Plain HTTP is used for localhost, 127.0.0.0/8, ::1 and registries named as insecure;
every other registry is spoken to over HTTPS. docker.io is served by registry-1.docker.io.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import ipaddress
import socket
import ssl
import urllib.parse
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import BinaryIO

from .auth import Authenticator, error_text, repository_scope
from .credentials import AuthConfig
from .errors import DigestMismatch, NotFound, RegistryError, Unauthorized, Unreachable
from .manifest import MANIFEST_ACCEPT

USER_AGENT = "imagegraph/0.1 (layerlab)"
DOCKER_HUB_HOST = "registry-1.docker.io"
CHUNK = 1 << 20  # a blob is read in blocks this big (fewer Python calls per byte downloaded)
BODY_BLOCK = 1 << 20  # an uploaded file is sent in blocks this big (http.client's default: 8 KiB)
# What a registry may send that is read into memory (containers/image iolimits, moby, containerd):
MAX_MANIFEST = 4 << 20  # a manifest or index body
MAX_CONFIG = 4 << 20  # an image config blob
MAX_BODY = 1 << 20  # anything else held whole: errors, tokens, pings


class BodyTooLarge(RegistryError):
    """A response body over its limit; the caller names the object."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"response body larger than {limit} bytes")
        self.limit = limit


def mib(n: int) -> str:
    return f"{n >> 20} MiB" if n >= 1 << 20 and n % (1 << 20) == 0 else f"{n} bytes"


def split_host_port(domain: str) -> tuple[str, str]:
    """`host:port`, `[::1]:5000`, `host` → (host without brackets, port or "")."""
    if domain.startswith("["):
        host, _, rest = domain[1:].partition("]")
        return host, rest[1:] if rest.startswith(":") else ""
    host, _, port = domain.partition(":")
    return host, port


def is_insecure(domain: str, insecure_registries: tuple[str, ...] = ()) -> bool:
    """True when the registry is reached over plain HTTP (moby registry.isSecureIndex, inverted).

    Loopback (localhost, 127.0.0.0/8, ::1) is always insecure; so is any `HOST[:PORT]` or
    CIDR named in `insecure_registries`.
    """
    if domain in insecure_registries:
        return True
    host, _ = split_host_port(domain)
    if host == "localhost" or host in insecure_registries:
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    if ip.is_loopback:
        return True
    for entry in insecure_registries:
        if "/" in entry:
            try:
                if ip in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                continue
    return False


def registry_base_url(domain: str, insecure_registries: tuple[str, ...] = ()) -> str:
    """`http[s]://host[:port]` for a reference's domain."""
    netloc = DOCKER_HUB_HOST if domain in ("docker.io", "index.docker.io") else domain
    scheme = "http" if is_insecure(domain, insecure_registries) else "https"
    return f"{scheme}://{netloc}"


def _method_word(method: str) -> str:
    """Go's url.Error prints the method as `Get`, `Head`, `Put`…"""
    return method[:1].upper() + method[1:].lower()


@dataclass
class Response:
    """A received response; `body` is read already unless the request asked to stream."""

    status: int
    headers: http.client.HTTPMessage
    body: bytes = b""
    raw: http.client.HTTPResponse | None = None
    conn: http.client.HTTPConnection | None = None
    url: str = ""

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name, default)

    def close(self) -> None:
        if self.raw is not None:
            self.raw.close()
        if self.conn is not None:
            self.conn.close()


@dataclass(frozen=True)
class ManifestResult:
    """A manifest as the registry served it."""

    body: bytes
    media_type: str
    digest: str


@dataclass
class RegistryClient:
    """One registry. Every call names the repository path (e.g. `library/alpine`).

    The first request pings `GET /v2/`; a 401 there tells which auth scheme to use. After
    that each call sends an Authorization header for its scope, and answers a fresh 401
    once (new token) before giving up.
    """

    domain: str
    credentials: AuthConfig = field(default_factory=AuthConfig)
    insecure_registries: tuple[str, ...] = ()
    timeout: float = 30.0
    user_agent: str = USER_AGENT
    base_url: str = ""
    # Told of every exchange (method, url, status, reason, headers sent, headers received): the
    # daemon's flow log. Never given a body.
    observer: Callable[[str, str, int, str, Mapping[str, str], Mapping[str, str]], None] | None = None
    _auth: Authenticator = field(init=False, repr=False, compare=False)
    _pinged: bool = False

    def __post_init__(self) -> None:
        if not self.base_url:
            self.base_url = registry_base_url(self.domain, self.insecure_registries)
        self._auth = Authenticator(self.credentials, self._fetch_plain)

    # ---- transport -------------------------------------------------------------------------

    def _connect(self, url: str) -> tuple[http.client.HTTPConnection, str]:
        parts = urllib.parse.urlsplit(url)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        if parts.scheme == "https":
            ctx = ssl.create_default_context()
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                parts.netloc, timeout=self.timeout, context=ctx, blocksize=BODY_BLOCK
            )
        else:
            conn = http.client.HTTPConnection(parts.netloc, timeout=self.timeout, blocksize=BODY_BLOCK)
        return conn, target

    def _send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | BinaryIO | Iterable[bytes] | None,
        stream: bool,
        limit: int = MAX_BODY,
    ) -> Response:
        """One request, following redirects for GET/HEAD (Authorization only to the same host).

        A body that is not streamed is read into memory only up to `limit` (BodyTooLarge beyond).
        """
        headers = dict(headers)
        headers.setdefault("User-Agent", self.user_agent)
        for _ in range(6):
            conn, target = self._connect(url)
            try:
                conn.request(method, target, body=body, headers=headers)
                raw = conn.getresponse()
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                if self.observer is not None:
                    self.observer(method, url, 0, _describe_oserror(exc, url), headers, {})
                raise Unreachable(f'{_method_word(method)} "{url}": {_describe_oserror(exc, url)}') from exc
            if self.observer is not None:
                self.observer(method, url, raw.status, raw.reason, headers, dict(raw.headers.items()))
            if raw.status in (301, 302, 303, 307, 308) and method in ("GET", "HEAD") and raw.getheader("Location"):
                location = urllib.parse.urljoin(url, raw.getheader("Location"))
                conn.close()  # the redirect's body is never read
                if urllib.parse.urlsplit(location).netloc != urllib.parse.urlsplit(url).netloc:
                    headers.pop("Authorization", None)
                url = location
                continue
            resp = Response(raw.status, raw.headers, url=url)
            if stream and 200 <= raw.status < 300 and method != "HEAD":
                resp.raw, resp.conn = raw, conn
                return resp
            try:
                resp.body = _read_limited(raw, limit) if method != "HEAD" else b""
            except (OSError, http.client.HTTPException) as exc:
                raise Unreachable(f'{_method_word(method)} "{url}": unexpected EOF') from exc
            finally:
                conn.close()
            return resp
        raise RegistryError(f'{_method_word(method)} "{url}": stopped after 5 redirects')

    def _fetch_plain(self, url: str, headers: Mapping[str, str]) -> tuple[int, Mapping[str, str], bytes]:
        resp = self._send("GET", url, headers, None, stream=False)
        return resp.status, dict(resp.headers.items()), resp.body

    def ping(self) -> None:
        """`GET /v2/`: learn the auth challenge (or that none is needed)."""
        url = self.base_url + "/v2/"
        resp = self._send("GET", url, {}, None, stream=False)
        self._pinged = True
        if resp.status == 401:
            self._auth.handle_challenge(resp.header("WWW-Authenticate"))
        elif resp.status >= 400 and resp.status != 404:
            raise RegistryError(f'Get "{url}": {error_text(resp.status, resp.body)}')

    def check_login(self) -> None:
        """What `docker login` does: `GET /v2/` with the credentials; raise if refused."""
        self.ping()
        url = self.base_url + "/v2/"
        auth = self._auth
        if auth.challenge is None:
            return
        if auth.credentials.empty:
            raise Unauthorized(f"login attempt to {url} failed with status: 401 Unauthorized")
        try:
            value = auth.authorization(())
        except Unauthorized as exc:
            raise Unauthorized(f'Get "{url}": {exc}') from exc
        resp = self._send("GET", url, {"Authorization": value} if value else {}, None, stream=False)
        if resp.status == 401:
            raise Unauthorized(f"login attempt to {url} failed with status: 401 Unauthorized")
        if resp.status >= 400:
            raise RegistryError(f"login attempt to {url} failed with status: {resp.status}")

    def request(
        self,
        method: str,
        url: str,
        scopes: tuple[str, ...],
        headers: Mapping[str, str] | None = None,
        body: bytes | BinaryIO | Iterable[bytes] | None = None,
        stream: bool = False,
        limit: int = MAX_BODY,
    ) -> Response:
        """Send with auth; on 401 take up the new challenge and retry once (not with a body of
        chunks: it is sent as it is made, with `Transfer-Encoding: chunked`)."""
        if not url.startswith(("http://", "https://")):
            url = self.base_url + url
        if not self._pinged:
            self.ping()
        stream_body = body if body is not None and not isinstance(body, bytes) else None
        start = stream_body.tell() if isinstance(stream_body, io.IOBase) else None
        for attempt in (0, 1):
            hdrs = dict(headers or {})
            try:
                value = self._auth.authorization(scopes)
            except Unauthorized as exc:
                raise Unauthorized(f'{_method_word(method)} "{url}": {exc}') from exc
            except RegistryError as exc:
                raise RegistryError(f'{_method_word(method)} "{url}": {exc}') from exc
            if value:
                hdrs["Authorization"] = value
            elif self._auth.challenge is not None and self._auth.challenge.scheme == "basic":
                raise Unauthorized(f'{_method_word(method)} "{url}": no basic auth credentials')
            resp = self._send(method, url, hdrs, body, stream, limit)
            if resp.status != 401 or attempt == 1:
                break
            had_value = bool(value)
            if not self._auth.handle_challenge(resp.header("WWW-Authenticate")):
                break
            challenge = self._auth.challenge
            if had_value and challenge is not None and challenge.scheme == "basic":
                break  # the same credentials will not work a second time
            if stream_body is not None and start is None:
                break  # a stream that is sent as it is made cannot be sent again
            self._auth.forget(scopes)
            if isinstance(stream_body, io.IOBase) and start is not None:
                stream_body.seek(start)
        if resp.status == 401:
            raise Unauthorized(f'{_method_word(method)} "{url}": {error_text(401, resp.body)}')
        return resp

    # ---- manifests ---------------------------------------------------------------------------

    def _manifest_url(self, repo: str, ref: str) -> str:
        return f"/v2/{repo}/manifests/{ref}"

    def head_manifest(self, repo: str, ref: str, accept: tuple[str, ...] = MANIFEST_ACCEPT) -> ManifestResult:
        """Resolve a tag (or check a digest) without the body: media type and digest."""
        resp = self.request(
            "HEAD", self._manifest_url(repo, ref), (repository_scope(repo),), {"Accept": ", ".join(accept)}
        )
        self._raise_for(resp, "manifest unknown: manifest unknown")
        return ManifestResult(b"", resp.header("Content-Type"), resp.header("Docker-Content-Digest"))

    def get_manifest(self, repo: str, ref: str, accept: tuple[str, ...] = MANIFEST_ACCEPT) -> ManifestResult:
        """GET a manifest (at most MAX_MANIFEST bytes); when `ref` is a digest the body must hash to it."""
        what = f"manifest {repo}@{ref}" if ":" in ref else f"manifest {repo}:{ref}"
        try:
            resp = self.request(
                "GET",
                self._manifest_url(repo, ref),
                (repository_scope(repo),),
                {"Accept": ", ".join(accept)},
                limit=MAX_MANIFEST,
            )
        except BodyTooLarge:
            raise RegistryError(f"{what} is larger than {mib(MAX_MANIFEST)}: refused") from None
        self._raise_for(resp, "manifest unknown: manifest unknown")
        actual = "sha256:" + hashlib.sha256(resp.body).hexdigest()
        if ":" in ref and ref != actual:
            raise DigestMismatch(f"manifest verification failed for digest {ref}")
        served = resp.header("Docker-Content-Digest")
        if served and served.startswith("sha256:") and served != actual:
            raise DigestMismatch(f"manifest verification failed for digest {served}")
        return ManifestResult(resp.body, resp.header("Content-Type").split(";")[0].strip(), actual)

    def put_manifest(self, repo: str, ref: str, body: bytes, media_type: str) -> str:
        """PUT a manifest under a tag or digest; returns its digest."""
        resp = self.request(
            "PUT",
            self._manifest_url(repo, ref),
            (repository_scope(repo, "pull,push"),),
            {"Content-Type": media_type, "Content-Length": str(len(body))},
            body,
        )
        self._raise_for(resp)
        return resp.header("Docker-Content-Digest") or "sha256:" + hashlib.sha256(body).hexdigest()

    def tags(self, repo: str) -> list[str]:
        resp = self.request("GET", f"/v2/{repo}/tags/list", (repository_scope(repo),), limit=MAX_MANIFEST)
        self._raise_for(resp)
        import json

        return list(json.loads(resp.body).get("tags") or [])

    # ---- blobs ---------------------------------------------------------------------------------

    def head_blob(self, repo: str, digest: str, push: bool = False) -> int | None:
        """The blob's size if the repository has it, else None."""
        scope = repository_scope(repo, "pull,push" if push else "pull")
        resp = self.request("HEAD", f"/v2/{repo}/blobs/{digest}", (scope,))
        if resp.status == 404:
            return None
        self._raise_for(resp)
        try:
            return int(resp.header("Content-Length"))
        except ValueError:
            return -1

    def iter_blob(
        self,
        repo: str,
        digest: str,
        size: int | None = None,
        on_chunk: Callable[[int], None] | None = None,
        what: str = "filesystem layer",
        into: bytearray | None = None,
    ) -> Generator[bytes | memoryview, None, None]:
        """Stream a blob, never more than its descriptor's `size`: a longer body is an error, so
        is a shorter one, and so is one that does not hash to `digest`. `what` names the blob
        in the errors ("filesystem layer", "image config").

        `into`: each chunk is read into this buffer and given as a view of it, good until the
        next one is asked for (a pull's layers: no new megabyte to allocate and fault in for
        every chunk); without it, each chunk is bytes of its own."""
        resp = self.request("GET", f"/v2/{repo}/blobs/{digest}", (repository_scope(repo),), stream=True)
        if resp.raw is None:
            self._raise_for(resp, "blob unknown: blob unknown to registry")
            raise RegistryError(f"unexpected status code {resp.status}")
        algo, _, want = digest.partition(":")
        try:
            h = hashlib.new(algo)
        except ValueError as exc:
            resp.close()
            raise DigestMismatch(f"unsupported digest algorithm: {digest}") from exc
        declared = resp.header("Content-Length")
        if size is not None and size >= 0 and declared.isdigit() and int(declared) > size:
            resp.close()
            raise RegistryError(f"{what} {digest}: the registry sends {declared} bytes, its descriptor says {size}")
        total = 0
        try:
            while True:
                want_now = CHUNK if size is None or size < 0 else min(CHUNK, size - total + 1)
                chunk: bytes | memoryview
                try:
                    if into is None:
                        chunk = resp.raw.read(want_now)
                    else:
                        view = memoryview(into)[: min(want_now, len(into))]
                        chunk = view[: resp.raw.readinto(view)]
                except (OSError, http.client.HTTPException) as exc:
                    raise RegistryError(f"{what} {digest}: unexpected EOF") from exc
                if not chunk:
                    break
                if size is not None and size >= 0 and total + len(chunk) > size:
                    raise RegistryError(f"{what} {digest} is larger than its descriptor's size ({size} bytes)")
                h.update(chunk)
                total += len(chunk)
                if on_chunk:
                    on_chunk(total)
                yield chunk
        finally:
            resp.close()
        if size is not None and size >= 0 and total < size:
            raise RegistryError(f"{what} {digest}: unexpected EOF after {total} of {size} bytes")
        if h.hexdigest() != want:
            raise DigestMismatch(f"{what} verification failed for digest {digest}")

    def get_blob(
        self, repo: str, digest: str, size: int | None = None, limit: int = MAX_CONFIG, what: str = "blob"
    ) -> bytes:
        """A small blob (a config) held in memory: never more than `limit` bytes, and never more
        than the descriptor's `size` when one is given."""
        if size is not None and size > limit:
            raise RegistryError(f"{what} {digest}: its descriptor declares {size} bytes, over the {mib(limit)} limit")
        out = bytearray()
        blob = self.iter_blob(repo, digest, size, what=what)
        try:
            for chunk in blob:
                out += chunk
                if len(out) > limit:
                    raise RegistryError(f"{what} {digest} is larger than {mib(limit)}: refused")
        finally:
            blob.close()
        return bytes(out)

    def start_upload(self, repo: str, mount: str = "", from_repo: str = "") -> tuple[str, bool]:
        """POST /blobs/uploads/ (optionally as a cross-repository mount).

        Returns (location, mounted): mounted is True when the registry mounted the blob (201);
        otherwise location is an upload session to send the data to.
        """
        scopes = [repository_scope(repo, "pull,push")]
        url = f"/v2/{repo}/blobs/uploads/"
        if mount and from_repo:
            scopes.append(repository_scope(from_repo, "pull"))
            url += "?" + urllib.parse.urlencode({"mount": mount, "from": from_repo})
        resp = self.request("POST", url, tuple(scopes), {"Content-Length": "0"}, b"")
        if resp.status == 201 and mount:
            return resp.header("Location"), True
        if resp.status != 202:
            self._raise_for(resp)
            raise RegistryError(f"unexpected status code {resp.status} starting an upload")
        return self._absolute(resp.header("Location"), resp.url), False

    def _absolute(self, location: str, base: str) -> str:
        if not location:
            raise RegistryError("registry did not return an upload location")
        return urllib.parse.urljoin(base, location)

    @staticmethod
    def _with_query(url: str, **params: str) -> str:
        return url + ("&" if "?" in url else "?") + urllib.parse.urlencode(params)

    def upload_blob(
        self,
        repo: str,
        digest: str,
        data: bytes | BinaryIO,
        size: int,
        chunk_size: int | None = None,
        location: str | None = None,
        on_chunk: Callable[[int], None] | None = None,
    ) -> None:
        """Upload one blob: monolithic (POST then one PUT) or chunked (PATCH per chunk, then PUT).

        `data` is bytes or a binary file positioned at the blob's start.
        """
        scope = (repository_scope(repo, "pull,push"),)
        if location is None:
            location, _ = self.start_upload(repo)
        if chunk_size is None:
            body = data if isinstance(data, bytes) else data
            resp = self.request(
                "PUT",
                self._with_query(location, digest=digest),
                scope,
                {"Content-Type": "application/octet-stream", "Content-Length": str(size)},
                body,
            )
            self._raise_for(resp)
            if on_chunk:
                on_chunk(size)
            return
        offset = 0
        while offset < size:
            if isinstance(data, bytes):
                chunk = data[offset : offset + chunk_size]
            else:
                chunk = data.read(min(chunk_size, size - offset))
            if not chunk:
                raise RegistryError("unexpected EOF reading the blob to upload")
            end = offset + len(chunk) - 1
            resp = self.request(
                "PATCH",
                location,
                scope,
                {
                    "Content-Type": "application/octet-stream",
                    "Content-Length": str(len(chunk)),
                    "Content-Range": f"{offset}-{end}",
                },
                chunk,
            )
            if resp.status != 202:
                self._raise_for(resp)
                raise RegistryError(f"unexpected status code {resp.status} uploading a chunk")
            location = self._absolute(resp.header("Location"), resp.url)
            offset = end + 1
            if on_chunk:
                on_chunk(offset)
        resp = self.request("PUT", self._with_query(location, digest=digest), scope, {"Content-Length": "0"}, b"")
        self._raise_for(resp)

    def upload_stream(
        self,
        repo: str,
        location: str,
        chunks: Iterable[bytes],
        chunk_size: int | None = None,
    ) -> str:
        """Send a blob as it is made, to the upload session `location` (`start_upload`), as
        moby's push does: one PATCH whose body is `chunks` (`Transfer-Encoding: chunked`), or
        with `chunk_size` a PATCH per `chunk_size` bytes with its `Content-Range`. Returns the
        session's location for `finish_upload`, which names the digest once it is known."""
        scope = (repository_scope(repo, "pull,push"),)
        if chunk_size is None:
            parts: Iterable[tuple[int, bytes | Iterable[bytes]]] = [(-1, chunks)]
        else:
            parts = ((len(block), block) for block in _regroup(chunks, chunk_size))
        offset = 0
        for length, body in parts:
            headers = {"Content-Type": "application/octet-stream"}
            if length >= 0:
                headers["Content-Length"] = str(length)
                headers["Content-Range"] = f"{offset}-{offset + length - 1}"
                offset += length
            resp = self.request("PATCH", location, scope, headers, body)
            if resp.status != 202:
                self._raise_for(resp)
                raise RegistryError(f"unexpected status code {resp.status} uploading a blob")
            location = self._absolute(resp.header("Location"), resp.url)
        return location

    def finish_upload(self, repo: str, location: str, digest: str) -> None:
        """PUT the upload session's digest: the registry checks it against what it received."""
        scope = (repository_scope(repo, "pull,push"),)
        resp = self.request("PUT", self._with_query(location, digest=digest), scope, {"Content-Length": "0"}, b"")
        self._raise_for(resp)

    def mount_blob(self, repo: str, digest: str, from_repo: str) -> bool:
        """Cross-repository mount; True if the registry linked the blob without an upload."""
        location, mounted = self.start_upload(repo, mount=digest, from_repo=from_repo)
        if not mounted:
            self.cancel_upload(repo, location)
        return mounted

    def cancel_upload(self, repo: str, location: str) -> None:
        resp = self.request("DELETE", location, (repository_scope(repo, "pull,push"),))
        if resp.status not in (204, 404):
            self._raise_for(resp)

    # ---- errors --------------------------------------------------------------------------------

    def _raise_for(self, resp: Response, not_found_default: str = "") -> None:
        if 200 <= resp.status < 300:
            return
        text = error_text(resp.status, resp.body, not_found_default if resp.status == 404 else "")
        if resp.status == 404:
            code = ""
            if text.startswith("name unknown"):
                code = "NAME_UNKNOWN"
            elif text.startswith("manifest unknown"):
                code = "MANIFEST_UNKNOWN"
            elif text.startswith("blob unknown"):
                code = "BLOB_UNKNOWN"
            raise NotFound(text, code)
        if resp.status == 403 and not resp.body:
            text = "denied: requested access to the resource is denied"
        raise RegistryError(text)


def _regroup(chunks: Iterable[bytes], size: int) -> Iterator[bytes]:
    """`chunks` as blocks of `size` bytes, the last one shorter (never empty)."""
    held = bytearray()
    for chunk in chunks:
        held += chunk
        while len(held) >= size:
            yield bytes(held[:size])
            del held[:size]
    if held:
        yield bytes(held)


def _read_limited(raw: http.client.HTTPResponse, limit: int) -> bytes:
    """The whole body, if it is at most `limit` bytes (the declared length is checked first)."""
    declared = raw.getheader("Content-Length") or ""
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(limit)
    body = raw.read(limit + 1)
    if len(body) > limit:
        raise BodyTooLarge(limit)
    return body


def _describe_oserror(exc: BaseException, url: str) -> str:
    """Go's dial errors: `dial tcp 127.0.0.1:1: connect: connection refused`."""
    parts = urllib.parse.urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    addr = f"{parts.hostname}:{port}" if ":" not in (parts.hostname or "") else f"[{parts.hostname}]:{port}"
    if isinstance(exc, ConnectionRefusedError):
        return f"dial tcp {addr}: connect: connection refused"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return f"dial tcp {addr}: i/o timeout"
    if isinstance(exc, socket.gaierror):
        return f"dial tcp: lookup {parts.hostname}: no such host"
    if isinstance(exc, ssl.SSLError):
        return f"tls: {exc.reason or exc}"
    if isinstance(exc, (http.client.RemoteDisconnected, ConnectionResetError)):
        return "EOF"
    return str(exc) or exc.__class__.__name__
