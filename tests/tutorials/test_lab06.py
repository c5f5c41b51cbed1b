"""Lab 06 (the container's layers): the page and its worked answers run as written, and the
self-checks catch broken states."""

from __future__ import annotations

import pytest

from tests.tutorials.helpers import assert_check_finds, assert_every_check_passed, exercise_folder
from tutorials.checks import run_check

LAB = "06"
pytestmark = pytest.mark.mount


def test_lab_its_answers_and_every_check_pass(finished):
    assert_every_check_passed(LAB, finished.result)


UPPER = "store/layerfs/$(cat store/image/layerfs/layerdb/mounts/*/mount-id)/diff"
INIT = "store/layerfs/$(cat store/image/layerfs/layerdb/mounts/*/init-id)/diff"


@pytest.mark.parametrize(
    "how, expected",
    [
        ("imagegraph rm web", "no container named web"),
        (f"rm {INIT}/etc/hostname", "-init/diff/etc/hostname is missing: create writes it into the init layer"),
        (f"echo web > {INIT}/etc/hosts", "-init/diff/etc/hosts holds 'web\\n', expected '': create writes it"),
        ("for f in store/containers/*/hostname; do echo x > $f; done", "/hostname holds 'x\\n', expected"),
        (f"rm {UPPER}/etc/os-release", "has no whiteout for etc/os-release"),
        (f"rm {UPPER}/etc/os-release", "web's merged view: /etc/os-release is still visible"),
        (
            f"cp {INIT}/etc/hosts {UPPER}/etc/hosts",
            "/diff/etc/hosts should not exist: the lab never changes the init files",
        ),
        ("imagegraph mount web", "is still mounted: imagegraph umount web"),
        ("rm store/layerfs/*/diff/etc/os-release", "the image's read-only layer (只读层) keeps os-release"),
    ],
)
def test_check_catches_a_broken_state(lab_copy, how, expected):
    assert_check_finds(LAB, lab_copy, how, expected)


@pytest.mark.parametrize("exercise", [1, 2, 3])
def test_an_exercise_not_done_fails_its_check(lab_copy, exercise):
    assert run_check(LAB, lab_copy, exercise) != []


UPPER_OF_WEB = (
    "$(imagegraph inspect web | python3 -c "
    "\"import json,sys; print(json.load(sys.stdin)[0]['GraphDriver']['Data']['UpperDir'])\")"
)


@pytest.mark.parametrize(
    "exercise, how, expected",
    [
        (1, "imagegraph rm web2", "no container named web2"),
        (
            1,
            "imagegraph rm web2 && imagegraph import -m other ./rootfs other && imagegraph create --name web2 other x",
            "web2 was not made from tiny",
        ),
        (
            1,
            "for c in store/containers/*; do echo x > $c/hostname; done",
            "/hostname holds 'x\\n', expected",
        ),
        (
            1,
            "echo web2 > $(imagegraph inspect web2 | python3 -c "
            "\"import json,sys; print(json.load(sys.stdin)[0]['GraphDriver']['Data']['LowerDir'].split(':')[0])\")"
            "/etc/hostname",
            "web2's init layer has the same empty placeholder",
        ),
        (2, f"rm {UPPER_OF_WEB}/etc/hosts", "/etc/hosts is missing: the write copies hosts up"),
        (2, "imagegraph mount web", "is still mounted: imagegraph umount web"),
        (3, "echo .dockerenv >> image-only.txt", "image-only.txt holds"),
    ],
)
def test_exercise_check_catches_a_broken_state(lab_copy, exercise, how, expected):
    assert_check_finds(LAB, exercise_folder(lab_copy, exercise), how, expected, exercise)
