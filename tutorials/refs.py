"""`python -m tutorials.refs NAME...`: how Docker reads image names, as a table (lab 08).

Why a helper and not an `imagegraph` command: Docker has no command that prints a
normalised reference either; `docker pull` normalises silently. This shows what it does,
with imagegraph's port of distribution/reference, so a student can try any name.

For each NAME: the normalised reference `pull` asks the registry for (ParseNormalizedNamed,
then TagNameOnly's `:latest`), the registry (domain) and the repository path in it. Names
Docker refuses are listed under the table with Docker's error text, and the exit status is
1. Digests are shortened to 12 hex digits, as `docker images` shortens IDs, so the table
fits a page.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass

from imagegraph.formatting import table
from imagegraph.reference import InvalidReference, Reference, parse_normalized_named, tag_name_only

HEADERS = ("INPUT", "NORMALISED", "REGISTRY", "REPOSITORY")


@dataclass(frozen=True)
class Row:
    """One name as Docker reads it; `error` is set (and the rest empty) when it is refused."""

    input: str
    normalised: str = ""
    registry: str = ""
    repository: str = ""
    error: str = ""


def short_digest(digest: str) -> str:
    algorithm, _, hex_ = digest.partition(":")
    return f"{algorithm}:{hex_[:12]}…" if len(hex_) > 12 else digest


def explain(name: str) -> Row:
    """How `docker pull NAME` reads NAME."""
    try:
        ref = parse_normalized_named(name)
    except InvalidReference as exc:
        return Row(name, error=str(exc))
    full = tag_name_only(ref)
    shown = Reference(full.name, full.tag, full.digest and short_digest(full.digest))
    return Row(name, str(shown), full.domain, full.path)


def shorten(name: str) -> str:
    """`name` with a long digest after `@` shortened, for display."""
    before, at, digest = name.rpartition("@")
    return before + at + short_digest(digest) if at and ":" in digest else name


def render(rows: Sequence[Row]) -> str:
    """The table of accepted names, then one line per refused one."""
    good = [(shorten(r.input), r.normalised, r.registry, r.repository) for r in rows if not r.error]
    lines = [table(good, HEADERS)] if good else []
    lines += [f"{r.input!r} is refused: {r.error}" for r in rows if r.error]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    names = list(sys.argv[1:] if argv is None else argv)
    if not names or names[0] in ("-h", "--help"):
        print(
            __doc__.split("\n\n")[0] if names else "usage: python -m tutorials.refs NAME...",
            file=sys.stdout if names else sys.stderr,
        )
        return 0 if names else 2
    rows = [explain(n) for n in names]
    print(render(rows))
    return 1 if any(r.error for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
