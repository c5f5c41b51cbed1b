"""Lab 11 (a Dockerfile is a chain of commits): the page runs as written, and its self-check
catches broken states."""

from __future__ import annotations

import sys

import pytest

from tests.tutorials.helpers import check_after
from tutorials.checks import run_check

pytestmark = [pytest.mark.mount, pytest.mark.namespaces]  # RUN steps and `run` start containers, as root


def test_lab_runs_and_its_check_passes(finished_lab):
    assert run_check("11", finished_lab("11")) == []


def _layer(image: str, which: int) -> str:
    """The shell for the layer directory `which` (-1: the top) of an image of the lab's store."""
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
def test_check_catches_a_broken_state(finished_lab, how, expected):
    problems = check_after("11", finished_lab("11"), how)
    assert any(expected in p for p in problems), problems
