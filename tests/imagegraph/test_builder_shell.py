"""The shell lexer against buildkit's own test vectors (envVarTest, wordsTest) and its unit cases."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagegraph.builder.gotext import go_duration, go_quote, go_quote_list
from imagegraph.builder.shell_lex import Lex, ShellError, _pattern_regex, _reverse_pattern, envs_from_list

DATA = Path(__file__).parent / "data" / "buildkit"


def _env_var_cases() -> list[tuple[int, str, str]]:
    cases = []
    for n, line in enumerate((DATA / "envVarTest").read_text().splitlines(), 1):
        if line.startswith("#") or not line.strip():
            continue
        platform, source, expected = (part.strip() for part in line.split("|"))
        if platform in ("A", "U"):
            cases.append((n, source, expected))
    return cases


@pytest.mark.parametrize(("line", "source", "expected"), _env_var_cases())
def test_env_var_vectors(line: int, source: str, expected: str) -> None:
    envs = envs_from_list(["PWD=/home", "SHELL=bash", "KOREAN=한국어", "NULL="])
    lex = Lex("\\")
    if expected == "error":
        with pytest.raises(ShellError):
            lex.process_word(source, envs)
    else:
        assert lex.process_word(source, envs) == expected, f"envVarTest line {line}"


def _words_cases() -> list[tuple[int, str, list[str], list[str]]]:
    cases = []
    envs: list[str] = []
    for n, line in enumerate((DATA / "wordsTest").read_text().splitlines(), 1):
        if line.startswith("#"):
            continue
        if line.startswith("ENV "):
            envs.append(line[3:].lstrip(" "))
            continue
        test, expected = line.split("|")
        cases.append((n, test.strip(), expected.lstrip(" ").split(","), list(envs)))
    return cases


@pytest.mark.parametrize(("line", "source", "expected", "envs"), _words_cases())
def test_words_vectors(line: int, source: str, expected: list[str], envs: list[str]) -> None:
    try:
        result = Lex("\\").process_words(source, envs_from_list(envs))
    except ShellError:
        result = ["error"]
    assert result == expected, f"wordsTest line {line}"


def test_mandatory_vars() -> None:
    lex = Lex()
    no_empty, no_unset = "${VAR:?message here$ARG}", "${VAR?message here$ARG}"
    assert lex.process_word(no_empty, {"VAR": "plain", "ARG": "x"}) == "plain"
    for env in ({"VAR": "", "ARG": "x"}, {"ARG": "x"}):
        with pytest.raises(ShellError, match="message herex"):
            lex.process_word(no_empty, env)
    assert lex.process_word(no_unset, {"VAR": "", "ARG": "x"}) == ""
    with pytest.raises(ShellError, match="message herex"):
        lex.process_word(no_unset, {"ARG": "x"})


def test_error_text_names_the_word() -> None:
    with pytest.raises(ShellError) as exc:
        Lex().process_word("he${PWD:-x", {})
    assert str(exc.value) == "failed to process \"he${PWD:-x\": syntax error: missing '}'"


@pytest.mark.parametrize(
    ("word", "env", "expected"),
    [
        ("${A:-x}", {}, "x"),
        ("${A:-x}", {"A": ""}, "x"),
        ("${A-x}", {"A": ""}, ""),
        ("${A:+y}", {"A": "1"}, "y"),
        ("${A:+y}", {"A": ""}, ""),
        ("${A+y}", {"A": ""}, "y"),
        ("${F#*.}", {"F": "a.b.c"}, "b.c"),
        ("${F##*.}", {"F": "a.b.c"}, "c"),
        ("${F%.*}", {"F": "a.b.c"}, "a.b"),
        ("${F%%.*}", {"F": "a.b.c"}, "a"),
        ("${F/b/X}", {"F": "abcb"}, "aXcb"),
        ("${F//b/X}", {"F": "abcb"}, "aXcX"),
    ],
)
def test_modifiers(word: str, env: dict[str, str], expected: str) -> None:
    assert Lex().process_word(word, env) == expected


def test_backtick_escape() -> None:
    assert Lex("`").process_word("a`$b", {"b": "x"}) == "a$b"
    assert Lex("`").process_word("C:\\dir", {}) == "C:\\dir"


def test_skip_unset_keeps_unknown_variables() -> None:
    lex = Lex(raw_quotes=True, skip_unset_env=True)
    assert lex.process_word("$A ${B} ${C:-x} '$D'", {"A": "1"}) == "1 ${B} ${C:-x} '$D'"


def test_matches() -> None:
    result, matched, unmatched = Lex().process_word_with_matches("x ${UNUSED} $USED", {"USED": "u"})
    assert (result, matched, unmatched) == ("x  u", {"USED"}, {"UNUSED"})


def test_pattern_helpers() -> None:
    assert _pattern_regex("*", True, True).pattern == "^.*"
    assert (
        _pattern_regex("(()[]{\\}^$.\\*\\?|\\\\", True, True).pattern == "^\\(\\(\\)\\[\\]\\{\\}\\^\\$\\.\\*\\?\\|\\\\"
    )
    for bad in ("\\", "\\x", "\\\\\\"):
        with pytest.raises(ShellError):
            _pattern_regex(bad, True, True)
    assert _reverse_pattern("a\\*c") == "c\\*a"
    assert _reverse_pattern("\\\\\\ab") == "b\\a\\\\"
    assert _reverse_pattern("ab\\") == "\\ba"


def test_go_text() -> None:
    assert go_quote('a"b\\c\n\x01é') == '"a\\"b\\\\c\\n\\x01é"'
    assert go_quote_list(["/bin/sh", "-c", "echo hi"]) == '["/bin/sh" "-c" "echo hi"]'
    assert [go_duration(n) for n in (0, 30_000_000_000, 90_000_000_000, 3_600_000_000_000, 1_500_000_000)] == [
        "0s",
        "30s",
        "1m30s",
        "1h0m0s",
        "1.5s",
    ]
    assert go_duration(500_000_000) == "500ms"
    assert go_duration(1500) == "1.5µs"


def test_nesting_is_bounded() -> None:
    word = "${a:-" * 5000 + "x" + "}" * 5000
    with pytest.raises(ShellError, match="nested too deep") as err:
        Lex().process_word(word, {})
    assert len(str(err.value)) < 200  # the hostile word is not quoted whole
    assert "(30001 characters)" in str(err.value)
    assert Lex().process_word("${a:-" * 50 + "x" + "}" * 50, {}) == "x"
