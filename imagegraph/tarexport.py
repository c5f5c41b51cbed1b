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

import contextlib
import gzip
import hashlib
import io
import json
import os
import posixpath
import re
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, BinaryIO

from .archive import ArchiveError, BoundedTarInfo, FileRange, os_error_text, read_range
from .digest import chain_ids, go_json, sha256_digest
from .distribution import manifest as M
from .distribution.client import MAX_CONFIG, MAX_MANIFEST
from .distribution.localstore import LocalStore
from .distribution.progress import ProgressWriter
from .imagestore import ImageError, ImageNotFound
from .layerstore import DiffIDMismatch, Layer, rereadable
from .reference import (
    InvalidReference,
    Reference,
    familiar_name,
    familiar_string,
    parse_normalized_named,
    tag_name_only,
)
from .refstore import RefNotFound
from .store import atomic_file, clear_stale, hex_of

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

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


class _ArchiveWriter:
    """The save archive, written as tarfile's `w|` PAX writer writes it (the same bytes), with
    layer data copied file to file inside the kernel (sendfile) where the output has a file
    descriptor: a layer's bytes never pass through Python."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.offset = 0
        try:
            self.fd: int | None = out.fileno()
        except (AttributeError, OSError, ValueError):  # a daemon's response stream: write() only
            self.fd = None

    def write(self, data: bytes) -> None:
        self.out.write(data)
        self.offset += len(data)

    def header(self, info: tarfile.TarInfo) -> None:
        self.write(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))

    def pad(self, size: int) -> None:
        if size % tarfile.BLOCKSIZE:
            self.write(tarfile.NUL * (tarfile.BLOCKSIZE - size % tarfile.BLOCKSIZE))

    def add_dir(self, name: str) -> None:
        info = tarfile.TarInfo(name)
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
        self.header(info)

    def add_bytes(self, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mode = 0o644
        self.header(info)
        self.write(data)
        self.pad(len(data))

    def add_layer(self, name: str, size: int, parts: Iterator[bytes | FileRange]) -> None:
        """A layer tar of `size` bytes (known from its headers) as a member; a layer that
        changed since its size was counted is an error, never an archive with a wrong size."""
        info = tarfile.TarInfo(name)
        info.size, info.mode = size, 0o644
        self.header(info)
        start = self.offset
        for part in parts:
            if self.offset - start + (len(part) if isinstance(part, bytes) else part.length) > size:
                raise TarExportError(f"layer {name} changed while it was saved")
            if isinstance(part, bytes):
                self.write(part)
            elif self.fd is None:
                for chunk in read_range(part):
                    self.write(chunk)
            else:
                self.send(part)
        if self.offset - start != size:
            raise TarExportError(f"layer {name} changed while it was saved")
        self.pad(size)

    def send(self, part: FileRange) -> None:
        assert self.fd is not None
        self.out.flush()
        pos, end = part.offset, part.offset + part.length
        while pos < end:
            n = os.sendfile(self.fd, part.fd, pos, min(end - pos, 1 << 30))
            if not n:
                raise ArchiveError(f"{part.name}: file shrank while it was archived")
            pos += n
        self.offset += part.length

    def close(self) -> None:
        """tarfile's end: two zero blocks, then zeros up to a whole 10 KiB record."""
        self.write(tarfile.NUL * (2 * tarfile.BLOCKSIZE))
        if self.offset % tarfile.RECORDSIZE:
            self.write(tarfile.NUL * (tarfile.RECORDSIZE - self.offset % tarfile.RECORDSIZE))
        self.out.flush()


def save(store: LocalStore, names: list[str], out: BinaryIO) -> None:
    """Write the images named to `out` as a tar stream (Docker 25+ layout)."""
    exports = _resolve_names(store, names)
    exported_ids = {e.image_id for e in exports}
    written: set[str] = set()
    index_manifests: list[dict] = []
    manifest_json: list[dict] = []
    repositories: dict[str, dict[str, str]] = {}
    layer_sizes: dict[str, int] = {}
    tar = _ArchiveWriter(out)
    tar.add_dir("blobs/")
    tar.add_dir("blobs/sha256/")
    for exp in exports:
        image = store.images.get(exp.image_id)
        layer_paths = []
        layer_descs = []
        for diff_id, chain in zip(image.diff_ids, chain_ids(image.diff_ids), strict=True):
            path = f"blobs/sha256/{hex_of(diff_id)}"
            layer_paths.append(path)
            if diff_id not in written:
                # Streamed once, straight into the archive: the size comes from the headers.
                size = store.layers.tar_size(chain)
                tar.add_layer(path, size, store.layers.tar_parts(chain))
                written.add(diff_id)
                layer_sizes[diff_id] = size
            layer_descs.append(M.Descriptor(M.OCI_LAYER, diff_id, layer_sizes[diff_id]))
        config_path = f"blobs/sha256/{hex_of(image.id)}"
        if image.id not in written:
            tar.add_bytes(config_path, image.raw)
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
            tar.add_bytes(f"blobs/sha256/{hex_of(mdigest)}", manifest)
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
    tar.add_bytes("index.json", go_json({"schemaVersion": 2, "mediaType": M.OCI_INDEX, "manifests": index_manifests}))
    tar.add_bytes("manifest.json", go_json(manifest_json))
    tar.add_bytes("oci-layout", go_json({"imageLayoutVersion": M.OCI_LAYOUT_VERSION}))
    if repositories:
        tar.add_bytes("repositories", go_json(repositories))

    tar.close()


SAVE_MARKER = ".imagegraph-save-"


def check_output_path(path: Path) -> None:
    """docker/cli's ValidateOutputPath, in its words: the folder must exist, the path must not
    be a directory (or anything but a regular file)."""
    folder = path.parent
    if not folder.is_dir():
        raise TarExportError(f'failed to save image: invalid output path: directory "{folder}" does not exist')
    if path.is_dir():
        raise TarExportError(f'failed to save image: invalid output path: "{path}" is a directory')
    if path.exists() and not path.is_file():
        raise TarExportError(f'failed to save image: invalid output path: "{path}" must be a regular file')


def save_to_file(store: LocalStore, names: list[str], path: Path) -> None:
    """save into a temporary sibling, renamed into place only when complete.

    The temporary file has no name while it is written (O_TMPFILE), so `kill -9` leaves
    nothing; where the filesystem cannot, it is `.OUT.imagegraph-save-XXXX`, locked while
    written, and the next save into the same folder removes those whose writer died.
    """
    path = Path(path)
    check_output_path(path)
    clear_stale(path.parent, SAVE_MARKER)
    with atomic_file(path, prefix=f".{path.name}{SAVE_MARKER}") as f:
        save(store, names, f)


# ---------------------------------------------------------------------------------------------
# load

MAX_ENTRIES = 1 << 17  # members of an archive to load (each image needs a few)
MAX_INDEX = 16 << 20  # manifest.json, index.json, repositories: 20,000 tags need about 1 MiB
_BLOB_PATH = re.compile(r"^blobs/(sha256|sha384|sha512)/([0-9a-f]+)$")


class _VerifyingReader(io.RawIOBase):
    """Reads a blob and, at its end, checks that it hashes to the digest its path names."""

    def __init__(self, f: IO[bytes], algo: str, want: str, name: str) -> None:
        super().__init__()
        self.f, self.hash, self.want, self.name = f, hashlib.new(algo), want, name

    def readable(self) -> bool:
        return True

    def readinto(self, buf: WriteableBuffer) -> int:
        view = memoryview(buf).cast("B")
        data = self.f.read(len(view))
        self.hash.update(data)
        if not data and len(view) and self.hash.hexdigest() != self.want:
            raise TarExportError(f"invalid archive: {self.name} does not match its digest")
        view[: len(data)] = data
        return len(data)

    def finish(self) -> None:
        """Read to the end, so the digest is checked even if the reader above stopped early."""
        while self.read(1 << 20):
            pass

    def close(self) -> None:
        self.f.close()
        super().close()


class _Plain(io.RawIOBase):
    """A member as a raw stream, so every member reads the same way (a BufferedReader over it)."""

    def __init__(self, f: IO[bytes]) -> None:
        super().__init__()
        self.f = f

    def readable(self) -> bool:
        return True

    def readinto(self, buf: WriteableBuffer) -> int:
        view = memoryview(buf).cast("B")
        data = self.f.read(len(view))
        view[: len(data)] = data
        return len(data)

    def finish(self) -> None:
        pass


class _Archive:
    """Random access to a tar's regular files by normalised path, symlinks resolved inside it.

    A blob under `blobs/<algorithm>/<hex>` is checked against that digest as it is read, so a
    blob stored under the wrong name is refused whatever points at it.
    """

    def __init__(self, tar: tarfile.TarFile):
        self.tar = tar
        self.members: dict[str, tarfile.TarInfo] = {}
        count = 0
        while (m := tar.next()) is not None:
            count += 1
            if count > MAX_ENTRIES:
                raise TarExportError(f"invalid archive: more than {MAX_ENTRIES} entries")
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
        if name.startswith("/") or ".." in name.split("/"):
            raise TarExportError(f"invalid archive: path {name!r} escapes the archive")
        key = self.norm(name)
        if key is None or key not in self.members:
            raise TarExportError(f"invalid archive: {name}: no such file in the archive")
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

    def size(self, name: str) -> int:
        return self.resolve(name).size

    def open(self, name: str) -> io.BufferedReader:
        """The member, its digest checked at its end when its path names one (`raw.finish()`)."""
        f = self.tar.extractfile(self.resolve(name))
        assert f is not None  # resolve() returns regular files only
        blob = _BLOB_PATH.match(self.norm(name) or "")
        if blob:
            return io.BufferedReader(_VerifyingReader(f, blob.group(1), blob.group(2), name))
        return io.BufferedReader(_Plain(f))

    def member(self, name: str) -> tuple[IO[bytes], str | None] | None:
        """A plain (not gzip) member as a file of the archive that a seek re-reads, and the
        sha256 DiffID its path names (None: no digest in the path); None when the member is
        compressed or its path names another algorithm (then `open` checks it as it reads)."""
        blob = _BLOB_PATH.match(self.norm(name) or "")
        if blob and blob.group(1) != "sha256":
            return None
        f = self.tar.extractfile(self.resolve(name))
        assert f is not None  # resolve() returns regular files only
        if f.read(2) == b"\x1f\x8b":
            f.close()
            return None
        f.seek(0)
        return f, "sha256:" + blob.group(2) if blob else None

    def read(self, name: str, limit: int = MAX_INDEX, what: str = "") -> bytes:
        """A small member held in memory: at most `limit` bytes."""
        size = self.size(name)
        if size > limit:
            raise TarExportError(f"invalid archive: {what or name} is {size} bytes, over the {limit >> 20} MiB limit")
        with self.open(name) as f:
            data = f.read()
            f.read(1)  # the end: a blob's digest is checked there
        return data


@dataclass
class _LoadItem:
    config_path: str
    layer_paths: list[str]
    repo_tags: list[str]
    parent: str | None = None
    layer_sizes: list[int] | None = None  # the OCI descriptors' sizes, checked against the blobs


def _json(data: bytes, what: str) -> object:
    try:
        return json.loads(data)
    except RecursionError:
        raise TarExportError(f"invalid archive: {what}: nested too deeply") from None
    except ValueError as exc:
        raise TarExportError(f"invalid archive: {what}: {exc}") from None


def _strings(value: object, what: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TarExportError(f"invalid archive: manifest.json: {what} is not a list of strings")
    return value


def _items_from_manifest_json(arc: _Archive) -> list[_LoadItem]:
    data = _json(arc.read("manifest.json"), "manifest.json")
    if not isinstance(data, list):
        raise TarExportError("invalid archive: manifest.json is not a list")
    items = []
    for d in data:
        if not isinstance(d, dict) or not isinstance(d.get("Config"), str):
            raise TarExportError("invalid archive: manifest.json entry without Config")
        parent = d.get("Parent") or None
        items.append(
            _LoadItem(
                d["Config"],
                _strings(d.get("Layers"), "Layers"),
                _strings(d.get("RepoTags"), "RepoTags"),
                parent if isinstance(parent, str) else None,
            )
        )
    return items


def _descriptor_blob(arc: _Archive, desc: M.Descriptor, limit: int, what: str) -> bytes:
    path = f"blobs/{desc.digest.replace(':', '/')}"
    data = arc.read(path, limit, what)
    if len(data) != desc.size:
        raise TarExportError(
            f"invalid archive: {what} {desc.digest} is {len(data)} bytes, its descriptor says {desc.size}"
        )
    return data


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
        body = _descriptor_blob(arc, desc, MAX_MANIFEST, "manifest")
        try:
            parsed = M.parse(body, desc.media_type if desc.media_type in M.MANIFEST_TYPES + M.INDEX_TYPES else "")
            if isinstance(parsed, M.Index):
                target = M.select_platform(parsed, M.host_platform())
                parsed = M.parse(_descriptor_blob(arc, target, MAX_MANIFEST, "manifest"), target.media_type)
        except M.ManifestError as exc:
            raise TarExportError(f"invalid archive: manifest {desc.digest}: {exc}") from None
        if not isinstance(parsed, M.Manifest):
            raise TarExportError("invalid archive: nested index")
        for layer in parsed.layers:
            M.check_layer_type(layer)
        items.append(
            _LoadItem(
                f"blobs/{parsed.config.digest.replace(':', '/')}",
                [f"blobs/{d.digest.replace(':', '/')}" for d in parsed.layers],
                tags,
                layer_sizes=[d.size for d in parsed.layers],
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


def _register_layer(store: LocalStore, arc: _Archive, path: str, parent: str | None) -> tuple[Layer, bool]:
    """Register the layer blob at `path`. A plain member is extracted where it lies in the
    archive (no spool: a tar that must be kept is re-read from there), and the sha256 its
    path names is the DiffID the extraction checks, in the pass that hashes it anyway."""
    plain = arc.member(path)
    if plain is not None:
        member, named = plain
        with member:
            try:
                return store.layers.register(member, parent, expected_diff_id=named)
            except DiffIDMismatch:
                raise TarExportError(f"invalid archive: {path} does not match its digest") from None
    stream, finish = _layer_stream(arc, path)
    with stream:
        try:
            registered = store.layers.register(stream, parent)
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise TarExportError(f"invalid archive: layer {path}: {exc}") from None
        try:
            finish()
        except BaseException:
            if registered[1]:
                store.layers.release(registered[0].chain_id)
            raise
    return registered


def _layer_stream(arc: _Archive, path: str) -> tuple[IO[bytes] | gzip.GzipFile, Callable[[], None]]:
    """The layer's uncompressed tar, and a call that reads its blob to the end (checking its digest)."""
    f = arc.open(path)
    raw: _VerifyingReader | _Plain = f.raw  # type: ignore[assignment]  # open() always wraps one of ours
    if f.peek(2)[:2] == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=f, mode="rb"), raw.finish
    return f, raw.finish


def load(store: LocalStore, src: BinaryIO, out: ProgressWriter) -> list[str]:
    """Load every image in the tar `src`; returns the `Loaded image…` lines (also written to out)."""
    with contextlib.ExitStack() as stack:
        if rereadable(src):
            spool: BinaryIO = src  # a file given by path is read where it is
        else:
            spool = stack.enter_context(tempfile.TemporaryFile(dir=store.tmp_dir))
            try:
                shutil.copyfileobj(src, spool, 1 << 20)
            except OSError as exc:
                raise TarExportError(f"failed to load: {os_error_text(exc)}") from None
            spool.seek(0)
        try:
            tar = tarfile.open(fileobj=spool, mode="r:*", tarinfo=BoundedTarInfo)
        except (tarfile.TarError, EOFError, OSError, gzip.BadGzipFile, zlib.error, ArchiveError):
            raise TarExportError("archive/tar: invalid tar header") from None
        with tar:
            try:
                arc = _Archive(tar)
            except ArchiveError as exc:
                raise TarExportError(f"invalid archive: {exc}") from None
            except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
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
                config_bytes = arc.read(item.config_path, MAX_CONFIG, "image config")
                config = _json(config_bytes, item.config_path)
                try:
                    if not isinstance(config, dict):
                        raise TypeError(item.config_path)
                    diff_ids = list(config["rootfs"]["diff_ids"] or [])
                except (KeyError, TypeError):
                    raise TarExportError(f"invalid archive: {item.config_path} is not an image config") from None
                if not all(isinstance(d, str) for d in diff_ids):
                    raise TarExportError(f"invalid archive: {item.config_path} is not an image config")
                if len(diff_ids) != len(item.layer_paths):
                    raise TarExportError(
                        f"invalid manifest, layers length mismatch: expected {len(diff_ids)}, "
                        f"got {len(item.layer_paths)}"
                    )
                parent_chain = None
                for i, (diff_id, chain, path) in enumerate(
                    zip(diff_ids, chain_ids(diff_ids), item.layer_paths, strict=True)
                ):
                    size = arc.size(path)
                    if item.layer_sizes is not None and item.layer_sizes[i] != size:
                        raise TarExportError(
                            f"invalid archive: layer {path} is {size} bytes, its descriptor says {item.layer_sizes[i]}"
                        )
                    if not store.layers.exists(chain):
                        sid = hex_of(diff_id)[:12]
                        out.progress(sid, "Loading layer", 0, size)
                        layer, was_created = _register_layer(store, arc, path, parent_chain)
                        if was_created:
                            created_layers.append(layer.chain_id)
                        if layer.diff_id != diff_id:
                            raise TarExportError(
                                f'invalid diffID for layer {i}: expected "{diff_id}", got "{layer.diff_id}"'
                            )
                        out.progress(sid, "Loading layer", size, size)
                    else:
                        with arc.open(path) as honest:  # a stored layer: its blob must still be honest
                            while honest.read(1 << 20):
                                pass
                    parent_chain = chain
                image_id = sha256_digest(config_bytes)
                named = _BLOB_PATH.match(_Archive.norm(item.config_path) or "")
                if named and named.group(1) == "sha256" and "sha256:" + named.group(2) != image_id:
                    raise TarExportError(f"invalid archive: {item.config_path} does not match its digest")
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
            with store.refs.batch():  # one write of repositories.json, whatever the number of tags
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
