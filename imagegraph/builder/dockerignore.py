"""`.dockerignore` and the path patterns of a build (moby/patternmatcher, its ignorefile, Go's filepath).

Docker's rules, not gitignore's: a pattern matches a path relative to the context (`*` and
`?` never cross a `/`, `**` crosses any number of directories), a pattern that matches a
directory excludes everything below it, and a later `!pattern` takes a path back. Patterns
are cleaned as Go's filepath.Clean cleans them, and a leading `/` means nothing. `go_match`
is Go's filepath.Match, which COPY's wildcards use.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field


class PatternError(ValueError):
    """A pattern Go's filepath.Match refuses ("syntax error in pattern")."""


BAD_PATTERN = "syntax error in pattern"


def go_clean(path: str) -> str:
    """path/filepath.Clean: no `.`, no empty or `..` element that can go, one leading `/`."""
    if not path:
        return "."
    rooted = path.startswith("/")
    out: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if out and out[-1] != "..":
                out.pop()
            elif not rooted:
                out.append("..")
            continue
        out.append(part)
    text = "/".join(out)
    if rooted:
        return "/" + text
    return text or "."


def go_dir(path: str) -> str:
    """path/filepath.Dir: everything before the last `/`, cleaned."""
    return go_clean(path[: path.rfind("/") + 1])


# ---- Go's filepath.Match --------------------------------------------------------------------


def _scan_chunk(pattern: str) -> tuple[bool, str, str]:
    star = False
    while pattern.startswith("*"):
        pattern = pattern[1:]
        star = True
    in_range = False
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            if i + 1 < len(pattern):
                i += 1
        elif c == "[":
            in_range = True
        elif c == "]":
            in_range = False
        elif c == "*" and not in_range:
            break
        i += 1
    return star, pattern[:i], pattern[i:]


def _get_esc(chunk: str) -> tuple[str, str]:
    if not chunk or chunk[0] in "-]":
        raise PatternError(BAD_PATTERN)
    if chunk[0] == "\\":
        chunk = chunk[1:]
        if not chunk:
            raise PatternError(BAD_PATTERN)
    r, rest = chunk[0], chunk[1:]
    if not rest:
        raise PatternError(BAD_PATTERN)
    return r, rest


def _match_chunk(chunk: str, s: str) -> tuple[str, bool]:
    """(the rest of s, matched); the whole chunk is checked for syntax even after a mismatch."""
    failed = False
    while chunk:
        if not failed and not s:
            failed = True
        c = chunk[0]
        if c == "[":
            r = ""
            if not failed:
                r, s = s[0], s[1:]
            chunk = chunk[1:]
            negated = chunk.startswith("^")
            if negated:
                chunk = chunk[1:]
            matched = False
            nrange = 0
            while True:
                if chunk.startswith("]") and nrange > 0:
                    chunk = chunk[1:]
                    break
                lo, chunk = _get_esc(chunk)
                hi = lo
                if chunk[0] == "-":
                    hi, chunk = _get_esc(chunk[1:])
                if r and lo <= r <= hi:
                    matched = True
                nrange += 1
            if matched == negated:
                failed = True
        elif c == "?":
            if not failed:
                if s[0] == "/":
                    failed = True
                s = s[1:]
            chunk = chunk[1:]
        else:
            if c == "\\":
                chunk = chunk[1:]
                if not chunk:
                    raise PatternError(BAD_PATTERN)
            if not failed:
                if chunk[0] != s[0]:
                    failed = True
                s = s[1:]
            chunk = chunk[1:]
    if failed:
        return "", False
    return s, True


def go_match(pattern: str, name: str) -> bool:
    """path/filepath.Match on `/`-separated names; PatternError for a malformed pattern."""
    while pattern:
        star, chunk, pattern = _scan_chunk(pattern)
        if star and not chunk:
            return "/" not in name
        t, ok = _match_chunk(chunk, name)
        if ok and (not t or pattern):
            name = t
            continue
        if star:
            found = False
            i = 0
            while i < len(name) and name[i] != "/":
                t, ok = _match_chunk(chunk, name[i + 1 :])
                if ok and not (not pattern and t):
                    name = t
                    found = True
                    break
                i += 1
            if found:
                continue
        while pattern:
            _, chunk, pattern = _scan_chunk(pattern)
            _match_chunk(chunk, "")
        return False
    return not name


def contains_wildcards(name: str) -> bool:
    """moby containsWildcards: `*`, `?` or `[` not escaped by `\\`."""
    i = 0
    while i < len(name):
        if name[i] == "\\":
            i += 2
            continue
        if name[i] in "*?[":
            return True
        i += 1
    return False


# ---- patternmatcher ---------------------------------------------------------------------------

_ESCAPE = set(".+()|{}$")


@dataclass
class Pattern:
    cleaned: str
    exclusion: bool
    dirs: list[str] = field(default_factory=list)
    kind: str = ""  # exact, prefix, suffix or regexp, once compiled
    regexp: re.Pattern[str] | None = None

    def compile(self) -> None:
        """The pattern as patternmatcher compiles it: an exact, prefix or suffix test, or a regexp."""
        reg = ["^"]
        kind = "exact"
        p = self.cleaned
        pos, token = 0, 0
        while pos < len(p):
            ch = p[pos]
            pos += 1
            if ch == "*" and p.startswith("*", pos):
                pos += 1
                if p.startswith("/", pos):
                    pos += 1
                if pos >= len(p):
                    if kind == "exact":
                        kind = "prefix"
                    else:
                        reg.append(".*")
                        kind = "regexp"
                else:
                    reg.append("(.*/)?")
                    kind = "regexp"
                if token == 0:
                    kind = "suffix"
            elif ch == "*":
                reg.append("[^/]*")
                kind = "regexp"
            elif ch == "?":
                reg.append("[^/]")
                kind = "regexp"
            elif ch in _ESCAPE:
                reg.append("\\" + ch)
            elif ch == "\\":
                if pos < len(p):
                    reg.append("\\" + p[pos])
                    pos += 1
                    kind = "regexp"
                else:
                    reg.append("\\\\")
            elif ch in "[]":
                reg.append(ch)
                kind = "regexp"
            else:
                reg.append(ch)
            token += 1
        if kind == "regexp":
            reg.append("$")
            try:
                self.regexp = re.compile("".join(reg), re.DOTALL)
            except re.error:
                raise PatternError(BAD_PATTERN) from None
        self.kind = kind

    def match(self, path: str) -> bool:
        if not self.kind:
            self.compile()
        if self.kind == "exact":
            return path == self.cleaned
        if self.kind == "prefix":
            return path.startswith(self.cleaned[:-2])
        if self.kind == "suffix":
            suffix = self.cleaned[2:]
            if path.endswith(suffix):
                return True
            return suffix.startswith("/") and path == suffix[1:]
        assert self.regexp is not None
        return self.regexp.match(path) is not None


class PatternMatcher:
    """patternmatcher.PatternMatcher: patterns in order, the last one that matches decides."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns: list[Pattern] = []
        self.exclusions = False
        for raw in patterns:
            p = raw.strip()
            if not p:
                continue
            p = go_clean(p)
            exclusion = False
            if p.startswith("!"):
                if len(p) == 1:
                    raise PatternError('illegal exclusion pattern: "!"')
                exclusion = True
                p = p[1:]
                self.exclusions = True
            go_match(p, ".")  # syntax check, as moby does
            self.patterns.append(Pattern(cleaned=p, exclusion=exclusion, dirs=p.split("/")))

    def matches_or_parent_matches(self, file: str) -> bool:
        """Whether `file` (or a directory above it) is excluded."""
        matched = False
        parent = go_dir(file)
        parent_dirs = parent.split("/")
        for pat in self.patterns:
            if pat.exclusion != matched:
                continue
            hit = pat.match(file)
            if not hit and parent != ".":
                for i in range(len(parent_dirs)):
                    if pat.match("/".join(parent_dirs[: i + 1])):
                        hit = True
                        break
            if hit:
                matched = not pat.exclusion
        return matched

    def matches_using_parent_results(self, file: str, parent_matched: list[bool] | None) -> tuple[bool, list[bool]]:
        """MatchesUsingParentResults: what a directory walk asks, passing each directory's results down."""
        matched = False
        info = [False] * len(self.patterns)
        for i, pat in enumerate(self.patterns):
            hit = bool(parent_matched) and parent_matched[i] if parent_matched else False
            if not hit:
                if pat.exclusion != matched:
                    continue
                hit = pat.match(file)
                if not hit and not parent_matched:
                    parent = go_dir(file)
                    if parent != ".":
                        dirs = parent.split("/")
                        for j in range(len(dirs)):
                            if pat.match("/".join(dirs[: j + 1])):
                                hit = True
                                break
            info[i] = hit
            if hit:
                matched = not pat.exclusion
        return matched, info


def matches(file: str, patterns: Iterable[str]) -> bool:
    """patternmatcher.Matches (the old one-parent form TrimBuildFilesFromExcludes uses)."""
    pm = PatternMatcher(patterns)
    file = go_clean(file)
    if file == ".":
        return False
    matched = False
    parent = go_dir(file)
    parent_dirs = parent.split("/")
    for pat in pm.patterns:
        if pat.exclusion != matched:
            continue
        hit = pat.match(file)
        if not hit and parent != "." and len(pat.dirs) <= len(parent_dirs):
            hit = pat.match("/".join(parent_dirs[: len(pat.dirs)]))
        if hit:
            matched = not pat.exclusion
    return matched


def matches_or_parent_matches(file: str, patterns: Iterable[str]) -> bool:
    file = go_clean(file)
    if file == ".":
        return False
    return PatternMatcher(patterns).matches_or_parent_matches(file)


def read_ignore_file(data: bytes) -> list[str]:
    """ignorefile.ReadAll: one pattern a line; `#` comments; cleaned; a leading `/` dropped."""
    text = data.decode("utf-8", "surrogateescape").removeprefix("\ufeff")
    out = []
    for line in text.split("\n"):
        if line.startswith("#"):
            continue
        pattern = line.strip()
        if not pattern:
            continue
        invert = pattern.startswith("!")
        if invert:
            pattern = pattern[1:].strip()
        if pattern:
            pattern = go_clean(pattern)
            if len(pattern) > 1 and pattern.startswith("/"):
                pattern = pattern[1:]
        out.append("!" + pattern if invert else pattern)
    return out


__all__ = [
    "PatternMatcher",
    "PatternError",
    "go_match",
    "go_clean",
    "contains_wildcards",
    "matches",
    "matches_or_parent_matches",
    "read_ignore_file",
]
