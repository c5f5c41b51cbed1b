"""Lab 03 (copy-on-write): the page and its worked answers run as written, and the
self-checks (the lab's and each exercise's) catch broken states."""

from __future__ import annotations

import pytest

from tests.tutorials.helpers import assert_check_finds, assert_every_check_passed, exercise_folder
from tutorials.checks import run_check

LAB = "03"
pytestmark = pytest.mark.mount


def test_lab_its_answers_and_every_check_pass(finished):
    assert_every_check_passed(LAB, finished.result)


@pytest.mark.parametrize(
    "how, expected",
    [
        # the student edited the lower layer directly instead of through the mount
        (
            "echo 'port=8080' >> image/etc/app.conf",
            "image/etc/app.conf holds 'port=80\\nport=8080\\n', expected 'port=80\\n': "
            "the read-only layer never changes",
        ),
        ("rm top/.wh.secret.txt", "top/ has no whiteout for secret.txt"),
        ("rm top/.wh.secret.txt", "dirs=./top=rw:./image=ro: /secret.txt is still visible in the merged view"),
        ("rm image/secret.txt", "image/secret.txt is missing: a delete only hides a file of a lower layer"),
        ("chmod 600 image/big.bin", "image/big.bin is 1048576 bytes, mode 600"),
        ("rm top/etc/hosts", "top/etc/hosts is missing: an open for writing copies up"),
        ("cp image/big.bin top/big.bin", "top/big.bin should not exist"),
        ("layerfs mount -o dirs=./top=rw:./image=ro mnt", "mnt is still mounted"),
        # the changes made by hand: no trace of a mount
        ("rm trace.log", "trace.log is missing: the mount writes it"),
        ("grep -v secret trace.log > t && mv t trace.log", "trace.log records no whiteout of /secret.txt"),
        ("rm -r top/.wh..wh.work", "top/.wh..wh.work/ is missing"),
    ],
)
def test_check_catches_a_broken_state(lab_copy, how, expected):
    assert_check_finds(LAB, lab_copy, how, expected)


@pytest.mark.parametrize("exercise", [1, 2, 3])
def test_an_exercise_not_done_fails_its_check(lab_copy, exercise):
    assert run_check(LAB, lab_copy, exercise) != []


@pytest.mark.parametrize(
    "exercise, how, expected",
    [
        (1, "touch top/.wh.secret.txt", "top/.wh.secret.txt should not exist"),
        (1, "rm top/secret.txt", "top/secret.txt is missing"),
        (2, ": > trace.log", "trace.log records no copy-up of /etc/hosts"),
        (2, "echo changed > image/etc/hosts", "image/etc/hosts holds 'changed\\n'"),
        (3, "rm leaked.txt", "leaked.txt is missing"),
    ],
)
def test_exercise_check_catches_a_broken_state(lab_copy, exercise, how, expected):
    assert_check_finds(LAB, exercise_folder(lab_copy, exercise), how, expected, exercise)
