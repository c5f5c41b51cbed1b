"""The early daemon: the process that serves a mount the command makes itself (root), forked
as soon as the command knows its argv is a mount, before it imports its checks.

Why: umount(8) and podman wait on the mount point until the daemon has answered FUSE_INIT,
and the daemon's start (ctypes, libfuse and its binding, the session: ~11 ms of CPU) is longer
than what the command has left to do once it has forked (the checks, the work directory,
mount(2): ~5 ms), so the daemon's start is what a mount+umount cycle waits for. Forked before
the command has imported `mount`, `mountopts` and `params` (~2 ms), the daemon starts that much
earlier, and imports of them only what it uses (`mount` and `mountopts`, without the option
table), while the command checks. Handed nothing (a check failed, or libfuse must mount
after all: `mount.kernel_mount`), it exits.

Only `os` and `libfuse` (which imports only `os`) here: this module is imported before the fork.
"""

from __future__ import annotations

import os

from . import libfuse


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
    from .mount import Plan, serve_mounted  # while the command checks: the plan is not there yet

    with open(plan_in, "rb") as pipe:
        data = pipe.read()
    if not data:
        return 0  # nothing was mounted for this daemon
    return serve_mounted(Plan.from_bytes(data), fd, lib)
