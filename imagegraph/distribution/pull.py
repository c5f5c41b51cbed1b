"""`imagegraph pull`: an image from a registry into the local store, as moby's pull_v2 does.

1. HEAD the tag's manifest (Accept: every manifest and index type) to learn its digest,
   then GET it by digest; for an index, take the manifest for the platform. Only then is
   "Pulling from" said (moby's pullTag), so a refused or unknown name fails before any output.
2. GET the config. If an image with that ID is stored, nothing else is fetched.
3. For each layer whose ChainID is not stored: download it (up to `max_concurrent_downloads`
   at once, 3 as dockerd's default), verifying the blob digest, gunzipping it and extracting
   the tar into a folder as it arrives, its DiffID checked against `rootfs.diff_ids` in the
   same pass (`unpack`, `LayerStore.extract`); then, in the manifest's order, commit each
   layer (a rename and its record). Downloads and extractions run outside the store lock (in
   a `scratch` folder the store's cleaner leaves alone), so a long pull does not block other
   commands; each commit takes the lock. Status lines come in the manifest's order whatever
   order the downloads end in, so the output on a pipe is the same from run to run.
4. Create the image (ID = config digest), tag it, record `repo@<manifest digest>`.

Any failure rolls back the layers this pull registered, so the store is as it was.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import fstree
from ..archive import ArchiveError, os_error_text
from ..digest import chain_ids
from ..layerstore import LayerStore, StagedLayer
from ..reference import InvalidReference, Reference, familiar_string, tag_name_only, with_digest, with_name, with_tag
from ..refstore import RefNotFound
from . import manifest as M
from .client import CHUNK, RegistryClient
from .credentials import get_auth
from .errors import NotFound, RegistryError, Unauthorized, Unreachable
from .localstore import LocalStore
from .metadata import V2Metadata
from .progress import ProgressWriter
from .unpack import LayerReader, UnpackError, inflate_file


class PullError(RegistryError):
    """A pull failed; str() is the one line to print."""


#: dockerd's defaults for --max-concurrent-downloads and --max-concurrent-uploads.
DEFAULT_DOWNLOADS = 3
DEFAULT_UPLOADS = 5


@dataclass
class PullOptions:
    platform: M.Platform | None = None
    insecure_registries: tuple[str, ...] = ()
    env: Mapping[str, str] | None = None
    client_factory: Callable[[str], RegistryClient] | None = None
    max_concurrent_downloads: int = DEFAULT_DOWNLOADS
    max_concurrent_uploads: int = DEFAULT_UPLOADS


class LockedProgress:
    """A progress writer shared by the transfer threads: one call at a time, so lines never mix."""

    def __init__(self, out: ProgressWriter) -> None:
        self._out = out
        self._lock = threading.Lock()

    def message(self, status: str, id: str = "") -> None:
        with self._lock:
            self._out.message(status, id)

    def update(self, id: str, status: str) -> None:
        with self._lock:
            self._out.update(id, status)

    def progress(self, id: str, status: str, current: int, total: int, start: float = 0.0) -> None:
        with self._lock:
            self._out.progress(id, status, current, total, start)


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
    result = _pull_tag(store, make_client(ref.domain, options), ref, out, options)
    _status(out, ref, result.tag_updated)
    return result


def pull_all_tags(
    store: LocalStore, ref: Reference, out: ProgressWriter, options: PullOptions | None = None
) -> list[PullResult]:
    """`docker pull -a NAME`: every tag the registry lists, one after the other, then one status
    line for the repository (moby's pullRepository)."""
    options = options or PullOptions()
    client = make_client(ref.domain, options)
    results = []
    for tag in client.tags(ref.path):
        try:
            tagged = with_tag(ref, tag)
        except InvalidReference:
            raise PullError(f"the registry lists an invalid tag for {ref.path}: {tag[:80]!r}") from None
        results.append(_pull_tag(store, client, tagged, out, options))
    _status(out, ref, any(r.tag_updated for r in results))
    return results


def _status(out: ProgressWriter, ref: Reference, updated: bool) -> None:
    word = "Downloaded newer image" if updated else "Image is up to date"
    out.message(f"Status: {word} for {familiar_string(ref)}")


def _pull_tag(
    store: LocalStore, client: RegistryClient, ref: Reference, out: ProgressWriter, options: PullOptions
) -> PullResult:
    """One tag or digest, up to its "Digest:" line."""
    tag_or_digest = ref.digest or ref.tag or "latest"
    record_digest, man, _ = resolve_manifest(client, ref, options.platform)
    # moby's pullV2Tag says "Pulling from" only once the manifest is in hand: a missing tag
    # prints nothing but the error.
    out.message(f"Pulling from {ref.path}", tag_or_digest)

    config_desc = man.config
    config_bytes = client.get_blob(ref.path, config_desc.digest, config_desc.size, what="image config")
    try:
        config = json.loads(config_bytes)
        diff_ids = list(config["rootfs"]["diff_ids"] or [])
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        why = "nested too deeply" if isinstance(exc, RecursionError) else " ".join(str(exc).split())
        raise PullError(f"invalid image config {config_desc.digest}: {why}") from exc
    if not all(isinstance(d, str) for d in diff_ids):
        raise PullError(f"invalid image config {config_desc.digest}: rootfs.diff_ids")
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
            _fetch_layers(store, client, ref, man, diff_ids, out, result, created, options.max_concurrent_downloads)
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
    return result


#: Bytes between two progress messages of one transfer (moby's progressreader updateEvery).
PROGRESS_EVERY = 512 << 10

#: A transfer smaller than this is finished before the next one starts: concurrency gains
#: nothing on it, and the registry's log and the flow log keep the manifest's order.
SMALL_TRANSFER = 1 << 20


class Cancelled(Exception):
    """Another layer failed: the transfers still running stop at their next chunk."""


class Turns:
    """Transfers start in order: number i waits until i-1 has its first answer (or has ended,
    when it is small), as dockerd hands layers to its transfer slots one after another."""

    def __init__(self, count: int) -> None:
        self._ready = [threading.Event() for _ in range(count)]
        self.stop = threading.Event()

    def wait(self, i: int) -> None:
        if i > 0:
            self._ready[i - 1].wait()
        if self.stop.is_set():
            raise Cancelled()

    def ready(self, i: int) -> None:
        event = self._ready[i]
        if not event.is_set():  # asked at every chunk: set() takes a lock and notifies
            event.set()

    def cancel(self) -> None:
        self.stop.set()
        for event in self._ready:
            event.set()


@dataclass(frozen=True)
class _Unpacked:
    """A downloaded layer, extracted into a scratch folder and checked against its DiffID."""

    staged: StagedLayer
    tar: Path | None  # the tar, when the extracted tree cannot give it back (kept beside the layer)
    blob_size: int


def _download(
    layers: LayerStore,
    client: RegistryClient,
    ref: Reference,
    desc: M.Descriptor,
    diff_id: str,
    dest: Path,
    out: LockedProgress,
    turns: Turns,
    turn: int,
) -> _Unpacked:
    """One blob, its digest checked as it comes, gunzipped and extracted into the scratch folder
    `dest` in the same pass (a transfer thread, outside the store lock): the layers of a pull
    extract side by side, and the registration only renames and records, in the manifest's
    order. The blob is saved as `dest`.blob meanwhile: when the tree cannot give the tar back,
    it is gunzipped into `dest`.tar, for the store to keep."""
    sid = short_id(desc.digest)

    reported = 0

    def report(done: int) -> None:
        nonlocal reported
        if desc.size >= SMALL_TRANSFER:
            turns.ready(turn)  # the registry has answered: the next download may start
        # As moby's progress reader: a line every 512 KiB and at the end, not every read
        # (through the daemon each is a JSON message to the client).
        if reported == 0 or done - reported >= PROGRESS_EVERY or done >= desc.size:
            reported = done
            out.progress(sid, "Downloading", done, desc.size)

    def chunks() -> Iterator[bytes | memoryview]:
        buffer = bytearray(CHUNK)  # each chunk is read into it: the reader keeps none of it
        for chunk in client.iter_blob(ref.path, desc.digest, desc.size, on_chunk=report, into=buffer):
            if turns.stop.is_set():
                raise Cancelled()
            yield chunk

    blob = dest.with_suffix(".blob")
    try:
        turns.wait(turn)
        with open(blob, "wb") as tee:
            reader = LayerReader(chunks(), tee)
            try:
                # The DiffID is hashed by the reader, checked below before anything is committed.
                staged = layers.extract(reader, dest, hashed_diff_id=diff_id)
            except (UnpackError, ArchiveError) as exc:
                raise _first_error(reader, exc, diff_id) from None
    except OSError as exc:
        raise PullError(f"failed to register layer: {os_error_text(exc)}") from None
    finally:
        turns.ready(turn)
    if reader.diff_id != diff_id:
        fstree.remove_quietly(staged.path)
        raise PullError("layers from manifest don't match image configuration")
    tar = None
    try:
        if not layers.reproduces(staged, reader.headers):
            tar = dest.with_suffix(".tar")
            with open(blob, "rb") as src, open(tar, "wb") as dst:
                inflate_file(src, dst)
        blob.unlink()
    except OSError as exc:
        raise PullError(f"failed to register layer: {os_error_text(exc)}") from None
    return _Unpacked(staged, tar, reader.blob_size)


def _first_error(reader: LayerReader, exc: UnpackError | ArchiveError, diff_id: str) -> Exception:
    """What to say about a layer whose tar broke, once the rest of the blob is read: as Docker,
    a blob that does not match its digest first (raised from the reader), then a tar that is
    not the config's DiffID, then what broke."""
    if isinstance(exc, ArchiveError):
        try:
            reader.skip()
        except UnpackError as broken:
            exc = broken
    if isinstance(exc, UnpackError):
        reader.discard()
        return PullError(f"failed to register layer: {exc}")
    if reader.diff_id != diff_id:
        return PullError("layers from manifest don't match image configuration")
    return exc


def _fetch_layers(
    store: LocalStore,
    client: RegistryClient,
    ref: Reference,
    man: M.Manifest,
    diff_ids: list[str],
    out: ProgressWriter,
    result: PullResult,
    created: list[str],
    downloads: int = DEFAULT_DOWNLOADS,
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
    shared = LockedProgress(out)
    wanted = [
        i
        for i, (desc, chain) in enumerate(zip(man.layers, chains, strict=True))
        if desc.digest in todo and not store.layers.exists(chain)
    ]
    turns = Turns(len(wanted))
    with store.scratch("pull-") as scratch, ThreadPoolExecutor(max(1, downloads), "pull") as pool:
        pending: dict[int, Future[Any]] = {
            i: pool.submit(
                _download, store.layers, client, ref, man.layers[i], diff_ids[i], scratch / str(i), shared, turns, turn
            )
            for turn, i in enumerate(wanted)
        }
        try:
            _register_in_order(store, man, diff_ids, chains, scratch, pending, shared, result, created)
        finally:
            turns.cancel()
            for future in pending.values():
                future.cancel()


def _register_in_order(
    store: LocalStore,
    man: M.Manifest,
    diff_ids: list[str],
    chains: list[str],
    scratch: Path,
    pending: dict[int, Future[Any]],
    out: LockedProgress,
    result: PullResult,
    created: list[str],
) -> None:
    """Wait for each layer's download (and extraction) in the manifest's order, then commit it."""
    parent: str | None = None
    for i, (desc, chain) in enumerate(zip(man.layers, chains, strict=True)):
        if i not in pending or store.layers.exists(chain):
            parent = chain
            continue
        sid = short_id(desc.digest)
        unpacked: _Unpacked = pending[i].result()  # the download's error, if it had one
        out.update(sid, "Verifying Checksum")
        out.update(sid, "Download complete")
        result.downloaded.append(desc.digest)
        try:
            with store.lock.held():
                layer, was_created = store.layers.commit(unpacked.staged, parent, unpacked.tar)
                if was_created:
                    created.append(layer.chain_id)
        except OSError as exc:
            raise PullError(f"failed to register layer: {os_error_text(exc)}") from exc
        if layer.chain_id != chain:
            raise PullError("layers from manifest don't match image configuration")
        out.progress(sid, "Extracting", unpacked.blob_size, unpacked.blob_size)
        result.blob_diff_ids.append((desc.digest, diff_ids[i]))  # recorded once the image is in
        out.update(sid, "Pull complete")
        parent = chain
        if unpacked.tar is not None:
            unpacked.tar.unlink()


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
