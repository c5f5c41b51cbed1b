"""Pictures: `imagegraph stack` (text, DOT, SVG, PNG) and `imagegraph graph --format svg|png`.

The SVG tests read the drawing Graphviz made, not just its presence: each layer's label is
there, with its ChainID and size on the same row, and the rows run top layer first, down to
the base, in the seed's order.
"""

from __future__ import annotations

import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from imagegraph.formatting import short_id
from imagegraph.service import Services

from ..support import require_tool
from .test_cli import commit_step, imported


@pytest.fixture
def needs_dot() -> None:
    """Graphviz draws the SVG and PNG; scripts/setup-system.sh installs it (skip here, fail in CI)."""
    require_tool("dot")


SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def built(ig, rootfs: Path, root: Path):
    """base → app (one committed layer), and a container `web` of app."""
    imported(ig, rootfs, "base")
    commit_step(ig, root, "base", "app:1", {"srv/app.conf": "port=80\n"}, "install app")
    r = ig("create", "--name", "web", "app:1", "/bin/sh")
    assert r.rc == 0, r.err
    return Services.open(root)


def svg_texts(svg: str) -> list[tuple[float, float, str]]:
    """(y, x, text) of every text element, top to bottom."""
    root = ET.fromstring(svg)
    found = []
    for el in root.iter(SVG + "text"):
        text = "".join(el.itertext()).strip()
        if text:
            found.append((float(el.get("y", "0")), float(el.get("x", "0")), text))
    return sorted(found)


def row_of(texts, needle: str) -> float:
    ys = [y for y, _, t in texts if t == needle or t.startswith(needle)]
    assert len(ys) == 1, (needle, texts)
    return ys[0]


def test_stack_text_of_a_container_top_first(ig, built):
    r = ig("stack", "web")
    assert r.rc == 0, r.err
    lines = r.out.splitlines()
    assert lines[0].startswith("container web (") and "of image app:1, top layer first:" in lines[0]
    order = [i for i, line in enumerate(lines) if re.search(r"│ (top layer|init layer|layer \d)", line)]
    found = [
        re.search(r"│ (top layer \(读写层\)|init layer \(初始化层\)|layer \d( \(base\))?)", lines[i]) for i in order
    ]
    labels = [m[1] for m in found if m is not None]
    assert labels == ["top layer (读写层)", "init layer (初始化层)", "layer 2", "layer 1 (base)"]
    img = built.get_image("app:1")
    chain = built.layers.chain(img.top_chain_id)  # top first
    assert short_id(chain[0].chain_id) in lines[order[2]] and "install app" in lines[order[2]]
    assert short_id(chain[1].chain_id) in lines[order[3]]
    # the boxes line up, CJK labels counted as two columns each, and the union mount is beside them
    widths = {len(line.split("│ ")[0]) for line in lines if line.startswith(("┌", "└"))}
    assert len(widths) == 1
    assert "──▶ union mount" in r.out and "(not mounted now)" in lines[-1]


def test_stack_of_an_image_has_no_container_layers(ig, built):
    r = ig("stack", "app:1")
    assert r.rc == 0, r.err
    assert "读写层" not in r.out and "初始化层" not in r.out  # no top or init layer
    assert r.out.splitlines()[0] == f"image app:1 ({short_id(built.get_image('app:1').id)}), top layer first:"
    assert "a container of this image mounts these layers under its init and top layers" in r.out


def test_stack_of_nothing_is_one_line(ig, built):
    r = ig("stack", "nope")
    assert r.rc == 1 and r.err.count("\n") == 1 and "No such image: nope" in r.err


@pytest.mark.usefixtures("needs_dot")
def test_stack_svg_draws_the_layers_in_order_each_labelled(ig, built):
    r = ig("stack", "web", "--format", "svg")
    assert r.rc == 0, r.err
    texts = svg_texts(r.out)
    rows = [
        row_of(texts, label) for label in ("top layer (读写层)", "init layer (初始化层)", "layer 2", "layer 1 (base)")
    ]
    assert rows == sorted(rows) and len(set(rows)) == 4, texts  # top first, the base at the bottom
    img = built.get_image("app:1")
    chain = built.layers.chain(img.top_chain_id)
    for y, layer in zip(rows[2:], chain, strict=True):
        on_row = [t for ty, _, t in texts if abs(ty - y) < 5]  # one row: a bold label sits 1pt higher
        assert f"ChainID {short_id(layer.chain_id)}" in on_row, on_row
        assert any(re.fullmatch(r"\d+(\.\d+)?[kM]?B", t) for t in on_row), on_row  # its size
    assert any(t.startswith("union mount") for _, _, t in texts)
    # the union mount is beside the stack, to its right
    mount_x = min(x for _, x, t in texts if t.startswith("union mount"))
    assert mount_x > max(x for _, x, t in texts if re.match(r"layer \d", t))


@pytest.mark.usefixtures("needs_dot")
def test_graph_svg_draws_each_image_below_its_parent(ig, built):
    r = ig("graph", "--format", "svg")
    assert r.rc == 0, r.err
    texts = svg_texts(r.out)
    base, app = row_of(texts, "base:latest"), row_of(texts, "app:1")
    assert base < app  # the parent above the child
    assert any(t == "base image, 1 layer" for _, _, t in texts)


@pytest.mark.usefixtures("needs_dot")
def test_png_goes_to_a_file_and_never_to_a_terminal(ig, built, tmp_path: Path):
    for command in (["stack", "web"], ["graph"]):
        out = tmp_path / f"{command[0]}.png"
        r = ig(*command, "--format", "png", "-o", str(out))
        assert r.rc == 0, r.err
        assert out.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")

    class Terminal:
        def isatty(self) -> bool:
            return True

        def write(self, s: str) -> None:
            raise AssertionError("wrote binary to a terminal")

        def flush(self) -> None:
            pass

    from imagegraph.cli import main

    err = __import__("io").StringIO()
    assert main(["stack", "web", "--format", "png"], Terminal(), err) == 1
    assert err.getvalue() == "--format png writes binary data: redirect it to a file, or use -o FILE\n"


def test_without_graphviz_a_picture_is_one_clear_line(ig, built, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    r = ig("stack", "web", "--format", "svg")
    assert r.rc == 1
    assert r.err == "--format svg needs Graphviz's dot (apt-get install graphviz); --format dot prints DOT\n"
    assert ig("stack", "web", "--format", "dot").out.startswith("digraph stack {")
