"""Lab 10 (a container runs): the page and its worked answers run as written, and the
self-checks catch broken states."""

from __future__ import annotations

import pytest

from tests.support import require_namespaces
from tests.tutorials.helpers import assert_check_finds, assert_every_check_passed, exercise_folder
from tutorials.checks import run_check

LAB = "10"
REQUIRES = (require_namespaces,)  # containers run, as root
pytestmark = [pytest.mark.mount, pytest.mark.namespaces]


def test_lab_its_answers_and_every_check_pass(finished):
    assert_every_check_passed(LAB, finished.result)


def test_lab_runs_and_its_check_passes(finished):
    assert run_check(LAB, finished.folder) == []


def _id(name: str) -> str:
    return f"$(imagegraph inspect {name} | python3 -c \"import json,sys; print(json.load(sys.stdin)[0]['Id'])\")"


def _upper(name: str) -> str:
    return f"store/layerfs/$(cat store/image/layerfs/layerdb/mounts/{_id(name)}/mount-id)/diff"


BOX = _id("box")
UPPER = _upper("box")
INIT = f"store/layerfs/$(cat store/image/layerfs/layerdb/mounts/{BOX}/init-id)/diff"


@pytest.mark.parametrize(
    "how, expected",
    [
        ("imagegraph rm box", "no container named box"),
        ("imagegraph start box", "container box is still running: step 7 stops box"),
        (f"rm {UPPER}/bin/vi", "has no whiteout for bin/vi"),
        (f"echo 127.0.0.1 x > {INIT}/etc/hostname", "-init/diff/etc/hostname holds '127.0.0.1 x\\n', expected ''"),
        (f"cp store/containers/{BOX}/hosts {UPPER}/etc/hosts", "/etc/hosts should not exist: a write to /etc/hosts"),
        ("imagegraph rmi busybox-admin", "no image tagged busybox-admin:latest"),
    ],
)
def test_check_catches_a_broken_state(lab_copy, how, expected):
    assert_check_finds(LAB, lab_copy, how, expected)


@pytest.mark.parametrize("exercise", [1, 2, 3, 4, 5])
def test_an_exercise_not_done_fails_its_check(lab_copy, exercise):
    assert run_check(LAB, lab_copy, exercise) != []


@pytest.mark.parametrize(
    "exercise, how, expected",
    [
        (1, "imagegraph rm shell", "no container named shell"),
        (1, f"rm {_upper('shell')}/tmp/x", "/tmp/x is missing: touch /tmp/x in the container"),
        (1, f"rm {_upper('shell')}/bin/ls", "has no whiteout for bin/ls"),
        (2, "imagegraph rm ro && imagegraph run --name ro busybox touch /x", "ro was not run with --read-only"),
        (2, "imagegraph rm ro && imagegraph run --name ro --read-only busybox true", "ro exited with 0, expected 1"),
        (3, "imagegraph rm box && imagegraph run --name box busybox true", "box exited with 0, expected 255"),
        (4, f"rm {_upper('aufsbox')}/bin/.wh.vi", "/bin/.wh.vi is missing"),
        (5, "sed -i 's/a80425fb/a80425fa/' caps.txt", "caps.txt's CapEff is 00000000a80425fa"),
    ],
)
def test_exercise_check_catches_a_broken_state(lab_copy, exercise, how, expected):
    assert_check_finds(LAB, exercise_folder(lab_copy, exercise), how, expected, exercise)
