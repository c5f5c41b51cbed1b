"""Lab 07 (commit): the page and its worked answers run as written, and the self-checks catch
broken states."""

from __future__ import annotations

import os

import pytest

from tests.tutorials.helpers import assert_check_finds, assert_every_check_passed, exercise_folder
from tutorials.checks import run_check
from tutorials.checks.store import Store

LAB = "07"
pytestmark = pytest.mark.mount


def test_lab_its_answers_and_every_check_pass(finished):
    assert_every_check_passed(LAB, finished.result)


NEW = "$NEW"  # the committed layer's directory, set in the shell by the test


@pytest.mark.parametrize(
    "how, expected",
    [
        ("imagegraph rmi -f tiny-app", "no image tagged tiny-app:latest"),
        ("imagegraph tag tiny tiny-app", "tiny-app has 1 layers, expected tiny's 1 plus one"),
        (f"cp {NEW}/etc/app.conf {NEW}/etc/hostname", "/etc/hostname should not exist: init layer (初始化层) files"),
        (f"rm {NEW}/etc/os-release", "has no whiteout for etc/os-release"),
        (f"rm {NEW}/etc/os-release", "prod's merged view: /etc/os-release is still visible"),
        ("imagegraph rm prod", "no container named prod"),
        ("imagegraph mount prod", "is still mounted: imagegraph umount it"),
        # the page once said 15B for tiny's 20 bytes: the check knows the size the files give
        (
            "echo 15 > store/image/layerfs/layerdb/sha256/$(ls store/image/layerfs/layerdb/sha256 | "
            "while read c; do [ -e store/image/layerfs/layerdb/sha256/$c/parent ] || echo $c; done)/size",
            "tiny's layer is 15 bytes, expected 20",
        ),
    ],
)
def test_check_catches_a_broken_state(lab_copy, how, expected):
    new = Store(os.path.join(lab_copy, "store"))
    image = new.image_id("tiny-app")
    assert image is not None
    new_dir = new.diff_dirs(image)[-1]
    assert os.path.exists(new_dir + "/etc/app.conf")
    assert_check_finds(LAB, lab_copy, how, expected, NEW=new_dir)


@pytest.mark.parametrize("exercise", [1, 2, 3])
def test_an_exercise_not_done_fails_its_check(lab_copy, exercise):
    assert run_check(LAB, lab_copy, exercise) != []


@pytest.mark.parametrize(
    "exercise, how, expected",
    [
        (1, "imagegraph rmi tiny-app2", "no image tagged tiny-app2:latest"),
        (1, "imagegraph tag tiny tiny-app2", "tiny-app2's layers are not tiny-app's"),
        (2, "imagegraph tag tiny-app leaky", "/etc/hosts is missing: the changed /etc/hosts was copied"),
        (
            2,
            ": > $(imagegraph inspect leaky | python3 -c "
            "\"import json,sys; print(json.load(sys.stdin)[0]['GraphDriver']['Data']['UpperDir'])\")/etc/hosts",
            "/etc/hosts has no line of yours",
        ),
        (3, "imagegraph create --name dev tiny /bin/sh", "container dev still exists"),
        (3, "mkdir store/layerfs/0123456789abcdef", "store/layerfs still has 0123456789ab…"),
    ],
)
def test_exercise_check_catches_a_broken_state(lab_copy, exercise, how, expected):
    assert_check_finds(LAB, exercise_folder(lab_copy, exercise), how, expected, exercise)
