"""Hypothesis profiles for the conformance harness.

- `ci` (the default here): derandomized, a bounded number of sequences, a few minutes in CI.
- `long` (`make conformance`): 2,000 sequences from a random seed; the seed is printed in the
  report header, and a failure prints the shrunk sequence as a shell script.
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, settings

_COMMON: dict[str, Any] = {
    "deadline": None,
    "database": None,
    "print_blob": True,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
}
settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=int(os.environ.get("CONFORMANCE_EXAMPLES", "40")),
    stateful_step_count=25,
    **_COMMON,
)
settings.register_profile("long", max_examples=2000, stateful_step_count=50, **_COMMON)

if getattr(settings, "_current_profile", "default") == "default":
    settings.load_profile("ci")


def pytest_report_header(config):
    seed = config.getoption("hypothesis_seed", None)
    profile = config.getoption("hypothesis_profile", None) or "ci"
    return f"conformance: hypothesis profile {profile}, seed {seed if seed is not None else '(derandomized)'}"
