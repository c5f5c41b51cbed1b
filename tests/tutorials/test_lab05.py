"""Lab 05 (images, parents and bases): the page runs as written, and its self-check catches broken stores."""

from __future__ import annotations

import pytest

from tests.tutorials.helpers import check_after
from tutorials.checks import run_check

pytestmark = [pytest.mark.mount, pytest.mark.kernel_overlay]  # imagegraph mount as root


def test_lab_runs_and_its_check_passes(finished_lab):
    assert run_check("05", finished_lab("05")) == []


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
    ],
)
def test_check_catches_a_broken_state(finished_lab, how, expected):
    problems = check_after("05", finished_lab("05"), how)
    assert any(expected in p for p in problems), problems
