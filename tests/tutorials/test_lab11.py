"""Lab 11 (a Dockerfile is a chain of commits): the page and its worked answers run as written,
and the self-checks catch broken states. The lab runs once per module; each breaking test works
on its own copy."""

from __future__ import annotations

import sys

import pytest

from tests.imagegraph.daemon_fixture import require_docker
from tests.support import require_namespaces
from tests.tutorials.helpers import assert_check_finds, assert_every_check_passed, exercise_folder
from tutorials.checks import run_check

LAB = "11"
REQUIRES = (require_namespaces, require_docker)  # RUN steps start containers, as root; step 8 drives docker
pytestmark = [pytest.mark.mount, pytest.mark.namespaces]


def test_lab_its_answers_and_every_check_pass(finished):
    assert_every_check_passed(LAB, finished.result)


def test_lab_runs_and_its_check_passes(finished):
    assert run_check(LAB, finished.folder) == []


def _layer(image: str, which: int) -> str:
    """The shell for the layer directory `which` (-1: the top) of an image of the folder's store."""
    return (
        f'$({sys.executable} -c "from tutorials.checks.store import Store; import os; '
        f"s = Store(os.environ['IMAGEGRAPH_ROOT']); print(s.diff_dirs(s.image_id('{image}'))[{which}])\")"
    )


@pytest.mark.parametrize(
    "how, expected",
    [
        ("imagegraph rmi byhand:4", "no image tagged byhand:4"),
        ("imagegraph tag hello:1 hello:docker", "hello:docker is not hello:2"),
        ("imagegraph tag busybox hello:1", "hello:1 is not three parent links above busybox"),
        (f"rm {_layer('hello:2', -1)}/srv/size", "hello:2's RUN layer holds what the command wrote"),
        (f"touch {_layer('byhand:4', -1)}/extra", "made by hand, the same step leaves the same files"),
        (
            "imagegraph rm $(imagegraph ps -a --no-trunc | grep -F '#(nop)' | cut -c1-64)",
            "no build container with a #(nop) command is left",
        ),
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
        (1, "imagegraph rmi hello:1", "no image built from the lab's Dockerfile without ENV"),
        (1, "imagegraph rmi hello:env", "no tagged image has GREETING=hi in its Env"),
        (2, "imagegraph tag hello:2 hello:3", "hello:2 and hello:3 share"),
        (2, "imagegraph tag busybox hello:3", "not built from the same Dockerfile"),
        (3, "rm force-rm.txt", "force-rm.txt is missing"),
        (3, "imagegraph rm $(imagegraph ps -aq)", "no build container of RUN false is left"),
        (4, "rm app/.dockerignore", "app/.dockerignore is missing"),
        (4, "imagegraph tag ctx:all ctx:ignored", "a file the .dockerignore names never reaches the builder"),
        (5, "imagegraph tag busybox hello:bk", "hello:bk is not hello:1"),
        (5, "rm client.txt", "client.txt is missing"),
        (5, ": > flow.log", "flow.log has no POST /build for hello:bk"),
    ],
)
def test_exercise_check_catches_a_broken_state(lab_copy, exercise, how, expected):
    assert_check_finds(LAB, exercise_folder(lab_copy, exercise), how, expected, exercise)
