"""Docker's pull/push progress display: per-layer status lines, live bars on a terminal.

A port of the docker CLI's jsonmessage.DisplayJSONMessagesStream and JSONProgress.String
(moby client/pkg/jsonmessage). On a terminal each layer id owns one line, which is redrawn in
place with cursor movement (ESC[nA up, ESC[2K clear, ESC[nB down). On a pipe, progress updates
that carry byte counts are dropped and every other status is printed as `<id>: <status>`.
A line without an id (Digest:, Status:) ends the current block of layer lines.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

_DECIMAL_UNITS = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"]


def human_size(size: float) -> str:
    """go-units HumanSize: 4 significant digits, decimal units (`1.235MB`, `32.77kB`)."""
    i = 0
    while size >= 1000.0 and i < len(_DECIMAL_UNITS) - 1:
        size /= 1000.0
        i += 1
    text = f"{size:.4g}"
    if "e" in text:  # %.4g never uses an exponent below 1e4; this is a guard
        text = f"{size:.0f}"
    return text + _DECIMAL_UNITS[i]


def go_duration(seconds: int) -> str:
    """Go's time.Duration.String for whole seconds: `0s`, `45s`, `2m0s`, `1h2m3s`."""
    if seconds <= 0:
        return "0s"
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    if h:
        return f"{h}h{m}m{s}s"
    if m:
        return f"{m}m{s}s"
    return f"{s}s"


def progress_string(current: int, total: int, width: int, start: float = 0.0, now: float = 0.0) -> str:
    """JSONProgress.String: `[=====>     ]  1.2MB/5MB 3s` (bar only when the terminal is wider than 110)."""
    if current <= 0 and total <= 0:
        return ""
    if total <= 0:
        return f"{human_size(current):>8}"
    percentage = min(int(current / total * 100) // 2, 50)
    bar = ""
    if width > 110:
        bar = "[" + "=" * percentage + ">" + " " * max(50 - percentage, 0) + "] "
    numbers = f"{human_size(current):>8}/{human_size(total)}"
    if current > total:
        numbers = f"{human_size(current):>8}"
    left = ""
    if current > 0 and start > 0 and percentage < 50:
        elapsed = now - start
        remaining = int((total - current) * (elapsed / current))
        if width > 50:
            left = " " + go_duration(remaining)
    return bar + numbers + left


@dataclass
class ProgressWriter:
    """Renders progress messages the way `docker pull` shows them.

    `tty` defaults to whether `out` is a terminal; `width` to the terminal's width (200, as
    jsonmessage assumes, when it cannot be read).
    """

    out: TextIO
    tty: bool | None = None
    width: int | None = None
    clock: Callable[[], float] = time.time
    _ids: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.tty is None:
            try:
                self.tty = self.out.isatty()
            except (AttributeError, ValueError):
                self.tty = False
        if self.width is None:
            try:
                self.width = os.get_terminal_size(self.out.fileno()).columns
            except (AttributeError, ValueError, OSError):
                self.width = 200

    def message(self, status: str, id: str = "") -> None:
        """A plain status (`progress.Message`): not part of the layer block; resets it."""
        self._ids = {}
        prefix = f"{id}: " if id else ""
        self.out.write(f"{prefix}{status}\n")
        self.out.flush()

    def update(self, id: str, status: str) -> None:
        """A layer status without counts (`progress.Update`): Pulling fs layer, Pull complete…"""
        self._display(id, status, "")

    def progress(self, id: str, status: str, current: int, total: int, start: float = 0.0) -> None:
        """A layer status with byte counts (Downloading, Extracting, Pushing)."""
        text = progress_string(current, total, self.width or 200, start, self.clock())
        if not self.tty and text:
            return  # jsonmessage: "disable progressbar in non-terminal"
        self._display(id, status, text)

    def _display(self, id: str, status: str, progress_text: str) -> None:
        out = self.out
        diff = 0
        line = self._ids.get(id)
        if line is None:
            line = len(self._ids)
            self._ids[id] = line
            if self.tty:
                out.write("\n")
        diff = len(self._ids) - line
        if self.tty:
            out.write(f"\x1b[{diff}A")  # cursor up to the layer's line
            out.write("\x1b[2K\r")  # clear it
            out.write(f"{id}: {status} {progress_text}\r")
            out.write(f"\x1b[{diff}B")  # and back down
        else:
            out.write(f"{id}: {status}\n")
        out.flush()
