"""Mounting and unmounting a union with FUSE.

`mount` returns only once the kernel has the mount. As root it mounts as fuse-overlayfs does:
mount(2) on an open /dev/fuse here, served by a child process that was forked before the
checks and has loaded libfuse's binding meanwhile (`early.EarlyDaemon`; requests wait in the kernel
until it answers FUSE_INIT); so a mount costs a Python start-up, not the binding's loading
after it, nor the union's opening (the daemon's `bootstrap`). Otherwise libfuse mounts,
in the child, which tells the parent through a pipe when libfuse calls `init`. Everything
that can be checked before (options, layers, mount point, FUSE itself) is checked in the
parent, so a bad mount prints one line and leaves nothing behind.

The union's layers travel in the mount's source ("fsname"), so `/proc/self/mountinfo` is
enough to open the same union again, read-only, for `layerfs explain` and `tree --origin`.

The command's path is kept light: containers-storage runs it for every mount, and a Python
start-up is most of a mount's cost. Before it returns, the command parses and checks the
options (`mountopts`, in plain values), checks the mount point, clears the work directory,
mounts and hands the mount over; only the daemon imports ctypes (the command uses `_ctypes`),
the core (dataclasses, the union), mfusepy and libfuse's bindings, and opens the union.
Nothing here imports them at module level.
"""

from __future__ import annotations

import os

from . import libfuse
from .early import EarlyDaemon
from .plan import AUFS, Plan

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from .union import Union

FSTYPE = "fuse.layerfs"
STATE_PREFIX = "layerfs-state="  # a source naming a state file (stacks longer than a page)
# Mount flags libfuse 3 applies itself (lib/mount.c mount_flags[]): passed through unchanged.
KERNEL_FLAGS = frozenset(
    {"ro", "rw", "dev", "nodev", "suid", "nosuid", "exec", "noexec", "sync", "async", "dirsync", "atime", "noatime"}
)
# Options for libfuse's high-level layer, passed with their values.
FUSE_VALUES = frozenset({"uid", "gid", "umask", "max_read"})
# Lowers never change while mounted and every write goes through us, so the kernel may keep
# names (and absent names), attributes, file pages and listings as long as it likes, as with
# fuse-overlayfs. What it cannot see itself (directories a copy-up brought up; with the
# high-level fallback also the other names of a hard link, libfuse giving each name its own
# kernel inode) the daemon invalidates (ll_ops, fuse_ops). Without libfuse 3's
# fuse_invalidate_path, the fallback has attributes kept a second only.
ENTRY_SECONDS = 86400.0
ATTR_SECONDS = 86400.0
ATTR_SECONDS_UNINVALIDATED = 1.0
FSNAME_LIMIT = 3800  # the kernel copies at most a page of mount source
# Readahead of the mount's backing device. The kernel starts FUSE mounts at 128 KiB, so a
# sequential read is one READ request (one Python call) per 128 KiB; near 1 MiB it is one per
# MiB (libfuse's requests go up to 1 MiB). Measured on the bench's cold 256 MiB read: 2,048
# requests and ~230 ms at 128 KiB, 256 requests and ~134 ms at 1 MiB. 1008 KiB, not 1024: a
# READ's reply is spliced from the layer file (ll_ops.read) only if it fits libfuse's pipe with
# its header and slack (lowlevel.splice_limit), and a pipe grows to /proc/sys/fs/pipe-max-size
# (1 MiB by default) only, without CAP_SYS_RESOURCE, which a container's root often lacks.
READ_AHEAD_KB = 1008
SELINUX_FS = "/sys/fs/selinux"


class MountError(Exception):
    """A mount or unmount that cannot be done; the message is one line for the user."""


class MountRequest:
    """What the command line asked for. (Plain classes here, not dataclasses: see the top.)"""

    __slots__ = ("options", "mountpoint", "cwd", "foreground")

    def __init__(self, options: tuple[str, ...], mountpoint: str, cwd: str, foreground: bool = False) -> None:
        self.options = options
        self.mountpoint = mountpoint
        self.cwd = cwd
        self.foreground = foreground


# -- planning -----------------------------------------------------------------------------
def escape_fsname(text: str) -> str:
    """libfuse splits -o on ',' and unescapes '\\': protect the union's option string."""
    return text.replace("\\", "\\\\").replace(",", "\\,")


def mount_source(options: str) -> str:
    """What the mount's source field records: the layers, or (for a stack too long for the
    kernel's page) the path of a state file holding them, named by their hash."""
    if len(escape_fsname(options)) <= FSNAME_LIMIT:
        return options
    import hashlib

    from .mountinfo import make_state_dir

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
    if os.geteuid() != 0:
        import shutil

        if not (shutil.which("fusermount3") or shutil.which("fusermount")):
            return "FUSE is not available: fusermount3 is not installed (apt-get install fuse3)"
    try:
        if libfuse.user_choice():
            from . import fuse_ops  # noqa: F401  (loads the library the user named)
        else:
            libfuse.handle()  # what the daemon will load, without ctypes here (libfuse.py)
    except (ImportError, OSError, AttributeError) as exc:
        return f"FUSE is not available: {exc}"
    return None


def attr_seconds() -> float:
    """How long the kernel may keep attributes: long if the daemon can invalidate them."""
    if libfuse.user_choice():
        from .fuse_ops import Invalidator

        return ATTR_SECONDS if Invalidator().available else ATTR_SECONDS_UNINVALIDATED
    return ATTR_SECONDS if libfuse.has_symbol("fuse_invalidate_path") else ATTR_SECONDS_UNINVALIDATED


def plan(request: MountRequest) -> Plan:
    """Check everything a mount needs; raise OptionError or MountError with one line."""
    from .mountopts import format_options, parse, validate  # here: the early daemon needs only Parsed
    from .params import CONTEXT_OPTIONS

    spec = validate(parse(list(request.options), request.cwd))
    if spec.maps_owners:
        # Owners are mapped here, once: read every layer as stored (see mountinfo.plain_path).
        from .mountinfo import mounts, plain_path

        table = mounts()
        for branch in spec.branches:
            branch.path = plain_path(branch.path, table)
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
    source = mount_source(format_options(spec))
    opts["fsname"] = escape_fsname(source)
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
    return Plan(spec, mountpoint, opts, trace, request.foreground or debug, source)


def prepare_work_dir(p: Plan) -> None:
    """Clear the work directory as opening the union will (see workdir.py), here, before the
    mount: a work directory that cannot be written is one line and no mount."""
    from . import workdir

    union = p.union
    if union.workdir is None or union.readonly or union.upper is None:
        return
    try:
        workdir.clear(workdir.tmpdir_of(union.workdir, aufs=union.dialect == AUFS))
    except OSError as exc:
        raise _open_error(exc) from None


def _open_error(exc: OSError) -> MountError:
    return MountError(f"cannot open the union: {exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""))


# -- mounting -----------------------------------------------------------------------------
def serve(
    union: Union,
    mountpoint: str,
    fuse_options: dict[str, Any],
    on_ready: Callable[[], None] | None = None,
    after_init: Callable[[], object] | None = None,
) -> None:
    """Serve the union until unmounted: on libfuse 3's low-level API (ll_ops), or on mfusepy's
    high-level one (fuse_ops) where that is missing (libfuse 2, or a library the user named)."""
    from . import lowlevel

    if lowlevel.available() is None:
        from .ll_ops import LowLevelOps, caching_of, run_lowlevel

        ops = LowLevelOps(union, caching_of(fuse_options), on_ready, after_init, debug=bool(fuse_options.get("debug")))
        run_lowlevel(ops, mountpoint, fuse_options)
        return
    from .fuse_ops import LayerOps, run_fuse

    run_fuse(LayerOps(union, on_ready, after_init), mountpoint, fuse_options)


def open_union(p: Plan) -> Union:
    """The core's union for `p` (in the daemon, or in the foreground: the core's imports are
    not on the command's path)."""
    from .options import spec_of
    from .trace import TraceFile
    from .union import Union

    try:
        return Union.from_spec(spec_of(p.union), TraceFile(p.trace) if p.trace else None)
    except OSError as exc:
        raise _open_error(exc) from None


def mount(request: MountRequest, early: EarlyDaemon | None = None) -> None:
    """Mount; return once the mount is live (or, in the foreground, once it is unmounted).
    `early`: the daemon the command forked already (`early.EarlyDaemon`), else one is forked here."""
    if early is None:
        early = EarlyDaemon.start(request.foreground)  # as root: the daemon starts loading now
    try:
        p = plan(request)
        prepare_work_dir(p)
        if early is not None and not p.foreground and kernel_mount(p, early.fd):
            early.hand_over(p.to_bytes())
            return
    finally:
        if early is not None:
            early.close()  # without a plan, the daemon exits
    if p.foreground:
        union = open_union(p)
        try:
            serve(
                union,
                p.mountpoint,
                p.fuse_options,
                after_init=lambda: set_read_ahead(p.mountpoint, device=device_of(p)),
            )
        except RuntimeError as exc:
            raise MountError(f"mounting {request.mountpoint} failed (libfuse error {exc})") from None
        return

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the daemon
        os.close(read_end)
        os._exit(_daemon(p, write_end))
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        message = pipe.read().decode("utf-8", "replace").strip()
    if message == "ok":
        set_read_ahead(p.mountpoint)
        return
    os.waitpid(pid, 0)
    raise MountError(message or f"mounting {request.mountpoint} failed: the daemon exited")


# mount(2) flags (linux/mount.h) for the flags libfuse itself turns into them (lib/mount.c).
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_SYNCHRONOUS, MS_DIRSYNC, MS_NOATIME, MNT_DETACH = (
    1, 2, 4, 8, 16, 128, 1024, 2,
)  # fmt: skip
MOUNT_FLAGS = {
    "ro": (MS_RDONLY, True), "rw": (MS_RDONLY, False), "nosuid": (MS_NOSUID, True), "suid": (MS_NOSUID, False),
    "nodev": (MS_NODEV, True), "dev": (MS_NODEV, False), "noexec": (MS_NOEXEC, True), "exec": (MS_NOEXEC, False),
    "sync": (MS_SYNCHRONOUS, True), "async": (MS_SYNCHRONOUS, False), "dirsync": (MS_DIRSYNC, True),
    "noatime": (MS_NOATIME, True), "atime": (MS_NOATIME, False),
}  # fmt: skip
KERNEL_OPTIONS = ("allow_other", "default_permissions")  # libfuse hands these to the kernel as they are


def kernel_mount(p: Plan, fd: int) -> bool:
    """Mount as libfuse 3 would (lib/mount.c), from this process: mount(2) with `fd=N`, N an
    open /dev/fuse, which the daemon serves as `/dev/fd/N` (libfuse >= 3.3).

    Why: the mount is then in place before the daemon has loaded libfuse's binding (most of a
    mount's start-up), as fuse-overlayfs's is before it serves; requests wait in the kernel
    until the daemon answers FUSE_INIT. False where libfuse must mount (no root, SELinux
    contexts, a library the user chose, mount(2) refused): the caller then lets it.
    """
    from .params import CONTEXT_OPTIONS

    if os.geteuid() != 0 or libfuse.user_choice() or any(key in p.fuse_options for key in CONTEXT_OPTIONS):
        return False
    try:
        libfuse.handle()  # the daemon's: without it, libfuse's own path reports why
    except OSError:
        return False
    flags = MS_NOSUID | MS_NODEV  # libfuse's defaults
    data = [key for key in KERNEL_OPTIONS if p.fuse_options.get(key)]
    for key, value in p.fuse_options.items():
        if key in MOUNT_FLAGS and value:
            bit, on = MOUNT_FLAGS[key]
            flags = flags | bit if on else flags & ~bit
        elif key == "max_read":
            data.append(f"max_read={value}")
    data.append(f"fd={fd},rootmode=40000,user_id={os.getuid()},group_id={os.getgid()}")
    source, target = os.fsencode(p.source), os.fsencode(p.mountpoint)
    return _mount_syscall(source, target, FSTYPE.encode(), flags, ",".join(data).encode()) == 0


def _mount_syscall(source: bytes, target: bytes, fstype: bytes, flags: int, data: bytes) -> int:
    """mount(2): 0, or its errno. Through `_ctypes`, not ctypes (libfuse.handle says why)."""
    import _ctypes

    class CInt(_ctypes._SimpleCData):  # ctypes.c_int, c_ulong and c_char_p, as ctypes defines them
        _type_ = "i"

    class CULong(_ctypes._SimpleCData):
        _type_ = "L"

    class CCharP(_ctypes._SimpleCData):
        _type_ = "z"

    class Function(_ctypes.CFuncPtr):  # a CDLL(None, use_errno=True) function
        _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
        _restype_ = CInt

    program = _ctypes.dlopen(None, os.RTLD_NOW | os.RTLD_LOCAL)  # type: ignore[arg-type]  # CDLL(None)'s
    call = Function(_ctypes.dlsym(program, "mount"))
    call.argtypes = (CCharP, CCharP, CCharP, CULong, CCharP)
    return 0 if call(source, target, fstype, flags, data) == 0 else int(_ctypes.get_errno())


def _daemon(p: Plan, status_fd: int) -> int:
    """The child: detach, open the union, run FUSE, report readiness (or the error) on `status_fd`."""
    import gc

    gc.freeze()  # the command's objects: out of the daemon's garbage collections (early.py)
    os.setsid()
    os.chdir("/")
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    # libfuse reports mount problems on stderr: keep them until the mount is live.
    import tempfile

    errors = tempfile.TemporaryFile()
    os.dup2(errors.fileno(), 2)
    try:
        union = open_union(p)
    except MountError as exc:
        os.write(status_fd, f"{exc}\n".encode())
        os.close(status_fd)
        return 1
    state = {"ready": False}

    def ready() -> None:
        state["ready"] = True
        os.write(status_fd, b"ok\n")
        os.close(status_fd)
        os.dup2(devnull, 2)

    failure = ""
    try:
        serve(union, p.mountpoint, p.fuse_options, on_ready=ready)
    except BaseException as exc:  # report, whatever it was: the parent is waiting
        failure = str(exc)
    if state["ready"]:
        from .early import rest_while_unmounted

        rest_while_unmounted(p.mountpoint)  # fusermount3 -u waits as umount(8) does (early.py)
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


def device_of(p: Plan) -> str | None:
    """MAJ:MIN of the mount `p` made, from mountinfo: no request to the mount itself."""
    from .mountinfo import mounts

    found = next((m for m in reversed(mounts()) if m.mountpoint == p.mountpoint and m.source == p.source), None)
    return found.device if found is not None and found.device else None


def set_read_ahead(mountpoint: str, kb: int = READ_AHEAD_KB, device: str | None = None) -> bool:
    """Raise the readahead of the live FUSE mount at `mountpoint` (root only: a sysfs write).

    Not from libfuse's `init`: the kernel sets the readahead from init's reply, after it.
    Without `device` (MAJ:MIN), a stat of the mount point finds it, and waits until the mount
    is initialised; the daemon passes it, as a stat in flight would make an umount EBUSY.
    """
    try:
        if device is None:
            st = os.stat(mountpoint)
            device = f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}"
        with open(f"/sys/class/bdi/{device}/read_ahead_kb", "w") as f:
            f.write(f"{kb}\n")
        return True
    except OSError:
        return False  # not root, or no sysfs: the kernel's default stays


# -- unmounting --------------------------------------------------------------------------
def unmount(mountpoint: str, lazy: bool = False) -> None:
    """End a union mount (the daemon then closes its files and exits)."""
    import shutil
    import subprocess

    from .mountinfo import mount_at

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
