"""`save` and `load`: images to and from tar files (moby daemon/internal/image/tarexport).

save writes Docker 25+'s format, an OCI image layout plus Docker's own index files:

    oci-layout, index.json            OCI layout; one manifest descriptor per tag
    manifest.json, repositories       the legacy Docker view of the same images
    blobs/sha256/<image id>           config bytes
    blobs/sha256/<diff id>            each layer as an uncompressed tar
    blobs/sha256/<manifest digest>    an OCI manifest per image

load reads that, the pre-25 format (`<v1id>/layer.tar`, `<id>.json`, found through the
same manifest.json), and a bare OCI layout (index.json only). Layers whose ChainID is
stored are reused, so loading the same file twice changes nothing. Parent links are kept
only when the parent is in the same file and its history is the child's minus one entry
(checkValidParent). A failure removes the layers this load registered.
"""

from __future__ import annotations

import gzip
import io
import json
import posixpath
import shutil
import tarfile
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, BinaryIO

from .digest import chain_ids, go_json, sha256_digest
from .distribution import manifest as M
from .distribution.localstore import LocalStore
from .distribution.progress import ProgressWriter
from .imagestore import ImageError, ImageNotFound
from .reference import (
    InvalidReference,
    Reference,
    familiar_name,
    familiar_string,
    parse_normalized_named,
    tag_name_only,
)
from .refstore import RefNotFound
from .store import atomic_file, hex_of

CONTAINERD_IMAGE_NAME = "io.containerd.image.name"


class TarExportError(Exception):
    """save or load failed; str() is the one line to print."""


# ---------------------------------------------------------------------------------------------
# save


@dataclass
class _Export:
    image_id: str
    refs: list[Reference] = field(default_factory=list)


def _resolve_names(store: LocalStore, names: Iterable[str]) -> list[_Export]:
    """moby parseNames: an ID gives no tags; `repo` gives all its tags; `repo:tag` that tag."""
    out: dict[str, _Export] = {}
    store.refs.reload()
    for name in names:
        ref: Reference | None = None
        image_id: str | None = None
        try:
            ref = parse_normalized_named(name)
        except InvalidReference:
            ref = None
        if ref is not None and ref.is_name_only:
            tagged = [(r, i) for r, i in store.refs.references_by_name(ref) if r.tag is not None and r.digest is None]
            if tagged:
                for r, i in tagged:
                    out.setdefault(i, _Export(i)).refs.append(r)
                continue
        if ref is not None:
            try:
                image_id = store.refs.get(ref)
            except RefNotFound:
                image_id = None
            if image_id is not None:
                exp = out.setdefault(image_id, _Export(image_id))
                if ref.digest is None:
                    exp.refs.append(tag_name_only(ref))
                continue
        try:
            image_id = store.images.search(name)
        except (ImageNotFound, ImageError):
            shown = familiar_string(tag_name_only(ref)) if ref is not None else name
            raise TarExportError(f"No such image: {shown}") from None
        out.setdefault(image_id, _Export(image_id))
    return list(out.values())


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def _add_dir(tar: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    tar.addfile(info)


def save(store: LocalStore, names: list[str], out: BinaryIO) -> None:
    """Write the images named to `out` as a tar stream (Docker 25+ layout)."""
    exports = _resolve_names(store, names)
    exported_ids = {e.image_id for e in exports}
    written: set[str] = set()
    index_manifests: list[dict] = []
    manifest_json: list[dict] = []
    repositories: dict[str, dict[str, str]] = {}
    layer_sizes: dict[str, int] = {}
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        _add_dir(tar, "blobs/")
        _add_dir(tar, "blobs/sha256/")
        for exp in exports:
            image = store.images.get(exp.image_id)
            layer_paths = []
            layer_descs = []
            for diff_id, chain in zip(image.diff_ids, chain_ids(image.diff_ids), strict=True):
                path = f"blobs/sha256/{hex_of(diff_id)}"
                layer_paths.append(path)
                if diff_id not in written:
                    with tempfile.TemporaryFile(dir=store.tmp_dir) as spool:
                        for chunk in store.layers.tar_stream(chain):
                            spool.write(chunk)
                        size = spool.tell()
                        spool.seek(0)
                        info = tarfile.TarInfo(path)
                        info.size, info.mode = size, 0o644
                        tar.addfile(info, spool)
                    written.add(diff_id)
                    layer_sizes[diff_id] = size
                layer_descs.append(M.Descriptor(M.OCI_LAYER, diff_id, layer_sizes[diff_id]))
            config_path = f"blobs/sha256/{hex_of(image.id)}"
            if image.id not in written:
                _add_bytes(tar, config_path, image.raw)
                written.add(image.id)
            manifest = go_json(
                {
                    "schemaVersion": 2,
                    "mediaType": M.OCI_MANIFEST,
                    "config": {"mediaType": M.OCI_CONFIG, "digest": image.id, "size": len(image.raw)},
                    "layers": [d.to_json() for d in layer_descs],
                }
            )
            mdigest = sha256_digest(manifest)
            if mdigest not in written:
                _add_bytes(tar, f"blobs/sha256/{hex_of(mdigest)}", manifest)
                written.add(mdigest)
            base = {"mediaType": M.OCI_MANIFEST, "digest": mdigest, "size": len(manifest)}
            for ref in exp.refs:
                index_manifests.append(
                    dict(base, annotations={CONTAINERD_IMAGE_NAME: str(ref), M.OCI_REF_NAME: ref.tag or "latest"})
                )
                repositories.setdefault(familiar_name(ref), {})[ref.tag or "latest"] = (
                    hex_of(image.diff_ids[-1]) if image.diff_ids else ""
                )
            if not exp.refs and not index_manifests:
                index_manifests.append(dict(base))
            item: dict = {
                "Config": config_path,
                "RepoTags": [familiar_string(r) for r in exp.refs] or None,
                "Layers": layer_paths,
            }
            if image.parent and image.parent in exported_ids:
                item["Parent"] = image.parent
            manifest_json.append(item)
        _add_bytes(
            tar, "index.json", go_json({"schemaVersion": 2, "mediaType": M.OCI_INDEX, "manifests": index_manifests})
        )
        _add_bytes(tar, "manifest.json", go_json(manifest_json))
        _add_bytes(tar, "oci-layout", go_json({"imageLayoutVersion": M.OCI_LAYOUT_VERSION}))
        if repositories:
            _add_bytes(tar, "repositories", go_json(repositories))


def save_to_file(store: LocalStore, names: list[str], path: Path) -> None:
    """save into a temporary sibling, renamed into place only when complete."""
    path = Path(path)
    with atomic_file(path, prefix=f".{path.name}.") as f:
        save(store, names, f)


# ---------------------------------------------------------------------------------------------
# load


class _Archive:
    """Random access to a tar's regular files by normalised path, symlinks resolved inside it."""

    def __init__(self, tar: tarfile.TarFile):
        self.tar = tar
        self.members: dict[str, tarfile.TarInfo] = {}
        for m in tar.getmembers():
            name = self.norm(m.name)
            if name is not None:
                self.members[name] = m

    @staticmethod
    def norm(name: str) -> str | None:
        n = posixpath.normpath("/" + name.lstrip("/")).lstrip("/")
        if n in ("", "."):
            return None
        return n

    def has(self, name: str) -> bool:
        return self.norm(name) in self.members

    def resolve(self, name: str, depth: int = 0) -> tarfile.TarInfo:
        """The regular file `name` names, following links inside the archive only."""
        if depth > 16:
            raise TarExportError(f"invalid archive: too many levels of symbolic links at {name}")
        key = self.norm(name)
        if key is None or key not in self.members:
            raise TarExportError(f"invalid archive: {name}: no such file in the archive")
        if name.startswith("/") or ".." in name.split("/"):
            raise TarExportError(f"invalid archive: path {name!r} escapes the archive")
        m = self.members[key]
        if m.issym() or m.islnk():
            target = m.linkname
            if m.issym():
                target = posixpath.join(posixpath.dirname(key), target)
            if target.startswith("/") or posixpath.normpath(target).startswith(".."):
                raise TarExportError(f"invalid archive: link {name} points outside the archive")
            return self.resolve(posixpath.normpath(target), depth + 1)
        if not m.isfile():
            raise TarExportError(f"invalid archive: {name} is not a regular file")
        return m

    def open(self, name: str) -> IO[bytes]:
        f = self.tar.extractfile(self.resolve(name))
        assert f is not None  # resolve() returns regular files only
        return f

    def read(self, name: str) -> bytes:
        with self.open(name) as f:
            return f.read()


@dataclass
class _LoadItem:
    config_path: str
    layer_paths: list[str]
    repo_tags: list[str]
    parent: str | None = None


def _items_from_manifest_json(arc: _Archive) -> list[_LoadItem]:
    try:
        data = json.loads(arc.read("manifest.json"))
    except ValueError as exc:
        raise TarExportError(f"invalid archive: manifest.json: {exc}") from None
    if not isinstance(data, list):
        raise TarExportError("invalid archive: manifest.json is not a list")
    items = []
    for d in data:
        if not isinstance(d, dict) or not isinstance(d.get("Config"), str):
            raise TarExportError("invalid archive: manifest.json entry without Config")
        items.append(
            _LoadItem(d["Config"], list(d.get("Layers") or []), list(d.get("RepoTags") or []), d.get("Parent") or None)
        )
    return items


def _items_from_oci_layout(arc: _Archive) -> list[_LoadItem]:
    """A bare OCI layout: follow index.json to manifests (the host's platform for nested indexes)."""
    try:
        index = M.parse(arc.read("index.json"), M.OCI_INDEX)
    except M.ManifestError as exc:
        raise TarExportError(f"invalid archive: index.json: {exc}") from None
    assert isinstance(index, M.Index)
    items: list[_LoadItem] = []
    for desc in index.manifests:
        tags = []
        name = desc.annotations.get(CONTAINERD_IMAGE_NAME) or desc.annotations.get(M.OCI_REF_NAME, "")
        if name and ("/" in name or ":" in name):  # a bare "latest" is a tag, not a name
            try:
                tags.append(familiar_string(tag_name_only(parse_normalized_named(name))))
            except InvalidReference:
                pass  # a bare tag such as "latest" names no repository: load untagged
        target = desc
        body = arc.read(f"blobs/{desc.digest.replace(':', '/')}")
        parsed = M.parse(body, desc.media_type if desc.media_type in M.MANIFEST_TYPES + M.INDEX_TYPES else "")
        if isinstance(parsed, M.Index):
            target = M.select_platform(parsed, M.host_platform())
            parsed = M.parse(arc.read(f"blobs/{target.digest.replace(':', '/')}"), target.media_type)
        if not isinstance(parsed, M.Manifest):
            raise TarExportError("invalid archive: nested index")
        for layer in parsed.layers:
            M.check_layer_type(layer)
        items.append(
            _LoadItem(
                f"blobs/{parsed.config.digest.replace(':', '/')}",
                [f"blobs/{d.digest.replace(':', '/')}" for d in parsed.layers],
                tags,
            )
        )
    return items


def _check_valid_parent(child: dict, parent: dict) -> bool:
    ch, ph = child.get("history") or [], parent.get("history") or []
    if not ch and not ph:
        return True
    if len(ch) - len(ph) != 1:
        return False
    return all(a == b for a, b in zip(ph, ch, strict=False))  # a prefix: ch is one longer


def _layer_stream(arc: _Archive, path: str) -> IO[bytes] | gzip.GzipFile:
    f = arc.open(path)
    head = f.read(2)
    f.seek(0)
    if head == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=f, mode="rb")
    return f


def load(store: LocalStore, src: BinaryIO, out: ProgressWriter) -> list[str]:
    """Load every image in the tar `src`; returns the `Loaded image…` lines (also written to out)."""
    with tempfile.TemporaryFile(dir=store.tmp_dir) as spool:
        shutil.copyfileobj(src, spool, 1 << 20)
        spool.seek(0)
        try:
            tar = tarfile.open(fileobj=spool, mode="r:*")
        except (tarfile.TarError, EOFError, OSError, gzip.BadGzipFile):
            raise TarExportError("archive/tar: invalid tar header") from None
        with tar:
            try:
                arc = _Archive(tar)
            except (tarfile.TarError, EOFError, OSError) as exc:
                raise TarExportError(f"archive/tar: {exc}") from None
            if arc.has("manifest.json"):
                items = _items_from_manifest_json(arc)
            elif arc.has("index.json") and arc.has("oci-layout"):
                items = _items_from_oci_layout(arc)
            else:
                raise TarExportError("invalid archive: does not contain a manifest.json")
            return _load_items(store, arc, items, out)


def _load_items(store: LocalStore, arc: _Archive, items: list[_LoadItem], out: ProgressWriter) -> list[str]:
    lines: list[str] = []
    created_layers: list[str] = []
    created_images: list[str] = []
    loaded: dict[str, dict] = {}  # image ID -> config, for parent checks
    pending_tags: list[tuple[Reference, str]] = []  # applied only once every image is in
    with store.lock.held():
        store.refs.reload()
        try:
            for item in items:
                config_bytes = arc.read(item.config_path)
                try:
                    config = json.loads(config_bytes)
                    diff_ids = list(config["rootfs"]["diff_ids"] or [])
                except (ValueError, KeyError, TypeError):
                    raise TarExportError(f"invalid archive: {item.config_path} is not an image config") from None
                if len(diff_ids) != len(item.layer_paths):
                    raise TarExportError(
                        f"invalid manifest, layers length mismatch: expected {len(diff_ids)}, "
                        f"got {len(item.layer_paths)}"
                    )
                parent_chain = None
                for i, (diff_id, chain, path) in enumerate(
                    zip(diff_ids, chain_ids(diff_ids), item.layer_paths, strict=True)
                ):
                    if not store.layers.exists(chain):
                        size = arc.resolve(path).size
                        sid = hex_of(diff_id)[:12]
                        out.progress(sid, "Loading layer", 0, size)
                        with _layer_stream(arc, path) as stream:
                            layer, was_created = store.layers.register(stream, parent_chain)
                        if was_created:
                            created_layers.append(layer.chain_id)
                        if layer.diff_id != diff_id:
                            raise TarExportError(
                                f'invalid diffID for layer {i}: expected "{diff_id}", got "{layer.diff_id}"'
                            )
                        out.progress(sid, "Loading layer", size, size)
                    parent_chain = chain
                image_id = sha256_digest(config_bytes)
                if not store.images.exists(image_id):
                    store.images.create(config_bytes)
                    created_images.append(image_id)
                loaded[image_id] = config
                if item.parent and item.parent in loaded and store.images.get_parent(image_id) != item.parent:
                    if _check_valid_parent(config, loaded[item.parent]):
                        store.images.set_parent(image_id, item.parent)
                for tag in item.repo_tags:
                    try:
                        ref = parse_normalized_named(tag)
                    except InvalidReference as exc:
                        raise TarExportError(f"invalid reference {tag}: {exc}") from None
                    if ref.digest is not None:
                        raise TarExportError(f"invalid tag {tag!r}: a digest is not a tag")
                    pending_tags.append((tag_name_only(ref), image_id))
                    lines.append(f"Loaded image: {familiar_string(tag_name_only(ref))}")
                if not item.repo_tags:
                    lines.append(f"Loaded image ID: {image_id}")
            for ref, image_id in pending_tags:
                try:
                    old = store.refs.get(ref)
                except RefNotFound:
                    old = None
                if old is not None and old != image_id:
                    out.message(
                        f"The image {familiar_string(ref)} already exists, renaming the old one "
                        f"with ID {old} to empty string"
                    )
                store.refs.add_tag(ref, image_id, force=True)
        except BaseException:
            for image_id in reversed(created_images):
                try:
                    store.images.delete(image_id)
                except ImageError:
                    pass
            for chain in reversed(created_layers):
                store.layers.release(chain)
            raise
    for line in lines:
        out.message(line)
    return lines
