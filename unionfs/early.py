"""The early daemon: the process that serves a mount the command makes itself (root), forked
as soon as the command knows its argv is a mount, before it imports its checks.

Why: umount(8) and podman wait on the mount point until the daemon has answered FUSE_INIT,
and the daemon's start (ctypes, libfuse and its binding, the session: ~11 ms of CPU) is longer
than what the command has left to do once it has forked (the checks, the work directory,
mount(2): ~5 ms), so the daemon's start is what a mount+umount cycle waits for. Forked before
the command has imported `mount`, `mountopts` and `params` (~2 ms), the daemon starts that much
earlier, and imports none of them before FUSE_INIT: its plan comes in `plan`'s plain values,
and `mount` is imported when the core is (the readahead, the union's opening) or the session
has ended. Handed nothing (a check failed, or libfuse must mount after all:
`mount.kernel_mount`), it exits.

Only `os`, `libfuse` (which imports only `os`) and `plan` (nothing) here: this module is
imported before the fork.
"""

from __future__ import annotations

import os

from . import libfuse
from .plan import Plan

TYPE_CHECKING = False
if TYPE_CHECKING:
    from . import lowlevel
    from .union import Union


class EarlyDaemon:
    """The forked daemon, seen from the command: /dev/fuse (`fd`, for mount(2)'s fd=N: the
    daemon has its own copy) and the pipe its plan goes through."""

    __slots__ = ("fd", "_plan_out")

    def __init__(self, fd: int, plan_out: int) -> None:
        self.fd = fd
        self._plan_out = plan_out

    @classmethod
    def start(cls, foreground: bool) -> EarlyDaemon | None:
        """None where the command will not mount by itself (`mount.kernel_mount`'s conditions
        that are known before the options are parsed), or /dev/fuse cannot be opened (the
        checks say why)."""
        if os.geteuid() != 0 or foreground or libfuse.user_choice():
            return None
        try:
            fd = os.open("/dev/fuse", os.O_RDWR)
        except OSError:
            return None
        plan_in, plan_out = os.pipe()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.close(plan_out)
                code = _early_daemon(plan_in, fd)
            finally:
                os._exit(code)
        os.close(plan_in)
        return cls(fd, plan_out)

    def hand_over(self, plan: bytes) -> None:
        """Give the daemon the mount to serve (`mount.Plan.to_bytes`; the mount is made)."""
        data = memoryview(plan)
        while data:
            data = data[os.write(self._plan_out, data) :]

    def close(self) -> None:
        os.close(self._plan_out)
        os.close(self.fd)


def detach() -> None:
    """A daemon's own session, with no terminal and no hold on the caller's pipes (podman reads
    the mount program's output until every copy of it is closed)."""
    os.setsid()
    os.chdir("/")
    devnull = os.open(os.devnull, os.O_RDWR)
    for target in (0, 1, 2):
        os.dup2(devnull, target)


def _early_daemon(plan_in: int, fd: int) -> int:
    """The daemon's process: load what serving needs, then serve the plan it is handed."""
    import gc

    detach()
    # The command's objects live as long as the daemon: out of every later garbage collection
    # (a collection over them during the imports below cost ~2 ms before FUSE_INIT's answer).
    gc.freeze()
    lib = None
    try:
        from . import bootstrap, lowlevel  # noqa: F401  (FUSE_INIT is answered with these)

        lib = lowlevel.Library()
    except (ImportError, OSError, AttributeError):
        pass  # serve_mounted finds out again, and falls back or gives up
    with open(plan_in, "rb") as pipe:
        data = pipe.read()
    if not data:
        return 0  # nothing was mounted for this daemon
    return serve_mounted(Plan.from_bytes(data), fd, lib)


def serve_mounted(p: Plan, fd: int, lib: lowlevel.Library | None = None) -> int:
    """The daemon of a mount made by `kernel_mount`: serve it until it is unmounted, opening
    the union when a request first needs it (`bootstrap`: FUSE_INIT and what umount(8) and
    podman ask of the mount point are answered without the core). The command has returned by
    then; what could fail in opening the union, it checked before it mounted (`plan`,
    `prepare_work_dir`); should opening fail all the same, the session ends.

    Should the loop end with the mount still in place (a signal, or libfuse or the union
    failing to start), unmount it, as libfuse does for the mounts it makes: a FUSE mount
    without its daemon only answers ENOTCONN.
    """

    def after_init() -> None:
        from .mount import device_of, set_read_ahead

        set_read_ahead(p.mountpoint, device=device_of(p))

    def open_union() -> Union:
        from .mount import open_union

        return open_union(p)

    try:
        from . import lowlevel

        try:
            lib = lib or lowlevel.Library()
        except (OSError, AttributeError):  # libfuse 3 without the low-level API: mfusepy's
            from .mount import serve

            serve(open_union(), f"/dev/fd/{fd}", p.fuse_options, after_init=after_init)
        else:
            from . import bootstrap  # FUSE_INIT and the root answered before the core is imported

            bootstrap.serve(lib, p.union, f"/dev/fd/{fd}", p.fuse_options, open_union, after_init)
    except BaseException:  # nobody to tell: the mount is undone below
        pass
    try:
        os.close(fd)  # the kernel ends the connection: nothing can wait on it any more
    except OSError:
        pass
    rest_while_unmounted(p.mountpoint)
    from .mount import FSTYPE, MNT_DETACH
    from .mountinfo import mounts

    left = next((m for m in reversed(mounts()) if m.mountpoint == p.mountpoint), None)
    if left is not None and left.fstype == FSTYPE and left.source == p.source:
        import ctypes

        ctypes.CDLL(None, use_errno=True).umount2(os.fsencode(p.mountpoint), MNT_DETACH)
    return 0


UNMOUNT_REST_SECONDS = 0.002


def rest_while_unmounted(mountpoint: str, seconds: float = UNMOUNT_REST_SECONDS) -> bool:
    """Once an unmount has ended the session, sleep `seconds` before cleaning up and exiting;
    True if it slept (the mount point no longer leads to our mount: a stat of it succeeds, or
    fails otherwise, as when podman has removed the directory), False if the mount is still
    there (the closed connection answers ENOTCONN).

    Why: the unmounter (umount(8), podman) returns from umount2 and then tears the mount down,
    which is what ends our connection; the teardown unregisters the mount's backing device
    with `synchronize_rcu_expedited`, so the unmounter waits until every other CPU has passed a
    quiescent state. A daemon that cleans up and exits at once (reading mountinfo, freeing the
    interpreter's memory) keeps its CPU in the kernel meanwhile: umount(8) exited 2.5-3.5 ms
    after its umount2 against fuse-overlayfs's 0.3 ms (kernel tracepoints, bench/README.md).
    Asleep, this CPU is quiescent at once; nobody waits for the daemon's exit."""
    import errno

    try:
        os.stat(mountpoint)
    except OSError as exc:
        if exc.errno == errno.ENOTCONN:
            return False
    import time

    time.sleep(seconds)
    return True
