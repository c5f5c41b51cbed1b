"""Helpers for the build tests: a context folder, the built image's config and files."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from imagegraph.builder.imagecontext import rootfs
from imagegraph.imagestore import Image
from imagegraph.service import Services

MTIME = 1600000000


def context(path: Path, dockerfile: str | None, files: dict[str, str | bytes] | None = None) -> Path:
    """A build context folder; every file and folder dated MTIME, so its tar is always the same."""
    path.mkdir(parents=True, exist_ok=True)
    if dockerfile is not None:
        (path / "Dockerfile").write_text(dockerfile)
    for rel, content in (files or {}).items():
        p = path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_text(content)
    for dirpath, dirnames, filenames in os.walk(path, topdown=False):
        for n in filenames + dirnames:
            os.utime(os.path.join(dirpath, n), (MTIME, MTIME), follow_symlinks=False)
    os.utime(path, (MTIME, MTIME))
    return path


def image(svc: Services, ref: str) -> Image:
    """The image as the store has it now (another Services object may have just tagged it)."""
    svc.refs.reload()
    return svc.get_image(ref)


def image_config(svc: Services, ref: str) -> dict[str, Any]:
    return image(svc, ref).config


def created_by(svc: Services, ref: str) -> list[str]:
    return [h.get("created_by", "") for h in image_config(svc, ref)["history"]]


def read(svc: Services, ref: str, path: str) -> bytes:
    """A file of the built image, read from the union of its layers."""
    return rootfs(svc, image(svc, ref)).read_file(path)


def stat(svc: Services, ref: str, path: str):
    return rootfs(svc, image(svc, ref)).getattr(path)


def exists(svc: Services, ref: str, path: str) -> bool:
    return rootfs(svc, image(svc, ref)).exists(path)


def steps(out: str) -> list[str]:
    """The build's output without the lines that carry IDs."""
    return [line for line in out.splitlines() if not line.startswith((" ---> ", "Successfully built"))]
