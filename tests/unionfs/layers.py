"""Building layer directories for tests, in either whiteout encoding."""

from __future__ import annotations

import os
import random
import stat
from dataclasses import dataclass
from pathlib import Path

from unionfs.union import Union

WHITEOUT = object()  # a whiteout in the layer's encoding
OPAQUE = ".opaque"  # key inside a dir spec: make that dir opaque


@dataclass
class Symlink:
    target: str


def build_layer(root: Path, spec: dict, encoding: str) -> None:
    """Write `spec` ({name: str content | dict | Symlink | WHITEOUT}) under `root`."""
    root.mkdir(parents=True, exist_ok=True)
    for name, value in spec.items():
        if name == OPAQUE:
            if encoding == "aufs":
                (root / ".wh..wh..opq").touch()
            else:
                os.setxattr(root, "trusted.overlay.opaque", b"y")
            continue
        path = root / name
        if value is WHITEOUT:
            if encoding == "aufs":
                (root / f".wh.{name}").touch()
            else:
                os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(0, 0))
        elif isinstance(value, dict):
            build_layer(path, value, encoding)
        elif isinstance(value, Symlink):
            path.symlink_to(value.target)
        else:
            path.write_text(value)


def random_dir(rng: random.Random, layer: int, names: str, kinds: list[str], common: bool = False) -> dict:
    """One layer's spec of a directory of `names`, each a kind drawn from `kinds`: "absent",
    "file", "link", "whiteout", "dir" or "opaque" (a directory that hides those below; with
    `common`, every directory also holds a file named so, with the layer's number)."""
    d: dict = {}
    for name in names:
        kind = rng.choice(kinds)
        if kind == "file":
            d[name] = f"{name}{layer}"
        elif kind == "link":
            d[name] = Symlink(f"to{layer}")
        elif kind == "whiteout":
            d[name] = WHITEOUT
        elif kind in ("dir", "opaque"):
            d[name] = {f"{name}{layer}": "x", **({"common": str(layer)} if common else {})}
            if kind == "opaque":
                d[name][OPAQUE] = None
    return d


def make_union(
    tmp_path: Path,
    dialect: str,
    lowers: list[dict],
    upper: dict | None = None,
    writable: bool = True,
    tracer=None,
    extra: str = "",
) -> Union:
    """A union over lowers (top first) and an upper, described as the dialect's options say
    (`extra`: more options, comma-separated)."""
    encoding = "aufs" if dialect == "aufs" else "overlay"
    lower_dirs = []
    for i, spec in enumerate(lowers):
        d = tmp_path / f"l{i}"
        build_layer(d, spec, encoding)
        lower_dirs.append(d)
    upper_dir = tmp_path / "upper"
    build_layer(upper_dir, upper or {}, encoding)
    if dialect == "aufs":
        parts = [f"{upper_dir}=rw"] if writable else []
        parts += [f"{d}=ro+wh" for d in lower_dirs]
        options = "br=" + ":".join(parts)
    else:
        (tmp_path / "work").mkdir(exist_ok=True)
        options = "lowerdir=" + ":".join(str(d) for d in lower_dirs)
        if writable:
            options += f",upperdir={upper_dir},workdir={tmp_path / 'work'}"
    return Union.from_options(options + ("," + extra if extra else ""), tracer=tracer)


def upper_names(tmp_path: Path, sub: str = "") -> set[str]:
    return {n for n in os.listdir(tmp_path / "upper" / sub) if n != ".wh..wh.work"}


def is_whiteout(tmp_path: Path, dialect: str, path: str) -> bool:
    """Is there a whiteout for union path `path` in the upper, in the dialect's encoding?"""
    full = tmp_path / "upper" / path.lstrip("/")
    if dialect == "aufs":
        return (full.parent / f".wh.{full.name}").is_file()
    try:
        st = os.lstat(full)
    except FileNotFoundError:
        return False
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def is_opaque(tmp_path: Path, dialect: str, path: str) -> bool:
    full = tmp_path / "upper" / path.lstrip("/")
    if dialect == "aufs":
        return (full / ".wh..wh..opq").exists()
    try:
        return os.getxattr(full, "trusted.overlay.opaque") == b"y"
    except OSError:
        return False
