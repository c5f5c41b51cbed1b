"""Mount options into a union description.

Two dialects, chosen by the options given, as the seed and the kernel write them:
- aufs: ``dirs=./fruits:./vegetables`` or ``br=``/``br:``, each branch ``path[=rw|ro|rr|ro+wh|rr+wh]``;
  the first branch without a mode is rw, the others ro.
- overlay: ``lowerdir=L1:L2`` (leftmost is the top), ``upperdir=``, ``workdir=``, and our
  ``initdir=`` (an extra read-only layer between the upper and the lowers).

Every problem is an ``OptionError`` whose text is one line for the user.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

from .params import Features, ParamError, check_param, features


class OptionError(ValueError):
    """A union description that cannot be mounted; the message is one line."""


class Role(StrEnum):
    UPPER = "upper"
    INIT = "init"
    LOWER = "lower"


class Dialect(StrEnum):
    AUFS = "aufs"
    OVERLAY = "overlay"


class Encoding(StrEnum):
    """How whiteouts and opaque directories are written."""

    AUFS = "aufs"  # .wh.NAME files and .wh..wh..opq
    OVERLAY = "overlay"  # char device 0/0 and the overlay.opaque xattr


@dataclass(frozen=True)
class BranchSpec:
    """One layer directory as described by the options."""

    path: str  # absolute, symlinks resolved
    role: Role
    label: str  # what provenance shows; the path as the user wrote it by default
    whiteouts: bool = True  # aufs `ro` branches do not look for whiteouts (aufs(5) "ro")


@dataclass(frozen=True)
class UnionSpec:
    """A union, described: its stack (top first), work directory and what it writes."""

    dialect: Dialect
    branches: tuple[BranchSpec, ...]
    workdir: str | None
    encoding: Encoding
    readonly: bool
    flags: frozenset[str] = frozenset()
    values: tuple[tuple[str, str], ...] = ()
    features: Features = field(default_factory=Features)

    @property
    def upper(self) -> BranchSpec | None:
        return next((b for b in self.branches if b.role is Role.UPPER), None)

    def value(self, key: str, default: str | None = None) -> str | None:
        return dict(self.values).get(key, default)


def _split(text: str, separators: str, keep_escapes: bool) -> list[str]:
    """Split on any of `separators`, a backslash escaping the next character."""
    parts: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            current.append(text[i : i + 2] if keep_escapes else text[i + 1])
            i += 2
            continue
        if ch == '"' and keep_escapes:
            # A quoted value (SELinux's context="u:r:t:s0:c1,c2") keeps its commas.
            end = text.find('"', i + 1)
            end = len(text) - 1 if end < 0 else end
            current.append(text[i : end + 1])
            i = end + 1
            continue
        if ch in separators:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    parts.append("".join(current))
    return parts


def split_escaped(text: str, separators: str) -> list[str]:
    """Split on any of `separators`, honouring backslash escapes as OverlayFS does (``\\:``, ``\\,``)."""
    return _split(text, separators, keep_escapes=False)


def split_option_string(options: str) -> list[str]:
    """``a=1,b,c=x\\,y`` into ``["a=1", "b", "c=x\\,y"]`` (escapes kept for the value parser)."""
    return [item for item in _split(options, ",", keep_escapes=True) if item]


_AUFS_MODES = {
    "rw": (True, True),
    "ro": (False, False),
    "rr": (False, False),
    "ro+wh": (False, True),
    "rr+wh": (False, True),
    "rw+nolwh": (True, True),
}


def _absolute(path: str, cwd: str) -> str:
    return os.path.normpath(os.path.join(cwd, os.path.expanduser(path)))


def _parse_aufs_branches(value: str, readonly: bool, cwd: str) -> list[BranchSpec]:
    branches: list[BranchSpec] = []
    for index, item in enumerate(split_escaped(value, ":")):
        if not item:
            raise OptionError(f"empty branch in '{value}'")
        path, sep, mode = item.rpartition("=")
        if not sep:
            path, mode = item, ("rw" if index == 0 and not readonly else "ro")
        if mode not in _AUFS_MODES:
            raise OptionError(f"unknown branch mode '{mode}' for {path} (use rw, ro, rr or ro+wh)")
        writable, whiteouts = _AUFS_MODES[mode]
        if writable and readonly:
            writable = False
        role = Role.UPPER if writable else Role.LOWER
        branches.append(BranchSpec(_absolute(path, cwd), role, path, whiteouts or writable))
    if sum(b.role is Role.UPPER for b in branches) > 1:
        raise OptionError("only one branch may be writable (rw)")
    if branches and branches[0].role is not Role.UPPER and any(b.role is Role.UPPER for b in branches):
        raise OptionError("the writable branch must be the first (top) branch")
    return branches


def parse_options(option_strings: Sequence[str] | str, cwd: str | None = None) -> UnionSpec:
    """Parse one or more ``-o`` strings into a UnionSpec; paths are checked later, by `validate`."""
    if isinstance(option_strings, str):
        option_strings = [option_strings]
    cwd = cwd or os.getcwd()
    items: list[str] = []
    for text in option_strings:
        items.extend(split_option_string(text))

    flags: set[str] = set()
    values: dict[str, str] = {}
    aufs_branches: str | None = None
    overlay: dict[str, str] = {}
    for item in items:
        if item.startswith("br:"):
            key, value = "br", item[3:]
        else:
            key, sep, value = item.partition("=")
            if not sep:
                value = ""
        if key in ("dirs", "br"):
            if aufs_branches is not None:
                raise OptionError(f"branches given twice ('{key}=')")
            aufs_branches = value
        elif key in ("lowerdir", "upperdir", "workdir", "initdir"):
            if key in overlay:
                raise OptionError(f"'{key}' given twice")
            overlay[key] = value
        else:
            try:
                check_param(key, value if "=" in item else None)
            except ParamError as exc:
                raise OptionError(str(exc)) from None
            if "=" in item:
                values[key] = value  # a later value wins, as in mount(8)
            else:
                flags.add(key)

    readonly = "ro" in flags
    if aufs_branches is not None and overlay:
        raise OptionError("use either dirs=/br= (aufs) or lowerdir=/upperdir= (overlay), not both")
    try:
        union_features = features(frozenset(flags), values, overlay=aufs_branches is None)
    except (ParamError, ValueError) as exc:
        raise OptionError(str(exc)) from None
    encoding_value = values.get("whiteout")

    if aufs_branches is not None:
        branches = _parse_aufs_branches(aufs_branches, readonly, cwd)
        if not branches:
            raise OptionError("no branch given")
        upper = next((b for b in branches if b.role is Role.UPPER), None)
        workdir = os.path.join(upper.path, ".wh..wh.work") if upper else None
        spec = UnionSpec(
            Dialect.AUFS,
            tuple(branches),
            workdir,
            Encoding(encoding_value or "aufs"),
            readonly or upper is None,
            frozenset(flags),
            tuple(sorted(values.items())),
        )
    elif overlay:
        spec = _parse_overlay(overlay, readonly, flags, values, encoding_value, cwd)
    else:
        raise OptionError("no branch given: use dirs=A:B (aufs) or lowerdir=… (overlay)")
    return replace(spec, features=union_features)


def _parse_overlay(
    overlay: dict[str, str],
    readonly: bool,
    flags: set[str],
    values: dict[str, str],
    encoding_value: str | None,
    cwd: str,
) -> UnionSpec:
    if not overlay.get("lowerdir"):
        raise OptionError("missing 'lowerdir'")
    branches: list[BranchSpec] = []
    upper, workdir = overlay.get("upperdir"), overlay.get("workdir")
    if upper and not readonly:
        if not workdir:
            raise OptionError("missing 'workdir'")
        branches.append(BranchSpec(_absolute(upper, cwd), Role.UPPER, upper))
    elif workdir and not upper:
        raise OptionError("missing 'upperdir'")
    if overlay.get("initdir"):
        init = overlay["initdir"]
        branches.append(BranchSpec(_absolute(init, cwd), Role.INIT, init))
    for lower in split_escaped(overlay["lowerdir"], ":"):
        if not lower:
            raise OptionError("empty lowerdir")
        branches.append(BranchSpec(_absolute(lower, cwd), Role.LOWER, lower))
    has_upper = bool(upper) and not readonly
    return UnionSpec(
        Dialect.OVERLAY,
        tuple(branches),
        _absolute(workdir, cwd) if (workdir and has_upper) else None,
        Encoding(encoding_value or "overlay"),
        not has_upper,
        frozenset(flags),
        tuple(sorted(values.items())),
    )


def _inside(child: str, parent: str) -> bool:
    return child == parent or child.startswith(parent.rstrip("/") + "/")


def validate(spec: UnionSpec) -> UnionSpec:
    """Check the described directories on disk; return the spec with real (resolved) paths."""
    resolved: list[BranchSpec] = []
    for branch in spec.branches:
        if not os.path.exists(branch.path):
            raise OptionError(f"{branch.label}: no such directory")
        if not os.path.isdir(branch.path):
            raise OptionError(f"{branch.label}: not a directory")
        resolved.append(BranchSpec(os.path.realpath(branch.path), branch.role, branch.label, branch.whiteouts))
    for i, a in enumerate(resolved):
        for b in resolved[i + 1 :]:
            if _inside(a.path, b.path) or _inside(b.path, a.path):
                raise OptionError(f"branches overlap: {a.label} and {b.label}")
    workdir = spec.workdir
    upper = next((b for b in resolved if b.role is Role.UPPER), None)
    if upper and workdir:
        if spec.dialect is Dialect.OVERLAY:
            if not os.path.isdir(workdir):
                raise OptionError(f"{workdir}: work directory does not exist")
            workdir = os.path.realpath(workdir)
            for branch in resolved:
                if _inside(workdir, branch.path) or _inside(branch.path, workdir):
                    raise OptionError(f"work directory {workdir} overlaps branch {branch.label}")
            if os.stat(workdir).st_dev != os.stat(upper.path).st_dev:
                raise OptionError(f"work directory {workdir} is not on the upper directory's filesystem")
        else:
            workdir = os.path.join(upper.path, ".wh..wh.work")
    return replace(spec, branches=tuple(resolved), workdir=workdir)


def format_options(spec: UnionSpec) -> str:
    """The spec back as one option string (escaping ':' and ','), e.g. for a FUSE fsname."""

    def esc(path: str) -> str:
        return path.replace("\\", "\\\\").replace(":", "\\:").replace(",", "\\,")

    if spec.dialect is Dialect.AUFS:
        parts = []
        for b in spec.branches:
            mode = "rw" if b.role is Role.UPPER else ("ro+wh" if b.whiteouts else "ro")
            parts.append(f"{esc(b.path)}={mode}")
        return "br=" + ":".join(parts)
    out = ["lowerdir=" + ":".join(esc(b.path) for b in spec.branches if b.role is Role.LOWER)]
    for b in spec.branches:
        if b.role is Role.UPPER:
            out.append(f"upperdir={esc(b.path)}")
        if b.role is Role.INIT:
            out.append(f"initdir={esc(b.path)}")
    if spec.workdir and spec.upper:
        out.append(f"workdir={esc(spec.workdir)}")
    if spec.encoding is Encoding.AUFS:
        out.append("whiteout=aufs")  # `.wh.` names are marks here: whoever reopens the union must know
    return ",".join(out)
