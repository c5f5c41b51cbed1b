"""Helpers for the pull/push/save/load tests: build small images in a store, snapshot a store."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from imagegraph.digest import go_json
from imagegraph.distribution.localstore import LocalStore
from imagegraph.reference import parse_normalized_named


def build_image(
    store: LocalStore, workdir: Path, layers: list[dict[str, str]], tag: str | None = None, history: bool = True
) -> str:
    """Register each {path: content} dict as a layer on the previous one; create and tag the image."""
    parent = None
    diff_ids = []
    for i, files in enumerate(layers):
        src = workdir / f"layer-src-{len(list(workdir.iterdir()))}-{i}"
        src.mkdir(parents=True)
        for rel, content in files.items():
            p = src / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(content)
        layer, _ = store.layers.register_dir(src, parent)
        parent = layer.chain_id
        diff_ids.append(layer.diff_id)
    config: dict[str, Any] = {
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-01-02T03:04:05Z",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }
    if history:
        config["history"] = [
            {"created": "2024-01-02T03:04:05Z", "created_by": f"step {i}"} for i in range(len(diff_ids))
        ]
    image_id = store.images.create(go_json(config))
    if tag:
        store.refs.add_tag(parse_normalized_named(tag), image_id)
    return image_id


def snapshot(root: Path) -> dict[str, bytes | str]:
    """Every file and symlink under the store (lock and scratch space left out)."""
    out: dict[str, bytes | str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        dirnames[:] = [
            d for d in dirnames if not d.startswith(".tmp-") and not (rel_dir.endswith("layerdb") and d == "tmp")
        ]
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            if name == ".lock":
                continue
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, root)
            out[rel] = ("->" + os.readlink(p)) if os.path.islink(p) else open(p, "rb").read()
        for d in dirnames:
            out.setdefault(os.path.relpath(os.path.join(dirpath, d), root) + "/", "dir")
    return out
