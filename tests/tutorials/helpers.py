"""What the lab tests share: breaking a finished lab on purpose and asking its self-check."""

from __future__ import annotations

import os
import subprocess
import sys

from tutorials.checks import exercise_numbers, run_check
from tutorials.lab import find_lab
from tutorials.runner import LabResult


def check_after(number: str, folder: str, how: str, exercise: int | None = None, **env: str) -> list[str]:
    """Break a finished lab with the shell command `how`, run in `folder` with IMAGEGRAPH_ROOT
    set to the folder's store (plus `env`), and return what lab `number`'s self-check (or
    exercise `exercise`'s) then finds there. The project's commands come first on PATH, as in
    the runner: /usr/local/bin/imagegraph may be another checkout's, or missing."""
    path = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "/usr/bin:/bin")
    exports = " ".join(f"{k}={v}" for k, v in {"IMAGEGRAPH_ROOT": "$PWD/store", **env}.items())
    subprocess.run(
        f"export {exports}; {how}",
        shell=True,
        cwd=folder,
        check=True,
        stdout=subprocess.DEVNULL,
        env={**os.environ, "PATH": path},
    )
    return run_check(number, folder, exercise)


def assert_check_finds(
    number: str, folder: str, how: str, expected: str, exercise: int | None = None, **env: str
) -> None:
    """Lab `number`'s check (or exercise `exercise`'s) passes on `folder` as it is, and after
    `how` breaks it, names a problem containing `expected`."""
    assert run_check(number, folder, exercise) == []
    problems = check_after(number, folder, how, exercise, **env)
    assert any(expected in p for p in problems), problems


def assert_every_check_passed(number: str, result: LabResult) -> None:
    """The lab's check, each exercise's check after its worked answer, and the lab's check
    once more after the exercises: all ran, all passed."""
    answered = [e.number for e in find_lab(number).exercises()]
    assert answered == exercise_numbers(number), "every exercise has a worked answer and a check"
    assert answered, f"lab {number} has exercises"
    labels = [(c.label, c.status) for c in result.checks]
    assert labels == [
        (f"lab {number}", "ok"),
        *[(f"exercise {k}", "ok") for k in answered],
        (f"lab {number} after the exercises", "ok"),
    ], [(c.label, c.status, c.problems) for c in result.checks]


def exercise_folder(lab_folder: str, exercise: int) -> str:
    return f"{lab_folder}-ex{exercise}"
