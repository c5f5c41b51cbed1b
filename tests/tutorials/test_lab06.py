"""Lab 06 (the container's layers): the page runs as written, and its self-check catches broken states."""

from __future__ import annotations

import pytest

from tests.tutorials.helpers import check_after
from tutorials.checks import run_check

pytestmark = [pytest.mark.mount, pytest.mark.kernel_overlay]  # imagegraph mount as root


def test_lab_runs_and_its_check_passes(finished_lab):
    assert run_check("06", finished_lab("06")) == []


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
def test_check_catches_a_broken_state(finished_lab, how, expected):
    problems = check_after("06", finished_lab("06"), how)
    assert any(expected in p for p in problems), problems
