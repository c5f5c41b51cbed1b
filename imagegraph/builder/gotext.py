"""How Go prints values, where the classic builder's texts depend on it.

The builder writes `created_by` strings and errors with Go's fmt verbs: `%q` of a string
(strconv.Quote) or of a []string (`["a" "b"]`), `%v` of a []string (`[a b]`), `%+v` of a
health check (`&{Test:[CMD-SHELL true] Interval:30s …}`, time.Duration's String). A cache hit
compares these strings, so they must be Go's byte for byte.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

_SHORT_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
    "\\": "\\\\",
    '"': '\\"',
}


def _printable(c: str) -> bool:
    """strconv.IsPrint: letters, marks, numbers, punctuation, symbols and the ASCII space."""
    if c == " ":
        return True
    cat = unicodedata.category(c)
    return cat[0] in "LMNPS"


def go_quote(s: str) -> str:
    """strconv.Quote: a double-quoted Go string literal; printable Unicode kept as is."""
    out = ['"']
    for c in s:
        if c in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[c])
        elif _printable(c):
            out.append(c)
        elif c == "\ufffd":
            out.append("\\ufffd")
        else:
            n = ord(c)
            if n < 0x80:
                out.append(f"\\x{n:02x}")
            elif n < 0x10000:
                out.append(f"\\u{n:04x}")
            else:
                out.append(f"\\U{n:08x}")
    out.append('"')
    return "".join(out)


def go_quote_list(items: Sequence[str] | None) -> str:
    """fmt's %q of a []string: `["a" "b"]` (`[]` for nil)."""
    return "[" + " ".join(go_quote(s) for s in items or []) + "]"


def go_list(items: Sequence[str] | None) -> str:
    """fmt's %v of a []string: `[a b]`."""
    return "[" + " ".join(items or []) + "]"


def go_duration(ns: int) -> str:
    """time.Duration.String: `0s`, `1.5s`, `500ms`, `1m30s`, `1h0m0s`."""
    if ns == 0:
        return "0s"
    neg = ns < 0
    u = -ns if neg else ns
    if u < 1_000_000_000:
        for unit, size in (("ns", 1), ("µs", 1_000), ("ms", 1_000_000)):
            if u < size * 1000:
                text = _fraction(u, size) + unit
                break
    else:
        secs, frac = divmod(u, 1_000_000_000)
        hours, secs = divmod(secs, 3600)
        minutes, secs = divmod(secs, 60)
        text = _fraction(secs * 1_000_000_000 + frac, 1_000_000_000) + "s"
        if hours or minutes:
            text = f"{minutes}m" + text
        if hours:
            text = f"{hours}h" + text
    return "-" + text if neg else text


def _fraction(value: int, unit: int) -> str:
    whole, rest = divmod(value, unit)
    if not rest:
        return str(whole)
    digits = len(str(unit)) - 1
    return f"{whole}." + f"{rest:0{digits}d}".rstrip("0")


def is_space(c: str) -> bool:
    """unicode.IsSpace."""
    if ord(c) < 0x100:
        return c in "\t\n\v\f\r \x85\xa0"
    return c.isspace()


def is_letter(c: str) -> bool:
    """unicode.IsLetter."""
    return unicodedata.category(c).startswith("L")


def is_digit(c: str) -> bool:
    """unicode.IsDigit (category Nd)."""
    return unicodedata.category(c) == "Nd"


_UNITS_NS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": 1_000_000,
    "s": 10**9,
    "m": 60 * 10**9,
    "h": 3600 * 10**9,
}


def parse_go_duration(s: str) -> int:
    """time.ParseDuration in nanoseconds: `30s`, `1m30s`, `1.5h`, `-2ms`; Go's error texts."""
    orig = s
    invalid = ValueError(f"time: invalid duration {go_quote(orig)}")
    neg = False
    if s and s[0] in "+-":
        neg = s[0] == "-"
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        raise invalid
    total = 0.0
    while s:
        if not (s[0] == "." or s[0].isascii() and s[0].isdigit()):
            raise invalid
        i = 0
        while i < len(s) and s[i].isascii() and s[i].isdigit():
            i += 1
        whole, s = s[:i], s[i:]
        frac = ""
        if s.startswith("."):
            s = s[1:]
            j = 0
            while j < len(s) and s[j].isascii() and s[j].isdigit():
                j += 1
            frac, s = s[:j], s[j:]
            if not whole and not frac:
                raise invalid
        elif not whole:
            raise invalid
        k = 0
        while k < len(s) and s[k] != "." and not (s[k].isascii() and s[k].isdigit()):
            k += 1
        if k == 0:
            raise ValueError(f"time: missing unit in duration {go_quote(orig)}")
        unit, s = s[:k], s[k:]
        if unit not in _UNITS_NS:
            raise ValueError(f"time: unknown unit {go_quote(unit)} in duration {go_quote(orig)}")
        total += float(f"{whole or '0'}.{frac or '0'}") * _UNITS_NS[unit]
    value = round(total)
    return -value if neg else value


def levenshtein(a: str, b: str) -> int:
    """Edit distance (agext/levenshtein with default costs), for buildkit's "did you mean" hints."""
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def suggest(value: str, options: list[str], case_sensitive: bool) -> str | None:
    """buildkit suggest.Search: the closest option within distance 2, in the value's case."""
    v = value if case_sensitive else value.lower()
    match, best = None, 3
    for opt in sorted(options):
        o = opt if case_sensitive else opt.lower()
        if v == o:
            return None
        dist = levenshtein(v, o)
        if dist < best:
            best = dist
            if case_sensitive:
                match = o
            elif value == value.lower():
                match = o.lower()
            elif value == value.upper():
                match = o.upper()
            else:
                match = o
    return match
