"""Make two outputs comparable: what changes from run to run is replaced by a placeholder.

Both the expected text in the lab and the actual output go through the same function, so a
lab can show a real-looking ID or time and still match every later run.
"""

from __future__ import annotations

import re

# Docker's HumanDuration: "Less than a second", "About a minute", "3 hours"
_HUMAN_DURATION = (
    r"Less than a second|About an? (?:minute|hour)|\d+ (?:seconds?|minutes?|hours?|days?|weeks?|months?|years?)"
)

# Order matters: longer, more specific patterns first.
_RULES: list[tuple[re.Pattern[str], str]] = [
    # a local registry's port (lab 08 chooses a free one): 127.0.0.1:41234 -> 127.0.0.1:<PORT>
    (re.compile(r"\b(127\.0\.0\.1|localhost):\d{2,5}\b"), r"\1:<PORT>"),
    # the manifest size `push` prints ("1.0: digest: sha256:… size: 731")
    (re.compile(r"(\bdigest: sha256:[0-9a-f]{64} size: )\d+\b"), r"\1<SIZE>"),
    (re.compile(r"\bsha256:[0-9a-f]{64}\b"), "sha256:<ID>"),
    (re.compile(r"\bsha256:[0-9a-f]{12}\b"), "sha256:<ID>"),
    (re.compile(r"\b[0-9a-f]{64}\b"), "<ID>"),
    (re.compile(r"\b[0-9a-f]{12}\b"), "<ID>"),
    # RFC 3339 timestamps, with fractions and zone: 2024-05-01T10:11:12.123456789Z / +02:00
    (re.compile(r"\b\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?(?: [A-Z]{3,4})?"), "<TIME>"),
    # Docker's HumanDuration: "Less than a second ago", "About a minute ago", "3 hours ago"
    (
        re.compile(rf"\b(?:{_HUMAN_DURATION}) ago\b"),
        "<WHEN>",
    ),
    (
        re.compile(rf"\bUp (?:{_HUMAN_DURATION})\b"),
        "Up <WHEN>",
    ),
    # ls -l dates: "Nov 27 17:13" / "Nov 27  2024"
    (re.compile(r"\b(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ \d]\d (?:\d\d:\d\d|\s?\d{4})\b"), "<DATE>"),
    (re.compile(r"\b\d\d:\d\d:\d\d(?:\.\d+)?\b"), "<TIME>"),
    # durations in pull/push progress: "in 0.12s", "3.1ms"
    (re.compile(r"\b\d+(?:\.\d+)?(?:ms|µs|s)\b"), "<DURATION>"),
]
_SPACES = re.compile(r" {2,}")


def normalize(text: str, scratch: str | None = None) -> str:
    """`text` with IDs, times, dates and the scratch folder replaced by placeholders.

    Sizes are kept: a layer's size follows from its files, so a size on a page that is not
    what the same files give is a mistake on the page (lab 07 once said 15B for 20 bytes).

    No-break spaces and tabs count as spaces, and runs of two or more spaces count as one column
    gap, so a table whose columns widen because a size or a time has a different width still matches.
    """
    if scratch:
        text = text.replace(scratch.rstrip("/"), "~")
    # tree(1) draws "│\u00a0\u00a0 ": no-break spaces that a copy of its output (the seed's) has as spaces
    text = text.replace("\u00a0", " ").replace("\t", "  ")
    for pattern, placeholder in _RULES:
        text = pattern.sub(placeholder, text)
    lines = [_SPACES.sub("  ", line.rstrip()) for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines) + ("\n" if lines else "")
