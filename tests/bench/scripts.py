"""Load a script of bench/ as a module, for tests that drive its functions in-process."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load_bench_script(monkeypatch: pytest.MonkeyPatch, script: str, module_name: str) -> Any:
    """bench/SCRIPT as a fresh module named `module_name` (bench/ on sys.path for its own imports,
    and the module in sys.modules, where dataclasses look it up), both undone after the test."""
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    spec = importlib.util.spec_from_file_location(module_name, ROOT / "bench" / script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, module_name, module)
    spec.loader.exec_module(module)
    return module
