"""Self-checks: is the state a student built by hand what the lab builds?

A check looks at the layer directories and at the merged view through the `Union` library,
never at console text. Each problem is one line that says what is wrong and why it matters.
One module per lab (`lab02.py` …), each with `check(folder) -> list[str]` for the lab and
`EXERCISES = {K: function}` for its exercises, each done in a folder of its own
(`~/layerlab/labNN-exK`), so that doing more than the lab asks never breaks the lab's check.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import stat
from collections.abc import Set
from dataclasses import dataclass, field

from unionfs.options import OptionError, parse_options, validate
from unionfs.super import Super
from unionfs.union import Union


class CheckError(Exception):
    """The check itself cannot run (no such lab check)."""


def run_check(number: str, folder: str, exercise: int | None = None) -> list[str]:
    """The problems lab `number`'s check (or exercise `exercise`'s) finds in `folder`."""
    try:
        module = importlib.import_module(f"tutorials.checks.lab{number}")
    except ModuleNotFoundError:
        raise CheckError(f"lab {number} has no self-check yet") from None
    if exercise is None:
        return module.check(folder)
    exercises = getattr(module, "EXERCISES", {})
    if exercise not in exercises:
        known = ", ".join(str(k) for k in sorted(exercises)) or "none"
        raise CheckError(f"lab {number} has no exercise {exercise} (its exercises: {known})")
    return exercises[exercise](folder)


def has_check(number: str) -> bool:
    return importlib.util.find_spec(f"tutorials.checks.lab{number}") is not None


def exercise_numbers(number: str) -> list[int]:
    try:
        module = importlib.import_module(f"tutorials.checks.lab{number}")
    except ModuleNotFoundError:
        return []
    return sorted(getattr(module, "EXERCISES", {}))


@dataclass
class Checker:
    """Collects problems about one lab folder; the helpers each add at most one line."""

    folder: str
    problems: list[str] = field(default_factory=list)

    def path(self, rel: str) -> str:
        return os.path.join(self.folder, rel)

    def problem(self, text: str) -> None:
        self.problems.append(text)

    # -- plain files and folders -----------------------------------------------------------
    def need_dir(self, rel: str, why: str) -> bool:
        if os.path.isdir(self.path(rel)) and not os.path.islink(self.path(rel)):
            return True
        self.problem(f"{rel}/ is missing: {why}")
        return False

    def need_file(self, rel: str, why: str, text: str | None = None) -> bool:
        """`rel` is a regular file (holding `text`, if given)."""
        p = self.path(rel)
        st = _lstat(p)
        if st is None or not stat.S_ISREG(st.st_mode):
            what = "missing" if st is None else "not a regular file"
            self.problem(f"{rel} is {what}: {why}")
            return False
        if text is not None:
            with open(p, encoding="utf-8", errors="replace") as f:
                have = f.read()
            if have != text:
                self.problem(f"{rel} holds {have!r}, expected {text!r}: {why}")
                return False
        return True

    def need_absent(self, rel: str, why: str) -> bool:
        if _lstat(self.path(rel)) is None:
            return True
        self.problem(f"{rel} should not exist: {why}")
        return False

    def need_only(self, rel: str, names: set[str], why: str, allowed: Set[str] = frozenset()) -> None:
        """The folder `rel` holds exactly `names` (plus, optionally, `allowed`)."""
        try:
            have = set(os.listdir(self.path(rel)))
        except OSError:
            return
        extra = sorted(have - names - set(allowed))
        lacking = sorted(names - have)
        if extra:
            self.problem(f"{rel}/ has {', '.join(extra)} that the lab does not make: {why}")
        if lacking:
            self.problem(f"{rel}/ lacks {', '.join(lacking)}: {why}")

    def need_whiteout(self, layer: str, rel: str, why: str) -> bool:
        """A whiteout for `rel` in `layer`, in either encoding (`.wh.NAME` or char device 0/0)."""
        parent, name = os.path.split(rel)
        aufs = os.path.join(layer, parent, ".wh." + name) if parent else os.path.join(layer, ".wh." + name)
        st_aufs = _lstat(self.path(aufs))
        st_char = _lstat(self.path(os.path.join(layer, rel)))
        if st_aufs is not None and stat.S_ISREG(st_aufs.st_mode):
            return True
        if st_char is not None and stat.S_ISCHR(st_char.st_mode) and st_char.st_rdev == 0:
            return True
        self.problem(f"{layer}/ has no whiteout for {rel}: {why}")
        return False

    def need_read_only_whiteout(self, rel: str, why: str) -> bool:
        """`rel` is a `.wh.` whiteout as a mount writes it: an empty file nobody may write
        (a `touch` by hand makes a writable one)."""
        if not self.need_file(rel, why):
            return False
        st = os.lstat(self.path(rel))
        if st.st_mode & 0o222 or st.st_size:
            self.problem(
                f"{rel} is {stat.filemode(st.st_mode)}, {st.st_size} bytes: a mount writes whiteouts empty and "
                f"read-only (r--r--r--), so this one was made by hand: {why}"
            )
            return False
        return True

    def trace_events(self, rel: str, why: str) -> list[dict] | None:
        """The events of a mount's trace file (`-o trace=FILE`), or None (and a problem)."""
        from unionfs.trace import read_events

        if not self.need_file(rel, why):
            return None
        try:
            with open(self.path(rel), encoding="utf-8") as f:
                return read_events(f)
        except (OSError, ValueError) as exc:
            self.problem(f"{rel} cannot be read as a trace ({exc}): {why}")
            return None

    def need_traced(self, events: list[dict], rel: str, event: str, path: str, why: str) -> bool:
        """The trace `rel` records `event` ("copy_up", "whiteout", …) on union path `path`."""
        if any(e.get("event") == event and e.get("path") == path for e in events):
            return True
        shown = event.replace("_", "-")
        self.problem(f"{rel} records no {shown} of {path}: {why}")
        return False

    def need_char_whiteout(self, layer: str, rel: str, why: str) -> bool:
        """A whiteout for `rel` in `layer` in the kernel's encoding: a char device 0/0 at `rel`.
        A `.wh.` file there is an ordinary file to the kernel, so it is named as the mistake."""
        st = _lstat(self.path(os.path.join(layer, rel)))
        if st is not None and stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
            return True
        parent, name = os.path.split(rel)
        aufs = os.path.join(layer, parent, ".wh." + name)
        if _lstat(self.path(aufs)) is not None:
            self.problem(
                f"{aufs} is a .wh. file in an OverlayFS layer: the kernel reads it as an ordinary file named "
                f".wh.{name} and shows {name} anyway; in this encoding {layer}/{rel} must be a 0/0 character "
                f"device: {why}"
            )
        else:
            self.problem(f"{layer}/ has no whiteout (0/0 character device) for {rel}: {why}")
        return False

    def need_unmounted(self, rel: str, why: str) -> bool:
        p = self.path(rel)
        if os.path.ismount(p):
            self.problem(f"{rel} is still mounted: {why}")
            return False
        if os.path.isdir(p) and os.listdir(p):
            self.problem(f"{rel}/ holds files while nothing is mounted on it: {why}")
            return False
        return True

    # -- the merged view --------------------------------------------------------------------
    def union(self, options: str, why: str) -> Union | None:
        """The union the lab's mount options describe, observed only: opening it for writing
        would make a work directory in the student's layers, and a check must change nothing."""
        try:
            return Union(Super.observe(validate(parse_options(options, self.folder))))
        except (OptionError, OSError) as exc:
            self.problem(f"cannot open the union -o {options}: {exc}: {why}")
            return None

    def need_listing(self, union: Union, upath: str, names: list[str], label: str, why: str) -> bool:
        try:
            have = sorted(union.listdir(upath))
        except OSError as exc:
            self.problem(f"{label}: {upath} cannot be listed ({exc.strerror}): {why}")
            return False
        if have != sorted(names):
            self.problem(f"{label}: {upath} shows {have}, expected {sorted(names)}: {why}")
            return False
        return True

    def need_served_by(self, union: Union, upath: str, layer: str, label: str, why: str) -> bool:
        """`upath` exists in the merged view and comes from branch directory `layer`."""
        try:
            node = union.lookup(upath)
        except OSError:
            self.problem(f"{label}: {upath} is not in the merged view: {why}")
            return False
        serving = os.path.realpath(node.top.branch.path)
        if serving != os.path.realpath(self.path(layer)):
            shown = os.path.relpath(serving, self.folder)
            self.problem(f"{label}: {upath} comes from {shown}/, expected {layer}/: {why}")
            return False
        return True

    def need_tree_file(self, rel: str, union: Union, command: str, label: str = ".", origin: bool = True) -> bool:
        """`rel` holds what `command` (a `layerfs tree` of `union`, or tree(1) of its mount)
        prints now."""
        from unionfs.tree import TreeOptions, render_tree

        if not self.need_file(rel, f"the exercise saves it: {command}"):
            return False
        with open(self.path(rel), encoding="utf-8", errors="replace") as f:
            have = f.read()
        want = render_tree(union, "/", label, TreeOptions(origin=origin))
        if have.replace("\u00a0", " ") != want.replace("\u00a0", " "):
            self.problem(f"{rel} is not what the union shows now: run {command} again")
            return False
        return True

    def need_hidden(self, union: Union, upath: str, label: str, why: str) -> bool:
        if union.exists(upath):
            self.problem(f"{label}: {upath} is still visible in the merged view: {why}")
            return False
        return True


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
