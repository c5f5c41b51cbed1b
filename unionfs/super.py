"""The union's state (the kernel's ovl_fs): stack, work directory, mark writer, locks.

Opening a union clears what a crash left in its work directory, so the same work directory
serves every later mount.
"""

from __future__ import annotations

import itertools
import os
import threading
import weakref
from dataclasses import dataclass, field
from typing import NamedTuple

from . import workdir
from .branch import Branch, MarkWriter, XattrNames
from .fsutil import Libc
from .namei import Resolver
from .options import Dialect, Encoding, Role, UnionSpec
from .origin import Origins
from .trace import Tracer


class Cred(NamedTuple):
    """Who is asking: new objects belong to this uid and gid (the FUSE caller's). A named
    tuple, immutable as the frozen dataclass it was, and made in a third of its time: the
    adapter makes one per CREATE, MKDIR, MKNOD, SYMLINK and OPEN for writing."""

    uid: int
    gid: int


@dataclass
class Super:
    spec: UnionSpec
    branches: tuple[Branch, ...]
    resolver: Resolver
    upper: Branch | None
    tmpdir: str | None  # where copy-ups and swaps are built, on the upper's filesystem
    marks: MarkWriter | None
    listeners: list[Tracer]  # told of every copy-up, whiteout, opaque dir and redirect
    libc: Libc
    inos: InodeNumbers  # st_ino and st_dev as the union reports them
    origins: Origins  # overlay.origin marks: written at copy-up, read at stat time
    # One lock for namespace changes and copy-up: two writers of one lower file copy it once.
    lock: threading.RLock = field(default_factory=threading.RLock)
    # Read-only handles opened on a lower file, by (dev, ino), to move them after a copy-up.
    lower_handles: dict[tuple[int, int], weakref.WeakSet] = field(default_factory=dict)
    _counter: itertools.count = field(default_factory=itertools.count)
    # The process umask, read once: new objects get their exact mode without a chmod when
    # the umask cannot have touched it (the FUSE daemon runs with umask 0).
    umask: int = 0o022
    xattrs: XattrNames = XattrNames("trusted.overlay.")

    @classmethod
    def open(cls, spec: UnionSpec, tracer: Tracer | None = None) -> Super:
        branches = tuple(Branch(b.path, b.role, b.label, i, b.whiteouts) for i, b in enumerate(spec.branches))
        upper = branches[0] if branches and branches[0].writable and not spec.readonly else None
        if upper is None:
            branches = tuple(
                Branch(b.path, Role.LOWER if b.role is Role.UPPER else b.role, b.label, b.index, b.whiteouts)
                for b in branches
            )
        tmpdir = marks = None
        if upper is not None and spec.workdir:
            tmpdir = workdir.tmpdir_of(spec.workdir, aufs=spec.dialect is Dialect.AUFS)
            workdir.clear(tmpdir)
            marks = MarkWriter.probe(tmpdir, spec.encoding is Encoding.AUFS, spec.features.userxattr)
        umask = os.umask(0o022)
        os.umask(umask)
        if marks:
            prefix = marks.xattr_prefix
        else:
            prefix = "trusted." if os.geteuid() == 0 and not spec.features.userxattr else "user."
        return cls._assemble(spec, branches, upper, tmpdir, marks, tracer, prefix, umask)

    @classmethod
    def _assemble(
        cls,
        spec: UnionSpec,
        branches: tuple[Branch, ...],
        upper: Branch | None,
        tmpdir: str | None,
        marks: MarkWriter | None,
        tracer: Tracer | None,
        prefix: str,
        umask: int = 0o022,
    ) -> Super:
        libc = Libc.load()
        features = spec.features
        return cls(
            spec,
            branches,
            # A writer that cannot make 0/0 devices (a user on a kernel before 5.8) falls back to
            # `.wh.` files, as fuse-overlayfs does: then the union must read them as marks too.
            Resolver(
                branches,
                spec.dialect,
                follow_redirects=features.follows_redirects,
                wh_files=wh_files_are_marks(spec) or bool(marks and marks.writes_wh_files),
            ),
            upper,
            tmpdir,
            marks,
            [tracer] if tracer is not None else [],
            libc,
            InodeNumbers.for_branches([b.path for b in branches], features.xino, features.ino32),
            Origins(libc, prefix + "overlay.origin", tuple(b.path for b in branches if not b.writable)),
            umask=umask,
            xattrs=XattrNames(prefix + "overlay."),
        )

    def fix_mode(self, real: str | int, mode: int) -> None:
        """chmod a new object only where the umask may have cut bits from `mode`."""
        if mode & self.umask:
            os.chmod(real, mode)

    @classmethod
    def observe(cls, spec: UnionSpec) -> Super:
        """The union of a live mount, for reading only: the roles are kept (so provenance
        names the upper), and the work directory is left to the daemon that owns it."""
        branches = tuple(Branch(b.path, b.role, b.label, i, b.whiteouts) for i, b in enumerate(spec.branches))
        prefix = "trusted." if os.geteuid() == 0 and not spec.features.userxattr else "user."
        return cls._assemble(spec, branches, None, None, None, None, prefix)

    def temp_name(self) -> str:
        """A fresh name in the work directory (kernel style: '#<hex>')."""
        assert self.tmpdir is not None
        return os.path.join(self.tmpdir, f"#{os.getpid():x}.{next(self._counter):x}")

    def emit(self, event: str, **fields: object) -> None:
        if self.listeners:
            record = {"event": event, **fields}
            for listener in self.listeners:
                listener(record)


def wh_files_are_marks(spec: UnionSpec) -> bool:
    """Are `.wh.` names whiteouts and opaque marks in this union? In the aufs dialect always;
    in the overlay dialect only with `whiteout=aufs`: the kernel's OverlayFS treats `.wh.x`
    as an ordinary file, and so does layerfs's overlay dialect by default."""
    return spec.dialect is Dialect.AUFS or spec.encoding is Encoding.AUFS


@dataclass
class InodeNumbers:
    """Real (device, inode) pairs to the union's inode numbers (the kernel's ovl_map_dev_ino).

    Layers on one filesystem: the real numbers, which are unique there. On several: with
    `xino=auto|on` the layer's filesystem index in the high bits (upper's filesystem 0), so
    numbers stay unique and persistent; with `xino=off`, or a number too large for that, a
    number counted per mount (unique, not persistent), as the kernel does for directories
    without xino. `ino32_t` keeps the low 32 bits.
    """

    dev: int
    fsids: dict[int, int]
    xino: str = "auto"
    ino32: bool = False
    _pseudo: dict[tuple[int, int], int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def for_branches(cls, roots: list[str], xino: str, ino32: bool) -> InodeNumbers:
        fsids: dict[int, int] = {}
        for root in roots:
            fsids.setdefault(os.stat(root).st_dev, len(fsids))
        return cls(next(iter(fsids), 0), fsids, xino, ino32)

    def number(self, st: os.stat_result) -> int:
        ino = st.st_ino
        if len(self.fsids) > 1:  # layers on several filesystems
            ino = self._spread(st.st_dev, ino)
        return ino & 0xFFFFFFFF if self.ino32 else ino

    def _spread(self, dev: int, ino: int) -> int:
        fsid = self.fsids.get(dev)
        if self.xino != "off" and fsid is not None:
            bits = (len(self.fsids) - 1).bit_length() + 1  # one bit kept for per-mount numbers
            shift = 64 - bits
            if ino >> shift == 0:
                return ino | (fsid << shift)
        with self._lock:
            number = self._pseudo.get((dev, ino))
            if number is None:
                number = self._pseudo[(dev, ino)] = (1 << 63) | (len(self._pseudo) + 1)
            return number
