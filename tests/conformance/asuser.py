"""Operations as a non-root uid, for the permissions variant of the harness (issue 7).

Permission checks belong to the kernel's VFS (and, through FUSE, to `default_permissions`),
so they are only seen from a process that is not root. `AsUser` is one long-lived child per
mount, forked once per example, that has dropped its groups, gid and uid before it touches
the mount; it receives (op, args) and answers with `realops.run`'s ("ok", value) or
("err", errno name). `PermRun` is a `Run` whose steps go through two such children (the
kernel's overlay, layerfs through FUSE), while views and the final checks stay root's.
"""

from __future__ import annotations

import inspect
import multiprocessing
import os
import re

from .harness import Run
from .realops import RealFS, run

UID = GID = 1000
REPLY_TIMEOUT = 30.0  # seconds: a step that hangs is a failure, not a stuck CI job


class UserFS(RealFS):
    """RealFS plus the calls only a non-owner sees differently."""

    def utime_now(self, path):
        """utimes(path, NULL): needs write access only, where explicit times need ownership."""
        os.utime(self.p(path))

    def access(self, path, mode):
        return os.access(self.p(path), mode)


def _serve(conn, root: str, uid: int, gid: int) -> None:
    """The child: drop privileges (groups first, uid last), then serve steps until None."""
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
    fs = UserFS(root)
    try:
        while (message := conn.recv()) is not None:
            op, args = message
            conn.send(run(fs, op, args))
    finally:
        fs.close_all()
        conn.close()


class AsUser:
    """A child process running operations on the tree at `root` as `uid`:`gid`."""

    def __init__(self, root: str, uid: int = UID, gid: int = GID) -> None:
        ctx = multiprocessing.get_context("fork")  # no re-exec: the interpreter may be under /root
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(child, root, uid, gid), daemon=True)
        self.proc.start()
        child.close()

    def run(self, op: str, args: tuple):
        self.conn.send((op, args))
        if not self.conn.poll(REPLY_TIMEOUT):
            raise TimeoutError(f"{op}{args!r}: no answer in {REPLY_TIMEOUT:.0f}s")
        return self.conn.recv()

    def close(self) -> None:
        """Stop the child: its descriptors close, so the mount can be unmounted."""
        if self.proc.pid is None:
            return
        try:
            self.conn.send(None)
        except OSError:
            pass
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
        self.conn.close()


class PermRun(Run):
    """A FUSE run whose operations run as `uid`:`gid` on both sides.

    The aufs side is off: it is the in-process `Union`, which checks no permissions.
    """

    def __init__(self, stack, uid: int = UID, gid: int = GID) -> None:
        self.uid, self.gid = uid, gid
        self.users: list[AsUser] = []
        super().__init__(stack, fuse=True, aufs=False)

    def _set_up(self) -> None:
        os.chmod(self.base, 0o755)  # mkdtemp's 0700 would stop the uid before the mounts
        super()._set_up()
        self.users = [AsUser(self.kmnt, self.uid, self.gid), AsUser(self.fmnt, self.uid, self.gid)]

    def step(self, op: str, args: tuple) -> tuple[tuple, tuple]:
        k = self.users[0].run(op, args)
        f = self.users[1].run(op, args)
        self.ops.append((op, args, k, f))
        return k, f

    def unmount(self) -> None:
        users, self.users = self.users, []
        for user in users:
            user.close()
        super().unmount()

    def script(self) -> str:
        """The base script, with the replay run as the uid (setpriv, util-linux)."""
        text = super().script()
        text = text.replace('S="$B/s"', 'S="$B/s"\nchmod 755 "$B"')
        text = text.replace("fs = RealFS(sys.argv[1])", inspect.getsource(UserFS) + "fs = UserFS(sys.argv[1])")
        return re.sub(
            r"^python3 ", f"setpriv --reuid={self.uid} --regid={self.gid} --clear-groups python3 ", text, flags=re.M
        )


def replay_as(stack, steps: list[tuple[str, tuple]], uid: int = UID, gid: int = GID) -> tuple[list[tuple], list[str]]:
    """`replay.replay` as `uid`: the kernel's results, and the divergences (empty: none)."""
    from .replay import replay_run

    return replay_run(PermRun(stack, uid, gid), steps)
