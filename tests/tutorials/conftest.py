"""Running a real lab once per test module, and giving each test a copy of what it built.

A lab is run by the runner exactly as `python -m tutorials run NN` runs it: its steps, its
self-check, each exercise's worked answer and check, and the lab's check again. The module's
tests then break copies of the finished folders (`cp -a`, so whiteout devices and overlay
xattrs survive) instead of running the lab again for every case.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from dataclasses import dataclass

import pytest

from tests.support import require_fuse
from tutorials.lab import find_lab
from tutorials.runner import LabResult, run_lab, unmount_all


@dataclass
class Finished:
    """A lab the runner ran and kept: its result, its report, and the student's home."""

    result: LabResult
    report: str

    @property
    def home(self) -> str:
        return self.result.home

    @property
    def folder(self) -> str:
        return self.result.folder


def run_kept(number: str) -> Finished:
    out = io.StringIO()
    result = run_lab(find_lab(number), out=out, keep=True)
    return Finished(result, out.getvalue())


def remove_run(result: LabResult) -> None:
    if result.home:
        base = os.path.dirname(result.home)
        unmount_all(base)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def finished(request):
    """The module's lab (its `LAB` number), run once by the runner; it must pass. (A module
    fixture runs before the markers' function fixtures, so it asks for FUSE itself.)"""
    require_fuse()
    for need in getattr(request.module, "REQUIRES", ()):
        need()
    run = run_kept(request.module.LAB)
    try:
        assert run.result.ok, run.report
        yield run
    finally:
        remove_run(run.result)


def copy_tree(src: str, dst: str) -> None:
    """cp -a: devices (0/0 whiteouts), xattrs (overlay marks) and hard links as they are."""
    subprocess.run(["cp", "-a", src, dst], check=True)


@pytest.fixture
def lab_copy(finished, tmp_path):
    """A copy of the finished ~/layerlab (the lab's folder and its exercises' folders, side by
    side as the pages expect); returns the copy of the lab's own folder."""
    copy_tree(os.path.dirname(finished.folder), str(tmp_path / "layerlab"))
    yield str(tmp_path / "layerlab" / os.path.basename(finished.folder))
    unmount_all(str(tmp_path))
