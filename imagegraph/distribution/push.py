"""`imagegraph push`: a tagged image from the local store to a registry (moby push_v2).

Each layer, top first (up to `max_concurrent_uploads` at once, 5 as dockerd's default; the
status lines still come top first): if the store remembers a compressed digest for its DiffID in this
repository and the registry still has it (HEAD), it is skipped ("Layer already exists"); if
it was seen in another repository of the same registry, a cross-repository mount is tried
("Mounted from …"). Otherwise, as moby's pushLayer, an upload is started (POST) and the
layer tar is gzip-compressed (deterministically, so the same layer always gives the same blob)
and sent as it is made, in one chunked PATCH; the PUT names its digest ("Pushed"). No HEAD
first: the digest is known only at the end. The config follows, then the Docker schema2
manifest is PUT under the tag, and `repo@digest` recorded.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ..digest import chain_ids
from ..reference import Reference, familiar_name, parse_normalized_named, with_digest, with_name
from ..refstore import RefNotFound
from . import manifest as M
from . import pgzip
from .client import RegistryClient
from .errors import RegistryError
from .localstore import LocalStore
from .metadata import V2Metadata
from .progress import ProgressWriter
from .pull import PROGRESS_EVERY, SMALL_TRANSFER, Cancelled, LockedProgress, PullOptions, Turns, make_client, short_id


class PushError(RegistryError):
    """A push failed; str() is the one line to print."""


@dataclass
class PushResult:
    digest: str
    size: int
    uploaded: list[str] = field(default_factory=list)
    existed: list[str] = field(default_factory=list)
    mounted: list[str] = field(default_factory=list)


class _LocalError(Exception):
    """A failure on our side while the layer streams out (reading the layer): carried through
    the HTTP client, which would take an OSError for the registry's, and raised again after."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


class LayerUpload:
    """A layer's tar gzip-compressed as it is sent: one gzip member with a fixed header (mtime
    0, no name), deflate level 6 as Go's default, compressed block by block in threads
    (`pgzip`). The output depends on the layer's bytes alone: the same layer always gives
    the same blob. `result` (digest and size) once it has all been sent; `on_read` is told
    how many tar bytes were read so far (moby's "Pushing" progress counts those)."""

    def __init__(self, tar: Iterable[bytes], on_read: Callable[[int], None] | None = None) -> None:
        self._tar = tar
        self._on_read = on_read
        self.result: pgzip.Compressed | None = None

    def _read(self) -> Iterator[bytes]:
        """The tar, told to `on_read` every 512 KiB (moby's progress reader; through the daemon
        each is a message to the client) and at its end."""
        done = reported = 0
        for chunk in self._tar:
            done += len(chunk)
            if self._on_read is not None and done - reported >= PROGRESS_EVERY:
                reported = done
                self._on_read(done)
            yield chunk
        if self._on_read is not None and done != reported:
            self._on_read(done)

    def __iter__(self) -> Iterator[bytes]:
        held: list[bytes] = []
        size = 0
        try:
            stream = pgzip.compress_stream(self._read())
            while True:
                try:
                    data = next(stream)
                except StopIteration as done:
                    self.result = done.value
                    break
                held.append(data)
                size += len(data)
                if size >= SEND_BLOCK:  # fewer, larger writes to the socket
                    yield b"".join(held)
                    held, size = [], 0
        except Exception as exc:  # ours, not the registry's: said as ours
            raise _LocalError(exc) from exc
        if held:
            yield b"".join(held)


#: Compressed bytes gathered before each write to the registry's socket.
SEND_BLOCK = 1 << 20


def push(
    store: LocalStore,
    ref: Reference,
    out: ProgressWriter,
    options: PullOptions | None = None,
    chunk_size: int | None = None,
) -> PushResult:
    """Push `ref` (normalised, with a tag) and return the manifest digest and size."""
    options = options or PullOptions()
    store.refs.reload()
    try:
        image_id = store.refs.get(ref)
    except RefNotFound:
        raise PushError(f"An image does not exist locally with the tag: {familiar_name(ref)}") from None
    out.message(f"The push refers to repository [{ref.name}]")
    return _push_tag(store, make_client(ref.domain, options), ref, image_id, out, options, chunk_size)


def push_all_tags(
    store: LocalStore,
    ref: Reference,
    out: ProgressWriter,
    options: PullOptions | None = None,
    each: Callable[[Reference, PushResult], None] | None = None,
) -> list[PushResult]:
    """`docker push -a NAME`: every tag of the repository, in the order of their names (moby's
    pushRepository over ReferencesByName); `each` hears every tag pushed."""
    options = options or PullOptions()
    store.refs.reload()
    tagged = [(r, image_id) for r, image_id in store.refs.references_by_name(ref) if r.tag is not None]
    out.message(f"The push refers to repository [{ref.name}]")
    if not tagged:
        raise PushError(f"no tags to push for {familiar_name(ref)}")
    client = make_client(ref.domain, options)
    results = []
    for tag_ref, image_id in tagged:
        results.append(_push_tag(store, client, tag_ref, image_id, out, options, None))
        if each is not None:
            each(tag_ref, results[-1])
    return results


def _push_tag(
    store: LocalStore,
    client: RegistryClient,
    ref: Reference,
    image_id: str,
    out: ProgressWriter,
    options: PullOptions,
    chunk_size: int | None,
) -> PushResult:
    """One tag: its layers, config and manifest, up to the "digest:" line."""
    image = store.images.get(image_id)
    diff_ids = image.diff_ids
    chains = chain_ids(diff_ids)
    path = ref.path
    ids = [short_id(d) for d in diff_ids]
    for sid in reversed(ids):
        out.update(sid, "Preparing")
    result = PushResult("", 0)
    shared = LockedProgress(out)
    order = list(reversed(range(len(diff_ids))))  # top layer first, as docker pushes
    turns = Turns(len(order))
    # Compressed layers in flight live in the scratch folder, outside the store lock.
    with store.scratch("push-") as scratch, ThreadPoolExecutor(max(1, options.max_concurrent_uploads), "push") as pool:
        job = _LayerPush(store, client, ref, shared, scratch, chunk_size, turns)
        futures = [pool.submit(job.run, diff_ids[i], chains[i], ids[i], turn) for turn, i in enumerate(order)]
        pushed: list[M.Descriptor] = []
        try:
            for i, future in zip(order, futures, strict=True):
                desc, kind, status = future.result()
                out.update(ids[i], status)
                getattr(result, kind).append(desc.digest)
                pushed.append(desc)
        finally:
            turns.cancel()
            for future in futures:
                future.cancel()
        layer_descs = pushed[::-1]  # the manifest lists them bottom first
        config = image.raw
        config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
        if client.head_blob(path, config_digest, push=True) is None:
            client.upload_blob(path, config_digest, config, len(config), chunk_size=chunk_size)
        body = M.build_manifest(M.Descriptor(M.DOCKER_CONFIG, config_digest, len(config)), layer_descs)
        tag = ref.tag or "latest"
        digest = client.put_manifest(path, tag, body, M.DOCKER_MANIFEST)
    result.digest, result.size = digest, len(body)
    out.message(f"{tag}: digest: {digest} size: {len(body)}")
    with store.lock.held():
        store.refs.reload()
        try:
            store.refs.add_digest(with_digest(with_name(ref.name), digest), image_id, force=True)
        except RegistryError:
            pass
    return result


@dataclass
class _LayerPush:
    """What every layer's upload shares; `run` is one transfer thread's work."""

    store: LocalStore
    client: RegistryClient
    ref: Reference
    out: LockedProgress
    scratch: Path
    chunk_size: int | None
    turns: Turns

    def run(self, diff_id: str, chain: str, sid: str, turn: int) -> tuple[M.Descriptor, str, str]:
        """(the layer's descriptor, which PushResult list it joins, its status line)."""
        try:
            self.turns.wait(turn)
            if self.store.layers.get(chain).size >= SMALL_TRANSFER:
                self.turns.ready(turn)  # a big layer: the next one may start beside it
            return self._push(diff_id, chain, sid)
        finally:
            self.turns.ready(turn)

    def _push(self, diff_id: str, chain: str, sid: str) -> tuple[M.Descriptor, str, str]:
        store, client, ref = self.store, self.client, self.ref
        path = ref.path
        for meta in store.v2meta.get(diff_id):
            try:
                source = parse_normalized_named(meta.source_repository)
            except ValueError:
                continue
            if source.domain != ref.domain:
                continue
            if source.name == ref.name:
                size = client.head_blob(path, meta.digest, push=True)
                if size is not None:
                    return M.Descriptor(M.DOCKER_LAYER_GZIP, meta.digest, size), "existed", "Layer already exists"
            elif client.mount_blob(path, meta.digest, source.path):
                size = client.head_blob(path, meta.digest, push=True) or 0
                store.v2meta.add(diff_id, V2Metadata(meta.digest, ref.name))
                return M.Descriptor(M.DOCKER_LAYER_GZIP, meta.digest, size), "mounted", f"Mounted from {source.path}"
        # As moby's push: no HEAD for a blob the metadata does not name (its digest is known
        # only once it is compressed); the compressed stream goes out as it is made.
        total = store.layers.get(chain).size
        upload = LayerUpload(
            store.layers.tar_stream(chain),
            lambda n: self.out.progress(sid, "Pushing", min(n, total), total) if total else None,
        )
        location, _ = client.start_upload(path)
        try:
            try:
                location = client.upload_stream(path, location, upload, self.chunk_size)
            except _LocalError as exc:
                raise exc.error from None
            assert upload.result is not None  # the stream was read to its end
            digest, size = upload.result.digest, upload.result.size
            if self.turns.stop.is_set():
                raise Cancelled()
            client.finish_upload(path, location, digest)
        except BaseException:  # as moby's blobWriter.Cancel: the registry drops what it received
            with contextlib.suppress(Exception):
                client.cancel_upload(path, location)
            raise
        kind, status = "uploaded", "Pushed"
        store.v2meta.add(diff_id, V2Metadata(digest, ref.name))
        return M.Descriptor(M.DOCKER_LAYER_GZIP, digest, size), kind, status
