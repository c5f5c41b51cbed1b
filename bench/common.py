"""What any benchmark under bench/ needs: timing with medians, the page cache, mounts that are
always cleaned up, and the tables.

The machines are shared and noisy, so every figure is a list of samples reported by its median
(with min and max); nothing here asserts a time.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from unionfs.mountinfo import mounts


class BenchError(Exception):
    """A benchmark that cannot go on; the message is one line for the user."""


# -- figures ------------------------------------------------------------------------------
@dataclass
class Figure:
    """The samples of one measure on one system, in seconds."""

    measure: str
    system: str
    samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def low(self) -> float:
        return min(self.samples)

    @property
    def high(self) -> float:
        return max(self.samples)

    def as_dict(self) -> dict:
        return {
            "measure": self.measure,
            "system": self.system,
            "samples": self.samples,
            "median": self.median,
            "min": self.low,
            "max": self.high,
        }


def timed(action: Callable[[], object]) -> float:
    """Seconds `action` took (wall clock: what the user waits for)."""
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def format_seconds(seconds: float) -> str:
    """Three significant figures, in the unit a reader takes in at a glance."""
    if seconds >= 1:
        return f"{seconds:.3g} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds * 1e6:.3g} µs"


def load_average() -> str:
    """The 1-, 5- and 15-minute load averages, as uptime(1) prints them: figures from a loaded
    machine are slower, so every report says how loaded it was."""
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


def format_ratio(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.2f}×" if value < 100 else f"{value:.0f}×"


# -- the page cache -----------------------------------------------------------------------
def can_drop_caches() -> bool:
    return os.geteuid() == 0 and os.access("/proc/sys/vm/drop_caches", os.W_OK)


def drop_caches() -> None:
    """Write back, then drop the page cache, dentries and inodes (root only)."""
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


# -- mounts --------------------------------------------------------------------------------
def mounted_paths() -> list[str]:
    """Every mount point this process sees, in mount order."""
    return [m.mountpoint for m in mounts()]


def is_mounted(path: str) -> bool:
    return os.path.realpath(path) in mounted_paths()


def wait_mounted(path: str, timeout: float = 15.0) -> None:
    """FUSE daemons may return before the kernel has the mount: wait for mountinfo."""
    deadline = time.monotonic() + timeout
    while not is_mounted(path):
        if time.monotonic() > deadline:
            raise BenchError(f"{path} did not appear in /proc/self/mountinfo within {timeout:.0f} s")
        time.sleep(0.01)


def run(command: Sequence[str], what: str) -> None:
    """Run a command; a failure becomes one line naming `what` and the command's last error."""
    result = subprocess.run(list(command), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if result.returncode != 0:
        lines = [line.strip() for line in result.stderr.splitlines() if line.strip()]
        detail = lines[-1] if lines else f"exit status {result.returncode}"
        raise BenchError(f"{what} failed: {detail}")


def unmount(path: str) -> None:
    """umount, then a lazy umount if the first one fails (a busy or wedged FUSE daemon)."""
    real = os.path.realpath(path)
    if not is_mounted(real):
        return
    tool = ["umount"] if os.geteuid() == 0 else [shutil.which("fusermount3") or "fusermount3", "-u"]
    if subprocess.run(tool + [real], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0:
        return
    lazy = ["umount", "-l"] if os.geteuid() == 0 else tool + ["-z"]
    subprocess.run(lazy + [real], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class MountSet:
    """The mounts a benchmark made; leaving the `with` block unmounts every one still there,
    whatever happened inside it."""

    def __init__(self, root: str | None = None) -> None:
        self._paths: list[str] = []
        # Everything mounted below `root` is ours too: a signal that lands while a mount
        # command is still running can leave a mount that was never registered.
        self._root = os.path.realpath(root) if root else None

    def __enter__(self) -> MountSet:
        return self

    def __exit__(self, *_exc_info: object) -> None:
        self.unmount_all()

    def add(self, path: str) -> None:
        self._paths.append(os.path.realpath(path))

    def unmount(self, path: str) -> None:
        real = os.path.realpath(path)
        try:
            unmount(real)
        finally:
            if real in self._paths:
                self._paths.remove(real)

    def unmount_all(self) -> None:
        paths = list(self._paths)
        if self._root is not None:
            prefix = self._root.rstrip("/") + "/"
            paths += [p for p in mounted_paths() if p.startswith(prefix) and p not in paths]
        for path in sorted(paths, key=len, reverse=True):  # the deepest first
            try:
                unmount(path)
            except OSError:
                pass
        self._paths.clear()

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._paths))


def save_json(path: Path, payload: dict) -> None:
    """Write to a temporary name, then rename: a crash leaves the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(payload, f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


class Terminated(BaseException):
    """SIGTERM, raised where the run is, so every `with` unwinds: mounts come down, registries
    and daemons stop."""


def raise_terminated(_signum: int, _frame: object) -> None:
    """The SIGTERM handler of every bench: `signal.signal(signal.SIGTERM, raise_terminated)`."""
    raise Terminated()
