"""bench/image_bench.py prints its tables before it deletes the runs' stores.

Deleting a few hundred thousand files can take minutes on a filesystem mounted with `discard`
(bench/README.md): the figures should not wait for it, and a run that fails still cleans up.
No measure is run here: the measures are replaced, the order of the rest is what is checked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .scripts import load_bench_script


def _image_bench(monkeypatch: pytest.MonkeyPatch) -> Any:
    return load_bench_script(monkeypatch, "image_bench.py", "image_bench_order")


@pytest.mark.parametrize("fails", [False, True])
def test_the_tables_come_before_the_runs_are_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fails: bool):
    ib = _image_bench(monkeypatch)
    store = tmp_path / "work" / "kept-store"
    seen: list[tuple[str, bool, bool]] = []

    def measures(bench: Any, groups: list[str], trees: list[Any], chosen: list[Any]) -> None:
        store.mkdir(parents=True)
        (tmp_path / "work" / "runs").mkdir(parents=True, exist_ok=True)
        bench.leftovers.append(store)
        if fails:
            raise ib.BenchError("a measure failed")

    def results(*args: Any) -> None:
        seen.append(("tables", store.exists(), (tmp_path / "work" / "runs").exists()))

    monkeypatch.setattr(ib, "prepare_fixtures", lambda workdir, sizes, wanted: workdir / "fixtures")
    monkeypatch.setattr(ib, "_run_measures", measures)
    monkeypatch.setattr(ib, "print_results", results)
    code = ib.main(["--quick", "--measures", "import", "--workdir", str(tmp_path / "work")])
    assert code == (2 if fails else 0)
    assert seen == ([] if fails else [("tables", True, True)])  # printed while the stores were there
    assert not store.exists() and not (tmp_path / "work" / "runs").exists()  # and removed after
