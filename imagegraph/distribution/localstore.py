"""The slice of the local store that pull, push, save and load need, wired together.

The wiring itself is `Services.open`'s, so the two cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..imagestore import ImageStore
from ..layerstore import LayerStore
from ..refstore import RefStore
from ..service import Services
from ..store import Layout, StoreLock
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
        d = self.layout.layerdb / "tmp"
        d.mkdir(parents=True, exist_ok=True)
        return d


def open_local_store(root: Path, encoding: str | None = None, create: bool = True) -> LocalStore:
    """`encoding`: the on-disk whiteout encoding for new layers (overlay or aufs; default the store's).

    The stores are opened as `Services.open` opens them (crash leftovers cleaned); with
    `create` False (save, push) a root that does not exist is an empty store, left unmade."""
    svc = Services.open(root, encoding, create=create)
    return LocalStore(svc.layout, svc.layers, svc.images, svc.refs, V2MetadataStore(svc.layout), svc.lock)
