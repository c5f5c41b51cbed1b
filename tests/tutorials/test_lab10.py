"""Lab 10 (a container runs): the page runs as written, and its self-check catches broken states."""

from __future__ import annotations

import pytest

from tests.tutorials.helpers import check_after
from tutorials.checks import run_check

pytestmark = [pytest.mark.mount, pytest.mark.namespaces]  # containers run, as root


def test_lab_runs_and_its_check_passes(finished_lab):
    assert run_check("10", finished_lab("10")) == []


BOX = "$(imagegraph inspect box | python3 -c \"import json,sys; print(json.load(sys.stdin)[0]['Id'])\")"
UPPER = f"store/layerfs/$(cat store/image/layerfs/layerdb/mounts/{BOX}/mount-id)/diff"
INIT = f"store/layerfs/$(cat store/image/layerfs/layerdb/mounts/{BOX}/init-id)/diff"


@pytest.mark.parametrize(
    "how, expected",
    [
        ("imagegraph rm box", "no container named box"),
        ("imagegraph start box", "container box is still running: step 7 stops box"),
        (f"rm {UPPER}/bin/vi", "has no whiteout for bin/vi"),
        (f"echo 127.0.0.1 x > {INIT}/etc/hostname", "-init/diff/etc/hostname holds '127.0.0.1 x\\n', expected ''"),
        (f"cp store/containers/{BOX}/hosts {UPPER}/etc/hosts", "/etc/hosts should not exist: a write to /etc/hosts"),
        ("imagegraph rmi busybox-admin", "no image tagged busybox-admin:latest"),
    ],
)
def test_check_catches_a_broken_state(finished_lab, how, expected):
    problems = check_after("10", finished_lab("10"), how)
    assert any(expected in p for p in problems), problems
