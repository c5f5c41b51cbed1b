"""Lab 04 (whiteouts and opaque dirs): the page (the kernel's OverlayFS part included) and its
worked answers run as written, and the self-checks catch broken states in either encoding."""

from __future__ import annotations

import pytest

from tests.tutorials.helpers import assert_check_finds, assert_every_check_passed, exercise_folder
from tutorials.checks import run_check

LAB = "04"
pytestmark = pytest.mark.mount


def test_lab_its_answers_and_every_check_pass(finished):
    assert_every_check_passed(LAB, finished.result)


@pytest.mark.parametrize(
    "how, expected",
    [
        ("rm top/conf.d/.wh..wh..opq", "top/conf.d/.wh..wh..opq is missing"),
        (
            "rm top/conf.d/.wh..wh..opq",
            "br=./top=ro+wh:./image=ro: /conf.d shows ['a.conf', 'b.conf', 'c.conf'], expected ['c.conf']",
        ),
        ("rm top/data/.wh.x", "top/ has no whiteout for data/x"),
        ("setfattr -x trusted.overlay.opaque upper/conf.d", "upper/conf.d has no overlay.opaque=y attribute"),
        ("rm upper/data/x && touch upper/data/x", "upper/ has no whiteout (0/0 character device) for data/x"),
        ("rm upper/data/x && touch upper/data/x", "lowerdir=./upper:./image: /data shows ['x', 'y'], expected ['y']"),
        ("rm kupper/data/x", "kupper/ has no whiteout (0/0 character device) for data/x"),
        ("rm image/conf.d/a.conf", "image/conf.d/ lacks a.conf"),
        # An OCI whiteout in the kernel's encoding: the kernel (and layerfs's overlay dialect)
        # read it as an ordinary file, so x shows: rejected twice over.
        ("rm upper/data/x && touch upper/data/.wh.x", "upper/data/.wh.x is a .wh. file in an OverlayFS layer"),
        (
            "rm upper/data/x && touch upper/data/.wh.x",
            "lowerdir=./upper:./image: /data shows ['.wh.x', 'x', 'y'], expected ['y']",
        ),
        ("touch kupper/conf.d/.wh..wh..opq", "kupper/conf.d/.wh..wh..opq is a .wh. name in an OverlayFS layer"),
        # made by hand, never mounted
        ("grep -v opaque trace.log > t && mv t trace.log", "trace.log records no opaque of /conf.d"),
        ("rmdir work/work", "work/work/ is missing"),
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
        (1, "rm top/conf.d/.wh..wh..opq", "top/conf.d/.wh..wh..opq is missing"),
        (1, "touch top/.wh.conf.d", "top/.wh.conf.d should not exist"),
        (2, "rm upper/data/y && touch upper/data/.wh.y", "upper/data/.wh.y is a .wh. file in an OverlayFS layer"),
        (2, "rm upper/data/y", "upper/ has no whiteout (0/0 character device) for data/y"),
        (3, "touch upper2/data/.wh.x", "upper2/data/.wh.x is a .wh. name in an OverlayFS layer"),
        (3, "rm upper2/data/x", "lowerdir=./upper2:../lab04/image: /data shows ['x', 'y'], expected ['y']"),
    ],
)
def test_exercise_check_catches_a_broken_state(lab_copy, exercise, how, expected):
    assert_check_finds(LAB, exercise_folder(lab_copy, exercise), how, expected, exercise)
