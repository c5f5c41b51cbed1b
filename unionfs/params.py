"""Every mount option beside the layers, with what it means (the kernel's fs/overlayfs/params.c).

One table, `PARAMS`, says which options layerfs takes: those of mount(8) and libfuse, the
kernel OverlayFS's, fuse-overlayfs's (so that containers-storage can run layerfs as its
`mount_program`), and our own. Each is honoured with its meaning or refused with one line that
names it; none is accepted and then ignored. `layerfs mount --help` prints the table.

What the union itself does differently is collected in `options.Features` (the core reads it);
what only the mount needs (kernel flags, libfuse options, timeouts) stays in the flags and values
that `mount.plan` reads. This module imports nothing: the `layerfs` command checks options
with it before it mounts (mountopts.py says why that path stays light).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable


class ParamError(ValueError):
    """An option that cannot be honoured; the message is one line naming it."""


class Param:
    """One option: its name, whether it takes a value, what it does, and its check.

    A plain class, not a dataclass: the `layerfs` command reads this table before it mounts,
    and that path does not import `dataclasses` (see mountopts.py).
    """

    __slots__ = ("name", "meaning", "value", "check", "group")

    def __init__(
        self,
        name: str,
        meaning: str,
        value: str | None = None,  # the value's form for --help; None for a flag
        check: Callable[[str], None] | None = None,
        group: str = "layerfs",
    ) -> None:
        self.name = name
        self.meaning = meaning
        self.value = value
        self.check = check
        self.group = group

    def __repr__(self) -> str:
        return f"Param({self.name!r})"


def _one_of(*allowed: str) -> Callable[[str], None]:
    def check(value: str) -> None:
        if value not in allowed:
            raise ParamError(f"use {' or '.join(allowed)}")

    return check


def _refuse_if(refused: str, reason: str) -> Callable[[str], None]:
    def check(value: str) -> None:
        if value == refused:
            raise ParamError(reason)

    return check


def _chain(*checks: Callable[[str], None]) -> Callable[[str], None]:
    def check(value: str) -> None:
        for c in checks:
            c(value)

    return check


def _refuse(reason: str) -> Callable[[str], None]:
    def check(value: str) -> None:
        raise ParamError(reason)

    return check


def _number(value: str) -> None:
    try:
        if int(value, 10) < 0:
            raise ValueError
    except ValueError:
        raise ParamError("give a number (0 or more)") from None


def _seconds(value: str) -> None:
    try:
        if float(value) < 0:
            raise ValueError
    except ValueError:
        raise ParamError("give seconds (0 or more)") from None


def _ranges(what: str) -> Callable[[str], None]:
    def check(value: str) -> None:
        from .idmap import IdMapError, parse_ranges  # dataclasses: only for mounts with a mapping

        try:
            parse_ranges(value, what)
        except IdMapError as exc:
            raise ParamError(str(exc).split(": ", 1)[-1]) from None

    return check


def _not_empty(value: str) -> None:
    if not value:
        raise ParamError("give a value")


_NO_LIBFUSE = "libfuse 3 cannot set this mount flag"
_NO_XATTR_PERMS = "owners and modes kept in xattrs are not supported (xattr_permissions=0)"
_ZERO_ONE = _one_of("0", "1")

PARAMS: tuple[Param, ...] = (
    # mount(8): flags libfuse applies to the mount, and mount(8)'s own ones.
    Param("rw", "read-write (the default when there is a writable layer)", group="mount(8)"),
    Param("ro", "read-only: every layer read-only, writes fail with EROFS", group="mount(8)"),
    Param("suid", "honour setuid/setgid bits (the default as root, as with mount(8))", group="mount(8)"),
    Param("nosuid", "ignore setuid/setgid bits (always so for a mount by a non-root user)", group="mount(8)"),
    Param("dev", "allow device files (the default as root, as with mount(8))", group="mount(8)"),
    Param("nodev", "refuse to open device files (always so for a mount by a non-root user)", group="mount(8)"),
    Param("exec", "allow executing files (the default)", group="mount(8)"),
    Param("noexec", "refuse to execute files", group="mount(8)"),
    Param("sync", "synchronous writes (the kernel's MS_SYNCHRONOUS)", group="mount(8)"),
    Param("async", "asynchronous writes (the default)", group="mount(8)"),
    Param("dirsync", "synchronous directory changes", group="mount(8)"),
    Param("atime", "update access times (the kernel's relatime rule)", group="mount(8)"),
    Param("noatime", "never update access times", group="mount(8)"),
    Param("relatime", "the kernel's default for a new mount", group="mount(8)"),
    Param("nostrictatime", "the kernel's default for a new mount", group="mount(8)"),
    Param("diratime", "the kernel's default for a new mount", group="mount(8)"),
    Param("nolazytime", "the kernel's default for a new mount", group="mount(8)"),
    Param("symfollow", "the kernel's default for a new mount", group="mount(8)"),
    Param("strictatime", "refused: " + _NO_LIBFUSE, check=_refuse(_NO_LIBFUSE), group="mount(8)"),
    Param("norelatime", "refused: " + _NO_LIBFUSE, check=_refuse(_NO_LIBFUSE), group="mount(8)"),
    Param("nodiratime", "refused: " + _NO_LIBFUSE, check=_refuse(_NO_LIBFUSE), group="mount(8)"),
    Param("nosymfollow", "refused: " + _NO_LIBFUSE, check=_refuse(_NO_LIBFUSE), group="mount(8)"),
    Param(
        "lazytime",
        "refused: a FUSE mount keeps no timestamps in the kernel to write back lazily",
        check=_refuse("a FUSE mount keeps no timestamps in the kernel to write back lazily"),
        group="mount(8)",
    ),
    Param("defaults", "mount(8)'s defaults (rw, suid, dev, exec, async)", group="mount(8)"),
    Param("auto", "for mount -a (mount(8) reads it; nothing for the file system)", group="mount(8)"),
    Param("noauto", "not mounted by mount -a (mount(8) reads it)", group="mount(8)"),
    Param("user", "an fstab entry users may mount (mount(8) reads it)", group="mount(8)"),
    Param("users", "an fstab entry any user may mount and unmount (mount(8) reads it)", group="mount(8)"),
    Param("nouser", "only root mounts it (mount(8) reads it)", group="mount(8)"),
    Param("nofail", "a missing mount is no boot error (mount(8) reads it)", group="mount(8)"),
    Param("_netdev", "mounted after the network (systemd reads it)", group="mount(8)"),
    Param("comment", "a note for fstab readers; also any x-NAME=VALUE", "TEXT", group="mount(8)"),
    Param(
        "context",
        "SELinux context of every file (passed to the kernel; refused without SELinux); "
        "also fscontext=, defcontext=, rootcontext=",
        "LABEL",
        check=_not_empty,
        group="mount(8)",
    ),
    # libfuse.
    Param("allow_other", "other users may use the mount (always so as root)", group="libfuse"),
    Param("allow_root", "root may use a user's mount", group="libfuse"),
    Param(
        "default_permissions", "the kernel checks permissions by mode and owner (always so as root)", group="libfuse"
    ),
    Param("debug", "print every FUSE request; stay in the foreground", group="libfuse"),
    Param("nonempty", "mount over a non-empty directory", group="libfuse"),
    Param("uid", "every file shows this owner (libfuse's uid=)", "UID", check=_number, group="libfuse"),
    Param("gid", "every file shows this group (libfuse's gid=)", "GID", check=_number, group="libfuse"),
    Param("umask", "permission bits masked from every file (libfuse's umask=, octal)", "MASK", group="libfuse"),
    Param("max_read", "largest read request in bytes", "BYTES", check=_number, group="libfuse"),
    # The kernel's OverlayFS.
    Param(
        "redirect_dir",
        "renaming a directory with lower parts: on = a redirect xattr; follow = EXDEV, "
        "existing redirects followed; off = the same as follow (redirect_always_follow=Y); "
        "nofollow = EXDEV, existing redirects not followed (default on; aufs layers: off)",
        "on|follow|nofollow|off",
        check=_one_of("on", "follow", "nofollow", "off"),
        group="overlay",
    ),
    Param(
        "index",
        "off only: copy-up breaks a lower hard link, as the kernel without the index",
        "off",
        check=_chain(_one_of("on", "off"), _refuse_if("on", "the inode index is not supported (index=off)")),
        group="overlay",
    ),
    Param(
        "metacopy",
        "off only: copy-up copies the data too, as the kernel's default",
        "off",
        check=_chain(_one_of("on", "off"), _refuse_if("on", "metadata-only copy-up is not supported (metacopy=off)")),
        group="overlay",
    ),
    Param(
        "xino",
        "inode numbers when the layers span several filesystems: auto/on = the layer's fs in "
        "the high bits (persistent), off = numbered per mount (not persistent); layers on one "
        "filesystem always show their real numbers",
        "off|auto|on",
        check=_one_of("off", "auto", "on"),
        group="overlay",
    ),
    Param("userxattr", "keep marks in user.overlay.* xattrs, as an unprivileged union does", group="overlay"),
    Param("volatile", "no fsync to the upper: fsync(2) returns at once, copy-ups are not synced", group="overlay"),
    # fuse-overlayfs (as containers-storage passes them).
    Param(
        "uidmapping",
        "stored uids STORED.. show as SHOWN.. (COUNT of them); more triples may follow",
        "STORED:SHOWN:COUNT[:…]",
        check=_ranges("uidmapping"),
        group="fuse-overlayfs",
    ),
    Param(
        "gidmapping", "the same for gids", "STORED:SHOWN:COUNT[:…]", check=_ranges("gidmapping"), group="fuse-overlayfs"
    ),
    Param("squash_to_root", "every file shows owner and group 0", group="fuse-overlayfs"),
    Param(
        "squash_to_uid",
        "every file shows this owner (before squash_to_root)",
        "UID",
        check=_number,
        group="fuse-overlayfs",
    ),
    Param(
        "squash_to_gid",
        "every file shows this group (before squash_to_root)",
        "GID",
        check=_number,
        group="fuse-overlayfs",
    ),
    Param("static_nlink", "every directory shows st_nlink 1", group="fuse-overlayfs"),
    Param(
        "noacl",
        "no POSIX ACL checks on the mount (layerfs never asks FUSE for them; system.posix_acl_* "
        "xattrs are kept in the layers as plain xattrs, as with fuse-overlayfs -o noacl)",
        group="fuse-overlayfs",
    ),
    Param("ino32_t", "inode numbers truncated to 32 bits, for old 32-bit programs", group="fuse-overlayfs"),
    Param(
        "fsync",
        "0 = the same as volatile; 1 = fsync(2) reaches the upper (default)",
        "0|1",
        check=_ZERO_ONE,
        group="fuse-overlayfs",
    ),
    Param(
        "timeout",
        "seconds the kernel may cache names and attributes (default a day: every change goes through layerfs)",
        "SECONDS",
        check=_seconds,
        group="fuse-overlayfs",
    ),
    Param(
        "threaded",
        "1 = copy-ups and fsyncs beside the other requests (default); 0 = one request at a time",
        "0|1",
        check=_ZERO_ONE,
        group="fuse-overlayfs",
    ),
    Param(
        "fast_ino",
        "1 = skip origin lookups: st_ino is the serving layer's and changes on copy-up; 0 = default",
        "0|1",
        check=_ZERO_ONE,
        group="fuse-overlayfs",
    ),
    Param(
        "writeback",
        "0 only: no kernel writeback cache",
        "0",
        check=_chain(_ZERO_ONE, _refuse_if("1", "the kernel's writeback cache is not supported (writeback=0)")),
        group="fuse-overlayfs",
    ),
    Param(
        "noxattrs",
        "1 = every xattr call fails with ENOTSUP; 0 = default",
        "0|1",
        check=_ZERO_ONE,
        group="fuse-overlayfs",
    ),
    Param(
        "xattr_permissions",
        "0 only: owners and modes are real, not kept in xattrs",
        "0",
        check=_chain(_one_of("0", "1", "2"), _refuse_if("1", _NO_XATTR_PERMS), _refuse_if("2", _NO_XATTR_PERMS)),
        group="fuse-overlayfs",
    ),
    Param(
        "plugins",
        "refused: layerfs has no plugins",
        "PATHS",
        check=_refuse("layerfs has no plugins"),
        group="fuse-overlayfs",
    ),
    # layerfs's own.
    Param(
        "whiteout",
        "how new whiteouts are written (default: the dialect's own)",
        "aufs|overlay",
        check=_one_of("aufs", "overlay"),
    ),
    Param(
        "trace",
        "write every copy-up, whiteout, opaque dir and redirect to FILE as JSON lines",
        "FILE",
        check=_not_empty,
    ),
)

BY_NAME = {p.name: p for p in PARAMS}
CONTEXT_OPTIONS = ("context", "fscontext", "defcontext", "rootcontext")
# Names that are never ours to set: the mount's source carries the layers.
RESERVED = {"fsname": "layerfs records the layers in the mount's source", "subtype": "the subtype is layerfs"}


def check_param(key: str, value: str | None) -> None:
    """Raise ParamError (one line, naming the option) unless `key[=value]` is accepted."""
    shown = key if value is None else f"{key}={value}"
    if key.startswith("x-"):
        return  # mount(8): options for userspace programs, never for the file system
    if key in RESERVED:
        if key == "subtype" and value == "layerfs":
            return
        raise ParamError(f"{shown}: {RESERVED[key]}")
    param = BY_NAME.get("context" if key in CONTEXT_OPTIONS else key)
    if param is None:
        raise ParamError(f"unknown option '{shown}'")
    if param.value is None and value is not None:
        raise ParamError(f"{key} takes no value (got '{shown}')")
    if param.value is not None and value is None:
        raise ParamError(f"{key} needs a value: {key}={param.value}")
    if param.check is not None:
        try:
            param.check("" if value is None else value)
        except ParamError as exc:
            raise ParamError(f"{shown}: {exc}") from None


def check_features(values: dict[str, str], overlay: bool) -> None:
    """What the options cannot combine, beyond each option's own check (`overlay`: the kernel
    dialect). `options.features` then builds the union's `Features` from the same options."""
    if not overlay and values.get("redirect_dir", "off") != "off":
        raise ParamError(f"redirect_dir={values['redirect_dir']}: the aufs dialect has no redirects (use off)")


def help_lines() -> list[str]:
    """`layerfs mount --help`: every option, grouped by where it comes from."""
    lines: list[str] = []
    group = None
    for p in PARAMS:
        if p.group != group:
            group = p.group
            lines.append(f"\n{group} options:")
        name = p.name if p.value is None else f"{p.name}={p.value}"
        lines.append(f"  {name:<28} {p.meaning}")
    return lines
