"""scripts/write-launcher.sh: `layerfs` as a plain script run with `python -I -S` (make setup)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _venv_with_pips_wrapper(tmp_path: Path) -> Path:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "layerlab.pth").write_text(f"{ROOT}\n")  # as the editable install makes it importable
    (venv / "bin" / "layerfs").write_text("#!/bin/sh\necho pip's wrapper\n")
    return venv


def test_the_launcher_replaces_pips_wrapper_and_runs_layerfs(tmp_path):
    venv = _venv_with_pips_wrapper(tmp_path)
    subprocess.run([str(ROOT / "scripts" / "write-launcher.sh"), str(venv)], check=True)
    launcher = venv / "bin" / "layerfs"
    assert launcher.read_text().splitlines()[0] == f"#!{venv}/bin/python3 -IS"
    result = subprocess.run(
        [str(launcher), "-o", "dirs=./nowhere", "./mnt"], cwd=tmp_path, capture_output=True, text=True
    )
    assert (result.returncode, result.stderr) == (1, "layerfs: ./nowhere: no such directory\n")


def test_the_launcher_finds_what_site_would_have_found(tmp_path):
    """Without `site`, the launcher names site-packages and the .pth files' folders itself: a
    package installed there (as mfusepy is, for the high-level fallback) is still importable."""
    venv = _venv_with_pips_wrapper(tmp_path)
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "only_in_site_packages.py").write_text("FOUND = True\n")
    subprocess.run([str(ROOT / "scripts" / "write-launcher.sh"), str(venv)], check=True)
    launcher = (venv / "bin" / "layerfs").read_text()
    probe = launcher.replace(
        "from unionfs.cli import main",
        "import only_in_site_packages, unionfs\nprint(only_in_site_packages.FOUND, unionfs.__path__[0])\nsys.exit(0)",
    )
    (venv / "bin" / "probe").write_text(probe)
    os.chmod(venv / "bin" / "probe", 0o755)
    result = subprocess.run([str(venv / "bin" / "probe")], capture_output=True, text=True)
    assert result.stdout == f"True {ROOT / 'unionfs'}\n", result.stderr


def test_the_launcher_imports_no_more_than_layerfs_needs(tmp_path):
    """pip's wrapper imports `re` to tidy argv[0], and `site` runs every .pth file: that is
    what the launcher is for."""
    venv = _venv_with_pips_wrapper(tmp_path)
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "distutils-precedence.pth").write_text("import sys; sys.stderr.write('a .pth file ran\\n')\n")
    subprocess.run([str(ROOT / "scripts" / "write-launcher.sh"), str(venv)], check=True)
    argv = [str(venv / "bin" / "python3"), "-IS", "-X", "importtime", str(venv / "bin" / "layerfs")]
    result = subprocess.run([*argv, "-o", "dirs=./nowhere", "./mnt"], cwd=tmp_path, capture_output=True, text=True)
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    assert {"unionfs.cli", "unionfs.mountopts"} <= imported
    assert not imported & {"re", "enum", "typing", "dataclasses", "site"}
    direct = subprocess.run(
        [str(venv / "bin" / "layerfs"), "-o", "dirs=./nowhere", "./mnt"], cwd=tmp_path, capture_output=True, text=True
    )
    assert direct.stderr == "layerfs: ./nowhere: no such directory\n"  # by its #! line: no .pth file ran


def test_a_missing_venv_is_one_line(tmp_path):
    result = subprocess.run(
        [str(ROOT / "scripts" / "write-launcher.sh"), str(tmp_path)], capture_output=True, text=True
    )
    assert result.returncode == 1
    assert result.stderr == f"write-launcher.sh: {tmp_path}/bin/python3 is not a Python\n"
