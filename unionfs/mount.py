"""Mounting and unmounting a union with FUSE, and finding a live union again.

`mount` returns only once the kernel has the mount: a child process runs the FUSE loop and
tells the parent through a pipe when libfuse calls `init`. Everything that can be checked
before (options, layers, mount point, FUSE itself) is checked in the parent, so a bad mount
prints one line and leaves nothing behind.

The union's layers travel in the mount's source ("fsname"), so `/proc/self/mountinfo` is
enough to open the same union again, read-only, for `layerfs explain` and `tree --origin`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from .mountinfo import FSTYPE, STATE_PREFIX, make_state_dir, mount_at, mounts, plain_path
from .options import UnionSpec, format_options, parse_options, validate
from .params import CONTEXT_OPTIONS
from .trace import TraceFile
from .union import Union

# Mount flags libfuse 3 applies itself (lib/mount.c mount_flags[]): passed through unchanged.
KERNEL_FLAGS = frozenset(
    {"ro", "rw", "dev", "nodev", "suid", "nosuid", "exec", "noexec", "sync", "async", "dirsync", "atime", "noatime"}
)
# Options for libfuse's high-level layer, passed with their values.
FUSE_VALUES = frozenset({"uid", "gid", "umask", "max_read"})
# Lowers never change while mounted and every write goes through us, so the kernel may keep
# names (and absent names), attributes, file pages and listings as long as it likes, as with
# fuse-overlayfs. What it cannot see itself (the other names of a hard link, libfuse giving
# each name its own kernel inode; directories a copy-up brought up) the daemon invalidates
# (fuse_ops). Without libfuse 3's fuse_invalidate_path, attributes are kept a second only.
ENTRY_SECONDS = 86400.0
ATTR_SECONDS = 86400.0
ATTR_SECONDS_UNINVALIDATED = 1.0
FSNAME_LIMIT = 3800  # the kernel copies at most a page of mount source
# Readahead of the mount's backing device. The kernel starts FUSE mounts at 128 KiB, so a
# sequential read is one READ request (one Python call) per 128 KiB; at 1 MiB it is one per
# MiB (libfuse's requests go up to 1 MiB). Measured on the bench's cold 256 MiB read: 2,048
# requests and ~230 ms at 128 KiB, 256 requests and ~134 ms at 1 MiB.
READ_AHEAD_KB = 1024
SELINUX_FS = "/sys/fs/selinux"


class MountError(Exception):
    """A mount or unmount that cannot be done; the message is one line for the user."""


@dataclass(frozen=True)
class MountRequest:
    """What the command line asked for."""

    options: tuple[str, ...]
    mountpoint: str
    cwd: str
    foreground: bool = False


@dataclass(frozen=True)
class Plan:
    """A checked mount: the union to serve, where, and the options for libfuse."""

    spec: UnionSpec
    mountpoint: str
    fuse_options: dict[str, Any] = field(default_factory=dict)
    trace: str | None = None
    foreground: bool = False


# -- planning -----------------------------------------------------------------------------
def escape_fsname(text: str) -> str:
    """libfuse splits -o on ',' and unescapes '\\': protect the union's option string."""
    return text.replace("\\", "\\\\").replace(",", "\\,")


def mount_source(options: str) -> str:
    """What the mount's source field records: the layers, or (for a stack too long for the
    kernel's page) the path of a state file holding them, named by their hash."""
    if len(escape_fsname(options)) <= FSNAME_LIMIT:
        return options
    data = options.encode("utf-8", "surrogateescape")
    path = os.path.join(make_state_dir(), hashlib.sha256(data).hexdigest()[:32] + ".options")
    temp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    with open(fd, "wb") as f:
        f.write(data)
    os.replace(temp, path)  # whole or absent, never half-written
    return STATE_PREFIX + path


def _inside(child: str, parent: str) -> bool:
    return child == parent or child.startswith(parent.rstrip("/") + "/")


def check_mountpoint(path: str, label: str, allow_nonempty: bool) -> str:
    """The mount point's real path; it must be an existing, empty directory."""
    if not os.path.lexists(path):
        raise MountError(f"mount point {label} does not exist")
    if not os.path.isdir(path):
        raise MountError(f"mount point {label} is not a directory")
    try:
        entries = os.listdir(path)
    except OSError as exc:
        raise MountError(f"mount point {label}: {exc.strerror}") from None
    if entries and not allow_nonempty:
        raise MountError(f"mount point {label} is not empty (use -o nonempty to mount over it)")
    return os.path.realpath(path)


def fuse_unavailable() -> str | None:
    """Why FUSE cannot mount here, or None."""
    if not os.path.exists("/dev/fuse"):
        return "FUSE is not available: /dev/fuse does not exist (modprobe fuse)"
    if os.geteuid() != 0 and not (shutil.which("fusermount3") or shutil.which("fusermount")):
        return "FUSE is not available: fusermount3 is not installed (apt-get install fuse3)"
    try:
        from . import fuse_ops  # noqa: F401  (loads libfuse)
    except (ImportError, OSError, AttributeError) as exc:
        return f"FUSE is not available: {exc}"
    return None


def attr_seconds() -> float:
    """How long the kernel may keep attributes: long if the daemon can invalidate them."""
    from .fuse_ops import Invalidator

    return ATTR_SECONDS if Invalidator().available else ATTR_SECONDS_UNINVALIDATED


def plan(request: MountRequest) -> Plan:
    """Check everything a mount needs; raise OptionError or MountError with one line."""
    spec = validate(parse_options(list(request.options), request.cwd))
    features = spec.features
    if not (features.uid_map.identity and features.gid_map.identity):
        # Owners are mapped here, once: read every layer as stored (see mountinfo.plain_path).
        table = mounts()
        spec = replace(spec, branches=tuple(replace(b, path=plain_path(b.path, table)) for b in spec.branches))
    mountpoint = os.path.join(request.cwd, request.mountpoint)
    mountpoint = check_mountpoint(mountpoint, request.mountpoint, "nonempty" in spec.flags)
    for branch in spec.branches:
        if _inside(mountpoint, branch.path):
            raise MountError(f"mount point {request.mountpoint} is inside the branch {branch.label}")
    if spec.workdir and _inside(mountpoint, spec.workdir):
        raise MountError(f"mount point {request.mountpoint} is inside the work directory")
    reason = fuse_unavailable()
    if reason:
        raise MountError(reason)

    opts: dict[str, Any] = {"subtype": "layerfs"}
    opts["fsname"] = escape_fsname(mount_source(format_options(spec)))
    root = os.geteuid() == 0
    flags = set(spec.flags)
    if root:
        # mount(8)'s defaults: setuid programs and device files work unless refused
        # (libfuse's own default is nosuid,nodev; a user's mount stays so, fusermount forces it).
        flags |= {"suid"} if "nosuid" not in flags else set()
        flags |= {"dev"} if "nodev" not in flags else set()
    for flag in sorted(flags & KERNEL_FLAGS):
        opts[flag] = True
    if spec.readonly:
        opts["ro"] = True
        opts.pop("rw", None)
    for key in CONTEXT_OPTIONS:
        label = spec.value(key)
        if label is not None:
            if not os.path.exists(SELINUX_FS):
                raise MountError(f"{key}={label}: the kernel has no SELinux here")
            opts[key] = label
    if root or "allow_other" in spec.flags:
        opts["allow_other"] = True
    if root or "default_permissions" in spec.flags:
        opts["default_permissions"] = True
    if "allow_root" in spec.flags and not opts.get("allow_other"):
        opts["allow_root"] = True
    for key in FUSE_VALUES:
        value = spec.value(key)
        if value is not None:
            opts[key] = value
    timeout = spec.value("timeout")
    entry = ENTRY_SECONDS if timeout is None else float(timeout)
    attr = attr_seconds() if timeout is None else float(timeout)
    # use_ino: st_ino is the union's own number (inode.py), so that every name of a hard link
    # shows one inode and a copied-up file keeps its number, as on the kernel's overlay.
    opts.update(kernel_cache=True, entry_timeout=entry, attr_timeout=attr, negative_timeout=entry, use_ino=True)
    if spec.value("threaded") == "0":
        opts["nothreads"] = True
    debug = "debug" in spec.flags
    if debug:
        opts["debug"] = True
    trace = spec.value("trace")
    if trace:
        trace = os.path.join(request.cwd, trace)
        if not os.path.isdir(os.path.dirname(trace) or "/"):
            raise MountError(f"trace file {trace}: its directory does not exist")
    return Plan(spec, mountpoint, opts, trace, request.foreground or debug)


# -- mounting -----------------------------------------------------------------------------
def _open_union(p: Plan) -> Union:
    try:
        return Union.from_spec(p.spec, TraceFile(p.trace) if p.trace else None)
    except OSError as exc:
        raise MountError(
            f"cannot open the union: {exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
        ) from None


def mount(request: MountRequest) -> None:
    """Mount; return once the mount is live (or, in the foreground, once it is unmounted)."""
    p = plan(request)
    union = _open_union(p)
    from .fuse_ops import LayerOps, run_fuse

    if p.foreground:
        try:
            run_fuse(LayerOps(union, lambda: _in_thread(set_read_ahead, p.mountpoint)), p.mountpoint, p.fuse_options)
        except RuntimeError as exc:
            raise MountError(f"mounting {request.mountpoint} failed (libfuse error {exc})") from None
        return

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the daemon
        os.close(read_end)
        os._exit(_daemon(union, p, write_end))
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        message = pipe.read().decode("utf-8", "replace").strip()
    if message == "ok":
        set_read_ahead(p.mountpoint)
        return
    os.waitpid(pid, 0)
    raise MountError(message or f"mounting {request.mountpoint} failed: the daemon exited")


def _in_thread(fn: Callable[..., object], *args: object) -> None:
    import threading

    threading.Thread(target=fn, args=args, daemon=True).start()


def _daemon(union: Union, p: Plan, status_fd: int) -> int:
    """The child: detach, run FUSE, report readiness (or the error) on `status_fd`."""
    from .fuse_ops import LayerOps, run_fuse

    os.setsid()
    os.chdir("/")
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    # libfuse reports mount problems on stderr: keep them until the mount is live.
    errors = tempfile.TemporaryFile()
    os.dup2(errors.fileno(), 2)
    state = {"ready": False}

    def ready() -> None:
        state["ready"] = True
        os.write(status_fd, b"ok\n")
        os.close(status_fd)
        os.dup2(devnull, 2)

    failure = ""
    try:
        run_fuse(LayerOps(union, ready), p.mountpoint, p.fuse_options)
    except BaseException as exc:  # report, whatever it was: the parent is waiting
        failure = str(exc)
    if state["ready"]:
        return 0
    errors.seek(0)
    lines = [line.strip() for line in errors.read().decode("utf-8", "replace").splitlines() if line.strip()]
    detail = lines[-1] if lines else (f"libfuse error {failure}" if failure else "unknown error")
    if detail.startswith("fuse: "):
        detail = detail[len("fuse: ") :]
    try:
        os.write(status_fd, f"mounting {p.mountpoint} failed: {detail}\n".encode())
    finally:
        os.close(status_fd)
    return 1


def set_read_ahead(mountpoint: str, kb: int = READ_AHEAD_KB) -> bool:
    """Raise the readahead of the live FUSE mount at `mountpoint` (root only: a sysfs write).

    Not from libfuse's `init`: the kernel sets the readahead from init's reply, after it.
    The stat waits until the mount is initialised.
    """
    try:
        st = os.stat(mountpoint)
        with open(f"/sys/class/bdi/{os.major(st.st_dev)}:{os.minor(st.st_dev)}/read_ahead_kb", "w") as f:
            f.write(f"{kb}\n")
        return True
    except OSError:
        return False  # not root, or no sysfs: the kernel's default stays


# -- unmounting --------------------------------------------------------------------------
def unmount(mountpoint: str, lazy: bool = False) -> None:
    """End a union mount (the daemon then closes its files and exits)."""
    real = os.path.realpath(mountpoint)
    info = mount_at(real)
    if info is None:
        raise MountError(f"{mountpoint} is not mounted")
    if info.fstype != FSTYPE:
        raise MountError(f"{mountpoint} is not a layerfs mount ({info.fstype})")
    if os.geteuid() == 0:
        command = ["umount"] + (["-l"] if lazy else []) + [real]
    else:
        tool = shutil.which("fusermount3") or shutil.which("fusermount") or "fusermount3"
        command = [tool, "-u"] + (["-z"] if lazy else []) + [real]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        raise MountError(lines[-1].strip() if lines else f"unmounting {mountpoint} failed")
