"""The one parser of mount options: the layers, the work directory, every other option, and the
checks of the directories on disk, in plain values.

Two dialects, chosen by the options given, as the seed and the kernel write them:
- aufs: ``dirs=./fruits:./vegetables`` or ``br=``/``br:``, each branch ``path[=rw|ro|rr|ro+wh|rr+wh]``;
  the first branch without a mode is rw, the others ro.
- overlay: ``lowerdir=L1:L2`` (leftmost is the top), ``upperdir=``, ``workdir=``, and our
  ``initdir=`` (an extra read-only layer between the upper and the lowers).

Every problem is an ``OptionError`` whose text is one line for the user.

Why plain classes and strings here, not the dataclasses and enums of `options` (which builds
the core's `UnionSpec` from what this module returns): the `layerfs` command parses and checks
the options before it mounts, and containers-storage runs it for every mount. This module
imports only `os` and `params` (the option table), so that path starts no `dataclasses`,
`enum` or `typing` (about 60 ms of CPU on a loaded machine: see bench/README.md).
"""

from __future__ import annotations

import os

from .plan import AUFS, INIT, LOWER, OVERLAY, UPPER, Layer, Parsed

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Protocol

    class BranchLike(Protocol):
        @property
        def path(self) -> str: ...
        @property
        def role(self) -> str: ...
        @property
        def label(self) -> str: ...
        @property
        def whiteouts(self) -> bool: ...

    class UnionLike(Protocol):
        @property
        def dialect(self) -> str: ...
        @property
        def branches(self) -> Sequence[BranchLike]: ...
        @property
        def workdir(self) -> str | None: ...
        @property
        def encoding(self) -> str: ...


AUFS_WORKDIR = ".wh..wh.work"  # the aufs dialect's work directory, inside the writable branch


class OptionError(ValueError):
    """A union description that cannot be mounted; the message is one line."""


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


def _parse_aufs_branches(value: str, readonly: bool, cwd: str) -> list[Layer]:
    branches: list[Layer] = []
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
        branches.append(Layer(_absolute(path, cwd), UPPER if writable else LOWER, path, whiteouts or writable))
    if sum(b.role == UPPER for b in branches) > 1:
        raise OptionError("only one branch may be writable (rw)")
    if branches and branches[0].role != UPPER and any(b.role == UPPER for b in branches):
        raise OptionError("the writable branch must be the first (top) branch")
    return branches


def parse(option_strings: Sequence[str] | str, cwd: str | None = None) -> Parsed:
    """Parse one or more ``-o`` strings; paths are checked later, by `check_dirs`."""
    from .params import ParamError, check_features, check_param  # here: the early daemon needs only Parsed

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
        check_features(values, overlay=aufs_branches is None)
    except ParamError as exc:
        raise OptionError(str(exc)) from None
    encoding = values.get("whiteout")

    if aufs_branches is not None:
        branches = _parse_aufs_branches(aufs_branches, readonly, cwd)
        if not branches:
            raise OptionError("no branch given")
        upper = next((b for b in branches if b.role == UPPER), None)
        workdir = os.path.join(upper.path, AUFS_WORKDIR) if upper else None
        return Parsed(AUFS, branches, workdir, encoding or AUFS, readonly or upper is None, frozenset(flags), values)
    if overlay:
        return _parse_overlay(overlay, readonly, flags, values, encoding or OVERLAY, cwd)
    raise OptionError("no branch given: use dirs=A:B (aufs) or lowerdir=… (overlay)")


def _parse_overlay(
    overlay: dict[str, str], readonly: bool, flags: set[str], values: dict[str, str], encoding: str, cwd: str
) -> Parsed:
    if not overlay.get("lowerdir"):
        raise OptionError("missing 'lowerdir'")
    branches: list[Layer] = []
    upper, workdir = overlay.get("upperdir"), overlay.get("workdir")
    if upper and not readonly:
        if not workdir:
            raise OptionError("missing 'workdir'")
        branches.append(Layer(_absolute(upper, cwd), UPPER, upper))
    elif workdir and not upper:
        raise OptionError("missing 'upperdir'")
    if overlay.get("initdir"):
        init = overlay["initdir"]
        branches.append(Layer(_absolute(init, cwd), INIT, init))
    for lower in split_escaped(overlay["lowerdir"], ":"):
        if not lower:
            raise OptionError("empty lowerdir")
        branches.append(Layer(_absolute(lower, cwd), LOWER, lower))
    has_upper = bool(upper) and not readonly
    workdir = _absolute(workdir, cwd) if (workdir and has_upper) else None
    return Parsed(OVERLAY, branches, workdir, encoding, not has_upper, frozenset(flags), values)


def _inside(child: str, parent: str) -> bool:
    return child == parent or child.startswith(parent.rstrip("/") + "/")


def check_dirs(union: UnionLike) -> tuple[list[str], str | None]:
    """Check the described directories on disk: (each branch's real path, the work directory)."""
    resolved: list[str] = []
    for branch in union.branches:
        if not os.path.exists(branch.path):
            raise OptionError(f"{branch.label}: no such directory")
        if not os.path.isdir(branch.path):
            raise OptionError(f"{branch.label}: not a directory")
        resolved.append(os.path.realpath(branch.path))
    labels = [b.label for b in union.branches]
    for i, a in enumerate(resolved):
        for j in range(i + 1, len(resolved)):
            b = resolved[j]
            if _inside(a, b) or _inside(b, a):
                raise OptionError(f"branches overlap: {labels[i]} and {labels[j]}")
    workdir = union.workdir
    upper = next((path for path, b in zip(resolved, union.branches, strict=True) if b.role == UPPER), None)
    if upper and workdir:
        if union.dialect == OVERLAY:
            if not os.path.isdir(workdir):
                raise OptionError(f"{workdir}: work directory does not exist")
            workdir = os.path.realpath(workdir)
            for path, label in zip(resolved, labels, strict=True):
                if _inside(workdir, path) or _inside(path, workdir):
                    raise OptionError(f"work directory {workdir} overlaps branch {label}")
            if os.stat(workdir).st_dev != os.stat(upper).st_dev:
                raise OptionError(f"work directory {workdir} is not on the upper directory's filesystem")
        else:
            workdir = os.path.join(upper, AUFS_WORKDIR)
    return resolved, workdir


def validate(parsed: Parsed) -> Parsed:
    """`parsed` with real (resolved) paths, once `check_dirs` has found every directory."""
    paths, workdir = check_dirs(parsed)
    branches = [Layer(path, b.role, b.label, b.whiteouts) for path, b in zip(paths, parsed.branches, strict=True)]
    return Parsed(
        parsed.dialect, branches, workdir, parsed.encoding, parsed.readonly, parsed.flags, dict(parsed.values)
    )


def format_options(union: UnionLike) -> str:
    """The union back as one option string (escaping ':' and ','), e.g. for a FUSE fsname."""

    def esc(path: str) -> str:
        return path.replace("\\", "\\\\").replace(":", "\\:").replace(",", "\\,")

    if union.dialect == AUFS:
        parts = []
        for b in union.branches:
            mode = "rw" if b.role == UPPER else ("ro+wh" if b.whiteouts else "ro")
            parts.append(f"{esc(b.path)}={mode}")
        return "br=" + ":".join(parts)
    out = ["lowerdir=" + ":".join(esc(b.path) for b in union.branches if b.role == LOWER)]
    for b in union.branches:
        if b.role == UPPER:
            out.append(f"upperdir={esc(b.path)}")
        if b.role == INIT:
            out.append(f"initdir={esc(b.path)}")
    if union.workdir and any(b.role == UPPER for b in union.branches):
        out.append(f"workdir={esc(union.workdir)}")
    if union.encoding == AUFS:
        out.append("whiteout=aufs")  # `.wh.` names are marks here: whoever reopens the union must know
    return ",".join(out)
