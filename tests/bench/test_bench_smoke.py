"""bench/union_bench.py runs end to end in --quick mode: a well-formed table with a row per
system, JSON that agrees with it, clear lines for what it skips, and no mount left behind.

No timing is asserted here: the machines are shared and noisy (see bench/README.md).
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import require_fuse, require_kernel_overlay

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "union_bench.py"
_spec = importlib.util.spec_from_file_location("bench_common", ROOT / "bench" / "common.py")
assert _spec is not None and _spec.loader is not None
common = importlib.util.module_from_spec(_spec)  # bench/ is scripts, not a package
sys.modules["bench_common"] = common  # dataclasses look their module up
_spec.loader.exec_module(common)

ALL = ["bare", "kernel", "fuse-overlayfs", "unionfs-fuse", "layerfs"]
MEASURES = ["read-cold", "read-warm", "stat-cold", "stat-warm", "stat-hot", "readdir", "copy-up", "create"]


def bench(workdir: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--repeat", "1", "--workdir", str(workdir), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


def mounts_under(path: Path) -> list[str]:
    real = str(path.resolve())
    return [m for m in common.mounted_paths() if m.startswith(real + "/")]


def table_rows(stdout: str, first_header: str) -> list[list[str]]:
    """The body rows of the github-style table whose first header cell is `first_header`."""
    lines = stdout.splitlines()
    start = next(
        i
        for i, line in enumerate(lines)
        if line.startswith("|") and line.strip("| ").split("|")[0].strip() == first_header
    )
    assert set(lines[start + 1]) <= set("|-: "), "the header must be followed by a rule"
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


@pytest.fixture(scope="module")
def full_quick_run(tmp_path_factory) -> tuple[subprocess.CompletedProcess, dict, Path]:
    require_kernel_overlay()  # module-scoped, so it runs before the markers' fixtures: apply their rule here
    require_fuse()
    workdir = tmp_path_factory.mktemp("bench")
    result = bench(workdir, "--json", str(workdir / "out.json"))
    data = json.loads((workdir / "out.json").read_text()) if (workdir / "out.json").exists() else {}
    return result, data, workdir


@pytest.mark.mount
@pytest.mark.kernel_overlay
def test_quick_run_prints_a_row_per_system_and_measure(full_quick_run):
    result, _, _ = full_quick_run
    assert result.returncode == 0, result.stderr
    rows = table_rows(result.stdout, "measure")
    assert all(len(row) == 7 for row in rows)
    seen = {(row[0], row[1]) for row in rows}
    labels = {row[0] for row in rows}
    for label in (
        "sequential read 4 MiB, cold",
        "stat walk 300 files / 5 layers, warm (2 s later)",
        "stat walk 300 files / 5 layers, warm (at once)",
        "readdir 300 merged entries",
        "copy-up 4 MiB by 1-byte append",
        "create 100 small files",
    ):
        assert label in labels
        for system in ALL:
            assert (label, system) in seen, (label, system)
    assert ("sequential read 4 MiB, cold", "sha256sum") in seen
    assert ("stat walk 300 files / 5 layers, cold", "tar") in seen
    assert ("stat walk 300 files / 5 layers, warm (2 s later)", "tar") in seen
    for row in rows:
        if row[1] == "fuse-overlayfs":
            assert row[6] == "1.00×"
        if not row[0].startswith("mount"):  # the mount row counts every mount made
            assert row[5] == "1"  # --repeat 1
    summary = table_rows(result.stdout, "median ÷ fuse-overlayfs")
    assert len(summary) >= len(MEASURES)
    scaling = {row[0]: row for row in table_rows(result.stdout, "lookup scaling")}
    assert set(scaling) == {"kernel", "fuse-overlayfs", "layerfs"}
    assert all(len(row) == 5 for row in scaling.values())


@pytest.mark.mount
@pytest.mark.kernel_overlay
def test_quick_run_json_matches_the_table(full_quick_run):
    result, data, _ = full_quick_run
    assert result.returncode == 0, result.stderr
    assert data["systems"] == ALL
    assert data["skipped"] == {} and data["failed"] == {}
    figures = {(f["measure"], f["system"]): f for f in data["figures"]}
    for measure in MEASURES + ["scale-1", "scale-5", "scale-10"]:
        for system in ALL if not measure.startswith("scale") else ["kernel", "fuse-overlayfs", "layerfs"]:
            fig = figures[(measure, system)]
            assert fig["min"] <= fig["median"] <= fig["max"]
            assert fig["median"] > 0
    base = figures[("stat-warm", "fuse-overlayfs")]
    mine = figures[("stat-warm", "layerfs")]
    assert mine["ratio"] == pytest.approx(mine["median"] / base["median"])
    assert len(figures[("mount", "layerfs")]["samples"]) > 1


@pytest.mark.mount
@pytest.mark.kernel_overlay
def test_quick_run_leaves_nothing_mounted(full_quick_run):
    _, _, workdir = full_quick_run
    assert mounts_under(workdir) == []
    assert not (workdir / "runs").exists() or list((workdir / "runs").iterdir()) == []


@pytest.mark.mount
def test_a_missing_peer_is_skipped_with_a_line(tmp_path):
    """PATH without unionfs: the run goes on without it and says so."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for directory in ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"):
        if not os.path.isdir(directory):
            continue
        for name in os.listdir(directory):
            target = bindir / name
            if name not in ("unionfs", "unionfs-fuse") and not target.exists():
                target.symlink_to(os.path.join(directory, name))
    env = dict(os.environ, PATH=str(bindir))
    result = bench(tmp_path / "work", "--only", "bare,unionfs-fuse", "--no-cold", env=env)
    assert result.returncode == 0, result.stderr
    assert "skip: unionfs-fuse: unionfs is not installed (apt-get install unionfs-fuse)" in result.stdout
    systems = {row[1] for row in table_rows(result.stdout, "measure")}
    assert "bare" in systems and "unionfs-fuse" not in systems


def test_an_unknown_system_is_one_line_and_non_zero(tmp_path):
    result = bench(tmp_path, "--only", "layerfs,aufs")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "union_bench: unknown system 'aufs' (choose among bare, kernel, fuse-overlayfs, unionfs-fuse, layerfs)"
    ]
    assert not (tmp_path / "layers").exists()


@pytest.mark.mount
@pytest.mark.kernel_overlay
def test_mountset_unmounts_on_failure(tmp_path):
    """An exception inside the block still takes every mount down."""
    for d in ("lower", "upper", "work", "mnt"):
        (tmp_path / d).mkdir()
    (tmp_path / "lower" / "f").write_text("x")
    mnt = tmp_path / "mnt"
    with pytest.raises(RuntimeError):
        with common.MountSet() as mounts:
            mounts.add(str(mnt))
            common.run(
                [
                    "mount",
                    "-t",
                    "overlay",
                    "overlay",
                    "-o",
                    f"lowerdir={tmp_path / 'lower'},upperdir={tmp_path / 'upper'},workdir={tmp_path / 'work'}",
                    str(mnt),
                ],
                "mounting",
            )
            assert common.is_mounted(str(mnt)) and (mnt / "f").read_text() == "x"
            raise RuntimeError("a benchmark failed")
    assert not common.is_mounted(str(mnt))


def test_figures_report_median_min_max():
    fig = common.Figure("read-warm", "layerfs", [3.0, 1.0, 2.0, 10.0, 2.5])
    assert (fig.median, fig.low, fig.high) == (2.5, 1.0, 10.0)
    assert common.format_seconds(0.00123) == "1.23 ms"
    assert common.format_seconds(2.5) == "2.5 s"
    assert common.format_ratio(1.0) == "1.00×"


def test_an_unknown_measure_is_one_line_and_non_zero(tmp_path):
    result = bench(tmp_path, "--measures", "stat,latency")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "union_bench: unknown measure 'latency' (choose among read, stat, readdir, copy-up, create, scale)"
    ]


@pytest.mark.mount
def test_measures_selects_groups(tmp_path):
    result = bench(tmp_path, "--only", "bare,layerfs", "--measures", "readdir,scale", "--no-cold")
    assert result.returncode == 0, result.stderr
    rows = table_rows(result.stdout, "measure")
    labels = {row[0] for row in rows}
    assert "readdir 300 merged entries" in labels
    assert "stat 30 files under 10 layers" in labels
    assert not any(label.startswith(("sequential read", "stat walk", "copy-up", "create")) for label in labels)


@pytest.mark.mount
@pytest.mark.kernel_overlay
@pytest.mark.parametrize(
    "sig, status, word", [(signal.SIGTERM, 143, "terminated"), (signal.SIGINT, 130, "interrupted")]
)
def test_a_stopped_run_leaves_nothing_mounted(tmp_path, sig, status, word):
    """Stopped while its unions are mounted, the run takes every one down and says so."""
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--quick", "--repeat", "50", "--workdir", str(tmp_path), "--measures", "stat"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not mounts_under(tmp_path) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert mounts_under(tmp_path), "the run should have mounted something by now"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == status
    assert err.strip().splitlines()[-1] == f"union_bench: {word}; every mount was undone"
    assert mounts_under(tmp_path) == []


@pytest.mark.kernel_overlay
def test_mount_set_sweeps_unregistered_mounts_under_its_root(tmp_path):
    """A mount that landed after a signal (never registered) is still taken down."""
    layer, upper, work, mnt = (tmp_path / "runs" / n for n in ("l", "u", "w", "m"))
    for d in (layer, upper, work, mnt):
        d.mkdir(parents=True)
    subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o", f"lowerdir={layer},upperdir={upper},workdir={work}", str(mnt)],
        check=True,
    )
    with common.MountSet(str(tmp_path / "runs")):
        pass
    assert not common.is_mounted(str(mnt))
