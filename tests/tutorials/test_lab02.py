"""Lab 02 (the union mount): the page and its worked answers run as written, and the
self-checks (the lab's and each exercise's) catch broken states."""

from __future__ import annotations

import os

import pytest

from tests.tutorials.helpers import assert_check_finds, assert_every_check_passed, check_after, exercise_folder
from tutorials.__main__ import main
from tutorials.checks import run_check

LAB = "02"
pytestmark = pytest.mark.mount


def test_lab_its_answers_and_every_check_pass(finished, capsys):
    assert_every_check_passed(LAB, finished.result)
    assert main(["check", "02", finished.folder]) == 0
    assert "all checks passed" in capsys.readouterr().out


@pytest.mark.parametrize(
    "how, expected",
    [
        ("echo x > vegetables/x", "vegetables/ has x that the lab does not make: vegetables is a read-only branch"),
        (
            "rm fruits/tomato",
            "dirs=./fruits:./vegetables: /tomato comes from vegetables/, expected fruits/: "
            "the first branch in dirs= is the top",
        ),
        (
            "echo 'tomato, from vegetables' > fruits/tomato",
            "fruits/tomato holds 'tomato, from vegetables\\n', expected 'tomato, from fruits\\n'",
        ),
        (
            "mv upper/kiwi fruits/kiwi",
            "fruits/kiwi should not exist: with a separate upperdir nothing is written into a lower layer",
        ),
        ("touch mnt/apple", "mnt/ holds files while nothing is mounted on it"),
        ("rm -r work", "work/ is missing: OverlayFS needs a work directory beside the upper"),
        ("layerfs mount -o lowerdir=./fruits mnt", "mnt is still mounted: unmount it"),
        # made by hand, never mounted
        ("rm -r fruits/.wh..wh.work", "fruits/.wh..wh.work/ is missing: the seed's mount (step 2) makes"),
        ("rmdir work/work", "work/work/ is missing: the OverlayFS-style mount (step 5) makes it"),
    ],
)
def test_check_catches_a_broken_state(lab_copy, capsys, how, expected):
    assert run_check(LAB, lab_copy) == []
    problems = check_after(LAB, lab_copy, how)
    assert any(expected in p for p in problems), problems
    assert main(["check", "02", lab_copy]) == 1
    out = capsys.readouterr().out
    assert out.splitlines()[-1].startswith(f"lab 02: {len(problems)} problem(s)")


def test_check_changes_nothing(lab_copy):
    before = sorted(os.path.join(d, n) for d, ds, fs in os.walk(lab_copy) for n in ds + fs)
    run_check(LAB, lab_copy)
    assert sorted(os.path.join(d, n) for d, ds, fs in os.walk(lab_copy) for n in ds + fs) == before


@pytest.mark.parametrize("exercise", [1, 2, 3])
def test_an_exercise_not_done_fails_its_check(lab_copy, exercise):
    assert run_check(LAB, lab_copy, exercise) != []


@pytest.mark.parametrize(
    "exercise, how, expected",
    [
        (1, "echo 'tomato, from vegetables' > tomato.txt", "tomato.txt holds 'tomato, from vegetables\\n'"),
        (1, ": > write.txt", "write.txt does not say 'Read-only file system'"),
        (2, "rm fruits/.wh.tomato && touch fruits/.wh.tomato", "fruits/.wh.tomato is -rw-r--r--, 0 bytes"),
        (2, "rm fruits/.wh.tomato", "dirs=./fruits:./vegetables: / shows ['apple', 'carrots', 'tomato']"),
        (3, "rm -r vegetables/.wh..wh.work", "vegetables/.wh..wh.work/ is missing"),
        (3, "echo guess > predicted.txt", "predicted.txt is not what the union shows now"),
        (3, "layerfs mount -o dirs=./vegetables:./fruits mnt", "mnt is still mounted"),
    ],
)
def test_exercise_check_catches_a_broken_state(lab_copy, exercise, how, expected):
    assert_check_finds(LAB, exercise_folder(lab_copy, exercise), how, expected, exercise)


def test_check_from_the_lab_folder_finds_the_exercise_folder(lab_copy, capsys, monkeypatch):
    """`check 02 --exercise 2` run in ~/layerlab/lab02 checks ~/layerlab/lab02-ex2 beside it."""
    monkeypatch.chdir(lab_copy)
    assert main(["check", "02", "--exercise", "2"]) == 0
    assert capsys.readouterr().out.strip().endswith(f"all checks passed in {lab_copy}-ex2")
