"""`imagegraph push`: a tagged image from the local store to a registry (moby push_v2).

Each layer, top first: if the store remembers a compressed digest for its DiffID in this
repository and the registry still has it (HEAD), it is skipped ("Layer already exists"); if
it was seen in another repository of the same registry, a cross-repository mount is tried
("Mounted from …"). Otherwise the layer tar is gzip-compressed (deterministically, so the
same layer always gives the same blob), HEAD-checked, and uploaded ("Pushed"). The config
follows, then the Docker schema2 manifest is PUT under the tag, and `repo@digest` recorded.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from ..digest import chain_ids
from ..reference import Reference, familiar_name, parse_normalized_named, with_digest, with_name
from ..refstore import RefNotFound
from . import manifest as M
from .client import RegistryClient
from .errors import RegistryError
from .localstore import LocalStore
from .metadata import V2Metadata
from .progress import ProgressWriter
from .pull import PullOptions, make_client, short_id


class PushError(RegistryError):
    """A push failed; str() is the one line to print."""


@dataclass
class PushResult:
    digest: str
    size: int
    uploaded: list[str] = field(default_factory=list)
    existed: list[str] = field(default_factory=list)
    mounted: list[str] = field(default_factory=list)


def compress_layer(store: LocalStore, chain_id: str, dest: Path) -> tuple[str, int]:
    """gzip the layer's tar into `dest` with a fixed header (mtime 0, no name), level 6 as Go's
    default: the same layer always compresses to the same blob digest."""
    h = hashlib.sha256()

    class _Hashing:
        def __init__(self, f: BinaryIO) -> None:
            self.f = f

        def write(self, b: bytes) -> int:
            h.update(b)
            return self.f.write(b)

        def flush(self) -> None:
            self.f.flush()

    with open(dest, "wb") as raw:
        hw = _Hashing(raw)
        with gzip.GzipFile(filename="", mode="wb", fileobj=hw, compresslevel=6, mtime=0) as gz:
            for chunk in store.layers.tar_stream(chain_id):
                gz.write(chunk)
    return "sha256:" + h.hexdigest(), dest.stat().st_size


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
    image = store.images.get(image_id)
    diff_ids = image.diff_ids
    chains = chain_ids(diff_ids)
    client = make_client(ref.domain, options)
    path = ref.path
    out.message(f"The push refers to repository [{ref.name}]")
    ids = [short_id(d) for d in diff_ids]
    for sid in reversed(ids):
        out.update(sid, "Preparing")
    result = PushResult("", 0)
    with store.scratch("push-") as scratch:  # compressed layers in flight, outside the store lock
        # Top layer first, as docker pushes; the manifest lists them bottom first.
        pushed = [
            _push_layer(store, client, ref, diff_ids[i], chains[i], ids[i], out, scratch, result, chunk_size)
            for i in reversed(range(len(diff_ids)))
        ]
        layer_descs = pushed[::-1]
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


def _push_layer(
    store: LocalStore,
    client: RegistryClient,
    ref: Reference,
    diff_id: str,
    chain: str,
    sid: str,
    out: ProgressWriter,
    scratch: Path,
    result: PushResult,
    chunk_size: int | None,
) -> M.Descriptor:
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
                out.update(sid, "Layer already exists")
                result.existed.append(meta.digest)
                return M.Descriptor(M.DOCKER_LAYER_GZIP, meta.digest, size)
        else:
            if client.mount_blob(path, meta.digest, source.path):
                size = client.head_blob(path, meta.digest, push=True) or 0
                out.update(sid, f"Mounted from {source.path}")
                result.mounted.append(meta.digest)
                store.v2meta.add(diff_id, V2Metadata(meta.digest, ref.name))
                return M.Descriptor(M.DOCKER_LAYER_GZIP, meta.digest, size)
    blob = scratch / sid
    digest, size = compress_layer(store, chain, blob)
    if client.head_blob(path, digest, push=True) is not None:
        out.update(sid, "Layer already exists")
        result.existed.append(digest)
    else:
        with open(blob, "rb") as f:
            client.upload_blob(
                path, digest, f, size, chunk_size=chunk_size, on_chunk=lambda n: out.progress(sid, "Pushing", n, size)
            )
        out.update(sid, "Pushed")
        result.uploaded.append(digest)
    blob.unlink()
    store.v2meta.add(diff_id, V2Metadata(digest, ref.name))
    return M.Descriptor(M.DOCKER_LAYER_GZIP, digest, size)
