"""The image graph as text and DOT, with the seed's reuse example as the main case."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from imagegraph.digest import chain_ids, sha256_digest
from imagegraph.formatting import short_id
from imagegraph.graph import GraphImage, render_dot, render_text


def diff(n: int) -> str:
    return sha256_digest(f"layer {n}".encode())


def img_id(name: str) -> str:
    return sha256_digest(f"config {name}".encode())


def S(name: str) -> str:
    return short_id(img_id(name))


def seed_images() -> list[GraphImage]:
    """image_0 → image_1 → image_3 → image_4 (ubuntu) → image_5 (mysql), each adding one
    layer; nginx built on image_1; redis pulled separately with the same two bottom layers."""
    chain = chain_ids([diff(0), diff(1), diff(3), diff(4), diff(5)])
    return [
        GraphImage(img_id("image_5"), img_id("image_4"), ["mysql:8.0"], chain[:5], "/bin/sh -c #(nop) mysql"),
        GraphImage(img_id("image_0"), None, [], chain[:1]),
        GraphImage(img_id("image_3"), img_id("image_1"), [], chain[:3]),
        GraphImage(img_id("image_4"), img_id("image_3"), ["ubuntu:latest"], chain[:4]),
        GraphImage(img_id("image_1"), img_id("image_0"), [], chain[:2]),
        GraphImage(img_id("nginx"), img_id("image_1"), ["nginx:latest"], chain_ids([diff(0), diff(1), diff(2)])),
        GraphImage(img_id("redis"), None, ["redis:7"], chain_ids([diff(0), diff(1), diff(6)])),
    ]


def _tree(text: str) -> list[str]:
    return text.split("\n\n")[1].split("\n")


def _depth(line: str) -> int:
    m = re.match(r"^((?:│   |    )*)(?:├── |└── )?", line)
    assert m is not None
    return len(m.group(1)) // 4 + (1 if re.search(r"[├└]── ", line) else 0)


def test_seed_chain_renders_as_a_nested_tree():
    text = render_text(seed_images())
    tree = _tree(text)
    lines = {
        name: next(line for line in tree if S(name) in line)
        for name in ["image_0", "image_1", "image_3", "image_4", "image_5", "nginx", "redis"]
    }
    # the parent chain nests one level per image
    assert [_depth(lines[n]) for n in ["image_0", "image_1", "image_3", "image_4", "image_5"]] == [0, 1, 2, 3, 4]
    order = [tree.index(lines[n]) for n in ["image_0", "image_1", "image_3", "image_4", "image_5"]]
    assert order == sorted(order)
    # nginx is image_3's sibling under image_1; redis is a second root
    assert _depth(lines["nginx"]) == 2
    assert _depth(lines["redis"]) == 0
    # tags, <none>, base markers and own layer counts
    assert "ubuntu:latest" in lines["image_4"] and "mysql:8.0" in lines["image_5"]
    assert "<none>" in lines["image_3"]
    assert "base image, 1 layer" in lines["image_0"]
    assert "no parent image, 3 layers" in lines["redis"]  # pulled whole: no parent, not a base
    assert "+1 layer (5 in all)" in lines["image_5"]
    assert "base image" not in lines["image_4"]


def test_seed_tree_is_drawn_with_connectors():
    tree = _tree(render_text(seed_images()))
    image_1 = next(line for line in tree if S("image_1") in line)
    assert image_1.startswith("└── ")
    children = [line for line in tree if _depth(line) == 2]
    # two children of image_1: the first gets ├──, the last └──
    assert children[0].startswith("    ├── ") and children[1].startswith("    └── ")
    # nginx (tagged) comes first, so image_3 is the last child and its subtree has no │ rail
    assert "nginx:latest" in children[0] and S("image_3") in children[1]
    image_4 = next(line for line in tree if S("image_4") in line)
    assert image_4.startswith("        └── ")


def test_seed_shared_layers_section():
    text = render_text(seed_images())
    section = text.split("Shared layers")[1]
    rows = [line for line in section.split("\n") if re.match(r"^[0-9a-f]{12}\s", line)]
    base_layer = short_id(diff(0))  # ChainID of the bottom layer = its DiffID
    base_row = next(r for r in rows if r.startswith(base_layer))
    # the bottom layer is stored once and used by all seven images
    assert re.search(r"\s7\*\s", base_row)
    for name in ["ubuntu:latest", "mysql:8.0", "nginx:latest", "redis:7", S("image_0"), S("image_3")]:
        assert name in base_row
    # ubuntu's own layer is used by ubuntu and mysql only, through the parent link
    ubuntu_layer = short_id(chain_ids([diff(0), diff(1), diff(3), diff(4)])[-1])
    ubuntu_row = next(r for r in rows if r.startswith(ubuntu_layer))
    assert re.search(r"\s2\s", ubuntu_row) and "ubuntu:latest, mysql:8.0" in ubuntu_row
    # mysql's top layer is its alone: not listed
    mysql_top = short_id(chain_ids([diff(0), diff(1), diff(3), diff(4), diff(5)])[-1])
    assert not any(r.startswith(mysql_top) for r in rows)
    assert "LAYER (CHAINID)" in section and "USED BY" in section


def test_seed_marks_sharing_without_a_parent_link():
    tree = _tree(render_text(seed_images()))
    redis = next(line for line in tree if S("redis") in line)
    image_1 = next(line for line in tree if S("image_1") in line)
    assert f"* shares its bottom 2 layers with {S('image_1')}" in redis
    assert "* shares its bottom 2 layers with redis:7" in image_1
    # implied by image_1's link, so image_0 carries no mark; nor do the inheritors
    for name in ["image_0", "image_3", "image_4", "image_5", "nginx"]:
        assert "*" not in next(line for line in tree if S(name) in line)


def test_render_is_independent_of_input_order():
    images = seed_images()
    assert render_text(images) == render_text(list(reversed(images)))
    assert render_dot(images) == render_dot(list(reversed(images)))


def test_no_images():
    assert render_text([]) == "No images.\n"
    assert "digraph" in render_dot([])


def test_nothing_shared():
    a = GraphImage(img_id("a"), None, ["a:1"], chain_ids([diff(10)]))
    b = GraphImage(img_id("b"), None, ["b:1", "b:latest"], chain_ids([diff(11)]))
    text = render_text([a, b])
    assert "No layer is shared" in text
    assert "b:1, b:latest" in text


def test_empty_commit_has_no_own_layer():
    base = GraphImage(img_id("base"), None, ["base:1"], chain_ids([diff(1)]))
    child = GraphImage(img_id("child"), img_id("base"), ["child:1"], chain_ids([diff(1)]))
    text = render_text([base, child])
    assert "+0 layers (1 in all)" in text


def test_missing_parent_and_cycles_do_not_break_rendering():
    orphan = GraphImage(img_id("orphan"), img_id("gone"), ["orphan:1"], chain_ids([diff(1)]))
    a = GraphImage(img_id("a"), img_id("b"), [], chain_ids([diff(2)]))
    b = GraphImage(img_id("b"), img_id("a"), [], chain_ids([diff(3)]))
    text = render_text([orphan, a, b])
    assert f"(parent {S('gone')} not present)" in text
    assert "(parent cycle)" in text
    assert text.count(S("a")) >= 1 and text.count(S("b")) >= 1
    dot = render_dot([orphan, a, b])
    _assert_dot_renders(dot)


def test_duplicate_ids_are_refused():
    a = GraphImage(img_id("a"), None, [], [])
    with pytest.raises(ValueError):
        render_text([a, a])


# --- DOT --------------------------------------------------------------------------------------


def _assert_dot_renders(dot: str) -> str:
    exe = shutil.which("dot")
    assert exe, "graphviz's dot is required (scripts/setup-system.sh installs graphviz)"
    proc = subprocess.run([exe, "-Tsvg"], input=dot.encode(), capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stderr == b"", proc.stderr.decode()
    svg = proc.stdout.decode()
    assert "<svg" in svg
    return svg


def test_dot_of_seed_renders_with_graphviz():
    svg = _assert_dot_renders(render_dot(seed_images()))
    for text in ["ubuntu:latest", "mysql:8.0", "redis:7", "base image", S("image_3")]:
        assert text in svg


def test_dot_structure():
    dot = render_dot(seed_images())
    assert dot.startswith("digraph images {") and dot.rstrip().endswith("}")
    # one node per image
    for img in seed_images():
        assert dot.count(f'"{img.id}" [label=') == 1
    # parent edges point from parent to child
    for parent, child in [
        ("image_0", "image_1"),
        ("image_1", "image_3"),
        ("image_3", "image_4"),
        ("image_4", "image_5"),
        ("image_1", "nginx"),
    ]:
        assert f'"{img_id(parent)}" -> "{img_id(child)}";' in dot
    # base images (no parent, one layer) are drawn double-bordered; an image with no parent
    # but several layers (pulled whole) dashed; the others plain
    base_lines = [line for line in dot.split("\n") if "peripheries=2" in line]
    assert len(base_lines) == 1 and img_id("image_0") in base_lines[0]
    dashed_nodes = [line for line in dot.split("\n") if 'style="rounded,filled,dashed"' in line]
    assert len(dashed_nodes) == 1 and img_id("redis") in dashed_nodes[0] and "no parent image" in dashed_nodes[0]
    # the layer-sharing link without parentage is a dashed undirected edge
    dashed = [line for line in dot.split("\n") if "style=dashed" in line and "->" in line]
    assert len(dashed) == 1
    assert img_id("redis") in dashed[0] and img_id("image_1") in dashed[0]
    assert "shares bottom 2 layers" in dashed[0]
    assert 'tooltip="/bin/sh -c #(nop) mysql"' in dot


def test_dot_escapes_quotes_and_backslashes():
    img = GraphImage(
        img_id("q"), None, ['we"ird\\tag'], chain_ids([diff(1)]), created_by='/bin/sh -c echo "hi" \\\n next'
    )
    dot = render_dot([img])
    assert 'we\\"ird\\\\tag' in dot
    _assert_dot_renders(dot)


def test_rail_continues_past_a_child_with_children():
    base = GraphImage(img_id("base"), None, ["base:1"], chain_ids([diff(1)]))
    a = GraphImage(img_id("a"), img_id("base"), ["a:1"], chain_ids([diff(1), diff(2)]))
    a2 = GraphImage(img_id("a2"), img_id("a"), ["a:2"], chain_ids([diff(1), diff(2), diff(3)]))
    b = GraphImage(img_id("b"), img_id("base"), ["b:1"], chain_ids([diff(1), diff(4)]))
    tree = _tree(render_text([base, a, a2, b]))
    assert [m.group(0) for line in tree if (m := re.match(r"^[│├└─ ]*[0-9a-f]{12}", line))] == [
        S("base"),
        "├── " + S("a"),
        "│   └── " + S("a2"),
        "└── " + S("b"),
    ]


def test_base_image_is_the_seeds_and_a_pulled_image_is_said_to_have_no_parent():
    """The seed's base image (基础镜像) has no parent and is the bottom of a stack: one layer.
    A two-layer image with no parent (pulled whole) is not called a base image, and the graph
    says what its "no parent" means."""
    chain = chain_ids([diff(0), diff(1)])
    built = [
        GraphImage(img_id("tiny"), None, ["tiny:latest"], chain[:1]),
        GraphImage(img_id("app"), img_id("tiny"), ["app:1"], chain[:2]),
    ]
    text = render_text(built)
    assert text.startswith("Images (roots have no parent image here; each child was built on its parent):")
    assert "base image, 1 layer" in text and "no parent image" not in text.split("\n\n")[1]
    pulled = [GraphImage(img_id("hello"), None, ["hello:2.0"], chain[:2]), built[0]]
    text = render_text(pulled)
    hello = next(line for line in _tree(text) if S("hello") in line)
    assert "no parent image, 2 layers" in hello and "base image" not in hello
    assert "no parent image: it came whole (pulled or loaded)" in text
    assert "A base image (基础镜像) is the bottom of a stack: no parent, one layer." in text
