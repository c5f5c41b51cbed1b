"""A checked mount in plain values: the union as the options describe it (`Layer`, `Parsed`:
what `mountopts` parses and checks) and the mount to make of it (`Plan`: what the command hands
its daemon through a pipe, `early.py`).

Its own module, with no import at all: the root mount's daemon decodes its plan with it before
it answers FUSE_INIT, and every import it makes before then is a wait for umount(8) and podman
(early.py says why); `mountopts` (the parser) and `mount` (the checks) stay the command's.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# The values of options.Role, options.Dialect and options.Encoding (StrEnums: equal to these).
UPPER, INIT, LOWER = "upper", "init", "lower"
AUFS, OVERLAY = "aufs", "overlay"  # dialects, and encodings: `.wh.` files or 0/0 devices and xattrs


class Layer:
    """One layer directory as the options describe it (options.BranchSpec, in plain values)."""

    __slots__ = ("path", "role", "label", "whiteouts")

    def __init__(self, path: str, role: str, label: str, whiteouts: bool = True) -> None:
        self.path = path  # absolute; symlinks resolved once `check_dirs` has run
        self.role = role  # UPPER, INIT or LOWER
        self.label = label  # what provenance shows; the path as the user wrote it
        self.whiteouts = whiteouts  # aufs `ro` branches do not look for whiteouts (aufs(5) "ro")

    def __repr__(self) -> str:
        return f"Layer({self.path!r}, {self.role!r}, {self.label!r}, {self.whiteouts!r})"


class Parsed:
    """A union as the options describe it (options.UnionSpec, in plain values)."""

    __slots__ = ("dialect", "branches", "workdir", "encoding", "readonly", "flags", "values")

    def __init__(
        self,
        dialect: str,
        branches: list[Layer],
        workdir: str | None,
        encoding: str,
        readonly: bool,
        flags: frozenset[str],
        values: dict[str, str],
    ) -> None:
        self.dialect = dialect
        self.branches = branches  # top first
        self.workdir = workdir
        self.encoding = encoding  # how new whiteouts and opaque marks are written
        self.readonly = readonly
        self.flags = flags  # options without a value
        self.values = values  # options with one (a later value wins, as in mount(8))

    @property
    def upper(self) -> Layer | None:
        return next((b for b in self.branches if b.role == UPPER), None)

    def value(self, key: str, default: str | None = None) -> str | None:
        return self.values.get(key, default)

    @property
    def maps_owners(self) -> bool:
        """Do owners show otherwise than stored (options.features builds the maps)?"""
        mapped = ("uidmapping", "gidmapping", "squash_to_uid", "squash_to_gid")
        return "squash_to_root" in self.flags or any(key in self.values for key in mapped)


class Plan:
    """A checked mount: the union to serve (as parsed and checked), where, and libfuse's options."""

    __slots__ = ("union", "mountpoint", "fuse_options", "trace", "foreground", "source")

    def __init__(
        self,
        union: Parsed,
        mountpoint: str,
        fuse_options: dict[str, Any],
        trace: str | None = None,
        foreground: bool = False,
        source: str = "",  # the mount's source, as the kernel records it (fsname unescaped)
    ) -> None:
        self.union = union
        self.mountpoint = mountpoint
        self.fuse_options = fuse_options
        self.trace = trace
        self.foreground = foreground
        self.source = source

    def to_bytes(self) -> bytes:
        """The plan for the daemon (`early.EarlyDaemon`), in `marshal`'s format: plain values only."""
        import marshal  # built in: no import cost

        u = self.union
        layers = [(b.path, b.role, b.label, b.whiteouts) for b in u.branches]
        union = (u.dialect, layers, u.workdir, u.encoding, u.readonly, u.flags, u.values)
        return marshal.dumps((union, self.mountpoint, self.fuse_options, self.trace, self.foreground, self.source))

    @classmethod
    def from_bytes(cls, data: bytes) -> Plan:
        import marshal

        union, mountpoint, fuse_options, trace, foreground, source = marshal.loads(data)
        dialect, layers, work, encoding, readonly, flags, values = union
        parsed = Parsed(dialect, [Layer(*layer) for layer in layers], work, encoding, readonly, flags, values)
        return cls(parsed, mountpoint, fuse_options, trace, foreground, source)
