"""Replaying one fixed sequence on both sides: what every regression test does."""

from __future__ import annotations

from .harness import Run
from .layers import Stack
from .views import diff


def replay_run(run: Run, steps: list[tuple[str, tuple]]) -> tuple[list[tuple], list[str]]:
    """Run `steps` on both sides of `run`, then compare views and run the final checks; the
    kernel's results and the divergences (empty: none). `run` is cleaned up afterwards."""
    results: list[tuple] = []
    problems: list[str] = []
    try:
        for op, args in steps:
            k, f = run.step(op, args)
            results.append(k)
            if k != f:
                problems.append(f"{op}{args!r}: kernel {k!r} / layerfs {f!r}")
        kview, fview = run.views()
        problems += [f"view: {line}" for line in diff(kview, fview)]
        problems += run.final_checks()
    finally:
        run.cleanup()
    return results, problems


def replay(stack: Stack, steps: list[tuple[str, tuple]], fuse: bool = False) -> list[str]:
    """Run `steps` on the kernel's overlay and on layerfs; the divergences found (empty: none)."""
    return replay_run(Run(stack, fuse=fuse), steps)[1]
