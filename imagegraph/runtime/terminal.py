"""The client's end of an attach: the user's terminal ↔ a container's monitor (docker/cli's hijack).

Output frames go to the caller's stdout and stderr; the user's input goes in as stdin frames.
With a tty the terminal is put in raw mode (restored whatever happens), its size is sent at
once and after every SIGWINCH, and Docker's detach keys (ctrl-p ctrl-q) leave the container
running. Without a tty, SIGINT and SIGTERM are passed on to the container (--sig-proxy).
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import termios
import tty as ttymod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from . import stream as fr

DETACH_KEYS = b"\x10\x11"  # ctrl-p, ctrl-q


def parse_detach_keys(spec: str) -> bytes:
    """docker's --detach-keys: "ctrl-p,ctrl-q", "a,ctrl-@" …"""
    out = bytearray()
    for part in spec.split(","):
        part = part.strip()
        if part.startswith("ctrl-") and len(part) == 6:
            c = part[5].lower()
            code = {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}.get(c)
            out.append(code if code is not None else ord(c) - ord("a") + 1)
        elif len(part) == 1:
            out.append(ord(part))
        else:
            raise ValueError(f"Unknown character: '{part}'")
    return bytes(out)


@contextmanager
def raw_terminal(fd: int | None) -> Iterator[None]:
    """Raw mode on `fd` if it is a terminal; the old mode comes back on the way out."""
    if fd is None or not os.isatty(fd):
        yield
        return
    old = termios.tcgetattr(fd)
    try:
        ttymod.setraw(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, old)


def terminal_size(fd: int | None) -> tuple[int, int] | None:
    if fd is None:
        return None
    try:
        size = os.get_terminal_size(fd)
    except OSError:
        return None
    return size.lines, size.columns


@dataclass
class Relay:
    """One attach session; `run` returns the container's exit code, or None (detached or lost)."""

    sock: socket.socket
    on_stdout: Callable[[bytes], None]
    on_stderr: Callable[[bytes], None]
    stdin_fd: int | None = None
    tty: bool = False
    tty_fd: int | None = None  # the terminal whose size the container gets
    detach_keys: bytes = DETACH_KEYS
    proxy: Callable[[int], None] | None = None  # sends a signal to the container

    def _resize(self) -> None:
        size = terminal_size(self.tty_fd)
        if size:
            try:
                self.sock.sendall(fr.json_frame(fr.RESIZE, {"h": size[0], "w": size[1]}))
            except OSError:
                pass

    def run(self) -> int | None:
        sel = selectors.DefaultSelector()
        sel.register(self.sock, selectors.EVENT_READ, "sock")
        if self.stdin_fd is not None:
            sel.register(self.stdin_fd, selectors.EVENT_READ, "stdin")
        old_handlers: dict[int, Any] = {}
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        sel.register(wake_r, selectors.EVENT_READ, "wake")
        pending: list[int] = []

        def on_signal(sig: int, _frame: object) -> None:
            pending.append(sig)
            try:
                os.write(wake_w, b"x")
            except OSError:
                pass

        watched = [signal.SIGWINCH] if self.tty else ([signal.SIGINT, signal.SIGTERM] if self.proxy else [])
        for watched_sig in watched:
            try:
                old_handlers[int(watched_sig)] = signal.signal(watched_sig, on_signal)
            except ValueError:  # not the main thread: no signal handling
                break
        reader = fr.FrameReader()
        matched = 0
        try:
            with raw_terminal(self.stdin_fd if self.tty else None):
                if self.tty:
                    self._resize()
                while True:
                    for key, _ in sel.select():
                        if key.data == "wake":
                            os.read(wake_r, 4096)
                            while pending:
                                got = pending.pop(0)
                                if got == signal.SIGWINCH:
                                    self._resize()
                                elif self.proxy is not None:
                                    self.proxy(got)
                        elif key.data == "stdin":
                            assert self.stdin_fd is not None
                            data = os.read(self.stdin_fd, 32 * 1024)
                            if not data:
                                sel.unregister(self.stdin_fd)
                                self.sock.sendall(fr.frame(fr.STDIN_CLOSE, b""))
                                continue
                            if self.tty and self.detach_keys:
                                for b in data:
                                    matched = matched + 1 if b == self.detach_keys[matched] else 0
                                    if matched == len(self.detach_keys):
                                        return None  # detached: the container runs on
                            fr.send_frame(self.sock, fr.STDIN, data)
                        else:
                            try:
                                data = self.sock.recv(64 * 1024)
                            except OSError:
                                data = b""
                            if not data:
                                return None
                            for kind, payload in reader.feed(data):
                                if kind == fr.STDOUT:
                                    self.on_stdout(payload)
                                elif kind in (fr.STDERR, fr.SYSTEMERR):
                                    self.on_stderr(payload)
                                elif kind == fr.EXIT:
                                    return int(json.loads(payload).get("ExitCode", 0))
        finally:
            for number, handler in old_handlers.items():
                signal.signal(number, handler)
            os.close(wake_r)
            os.close(wake_w)
            sel.close()
