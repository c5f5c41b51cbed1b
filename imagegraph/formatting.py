"""Docker's human-readable output: sizes, durations, short IDs, tables and `--format json`.

Students compare our output with `docker images` and `docker history` side by side, so
the numbers and the columns follow Docker's code exactly: go-units (size.go,
duration.go), docker/cli's formatter (TruncateID, Ellipsis, tabwriter settings) and its
`{{json .}}` template function. Pure functions: the caller passes `now`.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timezone
from functools import cache
from typing import TYPE_CHECKING, Any

from imagegraph.digest import go_json

if TYPE_CHECKING:
    from tabulate import TableFormat

_DECIMAL_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")
_BINARY_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")

#: 2000-01-01T00:00:00Z: docker history shows "N/A" for anything created at or before it.
_EPOCH_2000 = 946684800


def _size_and_unit(size: float, base: float, units: tuple[str, ...]) -> tuple[float, str]:
    i = 0
    while size >= base and i < len(units) - 1:
        size /= base
        i += 1
    return size, units[i]


def human_size(n: float, precision: int = 3) -> str:
    """go-units HumanSizeWithPrecision: decimal units, `%.{precision}g`: "1.05MB", "0B".

    docker images/history use precision 3; go-units' own HumanSize uses 4.
    """
    size, unit = _size_and_unit(float(n), 1000.0, _DECIMAL_UNITS)
    return f"{size:.{precision}g}{unit}"


def bytes_size(n: float) -> str:
    """go-units BytesSize: binary units, 4 significant digits: "1MiB", "3.42GiB"."""
    size, unit = _size_and_unit(float(n), 1024.0, _BINARY_UNITS)
    return f"{size:.4g}{unit}"


def human_duration(seconds: float) -> str:
    """go-units HumanDuration, threshold for threshold: "About a minute", "3 weeks"."""
    secs = int(seconds)  # Go: int(d.Seconds()) truncates toward zero
    if secs < 1:
        return "Less than a second"
    if secs == 1:
        return "1 second"
    if secs < 60:
        return f"{secs} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


def _unix(t: float | datetime) -> float:
    if isinstance(t, datetime):
        if t.tzinfo is None:
            raise ValueError("naive datetime: give a timezone (Docker's times are UTC)")
        return t.timestamp()
    return float(t)


def ago(timestamp: float | datetime, now: float | datetime) -> str:
    """CREATED column: "2 hours ago"; "N/A" for an unset time (at or before 2000-01-01)."""
    ts = _unix(timestamp)
    if ts <= _EPOCH_2000:
        return "N/A"
    return human_duration(_unix(now) - ts) + " ago"


def created_at(timestamp: float | datetime, tz: timezone | None = None) -> str:
    """CREATED AT for `history -H=false`: Go's time.RFC3339, whole seconds, "Z" for UTC."""
    dt = datetime.fromtimestamp(int(_unix(timestamp)), tz or UTC)
    s = dt.isoformat()
    return s[:-6] + "Z" if s.endswith("+00:00") else s


def short_id(id_: str) -> str:
    """stringid.TruncateID: drop the algorithm, keep 12 characters; "<missing>" stays."""
    _, sep, rest = id_.partition(":")
    return (rest if sep else id_)[:12]


def _char_width(c: str) -> int:
    return 2 if unicodedata.east_asian_width(c) in ("W", "F") else 1


def ellipsis(s: str, max_width: int) -> str:
    """docker/cli formatter.Ellipsis: cut to a display width, ending in "…"."""
    if max_width <= 0:
        return ""
    if max_width == 1:
        return s[:1]
    widths: list[int] = []
    total = 0
    for c in s:
        total += _char_width(c)
        widths.append(total)
    if total <= max_width:
        return s
    for i in range(len(widths) - 1):
        if widths[i] <= max_width - 1 < widths[i + 1]:
            return s[: i + 1] + "…"
    return s  # Go's quirk: a first character wider than the room is left uncut


def truncate_cmd(s: str, width: int = 45) -> str:
    """The CREATED BY column of docker history: tabs become spaces, then Ellipsis."""
    return ellipsis(s.replace("\t", " "), width)


# docker/cli formatter: tabwriter.NewWriter(out, 10, 1, 3, ' ', 0): every column but the
# last is as wide as its widest cell plus 3, and at least 10; the last is not padded.
_MIN_WIDTH = 10
_PADDING = 3


@cache
def _docker_table() -> TableFormat:
    """The tabwriter's layout as a tabulate format, made on the first table.

    tabulate imports importlib.metadata (and with it email, zipfile, csv): 40-150 ms of
    start-up that only the commands printing a table should pay, not pull, push or commit.
    """
    from tabulate import DataRow, TableFormat

    return TableFormat(
        lineabove=None,
        linebelowheader=None,
        linebetweenrows=None,
        linebelow=None,
        headerrow=DataRow("", " " * _PADDING, ""),
        datarow=DataRow("", " " * _PADDING, ""),
        padding=0,
        with_header_hide=None,
    )


_SENTINEL = "|"


def _cell(value: Any) -> str:
    """One table cell; a newline would break the row (as in Docker), so it becomes a space."""
    return "" if value is None else str(value).replace("\r", " ").replace("\n", " ")


def table(rows: Iterable[Sequence[Any]], headers: Sequence[str]) -> str:
    """A table as docker's CLI prints it (no trailing newline).

    Headers are printed as given (pass them in UPPER CASE, as Docker's are). Cells are
    str()-ed and never re-aligned as numbers.
    """
    body = [[_cell(c) for c in row] for row in rows]
    heads = [_cell(h) for h in headers]
    for row in body:
        if len(row) != len(heads):
            raise ValueError(f"row has {len(row)} cells, headers have {len(heads)}")
    if len(heads) <= 1:
        return "\n".join([*heads, *(r[0] for r in body)]) if heads else ""
    # tabulate lays out all but the last column. The header row goes in as a data row
    # (tabulate pads real headers by 2 more), widened to MIN_WIDTH-PADDING so that
    # every column reaches the tabwriter's minimum width; a sentinel column keeps
    # tabulate from trimming the padding of the column before the last.
    lead_heads = [h.ljust(_MIN_WIDTH - _PADDING) for h in heads[:-1]]
    grid = [[*lead_heads, _SENTINEL], *([*r[:-1], _SENTINEL] for r in body)]
    from tabulate import tabulate

    lead = tabulate(grid, tablefmt=_docker_table(), stralign="left", disable_numparse=True, preserve_whitespace=True)
    lines = lead.split("\n")
    lasts = [heads[-1], *(r[-1] for r in body)]
    assert len(lines) == len(lasts)
    cut = len(_SENTINEL)
    return "\n".join(line[:-cut] + last for line, last in zip(lines, lasts, strict=True))


def to_json(obj: Mapping[str, Any]) -> str:
    """One line of `--format json`: the CLI's `{{json .}}` (sorted keys, `<>&` left as is)."""
    return go_json(obj, escape_html=False, sort_keys=True).decode("utf-8")


def json_lines(objs: Iterable[Mapping[str, Any]]) -> str:
    """`docker images --format json`: one JSON object per line."""
    return "".join(to_json(o) + "\n" for o in objs)
