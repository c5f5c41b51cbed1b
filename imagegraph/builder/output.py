"""Where a build writes (moby's build ProgressWriter: Stdout and Stderr formatters, the aux emitter).

The builder only ever says three things: a piece of its own or a container's standard output,
a piece of a container's standard error, and the ID of each stage's image (`aux`). The CLI
prints the text; the daemon turns each piece into one JSON message (`{"stream": …}`, stderr
wrapped in red as moby's StderrWriter does, `{"aux": {"ID": …}}`). `-q` keeps it all back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..digest import go_json

RED, RESET = "\x1b[91m", "\x1b[0m"


class BuildOutput:
    """Text for a terminal or a file: stdout and stderr as written, aux messages dropped."""

    def __init__(self, write: Callable[[str], None], color: bool = False) -> None:
        self._write = write
        self.color = color
        self.started = False  # moby's output.Flushed(): an error after this is sent in the stream

    def stdout(self, text: str) -> None:
        self.started = True
        self._write(text)

    def stderr(self, text: str) -> None:
        self.started = True
        self._write(RED + text + RESET if self.color else text)

    def aux(self, obj: dict[str, Any]) -> None:
        """The image ID of a finished stage (`docker build`'s --iidfile reads the last one)."""


class BufferedOutput(BuildOutput):
    """`-q`: everything is kept, to be shown only if the build fails."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        super().__init__(self.parts.append)

    @property
    def text(self) -> str:
        return "".join(self.parts)


class JSONStreamOutput(BuildOutput):
    """The daemon's stream: one JSON message per piece, as the Engine API sends a build
    (`aux` only from API 1.30 on, as moby's buildProgressWriter)."""

    def __init__(self, send: Callable[[bytes], None], aux: bool = True) -> None:
        self.send = send
        self.want_aux = aux
        super().__init__(lambda text: self._message({"stream": text}))

    def _message(self, obj: dict[str, Any]) -> None:
        self.send(go_json(obj) + b"\r\n")

    def stderr(self, text: str) -> None:
        self.started = True
        self._message({"stream": RED + text + RESET})

    def aux(self, obj: dict[str, Any]) -> None:
        if self.want_aux:
            self.started = True
            self._message({"aux": obj})

    def error(self, message: str, code: int = 0) -> None:
        """streamformatter.FormatError: `errorDetail` (with the exit code of a failed RUN) and `error`."""
        detail: dict[str, Any] = {"message": message}
        if code:
            detail = {"code": code, "message": message}
        self._message({"errorDetail": detail, "error": message})


__all__ = ["BuildOutput", "BufferedOutput", "JSONStreamOutput"]
