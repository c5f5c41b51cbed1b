"""The image graph: parents, base images and shared layers, as text and as Graphviz DOT.

The seed's point is reuse: image_0 → image_1 → image_3 → image_4 (ubuntu) → image_5
(mysql), and another image built on the same lower layers stores them once. The tree
shows the parent links (who was committed on top of whom); the second part shows what
the tree cannot: layers used by images that are not each other's ancestors, which is
how two independently pulled images share disk space.

"Base image" means what the seed means: the bottom image of a stack, with no parent image
and so one layer (基础镜像). An image with no parent here but several layers (pulled or
loaded: Docker keeps no parent for those either) is called just that, "no parent image".

The input is a small model of its own (GraphImage), so the renderer needs no store.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from imagegraph.formatting import short_id, table


@dataclass
class GraphImage:
    """One image as the graph needs it. `layers` are ChainIDs, base first."""

    id: str
    parent: str | None = None
    tags: list[str] = field(default_factory=list)
    layers: list[str] = field(default_factory=list)
    created_by: str = ""


@dataclass
class _Graph:
    """Everything the two renderers derive from the images, computed once."""

    images: dict[str, GraphImage]
    children: dict[str, list[str]]
    roots: list[str]
    users: dict[str, list[str]]  # layer → images whose stack contains it
    own: dict[str, list[str]]  # image → layers it adds over its parent
    cross: dict[str, dict[str, int]]  # image → image sharing layers without a parent link
    notes: dict[str, str]  # image → remark (missing parent, cycle)


def _label(img: GraphImage) -> str:
    return ", ".join(img.tags) if img.tags else "<none>"


def _name(img: GraphImage) -> str:
    """Short human name: the first tag, else the short ID."""
    return img.tags[0] if img.tags else short_id(img.id)


def _sort_key(img: GraphImage) -> tuple[int, str, str]:
    return (0 if img.tags else 1, img.tags[0] if img.tags else "", img.id)


def _build(images: Iterable[GraphImage]) -> _Graph:
    by_id: dict[str, GraphImage] = {}
    for img in images:
        if img.id in by_id:
            raise ValueError(f"image {short_id(img.id)} appears twice")
        by_id[img.id] = img
    notes: dict[str, str] = {}
    children = _children(by_id, notes)
    roots = _roots(by_id, children, notes)
    users: dict[str, list[str]] = {}
    for img in by_id.values():
        for layer in dict.fromkeys(img.layers):
            users.setdefault(layer, []).append(img.id)
    own: dict[str, list[str]] = {}
    for img in by_id.values():
        parent = by_id.get(img.parent) if img.parent else None
        inherited = set(parent.layers) if parent else set()
        own[img.id] = [layer for layer in img.layers if layer not in inherited]
    return _Graph(by_id, children, roots, users, own, _shared_without_parent(by_id, own, children), notes)


def _children(by_id: dict[str, GraphImage], notes: dict[str, str]) -> dict[str, list[str]]:
    """Each image's children, in display order; a missing parent goes into `notes`."""
    children: dict[str, list[str]] = {i: [] for i in by_id}
    for img in by_id.values():
        if img.parent is not None:
            if img.parent in by_id:
                children[img.parent].append(img.id)
            else:
                notes[img.id] = f"parent {short_id(img.parent)} not present"
    for kids in children.values():
        kids.sort(key=lambda i: _sort_key(by_id[i]))
    return children


def _roots(by_id: dict[str, GraphImage], children: dict[str, list[str]], notes: dict[str, str]) -> list[str]:
    """The trees' roots, biggest tree first. Images in a parent cycle are reachable from no
    root: the first of each cycle is shown as a root too, flagged in `notes`."""
    roots = [i for i, img in by_id.items() if img.parent is None or img.parent not in by_id]
    roots.sort(key=lambda i: (-len(_descendants(i, children)), _sort_key(by_id[i])))
    reached: set[str] = set()
    _reach(roots, children, reached)
    for i in sorted(set(by_id) - reached, key=lambda i: _sort_key(by_id[i])):
        if i not in reached:
            notes[i] = "parent cycle"
            roots.append(i)
            _reach([i], children, reached)
    return roots


def _reach(starts: list[str], children: dict[str, list[str]], reached: set[str]) -> None:
    """Add to `reached` every image below `starts` (without recursion: a chain may be deep)."""
    stack = list(starts)
    while stack:
        i = stack.pop()
        if i not in reached:
            reached.add(i)
            stack.extend(children[i])


def _shared_without_parent(
    by_id: dict[str, GraphImage], own: dict[str, list[str]], children: dict[str, list[str]]
) -> dict[str, dict[str, int]]:
    """image → image → layers shared without a parent link.

    Such a layer is a ChainID that several images introduce as their own (two pulls of stacks
    with the same bottom). A ChainID names the whole stack below it, so the topmost such layer
    says how many layers a pair shares. Only the deepest link is kept: image_0 ~ redis is
    implied by image_1 ~ redis.
    """
    introducers: dict[str, list[str]] = {}
    for i, layers in own.items():
        for layer in layers:
            introducers.setdefault(layer, []).append(i)
    pairs: dict[frozenset[str], int] = {}
    for i, img in by_id.items():
        for depth, layer in enumerate(img.layers, start=1):
            if layer not in own[i]:
                continue
            for j in introducers[layer]:
                if j != i:
                    key = frozenset((i, j))
                    pairs[key] = max(pairs.get(key, 0), depth)
    desc = {i: _descendants(i, children) for i in by_id}
    cross: dict[str, dict[str, int]] = {i: {} for i in by_id}
    for key, n in pairs.items():
        a, b = tuple(key)
        implied = any(
            n2 > n and ((x == b and y in desc[a]) or (x == a and y in desc[b]))
            for key2, n2 in pairs.items()
            if key2 != key
            for x, y in (tuple(key2), tuple(key2)[::-1])
        )
        if not implied:
            cross[a][b] = cross[b][a] = n
    return cross


def _descendants(i: str, children: dict[str, list[str]]) -> set[str]:
    seen: set[str] = set()
    stack = list(children[i])
    while stack:
        j = stack.pop()
        if j not in seen and j != i:
            seen.add(j)
            stack.extend(children[j])
    return seen


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _is_base(img: GraphImage) -> bool:
    """The seed's base image: no parent image, so nothing below its one layer."""
    return img.parent is None and len(img.layers) <= 1


def _root_text(g: _Graph, img: GraphImage) -> str:
    kind = "base image" if _is_base(img) else "no parent image"
    return f"{kind}, {_plural(len(g.own[img.id]), 'layer')}"


HEADER = "Images (roots have no parent image here; each child was built on its parent):"
NO_PARENT_NOTE = (
    "no parent image: it came whole (pulled or loaded), so no image here holds the layers below its top;\n"
    "Docker shows an empty Parent for it too. A base image (基础镜像) is the bottom of a stack: no parent, one layer."
)


def _node_text(g: _Graph, i: str) -> str:
    img = g.images[i]
    parts = [short_id(img.id), _label(img)]
    own = len(g.own[i])
    if img.parent is None:
        parts.append(_root_text(g, img))
    else:
        parts.append(f"+{_plural(own, 'layer')} ({len(img.layers)} in all)")
    for j, n in sorted(g.cross[i].items(), key=lambda kv: _sort_key(g.images[kv[0]])):
        parts.append(f"* shares its bottom {_plural(n, 'layer')} with {_name(g.images[j])}")
    if i in g.notes:
        parts.append(f"({g.notes[i]})")
    return "  ".join(parts)


def render_text(images: Sequence[GraphImage]) -> str:
    """The graph as a tree (bases at the left, children indented) and a shared-layer table."""
    g = _build(images)
    if not g.images:
        return "No images.\n"
    lines = [HEADER, ""]

    shown: set[str] = set()

    def walk(i: str, prefix: str, last: bool, top: bool) -> None:
        branch = "" if top else ("└── " if last else "├── ")
        if i in shown:  # only in a parent cycle
            lines.append(prefix + branch + short_id(i) + "  (shown above)")
            return
        shown.add(i)
        lines.append(prefix + branch + _node_text(g, i))
        kids = g.children[i]
        inner = prefix + ("" if top else ("    " if last else "│   "))
        for n, k in enumerate(kids):
            walk(k, inner, n == len(kids) - 1, False)

    for r in g.roots:
        walk(r, "", True, True)
    if any(g.images[r].parent is None and not _is_base(g.images[r]) for r in g.roots):
        lines.append("")
        lines.extend(NO_PARENT_NOTE.split("\n"))

    shared = [(layer, ids) for layer, ids in g.users.items() if len(ids) > 1]
    lines.append("")
    if not shared:
        lines.append("No layer is shared: every layer belongs to one image.")
        return "\n".join(lines) + "\n"
    lines.append("Shared layers (each stored once, used by every image listed):")
    lines.append("")
    position = {layer: n for img in g.images.values() for n, layer in enumerate(img.layers)}
    shared.sort(key=lambda item: (-len(item[1]), position.get(item[0], 0), item[0]))
    rows = []
    for layer, ids in shared:
        ordered = sorted(ids, key=lambda j: (len(g.images[j].layers), _sort_key(g.images[j])))
        marker = "*" if any(g.cross[a].keys() & set(ids) for a in ids) else ""
        rows.append([short_id(layer), f"{len(ids)}{marker}", ", ".join(_name(g.images[j]) for j in ordered)])
    lines.append(table(rows, ["LAYER (CHAINID)", "IMAGES", "USED BY"]))
    if any(r[1].endswith("*") for r in rows):
        lines.append("")
        lines.append("* also used by images that are not each other's parent or child")
    return "\n".join(lines) + "\n"


def _dot_string(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def render_dot(images: Sequence[GraphImage]) -> str:
    """The graph in Graphviz DOT: one node per image, parent → child edges, bases marked,
    dashed lines between unrelated images that share layers."""
    g = _build(images)
    out = [
        "digraph images {",
        "  rankdir=TB;",
        '  node [shape=box, style="rounded,filled", fillcolor=white, fontname="monospace"];',
        '  edge [color="#555555"];',
    ]
    for i in sorted(g.images, key=lambda j: _sort_key(g.images[j])):
        img = g.images[i]
        own = len(g.own[i])
        lines = [short_id(img.id), _label(img)]
        if _is_base(img):
            lines.append(_root_text(g, img))
            attrs = 'fillcolor="#dde8f5", peripheries=2'
        elif img.parent is None:
            lines.append(_root_text(g, img))
            attrs = 'fillcolor="#eef3f9", style="rounded,filled,dashed"'
        else:
            lines.append(f"+{_plural(own, 'layer')} ({len(img.layers)} in all)")
            attrs = 'fillcolor="#ffffff"'
        if i in g.notes:
            lines.append(g.notes[i])
        if img.created_by:
            attrs += f", tooltip={_dot_string(img.created_by)}"
        out.append(f"  {_dot_string(img.id)} [label={_dot_string(chr(10).join(lines))}, {attrs}];")
    for i in sorted(g.images, key=lambda j: _sort_key(g.images[j])):
        for k in g.children[i]:
            out.append(f"  {_dot_string(i)} -> {_dot_string(k)};")
    done: set[frozenset[str]] = set()
    for a in sorted(g.cross, key=lambda j: _sort_key(g.images[j])):
        for b, n in sorted(g.cross[a].items(), key=lambda kv: _sort_key(g.images[kv[0]])):
            pair = frozenset((a, b))
            if pair in done:
                continue
            done.add(pair)
            label = _dot_string(f"shares bottom {_plural(n, 'layer')}")
            out.append(
                f"  {_dot_string(a)} -> {_dot_string(b)} [dir=none, style=dashed, "
                f'color="#aa5500", fontcolor="#aa5500", label={label}, constraint=false];'
            )
    out.append("}")
    return "\n".join(out) + "\n"
