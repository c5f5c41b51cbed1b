"""imagedb: image configs stored by content, their parents and children (moby image/store.go, fs.go).

An image's ID is the sha256 of its config bytes, checked again on every read. The parent is
store metadata (`metadata/sha256/<id>/parent`), never part of the config: commit sets it, pull
and load leave it empty, which is why `history` shows `<missing>` (spec §3.2).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from .digest import chain_id as compute_chain_id
from .digest import image_id as compute_image_id
from .layerstore import Layer, LayerStore
from .store import Layout, atomic_write, hex_of, listdir, read_text, remove_dir_atomically

_HEX = set("0123456789abcdef")


class ImageError(Exception):
    """An image store failure; str() is Docker's text where Docker has one."""


class ImageNotFound(ImageError):
    pass


class AmbiguousImage(ImageError):
    pass


@dataclass(frozen=True)
class Image:
    id: str  # "sha256:<hex>"
    raw: bytes
    parent: str | None

    @cached_property
    def config(self) -> dict[str, Any]:
        return json.loads(self.raw)

    @property
    def diff_ids(self) -> list[str]:
        return list((self.config.get("rootfs") or {}).get("diff_ids") or [])

    @property
    def top_chain_id(self) -> str:
        return compute_chain_id(self.diff_ids)

    @property
    def created(self) -> str:
        return self.config.get("created") or ""

    @property
    def created_ts(self) -> float:
        return parse_time(self.created)

    @property
    def history(self) -> list[dict[str, Any]]:
        return list(self.config.get("history") or [])

    @property
    def container_config(self) -> dict[str, Any]:
        return self.config.get("config") or {}


def parse_time(s: str) -> float:
    """RFC 3339 (with Go's nanoseconds) to a Unix timestamp; 0 for none."""
    if not s:
        return 0.0
    s = s.strip()
    frac = 0.0
    if "." in s:
        head, rest = s.split(".", 1)
        digits = "".join(c for c in rest if c.isdigit())
        tz = rest[len(digits) :]
        frac = float("0." + digits) if digits else 0.0
        s = head + tz
    s = s.replace("Z", "+00:00")
    try:
        return datetime.fromisoformat(s).timestamp() + frac
    except ValueError:
        return 0.0


def format_time(ts: float) -> str:
    """Go's time.RFC3339Nano in UTC, as Docker writes `created`: trailing zeros dropped."""
    whole = int(ts // 1)
    nanos = round((ts - whole) * 1e9)
    if nanos >= 1_000_000_000:
        whole, nanos = whole + 1, nanos - 1_000_000_000
    base = datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    frac = f".{nanos:09d}".rstrip("0") if nanos else ""
    return f"{base}{frac}Z"


def normalize_id(s: str) -> str:
    return "sha256:" + hex_of(s)


class ImageStore:
    def __init__(self, layout: Layout, layers: LayerStore) -> None:
        self.layout = layout
        self.layers = layers
        self._tops: dict[str, str] = {}  # image ID → top ChainID (content-addressed: never stale)

    # ---- reading ----------------------------------------------------------------------

    def ids(self) -> list[str]:
        return ["sha256:" + h for h in listdir(self.layout.imagedb / "content" / "sha256")]

    def exists(self, image_id: str) -> bool:
        return self.layout.image_content(image_id).is_file()

    def get(self, image_id: str) -> Image:
        image_id = normalize_id(image_id)
        try:
            raw = self.layout.image_content(image_id).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            raise ImageNotFound(f"No such image: {image_id}") from None
        if compute_image_id(raw) != image_id:
            raise ImageError(f"failed to verify: image {image_id} does not match its content")
        return Image(image_id, raw, self.get_parent(image_id))

    def images(self) -> list[Image]:
        out = []
        for i in self.ids():
            try:
                out.append(self.get(i))
            except ImageError:
                continue  # a damaged record is skipped, not fatal
        return out

    def search(self, prefix: str) -> str:
        """Full ID from an unambiguous prefix, with or without `sha256:` (go-digest digestset)."""
        p = prefix[len("sha256:") :] if prefix.startswith("sha256:") else prefix
        if not p or not set(p) <= _HEX:
            raise ImageNotFound(f"No such image: {prefix}")
        found = [i for i in self.ids() if hex_of(i).startswith(p)]
        if not found:
            raise ImageNotFound(f"No such image: {prefix}")
        if len(found) > 1:
            raise AmbiguousImage("ambiguous digest string")
        return found[0]

    def get_parent(self, image_id: str) -> str | None:
        return read_text(self.layout.image_metadata(image_id) / "parent") or None

    def parents(self) -> dict[str, str | None]:
        """Every image's parent, each read once: a listing asks `children` of every image, and
        `children` alone reads every image's parent (200 images: 40,000 reads)."""
        return {i: self.get_parent(i) for i in self.ids()}

    def children(self, image_id: str) -> list[str]:
        image_id = normalize_id(image_id)
        return [i for i, parent in self.parents().items() if parent == image_id]

    def heads(self) -> list[str]:
        """Images with no children."""
        parents = self.parents()
        held = set(parents.values())
        return [i for i in parents if i not in held]

    def top_chain_ids(self) -> list[str]:
        """The top ChainID of every image (the layer store's reference counts ask at each
        release). An ID names its config's content, so its top ChainID never changes: each
        is computed once per store object, and only the listing is read again."""
        out = []
        for image_id in self.ids():
            top = self._tops.get(image_id)
            if top is None:
                try:
                    top = self.get(image_id).top_chain_id
                except ImageError:
                    continue  # a damaged record is skipped, as images() does
                self._tops[image_id] = top
            if top:
                out.append(top)
        return out

    def top_layer(self, image: Image) -> Layer | None:
        top = image.top_chain_id
        return self.layers.get(top) if top else None

    def size(self, image: Image, known: dict[str, int] | None = None) -> int:
        """moby's image Size: its top layer and every ancestor. `known` (ChainID → total size)
        is shared across a listing, so images on the same base read its layers once."""
        known = {} if known is None else known
        top = image.top_chain_id or None
        walked: list[Layer] = []
        chain = top
        while chain and chain not in known:  # a loop, not recursion: chains are bounded (125) anyway
            layer = self.layers.get(chain)
            walked.append(layer)
            chain = layer.parent
        total = known[chain] if chain else 0
        for layer in reversed(walked):
            total += layer.size
            known[layer.chain_id] = total
        return known[top] if top else 0

    def last_updated(self, image_id: str) -> str | None:
        return read_text(self.layout.image_metadata(image_id) / "lastUpdated")

    # ---- writing -------------------------------------------------------------------------

    def create(self, config_bytes: bytes) -> str:
        """Store a config; its layers must be registered already. An existing ID is a no-op."""
        try:
            config = json.loads(config_bytes)
        except ValueError as exc:
            raise ImageError(f"invalid image JSON: {exc}") from None
        if not isinstance(config, dict) or not isinstance(config.get("rootfs"), dict):
            raise ImageError("invalid image JSON, no RootFS key")
        diff_ids = config["rootfs"].get("diff_ids") or []
        layered = sum(1 for h in config.get("history") or [] if not h.get("empty_layer"))
        if layered > len(diff_ids):
            raise ImageError("too many non-empty layers in History section")
        top = compute_chain_id(diff_ids)
        if top and not self.layers.exists(top):
            raise ImageError(f"failed to get layer {top}: layer does not exist")
        image_id = compute_image_id(config_bytes)
        path = self.layout.image_content(image_id)
        if not path.exists():
            atomic_write(path, config_bytes, 0o600)
        return image_id

    def set_parent(self, image_id: str, parent_id: str) -> None:
        if not self.exists(parent_id):
            raise ImageNotFound(f"No such image: {parent_id}")
        atomic_write(self.layout.image_metadata(image_id) / "parent", normalize_id(parent_id))

    def set_last_updated(self, image_id: str, ts: float | None = None) -> None:
        atomic_write(
            self.layout.image_metadata(image_id) / "lastUpdated", format_time(time.time() if ts is None else ts)
        )

    def set_built_locally(self, image_id: str) -> None:
        atomic_write(self.layout.image_metadata(image_id) / "builtLocally", "1")

    def built_locally(self, image_id: str) -> bool:
        """Made here by commit or build (the build cache only reuses such images)."""
        return read_text(self.layout.image_metadata(image_id) / "builtLocally") == "1"

    def clean(self) -> list[str]:
        """Remove the metadata of images whose config is gone: a delete killed between its
        commit point (the config's unlink) and the metadata's removal. Call with the store lock
        held (every writer takes it), so no image is half made meanwhile."""
        removed = []
        for name in listdir(self.layout.imagedb / "metadata" / "sha256"):
            image_id = "sha256:" + name
            if not self.layout.image_content(image_id).exists():
                remove_dir_atomically(self.layout.image_metadata(image_id))
                removed.append(image_id)
        return removed

    def delete(self, image_id: str) -> list[Layer]:
        """Remove config and metadata, unlink children from it, release its top layer."""
        image = self.get(image_id)
        for child in self.children(image.id):
            (self.layout.image_metadata(child) / "parent").unlink(missing_ok=True)
        path = self.layout.image_content(image.id)
        path.unlink(missing_ok=True)  # the commit point
        remove_dir_atomically(self.layout.image_metadata(image.id))
        return self.layers.release(image.top_chain_id or None)
