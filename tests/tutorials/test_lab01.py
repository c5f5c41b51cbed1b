"""Lab 01 (rootfs and layers): the page runs as written, and its self-check catches broken states."""

from __future__ import annotations

import pytest

from tests.tutorials.helpers import check_after
from tutorials.checks import run_check

pytestmark = [pytest.mark.mount, pytest.mark.kernel_overlay]  # mount -t needs root


def test_lab_runs_and_its_check_passes(finished_lab):
    assert run_check("01", finished_lab("01")) == []


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
    ],
)
def test_check_catches_a_broken_state(finished_lab, how, expected):
    problems = check_after("01", finished_lab("01"), how)
    assert any(expected in p for p in problems), problems
