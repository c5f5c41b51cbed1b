"""Lab 03 (copy-on-write): the page runs as written, and its self-check catches broken states."""

from __future__ import annotations

import pytest

from tests.tutorials.helpers import check_after
from tutorials.checks import run_check

pytestmark = [pytest.mark.mount, pytest.mark.kernel_overlay]  # mount -t needs root


def test_lab_runs_and_its_check_passes(finished_lab):
    assert run_check("03", finished_lab("03")) == []


@pytest.mark.parametrize(
    "how, expected",
    [
        # the student edited the lower layer directly instead of through the mount
        (
            "echo 'port=8080' >> image/etc/app.conf",
            "image/etc/app.conf holds 'port=80\\nport=8080\\n', expected 'port=80\\n': "
            "the read-only layer never changes",
        ),
        ("rm top/.wh.secret.txt", "top/ has no whiteout for secret.txt"),
        ("rm top/.wh.secret.txt", "dirs=./top=rw:./image=ro: /secret.txt is still visible in the merged view"),
        ("rm image/secret.txt", "image/secret.txt is missing: a delete only hides a file of a lower layer"),
        ("chmod 600 image/big.bin", "image/big.bin is 1048576 bytes, mode 600"),
        ("rm top/etc/hosts", "top/etc/hosts is missing: an open for writing copies up"),
        ("cp image/big.bin top/big.bin", "top/big.bin should not exist"),
        ("layerfs mount -o dirs=./top=rw:./image=ro mnt", "mnt is still mounted"),
    ],
)
def test_check_catches_a_broken_state(finished_lab, how, expected):
    problems = check_after("03", finished_lab("03"), how)
    assert any(expected in p for p in problems), problems
