"""The slice of the local store that pull, push, save and load need, wired together.

The wiring itself is `Services.wire`'s, so the two cannot drift apart.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from ..imagestore import ImageStore
from ..layerstore import LayerStore
from ..refstore import RefStore
from ..service import Services
from ..store import Layout, StoreLock, scratch_dir
from .metadata import V2MetadataStore


@dataclass
class LocalStore:
    layout: Layout
    layers: LayerStore
    images: ImageStore
    refs: RefStore
    v2meta: V2MetadataStore
    lock: StoreLock

    @property
    def tmp_dir(self) -> Path:
        """Scratch space inside the store (same filesystem, so renames are atomic)."""
        return self.layers.tmp_dir

    def scratch(self, prefix: str = "scratch-") -> AbstractContextManager[Path]:
        """A folder for downloads and uploads in flight, outside the store lock (`store.scratch_dir`)."""
        return scratch_dir(self.layout, self.lock, prefix)


def local_store(svc: Services) -> LocalStore:
    """The stores of `svc`, with the same lock (so a command's lock and the store's are one)."""
    return LocalStore(svc.layout, svc.layers, svc.images, svc.refs, V2MetadataStore(svc.layout), svc.lock)


def open_local_store(root: Path, encoding: str | None = None) -> LocalStore:
    """`encoding`: the on-disk whiteout encoding for new layers (overlay or aufs; default the store's).

    The stores are wired as `Services.wire` wires them (no lock taken, nothing cleaned here)."""
    return local_store(Services.wire(root, encoding))
