"""The process a container runs: its user, environment, working directory, privileges, exec.

Runs inside the container (after pivot_root, or after setns for an exec): the user is looked
up in the container's own /etc/passwd and /etc/group (moby/sys/user GetExecUser), the
capabilities are cut to the spec's set before the user changes (runc's order: bounding set,
keep-caps, setgroups/setgid/setuid, capset), and exec failures become Docker's messages and
exit statuses (127 not found, 126 not executable).
"""

from __future__ import annotations

import errno
import os
import signal
import stat
from dataclasses import dataclass, field

from . import syscalls as sc
from .spec import CAP_NUMBER, ProcessSpec, replace_env


class ProcessError(Exception):
    """The process cannot be started; str() is runc's text, `code` docker run's exit status."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class ExecUser:
    uid: int
    gid: int
    groups: list[int] = field(default_factory=list)
    home: str = "/"


def _read_db(path: str) -> list[list[str]]:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return [line.rstrip("\n").split(":") for line in f if line.strip() and not line.startswith("#")]
    except OSError:
        return []


def lookup_user(spec: str, passwd: str = "/etc/passwd", group: str = "/etc/group") -> ExecUser:
    """`user`, `uid`, `user:group`, `uid:gid` against the container's files, as moby/sys/user does.

    A numeric uid without a passwd entry is fine (gid 0, HOME /); a name that is not there is an
    error. Supplementary groups are the groups whose member list names the user.
    """
    user_part, _, group_part = (spec or "0").partition(":")
    users = [u for u in _read_db(passwd) if len(u) >= 7]
    groups = [g for g in _read_db(group) if len(g) >= 4]
    entry = None
    if user_part.isdigit():
        uid = int(user_part)
        entry = next((u for u in users if u[2].isdigit() and int(u[2]) == uid), None)
    else:
        entry = next((u for u in users if u[0] == user_part), None)
        if entry is None:
            raise ProcessError(f"unable to find user {user_part}: no matching entries in passwd file", 126)
        uid = int(entry[2]) if entry[2].isdigit() else 0
    gid = int(entry[3]) if entry and entry[3].isdigit() else 0
    home = entry[5] if entry else "/"
    name = entry[0] if entry else None
    if group_part:
        if group_part.isdigit():
            gid = int(group_part)
        else:
            g = next((g for g in groups if g[0] == group_part), None)
            if g is None:
                raise ProcessError(f"unable to find group {group_part}: no matching entries in group file", 126)
            gid = int(g[2])
        supplementary = [gid]
    else:
        supplementary = [gid] + [
            int(g[2]) for g in groups if name and name in g[3].split(",") and g[2].isdigit() and int(g[2]) != gid
        ]
    return ExecUser(uid, gid, supplementary, home or "/")


def cap_mask(caps: list[str]) -> int:
    mask = 0
    for c in caps:
        mask |= 1 << CAP_NUMBER[c]
    return mask


def drop_privileges(proc: ProcessSpec, user: ExecUser) -> None:
    """Bounding set, then the user, then the capability sets, then no_new_privs (runc finalizeNamespace)."""
    keep = cap_mask(proc.caps)
    for n in range(sc.last_cap() + 1):
        if not keep >> n & 1:
            try:
                sc.prctl(sc.PR_CAPBSET_DROP, n)
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
    sc.prctl(sc.PR_SET_KEEPCAPS, 1)
    os.setgroups(user.groups)
    os.setgid(user.gid)
    os.setuid(user.uid)
    sc.prctl(sc.PR_SET_KEEPCAPS, 0)
    _, permitted, _ = sc.capget()
    keep &= permitted
    sc.capset(keep, keep, 0)
    try:
        sc.prctl(sc.PR_CAP_AMBIENT, sc.PR_CAP_AMBIENT_CLEAR_ALL)
    except OSError:
        pass
    if proc.no_new_privileges:
        sc.prctl(sc.PR_SET_NO_NEW_PRIVS, 1)


def environment(proc: ProcessSpec, user: ExecUser) -> list[str]:
    """The spec's env, plus HOME from the user's passwd entry when the env does not set it."""
    env = list(proc.env)
    if not any(e.startswith("HOME=") for e in env):
        env = replace_env(env, [f"HOME={user.home}"])
    return env


def find_executable(name: str, env: list[str]) -> str:
    """exec.LookPath in the container: a name with a slash as is, else along the env's PATH."""
    if "/" in name:
        try:
            st = os.stat(name)
        except OSError as exc:
            raise ProcessError(f'exec: "{name}": stat {name}: {os.strerror(exc.errno or 0).lower()}', 127) from None
        if stat.S_ISDIR(st.st_mode) or not os.access(name, os.X_OK):
            raise ProcessError(f'exec: "{name}": permission denied', 126)
        return name
    path = next((e[5:] for e in env if e.startswith("PATH=")), "")
    for d in path.split(":"):
        candidate = os.path.join(d or ".", name)
        try:
            st = os.stat(candidate)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and os.access(candidate, os.X_OK):
            return candidate
    raise ProcessError(f'exec: "{name}": executable file not found in $PATH', 127)


def prepare_cwd(cwd: str, user: ExecUser) -> None:
    """Docker creates a missing working directory (owned by the user) before the process starts."""
    if not os.path.isdir(cwd):
        os.makedirs(cwd, 0o755, exist_ok=True)
        os.chown(cwd, user.uid, user.gid)
    os.chdir(cwd)


def default_signals() -> None:
    """Every signal back to its default and none blocked: ignored dispositions survive exec, and
    Python ignores SIGPIPE (a monitor also SIGINT, SIGHUP); a shell cannot trap what it was
    handed ignored."""
    for sig in range(1, signal.NSIG):
        if sig in (signal.SIGKILL, signal.SIGSTOP):
            continue
        try:
            signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError):
            pass
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def exec_process(proc: ProcessSpec, env: list[str]) -> None:
    """Replace this process with the container's command; only returns by raising ProcessError."""
    exe = find_executable(proc.args[0], env)
    try:
        os.execve(exe, proc.args, dict(e.split("=", 1) for e in env))
    except OSError as exc:
        code = 126 if exc.errno in (errno.EACCES, errno.ENOEXEC, errno.EISDIR) else 127
        raise ProcessError(f'exec: "{proc.args[0]}": {os.strerror(exc.errno or 0).lower()}', code) from None
