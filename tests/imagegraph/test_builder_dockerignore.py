"""`.dockerignore` patterns and Go's filepath.Match, against moby/patternmatcher's own test tables."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from imagegraph.builder.dockerignore import (
    PatternError,
    PatternMatcher,
    go_clean,
    go_match,
    matches,
    read_ignore_file,
)

GO_TESTS = (Path(__file__).parent / "data" / "patternmatcher_test.go.txt").read_text()
_ROW = re.compile(r'^\s*\{"((?:[^"\\]|\\.)*)", "((?:[^"\\]|\\.)*)", (true|false)(?:, ([\w.]+))?\},', re.M)
_MULTI = re.compile(r'^\s*\{\[\]string\{(.*?)\}, "((?:[^"\\]|\\.)*)", (true|false)\},', re.M)


def _go(s: str) -> str:
    return s.encode().decode("unicode_escape").encode("latin-1").decode()


def _block(start: str) -> str:
    i = GO_TESTS.index(start)
    return GO_TESTS[i : GO_TESTS.index("\n}", i)]


def _rows(start: str) -> list[tuple[str, str, bool, str | None]]:
    return [
        (_go(a), _go(b), c == "true", None if d in ("", "nil") else d) for a, b, c, d in _ROW.findall(_block(start))
    ]


MATCHES = _rows("tests := []matchesTestCase{") + [("a\\*b", "a*b", True, None)]
MULTI = [
    ([_go(p) for p in re.findall(r'"((?:[^"\\]|\\.)*)"', pats)], _go(text), ok == "true")
    for pats, text, ok in _MULTI.findall(_block("multiPatternTests := []multiPatternTestCase{"))
]
GO_MATCH = _rows("var matchTests = []matchTest{")


def test_tables_were_read() -> None:
    assert len(MATCHES) > 60 and len(MULTI) == 4 and len(GO_MATCH) > 50


@pytest.mark.parametrize(("pattern", "text", "ok", "_err"), MATCHES)
def test_matches_or_parent_matches(pattern: str, text: str, ok: bool, _err: str | None) -> None:
    assert PatternMatcher([pattern]).matches_or_parent_matches(text) is ok


@pytest.mark.parametrize(("pattern", "text", "ok", "_err"), MATCHES)
def test_matches_using_parent_results(pattern: str, text: str, ok: bool, _err: str | None) -> None:
    pm = PatternMatcher([pattern])
    parent = text.rpartition("/")[0]
    info: list[bool] | None = None
    if parent:
        dirs = parent.split("/")
        for i in range(len(dirs)):
            _, info = pm.matches_using_parent_results("/".join(dirs[: i + 1]), info)
    assert pm.matches_using_parent_results(text, info)[0] is ok
    assert pm.matches_using_parent_results(text, None)[0] is ok


@pytest.mark.parametrize(("patterns", "text", "ok"), MULTI)
def test_multi_pattern(patterns: list[str], text: str, ok: bool) -> None:
    assert PatternMatcher(patterns).matches_or_parent_matches(text) is ok


@pytest.mark.parametrize(("pattern", "text", "ok", "err"), GO_MATCH)
def test_filepath_match_table(pattern: str, text: str, ok: bool, err: str | None) -> None:
    """The table moby took from Go's filepath Match tests, through patternmatcher.Matches."""
    if err:
        with pytest.raises(PatternError):
            matches(text, [pattern])
        with pytest.raises(PatternError):
            go_match(pattern, text)
    else:
        assert matches(text, [pattern]) is ok


def test_go_match_itself() -> None:
    assert go_match("*.txt", "a.txt") and not go_match("*.txt", "d/a.txt")
    assert go_match("d?r/[a-c]*", "dir/b1") and not go_match("d?r/[a-c]*", "dir/d1")
    assert go_match("a*b*c*d*e*/f", "axbxcxdxe/f")
    assert not go_match("a*b*c*d*e*/f", "axbxcxdxe/xxx/f")
    assert go_match("a\\*b", "a*b")


@pytest.mark.parametrize(
    ("pattern", "kind", "regexp"),
    [
        ("*", "regexp", "^[^/]*$"),
        ("**", "suffix", None),
        ("**/**", "regexp", "^(.*/)?.*$"),
        ("dir/**", "prefix", None),
        ("**/dir2/**", "regexp", "^(.*/)?dir2/.*$"),
        ("**file", "suffix", None),
        ("**/**/*.txt", "regexp", "^(.*/)?(.*/)?[^/]*\\.txt$"),
        ("abc.def", "exact", None),
        ("a.|)$(}+{bc", "exact", None),
    ],
)
def test_compile(pattern: str, kind: str, regexp: str | None) -> None:
    p = PatternMatcher([pattern]).patterns[0]
    p.compile()
    assert p.kind == kind
    assert (p.regexp.pattern if p.regexp else None) == regexp


def test_exclusion_patterns() -> None:
    pm = PatternMatcher(["docs", "!docs/README.md", "  ", "*.log", "!keep.log"])
    assert pm.exclusions and len(pm.patterns) == 4
    assert pm.matches_or_parent_matches("docs/guide.md")
    assert not pm.matches_or_parent_matches("docs/README.md")
    assert pm.matches_or_parent_matches("x.log") and not pm.matches_or_parent_matches("keep.log")
    with pytest.raises(PatternError, match='illegal exclusion pattern: "!"'):
        PatternMatcher(["!"])
    with pytest.raises(PatternError):
        PatternMatcher(["a["])


def test_read_ignore_file() -> None:
    data = "\ufeff# comment\n/abs/path\n  spaced  \n!/kept/../kept\n\n./x/\n".encode()
    assert read_ignore_file(data) == ["abs/path", "spaced", "!kept", "x"]


@pytest.mark.parametrize(
    ("raw", "clean"),
    [("", "."), ("a//b/./c/..", "a/b"), ("/../x", "/x"), ("../../a", "../../a"), ("//a/", "/a"), ("a/..", ".")],
)
def test_go_clean(raw: str, clean: str) -> None:
    assert go_clean(raw) == clean
