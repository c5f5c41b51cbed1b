"""What the tests of running containers share: a terminal session, waiting for a condition."""

from __future__ import annotations

import os
import time


def wait_until(pred, timeout: float = 20.0, what: str = "") -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or pred}")


def pty_session(
    argv: list[str],
    steps: list[tuple[bytes, bytes]],
    rows: int = 33,
    cols: int = 101,
    env: dict[str, str] | None = None,
):
    """Run argv on a new pty of the given size; for each (send, expect) write then read until expect."""
    import fcntl
    import pty
    import select
    import struct
    import termios

    pid, fd = pty.fork()
    if pid == 0:
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        os.execvpe(argv[0], argv, dict(os.environ) if env is None else env)
    out = b""

    def read_until(marker: bytes, timeout: float = 30) -> bool:
        nonlocal out
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            r, _, _ = select.select([fd], [], [], 0.2)
            if r:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    return marker in out
                if not data:
                    return marker in out
                out += data
                if marker in out:
                    return True
        return False

    for send, expect in steps:
        if send:
            os.write(fd, send)
        assert read_until(expect), out
    _, status = os.waitpid(pid, 0)
    read_until(b"\0", 1)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), out.decode(errors="replace")
