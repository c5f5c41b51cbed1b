"""Finding live layerfs mounts in /proc/self/mountinfo, and opening their union again.

A layerfs mount records its layers in its source field (the FUSE fsname, written by
`mount.plan` with `options.format_options`), so the kernel's own mount table is all that is
needed: no state files to go stale. The union is opened read-only, with the work directory
left to the daemon that owns it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from .options import OptionError, UnionSpec, parse_options, validate

FSTYPE = "fuse.layerfs"
MOUNTINFO = "/proc/self/mountinfo"
STATE_PREFIX = "layerfs-state="  # a source naming a state file (stacks longer than a page)


def state_dir() -> str:
    """Where long option strings are kept: /run/layerfs for root, else the user's runtime dir."""
    if os.geteuid() == 0:
        return "/run/layerfs"
    return os.path.join(os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/layerfs-{os.geteuid()}", "layerfs")


@dataclass(frozen=True)
class MountInfo:
    """One line of mountinfo, the fields we use."""

    mountpoint: str
    fstype: str
    source: str
    options: str


def unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as \\ooo."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 4 <= len(field) and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> list[MountInfo]:
    result = []
    for line in text.splitlines():
        fields = line.split()
        try:
            sep = fields.index("-", 6)
        except ValueError:
            continue
        if len(fields) < sep + 3:
            continue
        result.append(MountInfo(unescape(fields[4]), fields[sep + 1], unescape(fields[sep + 2]), fields[5]))
    return result


def mounts(path: str = MOUNTINFO) -> list[MountInfo]:
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        return parse_mountinfo(f.read())


def real_path(path: str) -> str:
    """Like realpath, but a symlink at the end stays itself (explain the link, not its target)."""
    absolute = os.path.abspath(path)
    head, tail = os.path.split(absolute)
    if not tail or tail in (".", ".."):
        return os.path.realpath(absolute)
    return os.path.join(os.path.realpath(head), tail)


def _inside(child: str, parent: str) -> bool:
    return child == parent or child.startswith(parent.rstrip("/") + "/")


def find_union_mount(path: str, table: list[MountInfo] | None = None) -> MountInfo | None:
    """The layerfs mount that holds `path` (the innermost mount there must be layerfs), or None."""
    real = real_path(path)
    best: MountInfo | None = None
    for info in mounts() if table is None else table:
        if _inside(real, info.mountpoint) and (best is None or len(info.mountpoint) >= len(best.mountpoint)):
            best = info
    return best if best is not None and best.fstype == FSTYPE else None


def spec_of_mount(info: MountInfo) -> UnionSpec:
    """The union a layerfs mount serves, from its source field."""
    source = info.source
    if source.startswith(STATE_PREFIX):
        try:
            with open(source[len(STATE_PREFIX) :], encoding="utf-8", errors="surrogateescape") as f:
                source = f.read()
        except OSError as exc:
            raise OptionError(
                f"{info.mountpoint}: its layers were recorded in {exc.filename}, which cannot be read ({exc.strerror})"
            ) from None
    if "=" not in source:
        raise OptionError(f"{info.mountpoint}: the mount does not record its layers")
    return validate(parse_options([source], "/"))


def union_for_path(path: str):
    """(Union over the layers of the mount holding `path`, the path inside that union).

    For looking only (`layerfs explain`, `layerfs tree --origin`): never write through it.
    """
    from .union import Union

    info = find_union_mount(path)
    if info is None:
        raise OptionError(f"{path} is not on a layerfs mount (give -o OPTIONS to look at layers directly)")
    real = real_path(path)
    inner = "/" if real == info.mountpoint else "/" + os.path.relpath(real, info.mountpoint)
    return Union.observe(spec_of_mount(info)), inner
