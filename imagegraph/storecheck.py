"""A store consistency check: what a crash, a lying image or a bug must never leave behind.

`check_store(root)` reads the store (it changes nothing) and returns one line per problem:

- a layer record that is incomplete, whose ChainID does not follow from its parent and DiffID,
  whose parent is missing, or whose driver folder is gone;
- an image whose config does not hash to its ID, or whose layers are not all stored;
- an image parent link, tag or digest reference that points at no image;
- a container without its config, its RW layers or their folders;
- a driver folder no layer or container names (an orphan);
- a temporary file or folder anywhere (they are crash leftovers, which the next command removes).

The tests run it after every kill -9 and every refusal; it is reusable by anything that
changes a store.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .digest import chain_ids, sha256_digest
from .layerstore import next_chain_id
from .store import Layout, abandoned_scratch, is_tmp, temporary_leftovers


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except (FileNotFoundError, NotADirectoryError):
        return None


def _names(path: Path) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except (FileNotFoundError, NotADirectoryError):
        return []


def check_store(root: str | os.PathLike[str]) -> list[str]:
    """Problems found in the store at `root`, one line each; [] for a consistent store."""
    layout = Layout(Path(root))
    problems: list[str] = []
    layers: dict[str, tuple[str, str | None, str]] = {}  # chain -> (diff, parent, cache)
    for name in _names(layout.layerdb / "sha256"):
        if is_tmp(name):
            continue
        d = layout.layerdb / "sha256" / name
        diff, cache, parent = _read(d / "diff"), _read(d / "cache-id"), _read(d / "parent")
        size = _read(d / "size")
        if not diff or not cache or size is None:
            problems.append(f"layer sha256:{name}: incomplete record")
            continue
        chain = "sha256:" + name
        if next_chain_id(parent or None, diff) != chain:
            problems.append(f"layer {chain}: ChainID does not follow from its parent and DiffID")
        layers[chain] = (diff, parent or None, cache)
    for chain, (_, parent, cache) in layers.items():
        if parent and parent not in layers:
            problems.append(f"layer {chain}: parent {parent} is missing")
        if not (layout.layer_dir(cache) / "diff").is_dir():
            problems.append(f"layer {chain}: folder {layout.layer_dir(cache)} is missing")

    images: set[str] = set()
    for name in _names(layout.imagedb / "content" / "sha256"):
        if is_tmp(name):
            continue
        image_id = "sha256:" + name
        images.add(image_id)
        try:
            raw = (layout.imagedb / "content" / "sha256" / name).read_bytes()
        except OSError as exc:
            problems.append(f"image {image_id}: unreadable: {exc.strerror}")
            continue
        if sha256_digest(raw) != image_id:
            problems.append(f"image {image_id}: config does not hash to its ID")
            continue
        try:
            diff_ids = list((json.loads(raw).get("rootfs") or {}).get("diff_ids") or [])
        except (ValueError, AttributeError, RecursionError):
            problems.append(f"image {image_id}: config is not JSON")
            continue
        for chain in chain_ids(diff_ids):
            if chain not in layers:
                problems.append(f"image {image_id}: layer {chain} is missing")
                break
    for name in _names(layout.imagedb / "metadata" / "sha256"):
        if is_tmp(name):
            continue
        image_id = "sha256:" + name
        if image_id not in images:
            problems.append(f"image metadata {image_id}: no such image")
        parent = _read(layout.image_metadata(image_id) / "parent")
        if parent and parent not in images:
            problems.append(f"image {image_id}: parent {parent} is missing")

    try:
        repos = json.loads(layout.repositories_json.read_bytes() or b"{}").get("Repositories") or {}
    except FileNotFoundError:
        repos = {}
    except (ValueError, AttributeError) as exc:
        problems.append(f"repositories.json: {exc}")
        repos = {}
    for refs in repos.values():
        for ref, image_id in refs.items():
            if image_id not in images:
                problems.append(f"reference {ref}: image {image_id} is missing (a dangling tag)")

    known_dirs = {cache for _, _, cache in layers.values()}
    mounts: set[str] = set()
    for cid in _names(layout.layerdb / "mounts"):
        if is_tmp(cid):
            continue
        d = layout.mount_meta(cid)
        mount_id, init_id, parent = _read(d / "mount-id"), _read(d / "init-id"), _read(d / "parent")
        if not mount_id or not init_id:
            problems.append(f"container {cid}: incomplete RW layer record")
            continue
        mounts.add(cid)
        known_dirs.update((mount_id, init_id))
        for name in (mount_id, init_id):
            if not (layout.layer_dir(name) / "diff").is_dir():
                problems.append(f"container {cid}: folder {layout.layer_dir(name)} is missing")
        if parent and parent not in layers:
            problems.append(f"container {cid}: image layer {parent} is missing")
    for cid in _names(layout.containers):
        if is_tmp(cid):
            continue
        if not (layout.container_dir(cid) / "config.v2.json").is_file():
            problems.append(f"container {cid}: no config.v2.json")
        elif cid not in mounts:
            problems.append(f"container {cid}: no RW layer")
    for cid in mounts:
        if not (layout.container_dir(cid) / "config.v2.json").is_file():
            problems.append(f"RW layer of {cid}: no such container")

    for name in _names(layout.driver_root):
        if not is_tmp(name) and name not in known_dirs:
            problems.append(f"orphan folder {layout.driver_root / name}")
    problems += [f"temporary leftover {p}" for p in temporary_leftovers(layout)]
    problems += [f"abandoned scratch folder {p}" for p in abandoned_scratch(layout)]
    return problems


__all__ = ["check_store", "temporary_leftovers"]
