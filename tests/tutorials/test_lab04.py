"""Lab 04 (whiteouts and opaque dirs): the page runs as written (the kernel's OverlayFS part
included), and its self-check catches broken states in either encoding."""

from __future__ import annotations

import pytest

from tests.tutorials.helpers import check_after
from tutorials.checks import run_check

pytestmark = [pytest.mark.mount, pytest.mark.kernel_overlay]


def test_lab_runs_and_its_check_passes(finished_lab):
    assert run_check("04", finished_lab("04")) == []


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
        ("rm upper/data/x && touch upper/data/x", "upper/ has no whiteout for data/x"),
        ("rm upper/data/x && touch upper/data/x", "lowerdir=./upper:./image: /data shows ['x', 'y'], expected ['y']"),
        ("rm kupper/data/x", "kupper/ has no whiteout for data/x"),
        ("rm image/conf.d/a.conf", "image/conf.d/ lacks a.conf"),
    ],
)
def test_check_catches_a_broken_state(finished_lab, how, expected):
    problems = check_after("04", finished_lab("04"), how)
    assert any(expected in p for p in problems), problems
