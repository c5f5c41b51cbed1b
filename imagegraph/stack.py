"""The layer stack of an image or a container, drawn as the seed draws it: top first.

A container's stack is its top layer (读写层, read-write), its init layer (初始化层), then the
image's read-only layers down to the base; an image's stack is its layers alone. Each image
layer shows its ChainID, its size and the instruction that made it (history's created_by).
Beside the stack is the union mount that merges it. The text form is for terminals; the DOT
form is drawn as SVG or PNG by Graphviz (`render`).
"""

from __future__ import annotations

import os
import stat
import unicodedata
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .formatting import human_size, short_id
from .render import html_escape

if TYPE_CHECKING:
    from .imagestore import Image
    from .service import Services

CREATED_BY_WIDTH = 44
FILE_LIMIT = 100_000  # a top layer is walked to size it; stop counting past this many entries


@dataclass(frozen=True)
class StackLayer:
    """One layer of a stack, as the picture shows it."""

    role: str  # "top", "init" or "image"
    label: str  # "top layer (读写层)", "layer 2", "layer 1 (base)"
    ident: str  # a ChainID for image layers, the layer directory's id for a container's
    size: int
    created_by: str
    writable: bool
    path: str  # the layer's directory (diff/)
    entries: int | None = None  # shown instead of the size (the init layer's bytes are the host's resolv.conf)


@dataclass
class LayerStack:
    title: str
    layers: list[StackLayer]  # top first
    mount_path: str | None = None  # the merged directory (containers)
    mounted: bool = False
    notes: list[str] = field(default_factory=list)


def _layer_history(history: list[dict[str, object]]) -> list[str]:
    """created_by (or, for an import, its comment) of each non-empty history entry, bottom first."""
    out = []
    for entry in history:
        if entry.get("empty_layer"):
            continue
        text = str(entry.get("created_by") or "")
        if not text and entry.get("comment"):
            text = f"({entry['comment']})"
        out.append(text)
    return out


def dir_size(path: str) -> int:
    """Bytes of regular files below `path` (a container's layer: small, but walked with a limit)."""
    return _walk(path)[0]


def file_count(path: str) -> int:
    """Entries below `path`, directories included (what `find PATH -mindepth 1` counts)."""
    return _walk(path)[1]


def _walk(path: str) -> tuple[int, int]:
    total = seen = 0
    stack = [path]
    while stack and seen < FILE_LIMIT:
        try:
            with os.scandir(stack.pop()) as it:
                for entry in it:
                    seen += 1
                    st = entry.stat(follow_symlinks=False)
                    if stat.S_ISDIR(st.st_mode):
                        stack.append(entry.path)
                    elif stat.S_ISREG(st.st_mode):
                        total += st.st_size
        except OSError:
            continue
    return total, seen


def image_layers(svc: Services, img: Image) -> list[StackLayer]:
    """The image's read-only layers, top first."""
    chain = svc.layers.chain(img.top_chain_id) if img.top_chain_id else []  # top first
    made_by = _layer_history(img.history)
    out = []
    n = len(chain)
    for i, layer in enumerate(chain):
        number = n - i
        label = f"layer {number}" + (" (base)" if number == 1 else "")
        created_by = made_by[number - 1] if number - 1 < len(made_by) else ""
        out.append(
            StackLayer("image", label, layer.chain_id, layer.size, created_by, False, str(svc.layers.diff_dir(layer)))
        )
    return out


def stack_of(svc: Services, name: str) -> LayerStack:
    """The stack of container `name`, else of image `name` (as `inspect` looks them up)."""
    from .service import DaemonError

    try:
        c = svc.get_container(name)
    except DaemonError:
        c = None
    if c is None:
        img = svc.get_image(name)
        tags = svc.repo_tags(img.id)
        title = f"image {tags[0] if tags else '<none>'} ({short_id(img.id)}), top layer first"
        stack = LayerStack(title, image_layers(svc, img))
        stack.notes.append("a container of this image mounts these layers under its init and top layers")
        return stack
    img = svc.images.get(c.image_id)
    m = svc.containers.mount_layer(c)
    top_dir = svc.layout.layer_dir(m.mount_id) / "diff"
    init_dir = svc.layout.layer_dir(m.init_id) / "diff"
    tags = svc.repo_tags(img.id)
    image_name = tags[0] if tags else short_id(img.id)
    layers = [
        StackLayer(
            "top",
            "top layer (读写层)",
            m.mount_id,
            dir_size(str(top_dir)),
            "the container's changes",
            True,
            str(top_dir),
        ),
        StackLayer(
            "init",
            "init layer (初始化层)",
            m.init_id,
            dir_size(str(init_dir)),
            "hosts, hostname, resolv.conf …",
            False,
            str(init_dir),
            file_count(str(init_dir)),
        ),
        *image_layers(svc, img),
    ]
    mountpoint = svc.containers.mountpoint(c)
    merged = str(mountpoint) if mountpoint else str(svc.layout.layer_dir(m.mount_id) / "merged")
    title = f"container {c.name} ({c.short_id}) of image {image_name}, top layer first"
    return LayerStack(title, layers, merged, mountpoint is not None)


# -- text -------------------------------------------------------------------------------------


def width(text: str) -> int:
    """Terminal columns: CJK characters (初始化层) take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, columns: int) -> str:
    return text + " " * (columns - width(text))


def _cells(layer: StackLayer) -> list[str]:
    ident = short_id(layer.ident) + ("-init" if layer.role == "init" else "")
    by = layer.created_by
    if len(by) > CREATED_BY_WIDTH:
        by = by[: CREATED_BY_WIDTH - 1] + "…"
    size = f"{layer.entries} entries" if layer.entries is not None else human_size(layer.size)
    return [layer.label, "rw" if layer.writable else "ro", ident, size, by]


def render_text(stack: LayerStack) -> str:
    """The stack as boxes, top first, with the union mount beside it."""
    rows = [_cells(layer) for layer in stack.layers]
    widths = [max(width(r[i]) for r in rows) for i in range(5)] if rows else [0] * 5
    content = ["  ".join(_pad(cell, widths[i]) for i, cell in enumerate(r)).rstrip() for r in rows]
    inner = max((width(c) for c in content), default=0) + 2
    mount = "union mount"
    lines = [stack.title + ":", "", "┌" + "─" * inner + "┐"]
    n = len(content)
    middle = n - 1  # the row (of 2n-1: layers and the rules between) in the middle of the stack
    for r in range(2 * n - 1):
        if r % 2 == 0:
            box = "│ " + _pad(content[r // 2], inner - 2) + " │"
            bracket = "───" if n == 1 else ("─┐" if r == 0 else "─┘" if r == 2 * n - 2 else "─┤")
        else:
            box = "├" + "─" * inner + "┤"
            bracket = " │"
        if r == middle:
            bracket = {"─┤": "─┼", " │": " ├", "───": "───"}.get(bracket, bracket) + "──▶ " + mount
        lines.append(box + " " + bracket)
    lines.append("└" + "─" * inner + "┘")
    if stack.mount_path:
        state = "mounted" if stack.mounted else "not mounted now"
        lines.append(f"union mount: layerfs at {stack.mount_path} ({state})")
    lines.extend(stack.notes)
    return "\n".join(lines) + "\n"


# -- DOT --------------------------------------------------------------------------------------

COLOURS = {"top": "#fff2b3", "init": "#d9f2d9", "image": "#dde8f5", "base": "#b8cde8"}


def render_dot(stack: LayerStack) -> str:
    """The stack as one Graphviz table (a row per layer, top first, coloured by kind) and the
    union mount beside it, an arrow from each layer into it."""
    rows = []
    for i, layer in enumerate(stack.layers):
        colour = COLOURS["base"] if layer.label.endswith("(base)") else COLOURS[layer.role]
        label, mode, ident, size, by = _cells(layer)
        if layer.role == "image":
            ident = "ChainID " + ident
        cells = [
            f"<B>{html_escape(label)}</B>",
            html_escape("read-write" if mode == "rw" else "read-only"),
            f'<FONT FACE="monospace">{html_escape(ident)}</FONT>',
            html_escape(size),
            html_escape(by) or " ",
        ]
        tds = ""
        for n, cell in enumerate(cells):
            align = "RIGHT" if n == 3 else "LEFT"
            port = f' PORT="l{i}"' if n == 4 else ""
            tds += f'<TD BGCOLOR="{colour}" ALIGN="{align}"{port}>{cell}</TD>'

        rows.append(f"<TR>{tds}</TR>")
    table = (
        '<<TABLE BORDER="1" CELLBORDER="0" CELLSPACING="0" CELLPADDING="6" COLUMNS="*" ROWS="*">'
        + "".join(rows)
        + "</TABLE>>"
    )
    mount_lines = ["union mount"]
    if stack.mount_path:
        where = stack.mount_path
        parts = where.rstrip("/").split("/")
        if len(parts) >= 2 and len(parts[-2]) == 64:  # …/layerfs/<cache id>/merged
            where = "…/" + short_id(parts[-2]) + "…/" + parts[-1]
        mount_lines += ["layerfs, on " + where, "mounted" if stack.mounted else "not mounted now"]
    else:
        mount_lines += stack.notes
    out = [
        "digraph stack {",
        "  rankdir=LR;",
        # sans-serif with a CJK fallback (fonts-wqy-microhei): the labels carry the seed's terms
        '  graph [fontname="sans-serif", labelloc=t, label=' + _dot_string(stack.title) + "];",
        '  node [fontname="sans-serif", fontsize=11];',
        f"  layers [shape=plaintext, label={table}];",
        '  mount [shape=box, style="rounded,filled", fillcolor="#f4f4f4", '
        f"label={_dot_string(chr(10).join(mount_lines))}];",
    ]
    for i in range(len(stack.layers)):
        out.append(f'  layers:l{i}:e -> mount [color="#777777", arrowsize=0.6];')
    out.append("}")
    return "\n".join(out) + "\n"


def _dot_string(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
