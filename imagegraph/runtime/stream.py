"""Frames between a monitor and its clients, with Docker's stdcopy header.

Every frame is an 8-byte header — the stream type, three zero bytes, the payload length as a
big-endian uint32 — then the payload: exactly what the Engine API sends on an attach without
a tty (stdin 0, stdout 1, stderr 2, systemerr 3). The monitor's socket adds control frames a
client and the monitor exchange (hello, exit status, resize, end of stdin), never sent on
to a Docker client.
"""

from __future__ import annotations

import json
import socket
import struct
from typing import Any

STDIN, STDOUT, STDERR, SYSTEMERR = 0, 1, 2, 3
HELLO = 16  # client -> monitor: {"stdin": bool, "stdout": bool, "stderr": bool}
EXIT = 17  # monitor -> client: {"ExitCode": n} once the exit is recorded
RESIZE = 18  # client -> monitor: {"h": rows, "w": cols}
STDIN_CLOSE = 19  # client -> monitor: no more input
STARTED = 20  # monitor -> starter: {"Pid": n} or {"Error": "...", "ExitCode": n}

HEADER = struct.Struct(">B3xI")
MAX_PAYLOAD = 32 * 1024


def frame(kind: int, payload: bytes) -> bytes:
    return HEADER.pack(kind, len(payload)) + payload


def json_frame(kind: int, obj: dict[str, Any]) -> bytes:
    return frame(kind, json.dumps(obj).encode())


class FrameReader:
    """Accumulates bytes and yields complete frames (for non-blocking readers)."""

    def __init__(self) -> None:
        self.buf = b""

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self.buf += data
        out = []
        while len(self.buf) >= HEADER.size:
            kind, size = HEADER.unpack_from(self.buf)
            if len(self.buf) < HEADER.size + size:
                break
            out.append((kind, self.buf[HEADER.size : HEADER.size + size]))
            self.buf = self.buf[HEADER.size + size :]
        return out


def recv_frame(sock: socket.socket) -> tuple[int, bytes] | None:
    """One frame from a blocking socket; None at the end of the connection."""
    head = _recv_exactly(sock, HEADER.size)
    if head is None:
        return None
    kind, size = HEADER.unpack(head)
    payload = _recv_exactly(sock, size) if size else b""
    if payload is None:
        return None
    return kind, payload


def _recv_exactly(sock: socket.socket, n: int) -> bytes | None:
    parts = []
    while n:
        try:
            chunk = sock.recv(n)
        except (ConnectionResetError, OSError):
            return None
        if not chunk:
            return None
        parts.append(chunk)
        n -= len(chunk)
    return b"".join(parts)


def send_frame(sock: socket.socket, kind: int, payload: bytes = b"") -> None:
    for i in range(0, max(len(payload), 1), MAX_PAYLOAD):
        sock.sendall(frame(kind, payload[i : i + MAX_PAYLOAD]))
