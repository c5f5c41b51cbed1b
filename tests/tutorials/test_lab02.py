"""Lab 02 (the union mount): the page runs as written, and its self-check catches broken states."""

from __future__ import annotations

import os

import pytest

from tests.tutorials.helpers import check_after
from tutorials.__main__ import main
from tutorials.checks import run_check

pytestmark = [pytest.mark.mount, pytest.mark.kernel_overlay]


def test_lab_runs_and_its_check_passes(finished_lab, capsys):
    folder = finished_lab("02")
    assert run_check("02", folder) == []
    assert main(["check", "02", folder]) == 0
    assert "all checks passed" in capsys.readouterr().out


@pytest.mark.parametrize(
    "how, expected",
    [
        ("echo x > vegetables/x", "vegetables/ has x that the lab does not make: vegetables is a read-only branch"),
        (
            "rm fruits/tomato",
            "dirs=./fruits:./vegetables: /tomato comes from vegetables/, expected fruits/: "
            "the first branch in dirs= is the top",
        ),
        (
            "echo 'tomato, from vegetables' > fruits/tomato",
            "fruits/tomato holds 'tomato, from vegetables\\n', expected 'tomato, from fruits\\n'",
        ),
        (
            "mv upper/kiwi fruits/kiwi",
            "fruits/kiwi should not exist: with a separate upperdir nothing is written into a lower layer",
        ),
        ("touch mnt/apple", "mnt/ holds files while nothing is mounted on it"),
        ("rm -r work", "work/ is missing: OverlayFS needs a work directory beside the upper"),
        ("layerfs mount -o lowerdir=./fruits mnt", "mnt is still mounted: unmount it"),
    ],
)
def test_check_catches_a_broken_state(finished_lab, capsys, how, expected):
    folder = finished_lab("02")
    problems = check_after("02", folder, how)
    assert any(expected in p for p in problems), problems
    assert main(["check", "02", folder]) == 1
    out = capsys.readouterr().out
    assert out.splitlines()[-1].startswith(f"lab 02: {len(problems)} problem(s)")


def test_check_changes_nothing(finished_lab):
    folder = finished_lab("02")
    before = sorted(os.path.join(d, n) for d, ds, fs in os.walk(folder) for n in ds + fs)
    run_check("02", folder)
    assert sorted(os.path.join(d, n) for d, ds, fs in os.walk(folder) for n in ds + fs) == before
