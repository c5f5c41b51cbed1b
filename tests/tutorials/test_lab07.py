"""Lab 07 (commit): the page runs as written, and its self-check catches broken states."""

from __future__ import annotations

import os

import pytest

from tests.tutorials.helpers import check_after
from tutorials.checks import run_check
from tutorials.checks.store import Store

pytestmark = [pytest.mark.mount, pytest.mark.kernel_overlay]  # imagegraph mount as root


def test_lab_runs_and_its_check_passes(finished_lab):
    assert run_check("07", finished_lab("07")) == []


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
    ],
)
def test_check_catches_a_broken_state(finished_lab, how, expected):
    folder = finished_lab("07")
    new = Store(os.path.join(folder, "store"))
    image = new.image_id("tiny-app")
    assert image is not None
    new_dir = new.diff_dirs(image)[-1]
    assert os.path.exists(new_dir + "/etc/app.conf")
    problems = check_after("07", folder, how, NEW=new_dir)
    assert any(expected in p for p in problems), problems
