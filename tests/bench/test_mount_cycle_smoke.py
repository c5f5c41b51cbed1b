"""bench/mount_cycle.py runs end to end: a row per measure and system, fuse-overlayfs at 1.00×,
and no mount or storage left behind. No time is asserted (see bench/README.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import require_kernel_overlay, require_tool
from unionfs.mountinfo import mounts

from .test_bench_smoke import table_rows

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "mount_cycle.py"


@pytest.mark.mount
@pytest.mark.kernel_overlay
@pytest.mark.root("podman's rootful storage")
def test_a_short_run_prints_every_cycle_and_cleans_up() -> None:
    require_kernel_overlay()
    require_tool("podman")
    require_tool("fuse-overlayfs")
    before = {m.mountpoint for m in mounts()}
    scratch_before = set(Path("/var/tmp").glob("lmc-*"))
    # --reference: a second layerfs (here the same one) as layerfs-ref, for before/after figures.
    argv = [sys.executable, str(SCRIPT), "--repeat", "1", "--reference", str(Path(sys.executable).parent / "layerfs")]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    rows = table_rows(result.stdout, "measure")
    expected = set()
    bare = ("bare mount+umount", "bare: the mount command", "bare: the unmount (and the daemon's start)")
    for measure in (*bare, "bare mount+umount, CPU"):
        expected |= {(measure, system) for system in ("kernel", "fuse-overlayfs", "layerfs", "layerfs-ref")}
    expected.add(("python3 -I -S -c pass, vs the bare cycle", "layerfs"))  # the floor of a Python command
    for measure in ("podman mount+umount", "podman mount+umount, CPU"):
        expected |= {(measure, system) for system in ("fuse-overlayfs", "layerfs", "layerfs-ref")}
    assert {(row[0], row[1]) for row in rows} == expected
    assert all(row[6] == "1.00×" for row in rows if row[1] == "fuse-overlayfs")
    assert all(row[6].endswith("×") for row in rows)  # the floor too, against fuse-overlayfs's cycle
    assert all(row[5] == "1" for row in rows)
    left = {m.mountpoint for m in mounts()} - before
    assert not [p for p in left if p.startswith("/var/tmp/lmc-")]
    assert set(Path("/var/tmp").glob("lmc-*")) <= scratch_before


def test_bad_arguments_are_one_line() -> None:
    result = subprocess.run([sys.executable, str(SCRIPT), "--only", "zfs"], capture_output=True, text=True)
    assert (
        result.returncode == 1
        and result.stderr == "mount_cycle: unknown system 'zfs' (choose among kernel, fuse-overlayfs, layerfs)\n"
    )
