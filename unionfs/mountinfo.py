"""The one reader of /proc/self/mountinfo, and finding live layerfs mounts in it.

Everything in the project that asks "is this mounted?" reads the table here (imagegraph's
containers, the bench, the labs' runner, the tests): one parser, so one way to get escapes
and non-ASCII mount points right.

A layerfs mount records its layers in its source field (the FUSE fsname, written by
`mount.plan` with `options.format_options`), so the kernel's own mount table is all that is
needed: no state files to go stale. The union is opened read-only, with the work directory
left to the daemon that owns it.
"""

from __future__ import annotations

import os
import stat

from .mount import FSTYPE, STATE_PREFIX
from .mountopts import OptionError
from .record import Record

TYPE_CHECKING = False  # no typing, dataclasses, re or core here: the mount daemon reads the table too
if TYPE_CHECKING:
    from .options import UnionSpec
    from .union import Union  # imported when used: this module stays light for imagegraph and the bench

MOUNTINFO = "/proc/self/mountinfo"


def state_dir() -> str:
    """Where long option strings are kept: /run/layerfs for root, else the user's runtime dir."""
    if os.geteuid() == 0:
        return "/run/layerfs"
    return os.path.join(os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/layerfs-{os.geteuid()}", "layerfs")


def make_state_dir(directory: str | None = None) -> str:
    """`state_dir()`, made if missing, and only if this user owns it and its parent and no one
    else may write to them: in /tmp another user could have made `/tmp/layerfs-$UID` first,
    and then swap the files that record which layers a mount serves."""
    directory = directory or state_dir()
    for path, mode in ((os.path.dirname(directory), 0o700), (directory, 0o755)):
        try:
            os.mkdir(path, mode)
        except FileExistsError:
            pass
        except OSError as exc:
            raise OptionError(f"cannot make {path}: {exc.strerror}") from None
        st = os.lstat(path)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
            raise OptionError(
                f"{path} is not a private directory of this user (it must be a directory owned by uid "
                f"{os.geteuid()} that no one else can write to): remove it, or set XDG_RUNTIME_DIR"
            )
    return directory


class MountInfo(Record):
    """One line of mountinfo (proc(5)), the fields we use, unescaped. A plain value class (equal
    by its fields, hashable, read-only by convention), not a dataclass: see the top."""

    __slots__ = ("mountpoint", "fstype", "source", "options", "super_options", "root", "device")

    def __init__(
        self,
        mountpoint: str,
        fstype: str,
        source: str,
        options: str,  # per mount: rw,nosuid,nodev,… (idmapped for an idmapped mount)
        super_options: str = "",  # per superblock: rw,user_id=0,allow_other,…
        root: str = "/",  # the directory of the filesystem that is mounted here (a bind mount's)
        device: str = "",  # MAJ:MIN of the filesystem
    ) -> None:
        self.mountpoint = mountpoint
        self.fstype = fstype
        self.source = source
        self.options = options
        self.super_options = super_options
        self.root = root
        self.device = device

    @property
    def idmapped(self) -> bool:
        return "idmapped" in self.options.split(",")


_OCTAL = b"01234567"


def unescape(field: str | bytes) -> str:
    """mountinfo writes space, tab, newline and backslash as \\ooo, and every other byte as is.

    The escapes are undone on the bytes, which are then decoded as the os module decodes
    paths (UTF-8, other bytes kept as surrogates), so `/tmp/café\\040x` is `/tmp/café x`.
    """
    raw = os.fsencode(field) if isinstance(field, str) else field
    if b"\\" not in raw:
        return os.fsdecode(raw)
    out = bytearray()
    i, n = 0, len(raw)
    while i < n:
        byte = raw[i]
        code = raw[i + 1 : i + 4]
        if byte == 0x5C and len(code) == 3 and all(c in _OCTAL for c in code):  # \ooo
            out.append(int(code, 8) & 0xFF)
            i += 4
        else:
            out.append(byte)
            i += 1
    return os.fsdecode(bytes(out))


def parse_mountinfo(text: str | bytes) -> list[MountInfo]:
    """Every well-formed line: `ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL…] - TYPE SOURCE SUPER`."""
    raw = os.fsencode(text) if isinstance(text, str) else text
    result = []
    for line in raw.splitlines():
        fields = line.split()
        try:
            sep = fields.index(b"-", 6)
        except ValueError:
            continue
        if len(fields) < sep + 3:
            continue
        result.append(
            MountInfo(
                mountpoint=unescape(fields[4]),
                fstype=unescape(fields[sep + 1]),
                source=unescape(fields[sep + 2]),
                options=unescape(fields[5]),
                super_options=unescape(fields[sep + 3]) if len(fields) > sep + 3 else "",
                root=unescape(fields[3]),
                device=unescape(fields[2]),
            )
        )
    return result


def mounts(path: str = MOUNTINFO) -> list[MountInfo]:
    """This process's mount table, in mount order (a later mount on the same point is on top)."""
    with open(path, "rb") as f:
        return parse_mountinfo(f.read())


def mount_at(path: str | os.PathLike[str], table: list[MountInfo] | None = None) -> MountInfo | None:
    """The topmost mount whose mount point is `path` (symlinks resolved), or None."""
    real = os.path.realpath(path)
    return next((m for m in reversed(mounts() if table is None else table) if m.mountpoint == real), None)


def real_path(path: str) -> str:
    """Like realpath, but a symlink at the end stays itself (explain the link, not its target)."""
    absolute = os.path.abspath(path)
    head, tail = os.path.split(absolute)
    if not tail or tail in (".", ".."):
        return os.path.realpath(absolute)
    return os.path.join(os.path.realpath(head), tail)


def _inside(child: str, parent: str) -> bool:
    return child == parent or child.startswith(parent.rstrip("/") + "/")


def mount_of(path: str, table: list[MountInfo]) -> MountInfo | None:
    """The innermost mount that holds `path` (a real path), the later one where two share a point."""
    best: MountInfo | None = None
    for info in table:
        if _inside(path, info.mountpoint) and (best is None or len(info.mountpoint) >= len(best.mountpoint)):
            best = info
    return best


def _under(root: str, inner: str) -> str:
    return root.rstrip("/") + inner if inner != "/" else root


def plain_path(path: str, table: list[MountInfo] | None = None) -> str:
    """`path` through a mount that is not idmapped: itself when its own mount is not.

    podman 4.3 hands a mount program lower layers through idmapped mounts that show the
    stored owners shifted, and passes uidmapping= as well; mapping the shifted owners again
    would show the overflow id. The same directory through another mount of the same
    filesystem (checked by inode) shows the owners as stored. OptionError where there is none.
    """
    table = mounts() if table is None else table
    real = os.path.realpath(path)
    own = mount_of(real, table)
    if own is None or not own.idmapped:
        return real
    inside = _under(own.root, real[len(own.mountpoint.rstrip("/")) :] or "/")
    target = os.stat(real)
    for info in table:
        if info.device != own.device or info.idmapped or not _inside(inside, info.root):
            continue
        candidate = _under(info.mountpoint, inside[len(info.root.rstrip("/")) :] or "/")
        try:
            st = os.stat(candidate)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == (target.st_dev, target.st_ino):
            return candidate
    raise OptionError(
        f"{path} is on an idmapped mount and no plain mount of its filesystem shows it here: "
        "uidmapping=/gidmapping= would map its owners twice"
    )


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
    from .options import parse_options, validate  # the core's: only to open a mount's union

    return validate(parse_options([source], "/"))


def union_for_path(path: str) -> tuple[Union, str]:
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
