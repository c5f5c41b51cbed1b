"""bench/union_bench.py times a fresh mount until it answers a lookup, before any measure.

layerfs's daemon answers umount(8)'s and podman's requests on the root before it loads its
core, and loads it on the first other request: a bench that only waited for mountinfo would
book that one-off load on whichever measure came first (a cold read, a readdir), and the mount
would look cheaper than it is. No mount here: the bench's commands are recorded, not run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from .scripts import load_bench_script


def _union_bench(monkeypatch: pytest.MonkeyPatch) -> Any:
    return load_bench_script(monkeypatch, "union_bench.py", "union_bench_ready")


class _Mounts:
    def __init__(self) -> None:
        self.added: list[str] = []

    def add(self, target: str) -> None:
        self.added.append(target)

    def unmount(self, target: str) -> None:
        pass


def test_the_timed_mount_ends_with_a_lookup_answered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ub = _union_bench(monkeypatch)
    events: list[tuple[str, str]] = []
    monkeypatch.setattr(ub, "run", lambda command, what: events.append(("run", command[0])))
    monkeypatch.setattr(ub, "wait_mounted", lambda path: events.append(("mountinfo", path)))
    real_lexists = os.path.lexists

    def lexists(path: Any) -> bool:
        events.append(("lookup", str(path)))
        return real_lexists(path)

    monkeypatch.setattr(ub.os.path, "lexists", lexists)
    layers = ub.LayerSet("main", (str(tmp_path / "l1"),))
    bench = ub.Bench(ub.Layout(tmp_path, layers, tmp_path / "bare"), ub.Sizes.quick(), _Mounts())
    with bench.view("fuse-overlayfs") as target:
        pass
    assert [kind for kind, _ in events] == ["run", "mountinfo", "lookup"]
    assert events[2][1] == str(target / ub.READY_PROBE)
    assert len(bench.figures[("mount", "fuse-overlayfs")].samples) == 1
