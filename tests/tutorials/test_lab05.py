"""Lab 05 (images, parents and bases): the page and its worked answers run as written, and the
self-checks catch broken stores."""

from __future__ import annotations

import pytest

from tests.tutorials.helpers import assert_check_finds, assert_every_check_passed, exercise_folder
from tutorials.checks import run_check

LAB = "05"
pytestmark = pytest.mark.mount


def test_lab_its_answers_and_every_check_pass(finished):
    assert_every_check_passed(LAB, finished.result)


@pytest.mark.parametrize(
    "how, expected",
    [
        ("imagegraph rmi nginx", "no image tagged nginx:latest in the store"),
        ("imagegraph tag image_1 ubuntu", "ubuntu's parent is sha256:"),
        ("imagegraph import ./base mysql", "mysql's parent is none"),
        ("imagegraph create --name leftover mysql /bin/sh", "containers left in the store: leftover"),
        ("rm store/layerfs/*/diff/usr/sbin/mysqld", "mysql's rootfs has no /usr/sbin/mysqld"),
        (
            "cp store/layerfs/*/diff/usr/sbin/nginx $(dirname store/layerfs/*/diff/usr/sbin/mysqld)/",
            "mysql's rootfs has /usr/sbin/nginx",
        ),
        ("cp -a store/layerfs/$(ls store/layerfs | head -n 1) store/layerfs/copy", "store/layerfs has 7 directories"),
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
        (1, "imagegraph tag mysql nginx", "nginx:latest is still tagged"),
        (1, "imagegraph rmi -f mysql", "no image tagged mysql:latest"),
        (2, "imagegraph tag image_0 image_3b", "image_3b's parent is not image_2"),
        (2, "imagegraph create --name stray image_2 /bin/sh", "containers left in the store: stray"),
        (3, "imagegraph rmi other_base", "no image tagged other_base:latest"),
        (3, "imagegraph tag image_1 other_base", "other_base's layer is not image_0's"),
    ],
)
def test_exercise_check_catches_a_broken_state(lab_copy, exercise, how, expected):
    assert_check_finds(LAB, exercise_folder(lab_copy, exercise), how, expected, exercise)
