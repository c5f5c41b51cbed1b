"""layerdb: read-only layers registered by ChainID, shared, reference-counted; containers' RW layers.

Follows moby's layer store (spec §3.3): Register applies a tar, names the result by its
ChainID and throws it away again when that ChainID already exists, which is what makes
identical layer stacks shared. Reference counts are not stored: they are counted from the
store (images whose top layer it is, child layers, containers on it), so a crash can never
leave a wrong count behind. Releasing a layer nobody holds deletes it and then releases
its parent, down the chain.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from . import archive
from .digest import sha256_digest
from .store import Layout, hex_of, is_tmp, listdir, read_text, remove_dir_atomically, write_dir_atomically

MAX_DEPTH = 125
KEPT_TAR = "layer.tar"  # the original tar, kept only when the directory cannot reproduce it


class LayerError(Exception):
    """A layer store failure; str() is one line for the user."""


class LayerNotFound(LayerError):
    pass


@dataclass(frozen=True)
class Layer:
    """One read-only layer (moby roLayer): this layer's own size is `size` (DiffSize)."""

    chain_id: str
    diff_id: str
    parent: str | None
    cache_id: str
    size: int


@dataclass(frozen=True)
class MountLayer:
    """A container's init + RW layers (moby mountedLayer)."""

    container_id: str
    mount_id: str
    init_id: str
    parent: str | None  # ChainID of the image's top layer, None for scratch


def next_chain_id(parent: str | None, diff_id: str) -> str:
    return diff_id if not parent else sha256_digest(f"{parent} {diff_id}".encode())


class LayerStore:
    def __init__(
        self, layout: Layout, encoding: str | None = None, image_tops: Callable[[], Iterable[str]] | None = None
    ) -> None:
        self.layout = layout
        self.encoding = encoding or archive.default_encoding()
        # The store wires this to the image store: the top ChainID of every image (one ref each).
        self.image_tops: Callable[[], Iterable[str]] = image_tops or (lambda: ())

    # ---- reading ----------------------------------------------------------------------

    def _read(self, chain_id: str) -> Layer | None:
        d = self.layout.layer_meta(chain_id)
        diff, cache = read_text(d / "diff"), read_text(d / "cache-id")
        if not diff or not cache:
            return None  # a crash leftover: ignored
        size = read_text(d / "size", "0") or "0"
        return Layer("sha256:" + hex_of(chain_id), diff, read_text(d / "parent") or None, cache, int(size))

    def get(self, chain_id: str) -> Layer:
        layer = self._read(chain_id)
        if layer is None:
            raise LayerNotFound(f"layer does not exist: {chain_id}")
        return layer

    def exists(self, chain_id: str) -> bool:
        return self._read(chain_id) is not None

    def layers(self) -> list[Layer]:
        out = []
        for name in listdir(self.layout.layerdb / "sha256"):
            layer = self._read("sha256:" + name)
            if layer:
                out.append(layer)
        return out

    def chain(self, chain_id: str | None) -> list[Layer]:
        """The layer and its ancestors, top first."""
        out = []
        while chain_id:
            layer = self.get(chain_id)
            out.append(layer)
            chain_id = layer.parent
        return out

    def depth(self, chain_id: str | None) -> int:
        return len(self.chain(chain_id))

    def total_size(self, chain_id: str | None) -> int:
        """moby roLayer.Size(): this layer plus all its ancestors (docker images SIZE)."""
        return sum(layer.size for layer in self.chain(chain_id))

    def diff_dir(self, layer_or_cache: Layer | str) -> Path:
        cache = layer_or_cache.cache_id if isinstance(layer_or_cache, Layer) else layer_or_cache
        return self.layout.layer_dir(cache) / "diff"

    def lower_dirs(self, chain_id: str | None) -> list[Path]:
        """The diff directories of a stack, top first (overlay's lowerdir order)."""
        return [self.diff_dir(layer) for layer in self.chain(chain_id)]

    def tar_stream(self, chain_id: str) -> Iterator[bytes]:
        """The layer's tar, whose sha256 is its DiffID (for save and push)."""
        layer = self.get(chain_id)
        kept = self.layout.layer_meta(chain_id) / KEPT_TAR
        if kept.exists():
            with open(kept, "rb") as f:
                while chunk := f.read(1 << 20):
                    yield chunk
            return
        yield from archive.iter_layer_tar(self.diff_dir(layer))

    # ---- reference counts ---------------------------------------------------------------

    def references(self, chain_id: str) -> int:
        """Who holds this layer: images whose top it is, child layers, containers created on it."""
        cid = "sha256:" + hex_of(chain_id)
        n = sum(1 for top in self.image_tops() if top == cid)
        n += sum(1 for layer in self.layers() if layer.parent == cid)
        n += sum(1 for m in self.mounts() if m.parent == cid)
        return n

    def release(self, chain_id: str | None) -> list[Layer]:
        """Delete the layer if nobody holds it any more, then release its parent; return what was deleted."""
        deleted: list[Layer] = []
        while chain_id and self.exists(chain_id) and self.references(chain_id) == 0:
            layer = self.get(chain_id)
            remove_dir_atomically(self.layout.layer_meta(chain_id))  # the commit point
            shutil.rmtree(self.layout.layer_dir(layer.cache_id), ignore_errors=True)
            deleted.append(layer)
            chain_id = layer.parent
        return deleted

    # ---- registering ----------------------------------------------------------------------

    @property
    def tmp_dir(self) -> Path:
        """Scratch space inside the store (same filesystem, so renames into place are atomic)."""
        t = self.layout.layerdb / "tmp"
        t.mkdir(parents=True, exist_ok=True)
        return t

    def register(self, stream: archive.ByteStream, parent: str | None = None) -> tuple[Layer, bool]:
        """Apply a layer tar on top of `parent`; returns (layer, created). An existing ChainID is reused."""
        if parent:
            if not self.exists(parent):
                raise LayerNotFound(f"layer does not exist: {parent}")
            if self.depth(parent) >= MAX_DEPTH:
                raise LayerError("max depth exceeded")
        cache_id = secrets.token_hex(32)
        layer_dir = self.layout.layer_dir(cache_id)
        fd, spool = tempfile.mkstemp(prefix=".tmp-", suffix=".tar", dir=self.tmp_dir)
        try:
            with os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(stream, out, 1 << 20)
            try:
                with open(spool, "rb") as f:
                    result = archive.apply_layer_tar(f, layer_dir / "diff", self.encoding)
            except BaseException:
                shutil.rmtree(layer_dir, ignore_errors=True)
                raise
            chain_id = next_chain_id(parent, result.diff_id)
            existing = self._read(chain_id)
            if existing is not None:
                shutil.rmtree(layer_dir, ignore_errors=True)
                return existing, False
            files: dict[str, bytes | str] = {"diff": result.diff_id, "size": str(result.size), "cache-id": cache_id}
            if parent:
                files["parent"] = parent
            if archive.write_layer_tar(layer_dir / "diff").diff_id != result.diff_id:
                # Another tool's tar: the directory cannot give the same bytes back, so keep them.
                files[KEPT_TAR] = Path(spool).read_bytes()
            write_dir_atomically(self.layout.layer_meta(chain_id), files, tmp_parent=self.tmp_dir)
            return Layer(chain_id, result.diff_id, parent, cache_id, result.size), True
        finally:
            try:
                os.unlink(spool)
            except FileNotFoundError:
                pass

    def register_dir(self, src_dir: str | os.PathLike[str], parent: str | None = None) -> tuple[Layer, bool]:
        """Register the contents of a directory as a layer (via its Go-compatible tar)."""
        fd, spool = tempfile.mkstemp(prefix=".tmp-", suffix=".tar", dir=self.tmp_dir)
        try:
            with os.fdopen(fd, "wb") as out:
                archive.write_layer_tar(src_dir, out)
            with open(spool, "rb") as f:
                return self.register(f, parent)
        finally:
            os.unlink(spool)

    # ---- containers' RW layers ---------------------------------------------------------

    def mounts(self) -> list[MountLayer]:
        out = []
        for name in listdir(self.layout.layerdb / "mounts"):
            m = self._read_mount(name)
            if m:
                out.append(m)
        return out

    def _read_mount(self, container_id: str) -> MountLayer | None:
        d = self.layout.mount_meta(container_id)
        mount_id, init_id = read_text(d / "mount-id"), read_text(d / "init-id")
        if not mount_id or not init_id:
            return None
        return MountLayer(container_id, mount_id, init_id, read_text(d / "parent") or None)

    def get_mount(self, container_id: str) -> MountLayer:
        m = self._read_mount(container_id)
        if m is None:
            raise LayerNotFound(f"mount does not exist for container {container_id}")
        return m

    def create_rw_layer(
        self, container_id: str, parent: str | None, init_func: Callable[[Path], object] | None = None
    ) -> MountLayer:
        """The container's `<mount-id>-init` layer (filled by init_func) and its empty RW layer."""
        if parent and not self.exists(parent):
            raise LayerNotFound(f"layer does not exist: {parent}")
        mount_id = secrets.token_hex(32)
        init_id = mount_id + "-init"
        root = self.layout.driver_root
        root.mkdir(parents=True, exist_ok=True)
        made: list[Path] = []
        try:
            for name, subdirs in ((init_id, ("diff", "work")), (mount_id, ("diff", "work", "merged"))):
                tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
                made.append(tmp)
                for sub in subdirs:
                    (tmp / sub).mkdir(mode=0o755)
                if name == init_id and init_func is not None:
                    init_func(tmp / "diff")
                os.chmod(tmp, 0o700)
                os.rename(tmp, root / name)
                made[-1] = root / name
            files = {"mount-id": mount_id, "init-id": init_id}
            if parent:
                files["parent"] = parent
            write_dir_atomically(self.layout.mount_meta(container_id), files, tmp_parent=self.tmp_dir)
        except BaseException:
            for p in made:
                shutil.rmtree(p, ignore_errors=True)
            raise
        return MountLayer(container_id, mount_id, init_id, parent)

    def release_rw_layer(self, container_id: str) -> list[Layer]:
        m = self.get_mount(container_id)
        remove_dir_atomically(self.layout.mount_meta(container_id))
        for name in (m.mount_id, m.init_id):
            shutil.rmtree(self.layout.layer_dir(name), ignore_errors=True)
        return self.release(m.parent)

    # ---- crash leftovers ----------------------------------------------------------------

    def clean(self) -> list[str]:
        """Remove what a crash left behind: temporary files and layer directories no record names."""
        removed: list[str] = []
        for d in (
            self.layout.layerdb / "tmp",
            self.layout.layerdb / "sha256",
            self.layout.layerdb / "mounts",
            self.layout.driver_root,
        ):
            if not d.is_dir():
                continue
            for name in os.listdir(d):
                p = d / name
                if is_tmp(name) or d.name == "tmp":
                    shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
                    removed.append(str(p))
        known = {layer.cache_id for layer in self.layers()}
        for m in self.mounts():
            known.update((m.mount_id, m.init_id))
        for name in listdir(self.layout.driver_root):
            if name not in known:
                shutil.rmtree(self.layout.driver_root / name, ignore_errors=True)
                removed.append(str(self.layout.driver_root / name))
        return removed
