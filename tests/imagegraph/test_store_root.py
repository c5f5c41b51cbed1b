"""prepare_root when another command makes the store root between its stat and its mkdir.

CI caught four concurrent `imagegraph import` runs on a new root: one lost the race and failed
with "store root …: file exists". The race is made deterministic here by doing the other
command's mkdir inside the first stat.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from imagegraph import store
from imagegraph.store import Layout, StoreError, prepare_root


def _lose_race(monkeypatch: pytest.MonkeyPatch, root: Path, make_other) -> None:
    real_stat = os.stat
    done: list[bool] = []

    def stat(path, *args, **kwargs):
        if Path(path) == root and not done:
            done.append(True)
            make_other(root)  # the other command wins, after our stat saw nothing
            raise FileNotFoundError(2, "No such file or directory", str(path))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(store.os, "stat", stat)


def test_a_root_made_meanwhile_by_another_command_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "r"
    _lose_race(monkeypatch, root, lambda p: p.mkdir(mode=0o700))
    assert prepare_root(Layout(root)) is True
    assert (root / "image").is_dir()
    assert all(d.is_dir() for d in Layout(root).dirs())


def test_a_file_made_meanwhile_is_still_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "r"
    _lose_race(monkeypatch, root, lambda p: p.write_bytes(b""))
    with pytest.raises(StoreError, match="is not a directory"):
        prepare_root(Layout(root))
