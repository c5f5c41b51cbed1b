"""save -o OUT leaves no temporary file, even when killed; the next save clears a dead writer's."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from imagegraph import store as store_module
from imagegraph.tarexport import SAVE_MARKER


def test_the_temporary_file_has_no_name_while_written(seeded: Path, ig, tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "out" / "img.tar"
    out.parent.mkdir()
    seen: list[list[str]] = []
    real = store_module.atomic_file

    def spy(path, *a, **k):
        cm = real(path, *a, **k)

        class Wrap:
            def __enter__(self):
                f = cm.__enter__()
                seen.append(os.listdir(out.parent))  # while the tar is being written
                return f

            def __exit__(self, *exc):
                return cm.__exit__(*exc)

        return Wrap()

    monkeypatch.setattr("imagegraph.tarexport.atomic_file", spy)
    r = ig("save", "-o", str(out), "base:1")
    assert r.rc == 0, r.err
    assert seen == [[]]  # nothing named beside OUT while it was written (O_TMPFILE)
    assert os.listdir(out.parent) == ["img.tar"]


def test_next_save_clears_a_dead_writers_file_but_not_a_live_ones(seeded: Path, ig, tmp_path: Path) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    dead = folder / f".old.tar{SAVE_MARKER}deadbeef"
    dead.write_bytes(b"x" * 1000)  # a writer killed before its rename: nobody holds its lock
    live = folder / f".other.tar{SAVE_MARKER}cafe0123"
    live.write_bytes(b"y")
    fd = os.open(live, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)  # a save still writing
    try:
        r = ig("save", "-o", str(folder / "new.tar"), "base:1")
        assert r.rc == 0, r.err
        assert sorted(os.listdir(folder)) == sorted([live.name, "new.tar"])
    finally:
        os.close(fd)
