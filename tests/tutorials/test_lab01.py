"""Lab 01 (rootfs and layers): the page and its worked answers run as written, and the
self-checks (the lab's and each exercise's) catch broken states."""

from __future__ import annotations

import pytest

from tests.tutorials.helpers import assert_check_finds, assert_every_check_passed, exercise_folder
from tutorials.checks import run_check

LAB = "01"
pytestmark = pytest.mark.mount


def test_lab_its_answers_and_every_check_pass(finished):
    assert_every_check_passed(LAB, finished.result)


@pytest.mark.parametrize(
    "how, expected",
    [
        ("mkdir image_1/etc", "image_1/ has etc that the lab does not make: the seed puts /boot /proc /var in image_1"),
        (
            "mv upper/etc/motd image_n/etc/motd",
            "image_n/etc/motd should not exist: a read-only layer (只读层) never changes",
        ),
        ("rmdir image_2/home", "lowerdir=./image_n:./image_2:./image_1: /home is not in the merged view"),
        (
            "mkdir image_n/var && echo other > image_n/var/README",
            "lowerdir=./image_n:./image_2:./image_1: /var comes from image_n/, expected image_1/",
        ),
        ("touch rootfs/bin", "rootfs/ holds files while nothing is mounted on it"),
        ("echo changed > upper/etc/motd", "upper/etc/motd holds 'changed\\n'"),
        # made by hand, never mounted: no work/work
        ("rmdir work/work", "work/work/ is missing: the mount makes work/work"),
    ],
)
def test_check_catches_a_broken_state(lab_copy, how, expected):
    assert_check_finds(LAB, lab_copy, how, expected)


def test_a_lab_folder_made_by_hand_without_mounting_fails(tmp_path):
    """Every file the lab makes, written by hand: the check finds no trace of a mount."""
    folder = tmp_path / "lab01"
    for d in ("image_1/var", "image_1/boot", "image_1/proc", "image_2/media", "image_2/opt", "image_2/home"):
        (folder / d).mkdir(parents=True)
    for d in ("image_n/lib", "image_n/etc", "upper/etc", "work", "rootfs"):
        (folder / d).mkdir(parents=True)
    (folder / "image_1/var/README").write_text("image_1 was here\n")
    (folder / "image_n/etc/README").write_text("image_n was here\n")
    (folder / "upper/etc/motd").write_text("written in the container\n")
    assert [p for p in run_check(LAB, str(folder)) if "work/work" in p], run_check(LAB, str(folder))


@pytest.mark.parametrize("exercise", [1, 2, 3])
def test_an_exercise_not_done_fails_its_check(lab_copy, exercise):
    """Asked in the lab's own folder (the exercise not done there), each exercise check fails."""
    assert run_check(LAB, lab_copy, exercise) != []


@pytest.mark.parametrize(
    "exercise, how, expected",
    [
        (1, "echo stale > reversed.txt", "reversed.txt is not what the union shows now"),
        (1, "rm image_1/etc/README", "image_1/etc/README is missing"),
        (2, "rm upper/etc/README", "upper/ has no whiteout for etc/README"),
        (2, "rm image_n/etc/README", "image_n/etc/README is missing"),
        (3, "cp -a ../lab01/image_1 .", "image_1 should not exist: the second rootfs shares ../lab01/image_1"),
        (3, "touch ../lab01/image_1/boot/vmlinuz", "/boot shows ['vmlinuz'], expected []"),
        (3, "layerfs mount -o lowerdir=./image_m rootfs", "rootfs is still mounted"),
    ],
)
def test_exercise_check_catches_a_broken_state(lab_copy, exercise, how, expected):
    assert_check_finds(LAB, exercise_folder(lab_copy, exercise), how, expected, exercise)
