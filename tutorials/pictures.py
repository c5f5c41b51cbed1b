"""`python -m tutorials.pictures`: redraw the pictures the lab pages show (tutorials/img/).

The pictures are made the way a student makes them: the labs run in scratch folders, the
pages' own steps write `graph.svg` and `stack.svg` there, and a terminal's coloured
`layerfs tree --origin` is turned into SVG (`ansi_to_svg`). Run it after a change to what the
pictures show, and commit the result.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
from html import escape

from .lab import find_lab, labs_dir
from .runner import lab_environment, run_lab, unmount_all

# SGR codes `layerfs tree` uses, as a light terminal theme draws them.
PALETTE = {
    "31": "#c0392b",
    "32": "#2e7d32",
    "33": "#a0700a",
    "34": "#1f5fbf",
    "35": "#8e44ad",
    "36": "#0e7c86",
    "91": "#e74c3c",
    "94": "#3b82f6",
    "95": "#b455d6",
    "96": "#17a2b8",
}
SGR = re.compile(r"\x1b\[([0-9;]*)m")
CHAR_WIDTH, LINE_HEIGHT, PAD = 8.4, 18, 12


def _spans(line: str) -> list[tuple[str, str | None, bool]]:
    """(text, colour, bold) runs of one line of terminal output."""
    out: list[tuple[str, str | None, bool]] = []
    colour: str | None = None
    bold = False
    pos = 0
    for m in SGR.finditer(line):
        if m.start() > pos:
            out.append((line[pos : m.start()], colour, bold))
        codes = m[1].split(";") if m[1] else ["0"]
        for code in codes:
            if code == "0":
                colour, bold = None, False
            elif code == "1":
                bold = True
            elif code in PALETTE:
                colour = PALETTE[code]
        pos = m.end()
    if pos < len(line):
        out.append((line[pos:], colour, bold))
    return out


def ansi_to_svg(text: str, title: str = "") -> str:
    """Terminal output with SGR colours, as an SVG of a light terminal window."""
    lines = text.replace("\u00a0", " ").rstrip("\n").split("\n")
    width = max((len(SGR.sub("", line)) for line in lines), default=0)
    w = int(width * CHAR_WIDTH + 2 * PAD)
    h = int(len(lines) * LINE_HEIGHT + 2 * PAD)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}">',
        f"<title>{escape(title)}</title>" if title else "",
        f'<rect width="{w}" height="{h}" rx="6" fill="#fbfbf8" stroke="#cccccc"/>',
        '<g font-family="DejaVu Sans Mono, monospace" font-size="14" xml:space="preserve">',
    ]
    for n, line in enumerate(lines):
        y = PAD + (n + 1) * LINE_HEIGHT - 5
        parts = []
        for chunk, colour, bold in _spans(line):
            attrs = f' fill="{colour}"' if colour else ""
            attrs += ' font-weight="bold"' if bold else ""
            parts.append(f"<tspan{attrs}>{escape(chunk)}</tspan>")
        out.append(f'<text x="{PAD}" y="{y}" fill="#222222">{"".join(parts)}</text>')
    out.append("</g></svg>")
    return "\n".join(p for p in out if p) + "\n"


# lab number -> (files the page's steps write in the lab's folder, a coloured tree to draw)
PICTURES: dict[str, tuple[dict[str, str], tuple[str, list[str]] | None]] = {
    "01": (
        {},
        (
            "lab01-tree-origin.svg",
            ["layerfs", "tree", "--origin", "--color=always", "-o", "lowerdir=./image_n:./image_2:./image_1"],
        ),
    ),
    "05": ({"graph.svg": "lab05-graph.svg"}, None),
    "06": ({"stack.svg": "lab06-stack.svg"}, None),
    "07": ({"stack.svg": "lab07-stack.svg"}, None),
}


def make(out_dir: str, numbers: list[str]) -> list[str]:
    """Run each lab, keep its folder, and write its pictures into `out_dir`; the paths written."""
    written = []
    for number in numbers:
        copies, tree = PICTURES[number]
        report = io.StringIO()
        result = run_lab(find_lab(number), out=report, keep=True, exercises=False)
        try:
            if not result.ok:
                raise SystemExit(f"lab {number} failed, no pictures:\n{report.getvalue()}")
            folder = result.folder
            for name, target in copies.items():
                shutil.copyfile(os.path.join(folder, name), os.path.join(out_dir, target))
                written.append(target)
            if tree is not None:
                target, argv = tree
                env = lab_environment(result.home)
                proc = subprocess.run(argv, cwd=folder, env=env, capture_output=True, text=True, check=True)
                with open(os.path.join(out_dir, target), "w", encoding="utf-8") as f:
                    f.write(ansi_to_svg(proc.stdout, " ".join(argv)))
                written.append(target)
        finally:
            base = os.path.dirname(result.home)
            unmount_all(base)
            shutil.rmtree(base, ignore_errors=True)
    return written


def main(argv: list[str] | None = None) -> int:
    numbers = list(argv if argv is not None else sys.argv[1:]) or sorted(PICTURES)
    out_dir = os.path.join(labs_dir(), "img")
    os.makedirs(out_dir, exist_ok=True)
    for path in make(out_dir, numbers):
        print(f"wrote tutorials/img/{path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
