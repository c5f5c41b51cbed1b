"""Read a student's imagegraph store from disk, in Docker's layout (/var/lib/docker/image/<driver>/).

The checks read the files themselves rather than asking `imagegraph`: what is checked is the
state on disk, and the layout is Docker's documented one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from unionfs.options import parse_options, validate
from unionfs.super import Super
from unionfs.union import Union

if TYPE_CHECKING:
    from . import Checker

DRIVER = "layerfs"
# What `create` writes into a container's init layer (Docker's initlayer and the container's /etc files).
INIT_FILES = ["/.dockerenv", "/etc/hostname", "/etc/hosts", "/etc/resolv.conf"]


def sha_hex(digest: str) -> str:
    return digest.split(":", 1)[1] if ":" in digest else digest


def read_file(path: str) -> str | None:
    """A small file's text, stripped; None when it cannot be read."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().strip()
    except OSError:
        return None


@dataclass
class Store:
    root: str

    @classmethod
    def find(cls, folder: str) -> Store | None:
        """The lab's store: `store/` in the lab folder, else $IMAGEGRAPH_ROOT."""
        for candidate in (os.path.join(folder, "store"), os.environ.get("IMAGEGRAPH_ROOT", "")):
            if candidate and os.path.isdir(os.path.join(candidate, "image", DRIVER)):
                return cls(candidate)
        return None

    @property
    def image_dir(self) -> str:
        return os.path.join(self.root, "image", DRIVER)

    def tags(self) -> dict[str, str]:
        """'name:tag' -> image ID, from repositories.json."""
        text = read_file(os.path.join(self.image_dir, "repositories.json")) or "{}"
        out: dict[str, str] = {}
        for refs in json.loads(text).get("Repositories", {}).values():
            out.update(refs)
        return out

    def image_id(self, name: str) -> str | None:
        return self.tags().get(name if ":" in name else name + ":latest")

    def config(self, image_id: str) -> dict:
        text = read_file(os.path.join(self.image_dir, "imagedb", "content", "sha256", sha_hex(image_id)))
        return json.loads(text) if text else {}

    def parent(self, image_id: str) -> str | None:
        return read_file(os.path.join(self.image_dir, "imagedb", "metadata", "sha256", sha_hex(image_id), "parent"))

    def layer_ids(self) -> list[str]:
        """Chain IDs of the layers in layerdb."""
        folder = os.path.join(self.image_dir, "layerdb", "sha256")
        try:
            return sorted(n for n in os.listdir(folder) if len(n) == 64)
        except OSError:
            return []

    def diff_dirs(self, image_id: str) -> list[str]:
        """The layer directories of an image, bottom first (follows layerdb by chain ID)."""
        dirs = []
        for chain in self.chain_ids(self.config(image_id).get("rootfs", {}).get("diff_ids", [])):
            cache = read_file(os.path.join(self.image_dir, "layerdb", "sha256", sha_hex(chain), "cache-id"))
            dirs.append(os.path.join(self.root, DRIVER, cache or "?", "diff"))
        return dirs

    @staticmethod
    def chain_ids(diff_ids: list[str]) -> list[str]:
        import hashlib

        chain: list[str] = []
        for diff in diff_ids:
            if not chain:
                chain.append(diff)
            else:
                chain.append("sha256:" + hashlib.sha256(f"{chain[-1]} {diff}".encode()).hexdigest())
        return chain

    def union(self, image_id: str, extra_top: Sequence[str] = ()) -> Union:
        """The image's merged rootfs (plus optional upper dirs on top), observed read-only."""
        dirs = list(extra_top) + list(reversed(self.diff_dirs(image_id)))
        # Store layers come from layer tars: either encoding may be on disk (`.wh.` files in a
        # store written with --whiteouts aufs), so `.wh.` names are read as marks here.
        return Union(Super.observe(validate(parse_options("lowerdir=" + ":".join(dirs) + ",whiteout=aufs"))))

    def containers(self) -> list[dict]:
        folder = os.path.join(self.root, "containers")
        out = []
        for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
            text = read_file(os.path.join(folder, name, "config.v2.json"))
            if text:
                out.append(json.loads(text))
        return out


def store_or_problem(c: Checker, folder: str, how: str) -> Store | None:
    """The store of the lab's (or an exercise's) folder; if there is none, a problem that says
    `how` it is made."""
    store = Store.find(folder)
    if store is None:
        c.problem(f"store/ is missing (or has no image/layerfs): {how}")
    return store


def container_named(store: Store, name: str) -> dict | None:
    for config in store.containers():
        if config.get("Name", "").lstrip("/") == name:
            return config
    return None


def container_dirs(store: Store, container_id: str) -> tuple[str, str] | None:
    """(init layer dir, top layer dir) of a container, from layerdb/mounts/<id>/ as Docker keeps it."""
    mounts = os.path.join(store.image_dir, "layerdb", "mounts", container_id)
    init_id, mount_id = read_file(os.path.join(mounts, "init-id")), read_file(os.path.join(mounts, "mount-id"))
    if not init_id or not mount_id:
        return None
    return (os.path.join(store.root, DRIVER, init_id, "diff"), os.path.join(store.root, DRIVER, mount_id, "diff"))
