"""A container's State, as Docker shows it, and what survives a crash (moby container/state.go).

State lives in config.v2.json, as in Docker. While a container runs, its monitor also writes
`monitor.pid` and `init.pid` beside it (containerd writes shim.pid and init.pid in a task's
bundle): a pid and that process's start time, so a pid reused after a reboot is never
mistaken for the container. A container marked running whose monitor is gone has lost its
exit status: it shows as `Exited (255)`, as Docker shows a container after a daemon crash.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from ..imagestore import format_time, parse_time

ZERO_TIME = "0001-01-01T00:00:00Z"
CRASH_EXIT_CODE = 255


def status(state: dict[str, Any]) -> str:
    """State.StateString: created, running, paused, restarting, removing, exited, dead."""
    if state.get("Running"):
        if state.get("Paused"):
            return "paused"
        if state.get("Restarting"):
            return "restarting"
        return "running"
    if state.get("RemovalInProgress"):
        return "removing"
    if state.get("Dead"):
        return "dead"
    if _zero(state.get("StartedAt")):
        return "created"
    return "exited"


def status_text(state: dict[str, Any], now: float | None = None) -> str:
    """State.String, docker ps's STATUS: "Up 3 seconds", "Exited (0) 2 seconds ago", "Created"."""
    from ..formatting import human_duration  # (tabulate: not for a monitor)

    now = time.time() if now is None else now
    if state.get("Running"):
        up = human_duration(now - parse_time(state.get("StartedAt", "")))
        if state.get("Paused"):
            return f"Up {up} (Paused)"
        return f"Up {up}"
    if state.get("RemovalInProgress"):
        return "Removal In Progress"
    if state.get("Dead"):
        return "Dead"
    if _zero(state.get("StartedAt")):
        return "Created"
    if _zero(state.get("FinishedAt")):
        return ""
    ago = human_duration(now - parse_time(state.get("FinishedAt", "")))
    return f"Exited ({state.get('ExitCode', 0)}) {ago} ago"


def inspect_state(state: dict[str, Any]) -> dict[str, Any]:
    """docker inspect's State object, its fields in Docker's order."""
    return {
        "Status": status(state),
        "Running": bool(state.get("Running")),
        "Paused": bool(state.get("Paused")),
        "Restarting": bool(state.get("Restarting")),
        "OOMKilled": bool(state.get("OOMKilled")),
        "Dead": bool(state.get("Dead")),
        "Pid": int(state.get("Pid") or 0),
        "ExitCode": int(state.get("ExitCode") or 0),
        "Error": state.get("Error", ""),
        "StartedAt": state.get("StartedAt", ZERO_TIME),
        "FinishedAt": state.get("FinishedAt", ZERO_TIME),
    }


def _zero(t: Any) -> bool:
    return not t or str(t).startswith("0001-01-01")


def set_running(state: dict[str, Any], pid: int, now: float | None = None) -> None:
    state.update(
        Running=True,
        Paused=False,
        Restarting=False,
        OOMKilled=False,
        Dead=False,
        Pid=pid,
        ExitCode=0,
        Error="",
        StartedAt=format_time(time.time() if now is None else now),
    )


def set_stopped(
    state: dict[str, Any], exit_code: int, oom: bool = False, error: str = "", now: float | None = None
) -> None:
    state.update(
        Running=False,
        Paused=False,
        Restarting=False,
        Pid=0,
        ExitCode=exit_code,
        OOMKilled=oom,
        Error=error,
        FinishedAt=format_time(time.time() if now is None else now),
    )


def exit_code_of(wait_status: int) -> int:
    """A wait status as Docker reports it: the exit status, or 128 + the signal that killed it."""
    if os.WIFSIGNALED(wait_status):
        return 128 + os.WTERMSIG(wait_status)
    if os.WIFEXITED(wait_status):
        return os.WEXITSTATUS(wait_status)
    return CRASH_EXIT_CODE


# ---- pid files --------------------------------------------------------------------------------


def start_time(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat (clock ticks after boot), None if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    rest = data[data.rfind(b")") + 2 :].split()
    if rest and rest[0] == b"Z":
        return None  # a zombie has finished: its parent just has not reaped it yet
    try:
        return int(rest[19])
    except (IndexError, ValueError):
        return None


def write_pid_file(path: Path, pid: int) -> None:
    """`pid starttime`, written whole."""
    tmp = path.with_name("." + path.name + ".tmp")
    tmp.write_text(f"{pid} {start_time(pid) or 0}\n")
    os.replace(tmp, path)


def read_pid_file(path: Path) -> tuple[int, int] | None:
    try:
        pid, started = path.read_text().split()[:2]
        return int(pid), int(started)
    except (OSError, ValueError):
        return None


def alive(path: Path) -> int | None:
    """The pid in `path` if that very process still runs, else None."""
    rec = read_pid_file(path)
    if rec is None:
        return None
    pid, started = rec
    now = start_time(pid)
    if now is None or (started and now != started):
        return None
    return pid


def signal_pid_file(path: Path, sig: int) -> bool:
    pid = alive(path)
    if pid is None:
        return False
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True


MONITOR_PID = "monitor.pid"
INIT_PID = "init.pid"


def monitor_alive(container_dir: Path) -> int | None:
    return alive(container_dir / MONITOR_PID)


def init_alive(container_dir: Path) -> int | None:
    return alive(container_dir / INIT_PID)


def lost(state: dict[str, Any], container_dir: Path) -> bool:
    """Marked running, but its monitor is gone (kill -9, a reboot): the exit was never recorded."""
    return bool(state.get("Running")) and monitor_alive(container_dir) is None


def record_crash(state: dict[str, Any], container_dir: Path, now: float | None = None) -> None:
    """What Docker shows after a crash: Exited (255). A container process still running
    without its monitor (nobody holds its output any more) is killed first."""
    signal_pid_file(container_dir / INIT_PID, signal.SIGKILL)
    set_stopped(state, CRASH_EXIT_CODE, now=now)
    for name in (MONITOR_PID, INIT_PID):
        (container_dir / name).unlink(missing_ok=True)
