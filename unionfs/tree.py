"""The merged view printed as `tree` prints a directory, optionally with each entry's branch.

It reads through the union core, so it works without a mount (and without FUSE). On a
terminal each name takes the colour of the layer that serves it, as `ls --color` colours
names by type, and a legend of the layers follows (`colour=True`).
"""

from __future__ import annotations

import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from .branch import Branch
from .inode import Stat
from .namei import join
from .union import Union

# SGR colours for the layers: the upper yellow, the init layer green, then the read-only
# layers top down in colours that stay apart on dark and light terminals.
UPPER_COLOUR = "1;33"
INIT_COLOUR = "1;32"
LOWER_COLOURS = ("1;34", "1;36", "1;35", "1;31", "34", "36", "35", "31", "1;94", "1;96", "1;95", "1;91")


def layer_colours(branches: Iterable[Branch]) -> dict[int, str]:
    """{branch index: SGR colour}: the upper and the init layer fixed, the lowers in turn."""
    out: dict[int, str] = {}
    lowers = 0
    for branch in branches:
        if branch.role.value == "upper":
            out[branch.index] = UPPER_COLOUR
        elif branch.role.value == "init":
            out[branch.index] = INIT_COLOUR
        else:
            out[branch.index] = LOWER_COLOURS[lowers % len(LOWER_COLOURS)]
            lowers += 1
    return out


def paint(text: str, sgr: str) -> str:
    return f"\x1b[{sgr}m{text}\x1b[0m"


@dataclass(frozen=True)
class TreeOptions:
    all_files: bool = False  # tree -a
    origin: bool = False  # show the serving branch of each entry
    dirs_only: bool = False  # tree -d
    ascii: bool = False  # tree --charset=ascii (what tree prints in a non-UTF-8 locale)
    colour: bool = False  # colour each name by its layer, and end with a legend

    @property
    def glyphs(self) -> tuple[str, str, str, str]:
        if self.ascii:
            return "|-- ", "`-- ", "|   ", "    "
        return "├── ", "└── ", "│\u00a0\u00a0 ", "    "  # tree pads the bar with two no-break spaces


def render_tree(union: Union, path: str, label: str, options: TreeOptions = TreeOptions()) -> str:
    """Lines as tree(1) v2 prints them, with its summary line ("1 directory, 3 files")."""
    counts = {"dirs": 1, "files": 0}  # tree 2.x counts the top directory too
    lines = [label]
    lines.extend(_walk(union, path, "", options, counts))
    d, f = counts["dirs"], counts["files"]
    summary = f"{d} director{'y' if d == 1 else 'ies'}"
    if not options.dirs_only:
        summary += f", {f} file{'' if f == 1 else 's'}"
    text = "\n".join(lines) + "\n\n" + summary + "\n"
    if options.colour:
        text += "\n" + legend(union)
    return text


def legend(union: Union) -> str:
    """Which colour is which layer, top first."""
    colours = layer_colours(union.sb.branches)
    lines = ["layers, top first:"]
    for branch in union.sb.branches:
        lines.append(f"  {paint('██', colours[branch.index])}  {branch.label} ({branch.role.value})")
    return "\n".join(lines) + "\n"


def _walk(union: Union, path: str, prefix: str, options: TreeOptions, counts: dict[str, int]) -> Iterator[str]:
    """Pre-order with an explicit stack: a union nested 5,000 deep must not exhaust recursion."""
    stack = [iter(_entries(union, path, options))]
    prefixes = [prefix]
    while stack:
        item = next(stack[-1], None)
        if item is None:
            stack.pop()
            prefixes.pop()
            continue
        name, child, st, last = item
        tee, corner, bar, blank = options.glyphs
        branch = corner if last else tee
        shown = name
        if options.origin or options.colour:
            serving = union.lookup(child).top.branch
            colour = layer_colours(union.sb.branches)[serving.index] if options.colour else ""
            if colour:
                shown = paint(name, colour)
            if options.origin:
                label = f"[{serving.label}]"
                shown = f"{paint(label, colour) if colour else label}  {shown}"
        is_dir = stat.S_ISDIR(st.st_mode)
        if stat.S_ISLNK(st.st_mode):
            target = union.readlink(child)
            shown += f" -> {target}"
            is_dir = _points_to_dir(union, child, target)
        yield prefixes[-1] + branch + shown
        if is_dir:
            counts["dirs"] += 1
            if stat.S_ISDIR(st.st_mode):
                stack.append(iter(_entries(union, child, options)))
                prefixes.append(prefixes[-1] + (blank if last else bar))
        else:
            counts["files"] += 1


def _entries(union: Union, path: str, options: TreeOptions) -> list[tuple[str, str, Stat, bool]]:
    """The entries tree shows in one directory, each with whether it is the last one."""
    names = [n for n in union.listdir(path) if options.all_files or not n.startswith(".")]
    entries = []
    for name in names:
        child = join(path, name)
        st = union.getattr(child)
        if options.dirs_only and not stat.S_ISDIR(st.st_mode):
            continue
        entries.append((name, child, st))
    return [(name, child, st, i == len(entries) - 1) for i, (name, child, st) in enumerate(entries)]


def _points_to_dir(union: Union, path: str, target: str) -> bool:
    """Does a symlink inside the union lead to a directory? (tree counts those as directories)."""
    base = path.rsplit("/", 1)[0] or "/"
    resolved = target if target.startswith("/") else join(base, target)
    for _ in range(40):
        try:
            st = union.getattr(resolved)
        except OSError:
            return False
        if not stat.S_ISLNK(st.st_mode):
            return stat.S_ISDIR(st.st_mode)
        nxt = union.readlink(resolved)
        base = resolved.rsplit("/", 1)[0] or "/"
        resolved = nxt if nxt.startswith("/") else join(base, nxt)
    return False
