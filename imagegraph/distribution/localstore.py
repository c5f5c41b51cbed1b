"""The slice of the local store that pull, push, save and load need, wired together.

Kept in one place so that, when the store grows a facade, only this file changes. The layer
store needs to know which ChainIDs images hold (for reference counts); that is the image
store's `top_chain_ids`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..imagestore import ImageStore
from ..layerstore import LayerStore
from ..refstore import RefStore
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


def open_local_store(root: Path, encoding: str | None = None) -> LocalStore:
    """`encoding`: the on-disk whiteout encoding for new layers (overlay or aufs; default the store's)."""
    layout = Layout(Path(root))
    for d in layout.dirs():
        d.mkdir(parents=True, exist_ok=True)
    holder: dict[str, ImageStore] = {}
    layers = LayerStore(layout, encoding, image_tops=lambda: holder["images"].top_chain_ids())
    images = ImageStore(layout, layers)
    holder["images"] = images
    return LocalStore(layout, layers, images, RefStore(layout), V2MetadataStore(layout), StoreLock(layout.lock_file))
