"""bench/image_bench.py runs end to end in --quick mode: well-formed tables with both sides of
every measure, JSON that agrees with them, one clear line for bad options, nothing left behind.

No timing is asserted here: the machines are shared and noisy (see bench/README.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import require_tool

from ..imagegraph.registry_fixture import require_registry
from .test_bench_smoke import mounts_under, table_rows

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "image_bench.py"
PAIRS = {  # measure key → yardstick, for a --quick run
    "import-small": "tar + sha256sum",
    "commit-small": "tar + sha256sum",
    "push-image": "skopeo copy",
    "pull-image": "skopeo copy",
    "pull-mount-image": "skopeo copy + umoci unpack",
    "save-image": "skopeo copy",
    "load-image": "skopeo copy",
    "daemon-images": "imagegraph images",
    "daemon-inspect": "1 docker inspect",
    "daemon-pull": "imagegraph pull",
}


def bench(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--workdir", str(workdir), *args],
        capture_output=True,
        text=True,
        timeout=1200,
    )


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory) -> tuple[subprocess.CompletedProcess, dict, Path]:
    require_registry()  # module-scoped, so it runs before the markers' fixtures: apply their rule here
    for tool in ("skopeo", "umoci", "docker", "tar", "sha256sum"):
        require_tool(tool)
    workdir = tmp_path_factory.mktemp("image-bench")
    result = bench(workdir, "--json", str(workdir / "out.json"))
    data = json.loads((workdir / "out.json").read_text()) if (workdir / "out.json").exists() else {}
    return result, data, workdir


@pytest.mark.registry
@pytest.mark.mount
def test_quick_run_prints_both_sides_of_every_measure(quick_run):
    result, data, _ = quick_run
    assert result.returncode == 0, result.stdout + result.stderr
    labels = {p["key"]: p["label"] for p in data["pairs"]}
    assert set(labels) == set(PAIRS)
    rows = table_rows(result.stdout, "measure")
    assert rows and all(len(row) == 7 for row in rows)
    seen = {(row[0], row[1]) for row in rows}
    for key, yardstick in PAIRS.items():
        assert (labels[key], "imagegraph") in seen and (labels[key], yardstick) in seen, key
    for key in ("import-small", "commit-small"):  # the floor: the same files created by tar
        assert (labels[key], "tar -x") in seen, key
    for row in rows:
        assert row[5] == "1"  # one run each in a quick run
        assert row[6].endswith(" MiB") and int(row[6].split()[0]) > 0  # a peak RSS
    ratio_rows = _second_table(result.stdout)
    assert {r[0] for r in ratio_rows} == set(labels.values())
    assert all(len(r) == 4 and r[2].endswith("×") for r in ratio_rows)
    assert "Peak RSS of imagegraph's commands: at most" in result.stdout
    assert "load average" in result.stdout.splitlines()[0]


def _second_table(stdout: str) -> list[list[str]]:
    """The rows of the ratio table (the second github table, after its title line)."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Ratios of imagegraph's median"))
    return table_rows("\n".join(lines[start + 2 :]), "measure")


@pytest.mark.registry
@pytest.mark.mount
def test_quick_run_json_matches_the_table(quick_run):
    result, data, workdir = quick_run
    assert result.returncode == 0, result.stdout + result.stderr
    assert data["failed"] == {} and data["repeat"] == 1
    figures = {(f["measure"], f["system"]): f for f in data["figures"]}
    for pair in data["pairs"]:
        ours, theirs = figures[(pair["key"], "imagegraph")], figures[(pair["key"], pair["yardstick"])]
        for fig in (ours, theirs):
            assert fig["min"] <= fig["median"] <= fig["max"] and fig["median"] > 0 and fig["peak_rss"] > 0
        assert pair["ratio"] == pytest.approx(ours["median"] / theirs["median"])
    assert mounts_under(workdir) == []
    assert not (workdir / "runs").exists()


def test_bad_options_are_one_line_and_non_zero(tmp_path):
    for args, text in (
        (("--measures", "import,teleport"), "unknown measure 'teleport'"),
        (("--fixtures", "huge"), "unknown fixture 'huge'"),
        (("--repeat", "0"), "--repeat must be at least 1"),
    ):
        result = bench(tmp_path / "w", *args)
        assert result.returncode == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"image_bench: {text}"), result.stderr
    assert not (tmp_path / "w" / "fixtures").exists()


def _load_bench_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("image_bench_under_test", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def test_only_the_fixtures_a_run_reads_are_built(tmp_path):
    """A run of the image's measures does not write the 1 GiB file or the 20,000 small files."""
    ib = _load_bench_module()
    sizes = ib.Sizes.quick()
    table = ib.fixtures(sizes)
    needed = ib.fixtures_needed(["push", "daemon"], [table["big"], table["small"]], [table["image"]])
    assert needed == {"image"}
    assert ib.fixtures_needed(["daemon"], [], []) == {"image"}
    assert ib.fixtures_needed(["import"], [table["small"]], [table["image"]]) == {"small"}
    base = ib.prepare_fixtures(tmp_path, sizes, needed)
    assert sorted(p.name for p in base.iterdir() if p.is_dir()) == ["image"]
    layer = base / "image" / "layer1"
    before = (layer / "etc" / "release").stat().st_mtime_ns
    ib.prepare_fixtures(tmp_path, sizes, {"image", "small"})  # image reused, small built
    assert (layer / "etc" / "release").stat().st_mtime_ns == before
    assert sorted(p.name for p in base.iterdir() if p.is_dir()) == ["image", "small"]
