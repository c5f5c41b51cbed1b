"""Running a real lab, keeping its scratch folder for the self-check tests, and cleaning up."""

from __future__ import annotations

import io
import os
import shutil

import pytest

from tutorials.lab import find_lab
from tutorials.runner import run_lab, unmount_all


def run_and_keep(number: str):
    """Run lab `number` for real; return (result, the lab's folder, the printed report)."""
    out = io.StringIO()
    result = run_lab(find_lab(number), out=out, keep=True)
    return result, os.path.join(result.home, "layerlab", f"lab{number}"), out.getvalue()


@pytest.fixture
def finished_lab():
    """Call with a lab number: the lab is run by the runner (so it must pass), and its folder,
    as a student who finished the lab would have it, is returned. Removed afterwards."""
    bases: list[str] = []

    def make(number: str) -> str:
        result, folder, report = run_and_keep(number)
        if result.home:
            bases.append(os.path.dirname(result.home))
        assert result.ok, report
        return folder

    yield make
    for base in bases:
        unmount_all(base)
        shutil.rmtree(base, ignore_errors=True)
