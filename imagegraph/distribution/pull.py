"""`imagegraph pull`: an image from a registry into the local store, as moby's pull_v2 does.

1. HEAD the tag's manifest (Accept: every manifest and index type) to learn its digest,
   then GET it by digest; for an index, take the manifest for the platform. Only then is
   "Pulling from" said (moby's pullTag), so a refused or unknown name fails before any output.
2. GET the config. If an image with that ID is stored, nothing else is fetched.
3. For each layer whose ChainID is not stored: download to a scratch file, verify the blob
   digest, verify the uncompressed DiffID against `rootfs.diff_ids`, then register it.
   Downloads run outside the store lock (in a `scratch` folder the store's cleaner leaves
   alone), so a long pull does not block other commands; each registration takes the lock.
4. Create the image (ID = config digest), tag it, record `repo@<manifest digest>`.

Any failure rolls back the layers this pull registered, so the store is as it was.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from ..digest import chain_ids
from ..reference import Reference, familiar_string, tag_name_only, with_digest, with_name
from ..refstore import RefNotFound
from . import manifest as M
from .client import RegistryClient
from .credentials import get_auth
from .errors import DigestMismatch, NotFound, RegistryError, Unauthorized, Unreachable
from .localstore import LocalStore
from .metadata import V2Metadata
from .progress import ProgressWriter


class PullError(RegistryError):
    """A pull failed; str() is the one line to print."""


@dataclass
class PullOptions:
    platform: M.Platform | None = None
    insecure_registries: tuple[str, ...] = ()
    env: Mapping[str, str] | None = None
    client_factory: Callable[[str], RegistryClient] | None = None


@dataclass
class PullResult:
    image_id: str
    manifest_digest: str
    reference: Reference
    tag_updated: bool
    downloaded: list[str] = field(default_factory=list)  # blob digests fetched
    existed: list[str] = field(default_factory=list)  # blob digests skipped ("Already exists")
    blob_diff_ids: list[tuple[str, str]] = field(default_factory=list)
    layer_blobs: list[str] = field(default_factory=list)  # the manifest's layer digests, bottom first


def short_id(digest: str) -> str:
    """stringid.TruncateID: the first 12 hex characters."""
    return digest.split(":", 1)[-1][:12]


def make_client(domain: str, options: PullOptions) -> RegistryClient:
    if options.client_factory:
        return options.client_factory(domain)
    return RegistryClient(domain, get_auth(domain, options.env), tuple(options.insecure_registries))


class _ProgressReader:
    """A file wrapper that reports how far it has been read (for "Extracting")."""

    def __init__(self, f: BinaryIO, report: Callable[[int], None]):
        self.f, self.report, self.done = f, report, 0

    def read(self, n: int = -1) -> bytes:
        b = self.f.read(n)
        if b:  # a read at the end says nothing new: no repeated "Extracting" message
            self.done += len(b)
            self.report(self.done)
        return b


def _open_layer(path: Path) -> io.BufferedIOBase:
    """The uncompressed tar of a downloaded blob: gzip is recognised by its magic bytes."""
    with open(path, "rb") as f:
        magic = f.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")


def _diff_id(path: Path) -> str:
    h = hashlib.sha256()
    try:
        with _open_layer(path) as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise PullError(f"failed to register layer: {exc}") from exc
    return "sha256:" + h.hexdigest()


def resolve_manifest(
    client: RegistryClient, ref: Reference, platform: M.Platform | None
) -> tuple[str, M.Manifest, str]:
    """(digest to record, the image manifest, the manifest's own digest)."""
    path = ref.path
    target = ref.digest or ref.tag or "latest"
    try:
        if ref.digest is None:
            try:
                head = client.head_manifest(path, target)
                target = head.digest or target
            except (NotFound, Unauthorized, Unreachable):
                raise
            except RegistryError as exc:
                if "unauthorized" in str(exc) or "dial tcp" in str(exc):
                    raise
                # Some registries refuse HEAD: fall back to GET, as moby does.
        got = client.get_manifest(path, target)
    except NotFound as exc:
        raise PullError(f"manifest for {familiar_string(ref)} not found: {exc}") from exc
    record = got.digest
    parsed = M.parse(got.body, got.media_type)
    if isinstance(parsed, M.Index):
        want = platform or M.host_platform()
        chosen = M.select_platform(parsed, want)
        try:
            got = client.get_manifest(path, chosen.digest)
        except NotFound as exc:
            raise PullError(f"manifest for {familiar_string(ref)} not found: {exc}") from exc
        parsed = M.parse(got.body, got.media_type)
        if isinstance(parsed, M.Index):
            raise PullError("nested indexes are not supported")
    return record, parsed, got.digest


def pull(store: LocalStore, ref: Reference, out: ProgressWriter, options: PullOptions | None = None) -> PullResult:
    """Pull `ref` (already normalised; a bare name means :latest) into `store`."""
    options = options or PullOptions()
    if ref.digest is None:
        ref = tag_name_only(ref)
    client = make_client(ref.domain, options)
    tag_or_digest = ref.digest or ref.tag or "latest"
    record_digest, man, _ = resolve_manifest(client, ref, options.platform)
    # moby's pullV2Tag says "Pulling from" only once the manifest is in hand: a missing tag
    # prints nothing but the error.
    out.message(f"Pulling from {ref.path}", tag_or_digest)

    config_desc = man.config
    try:
        config_bytes = client.get_blob(ref.path, config_desc.digest, config_desc.size)
    except DigestMismatch as exc:
        raise PullError(f"image config verification failed for digest {config_desc.digest}") from exc
    try:
        config = json.loads(config_bytes)
        diff_ids = list(config["rootfs"]["diff_ids"] or [])
    except (ValueError, KeyError, TypeError) as exc:
        raise PullError(f"invalid image config {config_desc.digest}: {exc}") from exc
    if options.platform is not None:
        have = M.Platform(config.get("os", ""), config.get("architecture", ""), config.get("variant", "") or "")
        if not M.platform_matches(options.platform, have):
            raise PullError(
                f"image with reference {familiar_string(ref)} was found but does not match the "
                f"specified platform: wanted {options.platform}, actual: {have}"
            )
    for desc in man.layers:
        M.check_layer_type(desc)
    if len(diff_ids) != len(man.layers):
        raise PullError("layers from manifest don't match image configuration")

    result = PullResult("", record_digest, ref, False, layer_blobs=[d.digest for d in man.layers])
    created: list[str] = []  # ChainIDs this pull registered, for rollback
    new_image = False
    image_id = "sha256:" + hashlib.sha256(config_bytes).hexdigest()
    try:
        if not store.images.exists(image_id):
            _fetch_layers(store, client, ref, man, diff_ids, out, result, created)
        with store.lock.held():
            if not store.images.exists(image_id):
                image_id = store.images.create(config_bytes)
                new_image = True
            result.image_id = image_id
            result.tag_updated = _record_refs(store, ref, image_id, record_digest)
            for blob_digest, diff_id in result.blob_diff_ids:
                store.v2meta.add(diff_id, V2Metadata(blob_digest, ref.name))
    except BaseException:
        with store.lock.held():
            if new_image:
                store.images.delete(image_id)
            for chain in reversed(created):
                store.layers.release(chain)
        raise
    out.message(f"Digest: {record_digest}")
    word = "Downloaded newer image" if result.tag_updated else "Image is up to date"
    out.message(f"Status: {word} for {familiar_string(ref)}")
    return result


def _fetch_layers(
    store: LocalStore,
    client: RegistryClient,
    ref: Reference,
    man: M.Manifest,
    diff_ids: list[str],
    out: ProgressWriter,
    result: PullResult,
    created: list[str],
) -> None:
    chains = chain_ids(diff_ids)
    todo = []
    for desc, chain in zip(man.layers, chains, strict=True):
        if store.layers.exists(chain):
            out.update(short_id(desc.digest), "Already exists")
            result.existed.append(desc.digest)
        else:
            out.update(short_id(desc.digest), "Pulling fs layer")
            todo.append(desc.digest)
    with store.scratch("pull-") as scratch:
        parent: str | None = None
        for i, (desc, chain) in enumerate(zip(man.layers, chains, strict=True)):
            if desc.digest not in todo or store.layers.exists(chain):
                parent = chain
                continue
            sid = short_id(desc.digest)
            blob = scratch / f"{i}.blob"
            with open(blob, "wb") as f:  # outside the store lock: other commands go on meanwhile
                for chunk in client.iter_blob(
                    ref.path,
                    desc.digest,
                    desc.size,
                    on_chunk=functools.partial(out.progress, sid, "Downloading", total=desc.size),
                ):
                    f.write(chunk)
            out.update(sid, "Verifying Checksum")
            out.update(sid, "Download complete")
            result.downloaded.append(desc.digest)
            diff_id = _diff_id(blob)
            if diff_id != diff_ids[i]:
                raise PullError("layers from manifest don't match image configuration")
            size = blob.stat().st_size
            with store.lock.held(), open(blob, "rb") as raw:
                reader = _ProgressReader(raw, functools.partial(out.progress, sid, "Extracting", total=size))
                magic = raw.read(2)
                raw.seek(0)
                gzipped = magic == b"\x1f\x8b"
                stream = gzip.GzipFile(fileobj=reader, mode="rb") if gzipped else reader  # type: ignore[call-overload]  # reads only: GzipFile seeks just to rewind
                layer, was_created = store.layers.register(stream, parent)
                if was_created:
                    created.append(layer.chain_id)
            if layer.chain_id != chain:
                raise PullError("layers from manifest don't match image configuration")
            result.blob_diff_ids.append((desc.digest, diff_id))  # recorded once the image is in
            out.update(sid, "Pull complete")
            parent = chain
            blob.unlink()


def _record_refs(store: LocalStore, ref: Reference, image_id: str, manifest_digest: str) -> bool:
    """Tag (or digest) the image; True when the reference now points somewhere new (pullTag)."""
    refs = store.refs
    refs.reload()
    try:
        old = refs.get(ref)
    except RefNotFound:
        old = None
    canonical = with_digest(with_name(ref.name), manifest_digest)
    if ref.digest is None:
        refs.add_tag(ref, image_id, force=True)
    refs.add_digest(canonical, image_id, force=True)
    return old != image_id
