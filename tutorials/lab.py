"""A lab page as data: its metadata, and its steps (a shell block and the output it must print).

The Markdown is the single source: the student reads it, the runner executes it. So the
format is plain CommonMark that renders well anywhere:

- ```` ```sh ```` blocks are steps. Words after `sh` in the info string modify the step:
  `exit=N` (the last command's expected status, 0 by default), `needs=root`,
  `needs=kernel-overlay` (a step that only runs where the kernel's OverlayFS can be used).
- The ```` ```text ```` block right after a step is the output it prints (stdout and stderr
  together). A step with no output block must print nothing.
- A comment ``<!-- lab: needs=fuse,root minutes=10 -->`` says what the whole lab needs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources

FENCE = re.compile(r"^(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
META = re.compile(r"<!--\s*lab:(?P<body>.*?)-->", re.S)
NAME = re.compile(r"^(?P<number>\d\d)-(?P<slug>[a-z0-9-]+)\.md$")


class LabError(Exception):
    """A lab page that cannot be run (bad format, unknown number)."""


@dataclass(frozen=True)
class Step:
    """One shell block, what it must print, and where it is in the page (for messages)."""

    command: str
    expected: str
    line: int
    exit_status: int = 0
    needs: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Lab:
    number: str
    slug: str
    title: str
    path: str
    needs: frozenset[str] = frozenset()
    minutes: int = 0
    steps: tuple[Step, ...] = field(default_factory=tuple)

    @property
    def name(self) -> str:
        return f"{self.number}-{self.slug}"


def labs_dir() -> str:
    """Where the lab pages are installed (the package folder, also in an editable install)."""
    return str(resources.files("tutorials"))


def all_labs(directory: str | None = None) -> list[Lab]:
    directory = directory or labs_dir()
    found = []
    for name in sorted(os.listdir(directory)):
        if NAME.match(name):
            found.append(parse_lab_file(os.path.join(directory, name)))
    return found


def find_lab(number: str, directory: str | None = None) -> Lab:
    """The lab numbered `number` ("2", "02" or "02-union-mount")."""
    wanted = number.split("-", 1)[0]
    if not wanted.isdigit():
        raise LabError(f"'{number}' is not a lab number (see 'python -m tutorials list')")
    wanted = f"{int(wanted):02d}"
    for lab in all_labs(directory):
        if lab.number == wanted:
            return lab
    raise LabError(f"there is no lab {wanted} (see 'python -m tutorials list')")


def parse_lab_file(path: str) -> Lab:
    match = NAME.match(os.path.basename(path))
    if not match:
        raise LabError(f"{path}: a lab file is named NN-title.md")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    return parse_lab(text, match["number"], match["slug"], path)


def parse_lab(text: str, number: str, slug: str, path: str = "<lab>") -> Lab:
    title = next((line[2:].strip() for line in text.splitlines() if line.startswith("# ")), slug)
    needs: frozenset[str] = frozenset()
    minutes = 0
    meta = META.search(text)
    if meta:
        for word in meta["body"].split():
            key, _, value = word.partition("=")
            if key == "needs":
                needs = frozenset(v for v in value.split(",") if v)
            elif key == "minutes" and value.isdigit():
                minutes = int(value)
    return Lab(number, slug, title, path, needs, minutes, tuple(_steps(text, path)))


def _blocks(text: str, path: str) -> Iterator[tuple[list[str], str, int]]:
    """(info words, body, first line number) for each fenced block, in order."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        fence, info = opening["fence"], opening["info"].strip()
        start = i + 1
        j = start
        while j < len(lines) and not _closes(lines[j], fence):
            j += 1
        if j >= len(lines):
            raise LabError(f"{path}:{i + 1}: the block opened here is never closed")
        body = "\n".join(lines[start:j])
        yield info.split(), (body + "\n" if j > start else ""), i + 1
        i = j + 1


def _closes(line: str, fence: str) -> bool:
    """CommonMark: a closing fence is the same character, at least as long, nothing after."""
    stripped = line.strip()
    return len(stripped) >= len(fence) and set(stripped) == {fence[0]}


def _steps(text: str, path: str) -> list[Step]:
    steps: list[Step] = []
    pending: tuple[list[str], str, int] | None = None
    for info, body, line in _blocks(text, path):
        kind = info[0] if info else ""
        if kind == "sh":
            if pending:
                steps.append(_step(pending, "", path))
            pending = (info[1:], body, line)
        elif kind == "text" and pending:
            steps.append(_step(pending, body, path))
            pending = None
        else:
            if pending:
                steps.append(_step(pending, "", path))
            pending = None
    if pending:
        steps.append(_step(pending, "", path))
    return steps


def _step(pending: tuple[list[str], str, int], expected: str, path: str) -> Step:
    words, command, line = pending
    exit_status = 0
    needs: set[str] = set()
    for word in words:
        key, _, value = word.partition("=")
        if key == "exit" and value.lstrip("-").isdigit():
            exit_status = int(value)
        elif key == "needs" and value:
            needs.update(value.split(","))
        else:
            raise LabError(f"{path}:{line}: unknown step option '{word}' (use exit=N or needs=...)")
    if not command.strip():
        raise LabError(f"{path}:{line}: an empty sh block")
    return Step(command, expected, line, exit_status, frozenset(needs))
