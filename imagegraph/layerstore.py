"""layerdb: read-only layers registered by ChainID, shared, reference-counted; containers' RW layers.

Follows moby's layer store (spec §3.3): Register applies a tar, names the result by its
ChainID and throws it away again when that ChainID already exists, which is what makes
identical layer stacks shared. Reference counts are not stored: they are counted from the
store (images whose top layer it is, child layers, containers on it), so a crash can never
leave a wrong count behind. Releasing a layer nobody holds deletes it and then releases
its parent, down the chain.
"""

from __future__ import annotations

import errno
import io
import os
import secrets
import stat
import tarfile
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from . import archive, fstree, layercopy
from .digest import sha256_digest
from .store import (
    Layout,
    folder_mode,
    hex_of,
    is_tmp,
    listdir,
    read_text,
    remove_dir_atomically,
    write_dir_atomically,
)

MAX_DEPTH = 125
#: Errors of the store's own disk (full, over quota, read-only, failing), said in one line.
DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EFBIG, errno.EMLINK})
KEPT_TAR = "layer.tar"  # the original tar, kept only when the directory cannot reproduce it


class LayerError(Exception):
    """A layer store failure; str() is one line for the user."""


class LayerNotFound(LayerError):
    pass


class DiffIDMismatch(LayerError):
    """The tar's sha256 is not the DiffID its image config names: nothing was registered."""


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


@dataclass(frozen=True)
class StagedLayer:
    """A layer extracted but not registered yet (`LayerStore.extract`): its driver folder,
    outside the driver's root, and what its tar said."""

    path: Path
    diff_id: str
    size: int
    sparse: bool


def rereadable(stream: object) -> bool:
    """Whether `stream` can serve as its own spool: a regular file, or a member of a tar file,
    at its start, that a seek brings back to its start. (A gzip reader can seek too, but only by
    decompressing again; its fileno() is the compressed file's.)"""
    if isinstance(stream, tarfile.ExFileObject):
        return stream.seekable() and stream.tell() == 0
    raw = stream.raw if isinstance(stream, io.BufferedReader | io.BufferedRandom) else stream
    if not isinstance(raw, io.FileIO):
        return False
    try:
        return stat.S_ISREG(os.fstat(raw.fileno()).st_mode) and raw.tell() == 0 and raw.readable()
    except (OSError, ValueError):
        return False


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

    def tar_parts(self, chain_id: str) -> Iterator[bytes | archive.FileRange]:
        """`tar_stream` as headers (bytes) and file data (ranges of open files, for sendfile)."""
        layer = self.get(chain_id)
        kept = self.layout.layer_meta(chain_id) / KEPT_TAR
        try:
            fd = os.open(kept, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            yield from archive.layer_tar_parts(self.diff_dir(layer))
            return
        try:
            yield archive.FileRange(fd, 0, os.fstat(fd).st_size, KEPT_TAR)
        finally:
            os.close(fd)

    def tar_size(self, chain_id: str) -> int:
        """The length of `tar_stream(chain_id)`, found without reading the layer's data."""
        kept = self.layout.layer_meta(chain_id) / KEPT_TAR
        if kept.exists():
            return kept.stat().st_size
        return archive.layer_tar_size(self.diff_dir(self.get(chain_id)))

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
            self._remove_layer_dir(layer.cache_id)
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

    def _remove_layer_dir(self, name: str) -> None:
        """A driver folder goes under a temporary name first (`clean` retries what is left)."""
        remove_dir_atomically(self.layout.layer_dir(name))

    def register(
        self,
        stream: archive.ByteStream,
        parent: str | None = None,
        expected_diff_id: str | None = None,
        source_headers: str | None = None,
    ) -> tuple[Layer, bool]:
        """Apply a layer tar on top of `parent`; returns (layer, created). An existing ChainID is reused.

        A stream that is not a file to re-read is spooled first (a pull or load reads it once);
        a disk that fills up stops the registration with one line and leaves neither the spool
        nor half a layer. With `expected_diff_id`, a tar whose sha256 differs raises
        DiffIDMismatch before anything is registered: the extraction hashes what it reads, so
        the check costs no pass of its own. `source_headers` says the tar is our own writer's,
        of a tree with that headers digest, and `expected_diff_id` the sha256 it computed as it
        wrote it: the extraction does not hash again, and the layer reproduces the tar when its
        headers digest is the same.
        """
        self._check_parent(parent)
        try:
            if rereadable(stream):
                return self._register_spooled(stream, None, parent, expected_diff_id, source_headers)  # type: ignore[arg-type]  # a real file
            fd, spool = tempfile.mkstemp(prefix=".tmp-", suffix=".tar", dir=self.tmp_dir)
            try:
                with os.fdopen(fd, "wb") as out:
                    while chunk := stream.read(1 << 20):
                        try:
                            out.write(chunk)
                        except OSError as exc:
                            raise LayerError(f"failed to register layer: {archive.os_error_text(exc)}") from None
                with open(spool, "rb") as f:
                    return self._register_spooled(f, Path(spool), parent, expected_diff_id, source_headers)
            finally:
                try:
                    os.unlink(spool)
                except FileNotFoundError:
                    pass
        except OSError as exc:
            if exc.errno not in DISK_ERRNOS:
                raise  # a stream that cannot be read: the caller words it
            raise LayerError(f"failed to register layer: {archive.os_error_text(exc)}") from None

    def _register_spooled(
        self,
        f: BinaryIO,
        spool: Path | None,
        parent: str | None,
        expected_diff_id: str | None,
        source_headers: str | None,
    ) -> tuple[Layer, bool]:
        """Register the tar in the file `f`, read from its start; `spool` is its path when it is
        our own spool (linked in if the tar must be kept), else `f` is copied from its start."""
        cache_id = secrets.token_hex(32)
        layer_dir = self.layout.layer_dir(cache_id)
        try:
            layer_dir.parent.mkdir(mode=folder_mode(), parents=True, exist_ok=True)
            os.mkdir(layer_dir, folder_mode())  # unreachable to other users, as Docker's
            # Our own writer's tar, hashed as it was written: extracting it need not hash it again.
            known = expected_diff_id if source_headers is not None else None
            result = archive.apply_layer_tar(f, layer_dir / "diff", self.encoding, known)
            if expected_diff_id is not None and result.diff_id != expected_diff_id:
                raise DiffIDMismatch(f"layer tar is {result.diff_id}, not {expected_diff_id}")
        except BaseException:
            fstree.remove_quietly(layer_dir)
            raise
        # Another tool's tar (or a sparse one) may not come back byte for byte from the
        # directory: then the original is kept, linked in or copied, never read into memory.
        kept: Path | BinaryIO | None = None
        if self.exists(next_chain_id(parent, result.diff_id)):
            pass  # _record drops this copy for the layer that exists
        elif result.sparse or not self._reproduces(layer_dir / "diff", result.diff_id, source_headers):
            if spool is None:
                f.seek(0)
            kept = spool or f
        return self._record(cache_id, parent, result.diff_id, result.size, kept)

    # ---- registering in two steps: extract (outside the lock), commit (under it) ---------------

    def extract(self, stream: archive.ByteStream, staging: Path, hashed_diff_id: str | None = None) -> StagedLayer:
        """The first half of a registration, outside the store lock: the layer's driver folder
        made at `staging` (a new path in a scratch folder of this store's filesystem, which the
        store's cleaner removes after a crash) and filled from the tar. A diff directory does
        not depend on its parent's content, so several layers of a pull extract side by side.

        `hashed_diff_id`: the caller hashes the tar as it reads (`unpack.LayerReader`) and
        checks it before `commit`; the extraction does not hash it again. The result says
        that DiffID then."""
        os.mkdir(staging, folder_mode())
        try:
            result = archive.apply_layer_tar(stream, staging / "diff", self.encoding, hashed_diff_id)
        except BaseException:
            fstree.remove_quietly(staging)
            raise
        return StagedLayer(staging, result.diff_id, result.size, result.sparse)

    def reproduces(self, staged: StagedLayer, source_headers: str | None) -> bool:
        """Whether a staged layer gives its tar back byte for byte (no tar to keep); it reads
        the staged tree only, so it runs outside the lock too."""
        return not staged.sparse and self._reproduces(staged.path / "diff", staged.diff_id, source_headers)

    def commit(self, staged: StagedLayer, parent: str | None, kept: Path | None = None) -> tuple[Layer, bool]:
        """The second half, under the store lock and in the stack's order (the ChainID needs the
        parent's): the staged folder renamed into the driver's root, then named by its ChainID
        (`_record`, the commit point), or dropped for the layer that has that ChainID already.
        `kept`: the tar, on this filesystem, to keep beside a layer that cannot give it back.

        A crash before the rename leaves the scratch folder (removed at the next start), after
        it a driver folder that no record names (`clean` removes it)."""
        try:
            self._check_parent(parent)
            if self.exists(next_chain_id(parent, staged.diff_id)):
                fstree.remove_quietly(staged.path)
                return self.get(next_chain_id(parent, staged.diff_id)), False
            cache_id = secrets.token_hex(32)
            layer_dir = self.layout.layer_dir(cache_id)
            layer_dir.parent.mkdir(mode=folder_mode(), parents=True, exist_ok=True)
            os.rename(staged.path, layer_dir)
        except BaseException:
            fstree.remove_quietly(staged.path)
            raise
        return self._record(cache_id, parent, staged.diff_id, staged.size, kept)

    def _check_parent(self, parent: str | None) -> None:
        if parent:
            if not self.exists(parent):
                raise LayerNotFound(f"layer does not exist: {parent}")
            if self.depth(parent) >= MAX_DEPTH:
                raise LayerError("max depth exceeded")

    def _record(
        self, cache_id: str, parent: str | None, diff_id: str, size: int, kept: Path | BinaryIO | None
    ) -> tuple[Layer, bool]:
        """Name the filled driver folder `cache_id` by its ChainID (the commit point), or drop
        it for the layer that already has that ChainID."""
        layer_dir = self.layout.layer_dir(cache_id)
        chain_id = next_chain_id(parent, diff_id)
        existing = self._read(chain_id)
        if existing is not None:
            fstree.remove_quietly(layer_dir)
            return existing, False
        files: dict[str, bytes | str | Path | BinaryIO] = {"diff": diff_id, "size": str(size), "cache-id": cache_id}
        if parent:
            files["parent"] = parent
        if kept is not None:
            files[KEPT_TAR] = kept
        try:
            write_dir_atomically(self.layout.layer_meta(chain_id), files, tmp_parent=self.tmp_dir)
        except BaseException:
            fstree.remove_quietly(layer_dir)
            raise
        return Layer(chain_id, diff_id, parent, cache_id, size), True

    @staticmethod
    def _reproduces(diff_dir: Path, diff_id: str, source_headers: str | None) -> bool:
        """Whether the extracted layer gives its tar back byte for byte."""
        if source_headers is not None and archive.headers_digest(diff_dir) == source_headers:
            return True  # the same headers, and every file holds the bytes the tar gave it
        return archive.write_layer_tar(diff_dir).diff_id == diff_id

    def register_dir(self, src_dir: str | os.PathLike[str], parent: str | None = None) -> tuple[Layer, bool]:
        """Register the contents of a directory as a layer whose DiffID is its Go-compatible tar's.

        The tree is copied straight into the store while its tar is hashed (layercopy): no tar
        is written. The copy must give the same tar back (the same headers: it holds the bytes
        that were hashed): proven entry by entry as it is made, or else by a walk of the copy
        (`headers_digest`); where it cannot (a sparse file, owners a non-root store cannot set,
        xattrs the store's filesystem drops), the tar is written and kept, as for a foreign tar.
        """
        self._check_parent(parent)
        cache_id = secrets.token_hex(32)
        layer_dir = self.layout.layer_dir(cache_id)
        try:
            layer_dir.parent.mkdir(mode=folder_mode(), parents=True, exist_ok=True)
            os.mkdir(layer_dir, folder_mode())
            try:
                copied = layercopy.copy_layer_dir(src_dir, layer_dir / "diff", self.encoding)
                faithful = (
                    self.exists(next_chain_id(parent, copied.diff_id))  # _record drops this copy
                    or copied.proven  # each entry was read back as its header says
                    or archive.headers_digest(layer_dir / "diff") == copied.headers
                )
            except layercopy.NotCopyable:
                faithful = False
            if not faithful:
                fstree.remove_quietly(layer_dir)
                return self._register_dir_via_tar(src_dir, parent)
        except BaseException as exc:
            fstree.remove_quietly(layer_dir)
            if isinstance(exc, OSError) and exc.errno in DISK_ERRNOS:
                raise LayerError(f"failed to register layer: {archive.os_error_text(exc)}") from None
            raise
        return self._record(cache_id, parent, copied.diff_id, copied.size, None)

    def _register_dir_via_tar(self, src_dir: str | os.PathLike[str], parent: str | None) -> tuple[Layer, bool]:
        """The layer tar written to a spool and applied: kept when the layer cannot give it back."""
        fd, spool = tempfile.mkstemp(prefix=".tmp-", suffix=".tar", dir=self.tmp_dir)
        try:
            with os.fdopen(fd, "w+b") as out:
                try:
                    written = archive.write_layer_tar(src_dir, out)
                except OSError as exc:
                    raise LayerError(f"failed to register layer: {archive.os_error_text(exc)}") from None
                out.seek(0)
                return self.register(out, parent, written.diff_id, written.headers)
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
                os.chmod(tmp, folder_mode())
                os.rename(tmp, root / name)
                made[-1] = root / name
            files = {"mount-id": mount_id, "init-id": init_id}
            if parent:
                files["parent"] = parent
            write_dir_atomically(self.layout.mount_meta(container_id), files, tmp_parent=self.tmp_dir)
        except BaseException:
            for p in made:
                fstree.remove_quietly(p)
            raise
        return MountLayer(container_id, mount_id, init_id, parent)

    def release_rw_layer(self, container_id: str) -> list[Layer]:
        m = self.get_mount(container_id)
        remove_dir_atomically(self.layout.mount_meta(container_id))  # the commit point
        for name in (m.mount_id, m.init_id):
            self._remove_layer_dir(name)
        return self.release(m.parent)

    # ---- crash leftovers ----------------------------------------------------------------

    def clean(self) -> list[str]:
        """Remove what a crash left behind: temporary files and layer directories no record names.

        Never raises: what cannot be removed now (a mount inside, a full disk) is left for the
        next run, and the store stays usable.
        """
        removed: list[str] = []
        for d in (
            self.layout.layerdb / "tmp",
            self.layout.layerdb / "sha256",
            self.layout.layerdb / "mounts",
            self.layout.driver_root,
        ):
            try:
                names = os.listdir(d)
            except OSError:
                continue
            for name in names:
                if is_tmp(name) or d.name == "tmp":
                    if fstree.remove_quietly(d / name) is None:
                        removed.append(str(d / name))
        try:
            known = {layer.cache_id for layer in self.layers()}
            for m in self.mounts():
                known.update((m.mount_id, m.init_id))
        except OSError:
            return removed
        for name in listdir(self.layout.driver_root):
            if name not in known:
                if fstree.remove_quietly(self.layout.driver_root / name) is None:
                    removed.append(str(self.layout.driver_root / name))
        return removed
