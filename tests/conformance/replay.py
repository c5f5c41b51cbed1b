"""Replaying one fixed sequence on both sides: what every regression test does."""
from __future__ import annotations

from .harness import Run
from .layers import Stack
from .views import diff


def replay(stack: Stack, steps: list[tuple[str, tuple]], fuse: bool = False) -> list[str]:
    """Run `steps` on the kernel's overlay and on layerfs; the divergences found (empty: none)."""
    run = Run(stack, fuse=fuse)
    problems: list[str] = []
    try:
        for op, args in steps:
            k, f = run.step(op, args)
            if k != f:
                problems.append(f"{op}{args!r}: kernel {k!r} / layerfs {f!r}")
        kview, fview = run.views()
        problems += [f"view: {line}" for line in diff(kview, fview)]
        problems += run.final_checks()
    finally:
        run.cleanup()
    return problems
