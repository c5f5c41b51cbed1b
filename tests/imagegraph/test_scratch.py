"""Scratch folders for work outside the store lock: a live one survives the store's cleaner,
a crash's leftover does not."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

from imagegraph.service import Services
from imagegraph.store import Layout, StoreLock, clean_scratch, scratch_dir


def _hold(root: str, ready, release) -> None:
    layout = Layout(Path(root))
    with scratch_dir(layout, StoreLock(layout.lock_file), "pull-") as d:
        (d / "0.blob").write_bytes(b"half a download")
        ready.put(str(d))
        release.get(timeout=30)


def test_a_download_in_flight_in_another_process_survives_the_cleaner(tmp_path: Path) -> None:
    Services.open(tmp_path)
    ctx = multiprocessing.get_context("fork")
    ready, release = ctx.Queue(), ctx.Queue()
    child = ctx.Process(target=_hold, args=(str(tmp_path), ready, release))
    child.start()
    try:
        held = Path(ready.get(timeout=30))
        leftover = Layout(tmp_path).tmp / "pull-crashed"
        leftover.mkdir()
        (leftover / "0.blob").write_bytes(b"from a kill -9")
        Services.open(tmp_path)  # what every imagegraph command does first, under the lock
        assert (held / "0.blob").read_bytes() == b"half a download"
        assert not leftover.exists()
    finally:
        release.put(None)
        child.join(30)
    assert child.exitcode == 0
    assert not held.exists()  # removed by its owner when done


def test_scratch_is_removed_after_use_even_on_error(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    lock = StoreLock(layout.lock_file)
    try:
        with scratch_dir(layout, lock) as d:
            (d / "x").write_text("x")
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert os.listdir(layout.tmp) == []
    assert clean_scratch(layout) == []
