"""Mount options into the core's union description: `UnionSpec`, its branches and `Features`.

The options are parsed and the directories checked once, by `mountopts` (the parser the
`layerfs` command runs before it mounts, in plain values); this module turns its result into
the dataclasses and enums the core reads. The two dialects:
- aufs: ``dirs=./fruits:./vegetables`` or ``br=``/``br:``, each branch ``path[=rw|ro|rr|ro+wh|rr+wh]``;
  the first branch without a mode is rw, the others ro.
- overlay: ``lowerdir=L1:L2`` (leftmost is the top), ``upperdir=``, ``workdir=``, and our
  ``initdir=`` (an extra read-only layer between the upper and the lowers).

Every problem is an ``OptionError`` whose text is one line for the user.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

from . import mountopts
from .idmap import IdMap, maps_of
from .mountopts import OptionError, split_escaped, split_option_string

__all__ = [
    "BranchSpec",
    "Dialect",
    "Encoding",
    "Features",
    "OptionError",
    "Role",
    "UnionSpec",
    "features",
    "format_options",
    "parse_options",
    "spec_of",
    "split_escaped",
    "split_option_string",
    "validate",
]


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
class Features:
    """What an option changes in the union's own behaviour (not in the mount)."""

    redirect_dir: str = "on"  # on | follow | nofollow | off (the kernel's meanings)
    fsync: bool = True  # False with volatile or fsync=0: fsync(2) and copy-ups skip the disk
    uid_map: IdMap = field(default_factory=IdMap)
    gid_map: IdMap = field(default_factory=IdMap)
    static_nlink: bool = False  # every directory reports st_nlink 1
    xino: str = "auto"  # off | auto | on: inode numbers when the layers span filesystems
    ino32: bool = False  # st_ino truncated to 32 bits
    fast_ino: bool = False  # no origin lookups: st_ino is the serving layer's, changes on copy-up
    xattrs: bool = True  # False with noxattrs=1: every xattr call is refused (ENOTSUP)
    userxattr: bool = False  # marks in user.overlay.* even where trusted.overlay.* could be written

    @property
    def creates_redirects(self) -> bool:
        return self.redirect_dir == "on"

    @property
    def follows_redirects(self) -> bool:
        return self.redirect_dir != "nofollow"


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


def features(flags: frozenset[str], values: dict[str, str], overlay: bool) -> Features:
    """The union's behaviour from options `mountopts.parse` has checked (`overlay`: the kernel dialect)."""
    uid_map, gid_map = maps_of(flags, values)
    return Features(
        redirect_dir=values.get("redirect_dir", "on" if overlay else "off"),
        fsync=not ("volatile" in flags or values.get("fsync") == "0"),
        uid_map=uid_map,
        gid_map=gid_map,
        static_nlink="static_nlink" in flags,
        xino=values.get("xino", "auto"),
        ino32="ino32_t" in flags,
        fast_ino=values.get("fast_ino") == "1",
        xattrs=values.get("noxattrs") != "1",
        userxattr="userxattr" in flags,
    )


def spec_of(parsed: mountopts.Parsed) -> UnionSpec:
    """The core's description of what `mountopts.parse` (and `mountopts.validate`) returned."""
    return UnionSpec(
        Dialect(parsed.dialect),
        tuple(BranchSpec(b.path, Role(b.role), b.label, b.whiteouts) for b in parsed.branches),
        parsed.workdir,
        Encoding(parsed.encoding),
        parsed.readonly,
        parsed.flags,
        tuple(sorted(parsed.values.items())),
        features(parsed.flags, parsed.values, overlay=parsed.dialect == mountopts.OVERLAY),
    )


def parse_options(option_strings: Sequence[str] | str, cwd: str | None = None) -> UnionSpec:
    """Parse one or more ``-o`` strings into a UnionSpec; paths are checked later, by `validate`."""
    return spec_of(mountopts.parse(option_strings, cwd))


def validate(spec: UnionSpec) -> UnionSpec:
    """Check the described directories on disk; return the spec with real (resolved) paths."""
    paths, workdir = mountopts.check_dirs(spec)
    branches = tuple(replace(b, path=path) for b, path in zip(spec.branches, paths, strict=True))
    return replace(spec, branches=branches, workdir=workdir)


def format_options(spec: UnionSpec) -> str:
    """The spec back as one option string (escaping ':' and ','), e.g. for a FUSE fsname."""
    return mountopts.format_options(spec)
