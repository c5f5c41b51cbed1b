"""A lab page as data: its metadata, and its steps (a shell block and the output it must print).

The Markdown is the single source: the student reads it, the runner executes it. So the
format is plain CommonMark that renders well anywhere:

- ```` ```sh ```` blocks are steps. Words after `sh` in the info string modify the step:
  `exit=N` (the last command's expected status, 0 by default), `needs=kernel-overlay` (a
  step that only runs where the kernel's OverlayFS can be used), `as=root` or `as=user` (a
  step only root, or only an ordinary user, runs: the page gives both forms where they differ).
- The ```` ```text ```` block right after a step is the output it prints (stdout and stderr
  together). A step with no output block must print nothing. Where an ordinary user sees
  something else, a second block ```` ```text as=user ```` follows with that output: the
  difference is written in the page, for the student to read, not hidden by the runner.
- A comment ``<!-- lab: needs=fuse,tree minutes=10 -->`` says what the whole lab needs.

A lab's worked answers live beside it in ``answers/NN.md``: one ``## Exercise K`` section per
exercise, in the same format, so the runner can run each answer and then the exercise's check.
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
EXERCISE = re.compile(r"^## Exercise (?P<number>\d+)\b.*$", re.M)
WHO = ("root", "user")


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
    who: str | None = None  # "root" or "user": only they run it; None: everyone
    expected_as_user: str | None = None  # what an ordinary user sees, where it differs
    source: str = ""  # the page's file name, for messages

    def expected_for(self, root: bool) -> str:
        if not root and self.expected_as_user is not None:
            return self.expected_as_user
        return self.expected

    def runs_for(self, root: bool) -> bool:
        return self.who is None or self.who == ("root" if root else "user")


@dataclass(frozen=True)
class Exercise:
    """One exercise's worked answer: its text (for `python -m tutorials answer`) and steps."""

    number: int
    text: str
    steps: tuple[Step, ...]


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

    @property
    def answers_path(self) -> str:
        return os.path.join(os.path.dirname(self.path), "answers", f"{self.number}.md")

    def folder(self, home: str, exercise: int | None = None) -> str:
        """Where the page works: ~/layerlab/labNN, and each exercise in ~/layerlab/labNN-exK."""
        name = f"lab{self.number}" + (f"-ex{exercise}" if exercise else "")
        return os.path.join(home, "layerlab", name)

    def exercises(self) -> list[Exercise]:
        """The worked answers, in order (none if the lab has no answers file)."""
        if not os.path.exists(self.answers_path):
            return []
        with open(self.answers_path, encoding="utf-8") as f:
            return parse_answers(f.read(), self.answers_path)


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


def parse_answers(text: str, path: str = "<answers>") -> list[Exercise]:
    """``## Exercise K`` sections, each with its steps (line numbers are the file's)."""
    marks = list(EXERCISE.finditer(text))
    source = os.path.join(os.path.basename(os.path.dirname(path)), os.path.basename(path))
    found: list[Exercise] = []
    for i, mark in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        section = text[mark.start() : end]
        offset = text.count("\n", 0, mark.start())
        steps = tuple(
            Step(s.command, s.expected, s.line + offset, s.exit_status, s.needs, s.who, s.expected_as_user, source)
            for s in _steps(section, path)
        )
        number = int(mark["number"])
        if any(e.number == number for e in found):
            raise LabError(f"{path}:{offset + 1}: exercise {number} is answered twice")
        found.append(Exercise(number, section.rstrip() + "\n", steps))
    return found


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
    """Each sh block with the text blocks right after it: one for everyone (or root), and
    optionally one `text as=user` with what an ordinary user sees instead."""
    steps: list[Step] = []
    pending: tuple[list[str], str, int] | None = None
    outputs: dict[str, str] = {}

    def flush() -> None:
        nonlocal pending
        if pending:
            steps.append(_step(pending, outputs, path))
        pending = None
        outputs.clear()

    for info, body, line in _blocks(text, path):
        kind = info[0] if info else ""
        if kind == "sh":
            flush()
            pending = (info[1:], body, line)
        elif kind == "text" and pending:
            who = _text_who(info[1:], path, line)
            if who in outputs:
                raise LabError(f"{path}:{line}: a second output block for the same step")
            outputs[who] = body
        else:
            flush()
    flush()
    return steps


def _text_who(words: list[str], path: str, line: int) -> str:
    if not words:
        return "all"
    if len(words) == 1 and words[0] == "as=user":
        return "user"
    raise LabError(f"{path}:{line}: unknown output block option '{' '.join(words)}' (use as=user)")


def _step(pending: tuple[list[str], str, int], outputs: dict[str, str], path: str) -> Step:
    words, command, line = pending
    exit_status = 0
    needs: set[str] = set()
    who: str | None = None
    for word in words:
        key, _, value = word.partition("=")
        if key == "exit" and value.lstrip("-").isdigit():
            exit_status = int(value)
        elif key == "needs" and value:
            needs.update(value.split(","))
        elif key == "as" and value in WHO:
            who = value
        else:
            raise LabError(f"{path}:{line}: unknown step option '{word}' (use exit=N, needs=... or as=root|user)")
    if not command.strip():
        raise LabError(f"{path}:{line}: an empty sh block")
    if "user" in outputs and "all" not in outputs:
        raise LabError(f"{path}:{line}: a 'text as=user' block must follow the step's own output block")
    if "user" in outputs and who is not None:
        raise LabError(f"{path}:{line}: a step for {who} only has one output")
    return Step(
        command,
        outputs.get("all", ""),
        line,
        exit_status,
        frozenset(needs),
        who,
        outputs.get("user"),
        os.path.basename(path),
    )
