"""Pictures through Graphviz: DOT text in, SVG or PNG bytes out (`dot -Tsvg`, `dot -Tpng`).

Graphviz lays out and draws; the project only writes DOT. Without Graphviz the text and DOT
forms still work, and asking for a picture says, in one line, what to install.
"""

from __future__ import annotations

import shutil
import subprocess

FORMATS = ("text", "dot", "svg", "png")
PICTURES = ("svg", "png")


class RenderError(Exception):
    """Graphviz is missing or refused the DOT; str() is one line."""


def render(dot: str, fmt: str) -> bytes:
    """`dot` drawn as `fmt` ("svg" or "png")."""
    if fmt not in PICTURES:
        raise ValueError(f"not a picture format: {fmt}")
    exe = shutil.which("dot")
    if exe is None:
        raise RenderError(f"--format {fmt} needs Graphviz's dot (apt-get install graphviz); --format dot prints DOT")
    try:
        proc = subprocess.run([exe, f"-T{fmt}"], input=dot.encode("utf-8"), capture_output=True, timeout=120)
    except subprocess.TimeoutExpired:
        raise RenderError("Graphviz took longer than 120 s to draw the picture") from None
    if proc.returncode != 0:
        lines = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise RenderError(f"Graphviz could not draw it: {lines[-1] if lines else f'exit status {proc.returncode}'}")
    return proc.stdout


def html_escape(text: str) -> str:
    """Text for a Graphviz HTML-like label."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
