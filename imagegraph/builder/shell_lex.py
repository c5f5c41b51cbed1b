"""Variable expansion and word splitting in Dockerfile arguments (buildkit frontend/dockerfile/shell/lex.go).

Quotes and the escape token are processed as a POSIX shell does, `$VAR` and `${VAR}` are
replaced from the build's environment (ENV, then ARG), and the modifiers `${VAR:-default}`,
`${VAR-default}`, `${VAR:+alt}`, `${VAR+alt}`, `${VAR:?msg}`, `${VAR?msg}`, `${VAR#pat}`,
`${VAR%pat}` (and their greedy `##`, `%%` forms) and `${VAR/pat/repl}` work as buildkit's
lexer makes them work. Error texts are buildkit's.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping

from .gotext import go_quote, is_digit, is_letter, is_space


class ShellError(ValueError):
    """A word that cannot be expanded; str() is buildkit's text."""


def envs_from_list(env: Iterable[str]) -> dict[str, str]:
    """shell.EnvsFromSlice: `K=V` strings to a mapping, the last `K` winning."""
    out: dict[str, str] = {}
    for e in env:
        k, _, v = e.partition("=")
        out[k] = v
    return out


class _Scanner:
    """Go's text/scanner as the lexer uses it: Peek and Next over the characters, None at the end."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def peek(self) -> str | None:
        return self.text[self.pos] if self.pos < len(self.text) else None

    def next(self) -> str | None:
        if self.pos >= len(self.text):
            return None
        c = self.text[self.pos]
        self.pos += 1
        return c


class _Words:
    """The words of a ProcessWords call: unquoted spaces split, quoted ones do not."""

    def __init__(self) -> None:
        self.buf: list[str] = []
        self.words: list[str] = []
        self.in_word = False

    def add_char(self, ch: str) -> None:
        if is_space(ch) and self.in_word:
            if self.buf:
                self.words.append("".join(self.buf))
                self.buf = []
                self.in_word = False
        elif not is_space(ch):
            self.add_raw_char(ch)

    def add_raw_char(self, ch: str) -> None:
        self.buf.append(ch)
        self.in_word = True

    def add_string(self, s: str) -> None:
        for ch in s:
            self.add_char(ch)

    def add_raw_string(self, s: str) -> None:
        self.buf.append(s)
        self.in_word = True

    def get_words(self) -> list[str]:
        if self.buf:
            self.words.append("".join(self.buf))
            self.buf = []
            self.in_word = False
        return self.words


_SPECIAL_PARAMS = "@*#?-$!0"
#: `${a:-${b:-…}}` nests by recursion (as buildkit's lexer does); a hostile Dockerfile is not
#: allowed to nest it deeper than this.
MAX_NESTING = 100


class Lex:
    """shell.Lex: one escape token (`\\` or `` ` ``) and the switches buildkit's callers set."""

    def __init__(
        self,
        escape_token: str = "\\",
        *,
        raw_quotes: bool = False,
        raw_escapes: bool = False,
        skip_process_quotes: bool = False,
        skip_unset_env: bool = False,
    ) -> None:
        self.escape_token = escape_token
        self.raw_quotes = raw_quotes
        self.raw_escapes = raw_escapes
        self.skip_process_quotes = skip_process_quotes
        self.skip_unset_env = skip_unset_env

    def process_word(self, word: str, env: Mapping[str, str]) -> str:
        """The word with its quotes processed and its variables replaced (spaces kept)."""
        return _ShellWord(self, env, word).process()[0]

    def process_word_with_matches(self, word: str, env: Mapping[str, str]) -> tuple[str, set[str], set[str]]:
        """As process_word, plus the names it found in `env` and those it did not."""
        sw = _ShellWord(self, env, word)
        result = sw.process()[0]
        return result, sw.matches, sw.nonmatches

    def process_words(self, word: str, env: Mapping[str, str]) -> list[str]:
        """The word expanded, then split at unquoted spaces."""
        return _ShellWord(self, env, word).process()[1]


_SHOWN = 100


def _shortened(word: str) -> str:
    """A word as an error quotes it: a hostile 15 kB one would drown the line it is in."""
    if len(word) <= _SHOWN + 20:
        return word
    return f"{word[:_SHOWN]}… ({len(word)} characters)"


class _ShellWord:
    def __init__(self, lex: Lex, env: Mapping[str, str], source: str) -> None:
        self.lex = lex
        self.env = env
        self.source = source
        self.scanner = _Scanner(source)
        self.raw_escapes = lex.raw_escapes
        self.matches: set[str] = set()
        self.nonmatches: set[str] = set()
        self.depth = 0

    def process(self) -> tuple[str, list[str]]:
        try:
            return self.process_stop_on(None, self.raw_escapes)
        except ShellError as exc:
            raise ShellError(f"failed to process {go_quote(_shortened(self.source))}: {exc}") from None

    def process_stop_on(self, stop: str | None, raw_escapes: bool) -> tuple[str, list[str]]:
        """Up to `stop` (consumed) or the end: (the expanded text, its words)."""
        self.depth += 1
        try:
            if self.depth > MAX_NESTING:
                raise ShellError("syntax error: substitutions nested too deep")
            return self._process_stop_on(stop, raw_escapes)
        finally:
            self.depth -= 1

    def _process_stop_on(self, stop: str | None, raw_escapes: bool) -> tuple[str, list[str]]:
        result: list[str] = []
        words = _Words()
        specials: dict[str, Callable[[], str]] = {"$": self.process_dollar, "<": self.process_possible_heredoc}
        if not self.lex.skip_process_quotes:
            specials["'"] = self.process_single_quote
            specials['"'] = self.process_double_quote
        saved = self.raw_escapes
        self.raw_escapes = raw_escapes
        try:
            sc = self.scanner
            while sc.peek() is not None:
                ch = sc.peek()
                assert ch is not None
                if stop is not None and ch == stop:
                    sc.next()
                    return "".join(result), words.get_words()
                fn = specials.get(ch)
                if fn is not None:
                    tmp = fn()
                    result.append(tmp)
                    if ch == "$":
                        words.add_string(tmp)
                    else:
                        words.add_raw_string(tmp)
                    continue
                ch = sc.next()
                assert ch is not None
                if ch == self.lex.escape_token:
                    if self.raw_escapes:
                        words.add_raw_char(ch)
                        result.append(ch)
                    nxt = sc.next()
                    if nxt is None:
                        break
                    ch = nxt
                    words.add_raw_char(ch)
                else:
                    words.add_char(ch)
                result.append(ch)
            if stop is not None:
                raise ShellError(f"unexpected end of statement while looking for matching {stop}")
            return "".join(result), words.get_words()
        finally:
            self.raw_escapes = saved

    def process_single_quote(self) -> str:
        sc = self.scanner
        out: list[str] = []
        ch = sc.next()
        if self.lex.raw_quotes and ch is not None:
            out.append(ch)
        while True:
            ch = sc.next()
            if ch is None:
                raise ShellError("unexpected end of statement while looking for matching single-quote")
            if ch == "'":
                if self.lex.raw_quotes:
                    out.append(ch)
                return "".join(out)
            out.append(ch)

    def process_double_quote(self) -> str:
        sc = self.scanner
        out: list[str] = []
        ch = sc.next()
        if self.lex.raw_quotes and ch is not None:
            out.append(ch)
        while True:
            peek = sc.peek()
            if peek is None:
                raise ShellError("unexpected end of statement while looking for matching double-quote")
            if peek == '"':
                sc.next()
                if self.lex.raw_quotes:
                    out.append(peek)
                return "".join(out)
            if peek == "$":
                out.append(self.process_dollar())
                continue
            ch = sc.next()
            assert ch is not None
            if ch == self.lex.escape_token:
                if self.raw_escapes:
                    out.append(ch)
                nxt = sc.peek()
                if nxt is None:
                    continue
                if nxt in ('"', "$", self.lex.escape_token):
                    ch = sc.next()
                    assert ch is not None
            out.append(ch)

    def process_dollar(self) -> str:
        sc = self.scanner
        sc.next()
        if sc.peek() != "{":
            name = self.process_name()
            if not name:
                return "$"
            value, found = self.get_env(name)
            if not found and self.lex.skip_unset_env:
                return "$" + name
            return value
        sc.next()
        peek = sc.peek()
        if peek is None:
            raise ShellError("syntax error: missing '}'")
        if peek in "{}:":
            raise ShellError("syntax error: bad substitution")
        name = self.process_name()
        ch = sc.next()
        if ch == "}":
            value, found = self.get_env(name)
            if not found and self.lex.skip_unset_env:
                return "${" + name + "}"
            return value
        if ch == "/":
            return self._replace(name)
        chs = ch if ch is not None else "\ufffd"
        null_is_unset = False
        if ch == ":":
            null_is_unset = True
            ch = sc.next()
            chs += ch if ch is not None else "\ufffd"
        elif ch is None or ch not in "+-?#%":
            raise ShellError(f"unsupported modifier ({chs}) in substitution")
        return self._modifier(name, ch, chs, null_is_unset)

    def _modifier(self, name: str, ch: str | None, chs: str, null_is_unset: bool) -> str:
        """`${name<chs>word}`: the word is read (to the `}`) before the modifier is judged."""
        raw = ch in ("#", "%")
        if null_is_unset and raw:
            raise ShellError(f"unsupported modifier ({chs}) in substitution")
        try:
            word, _ = self.process_stop_on("}", raw)
        except ShellError:
            if self.scanner.peek() is None:
                raise ShellError("syntax error: missing '}'") from None
            raise
        value, is_set = self.get_env(name)
        if self.lex.skip_unset_env and not is_set:
            return "${" + name + chs + word + "}"
        empty = null_is_unset and value == ""
        if ch == "-":
            return word if not is_set or empty else value
        if ch == "+":
            return "" if not is_set or empty else word
        if ch == "?":
            if not is_set:
                raise ShellError(f"{name}: {word or 'is not allowed to be unset'}")
            if empty:
                raise ShellError(f"{name}: {word or 'is not allowed to be empty'}")
            return value
        if ch not in ("#", "%"):
            raise ShellError(f"unsupported modifier ({chs}) in substitution")
        greedy = bool(word) and word[0] == ch
        if greedy:
            word = word[1:]
        if ch == "%":
            return _trim_suffix(word, value, greedy)
        return _trim_prefix(word, value, greedy)

    def _replace(self, name: str) -> str:
        sc = self.scanner
        replace_all = sc.peek() == "/"
        if replace_all:
            sc.next()
        try:
            pattern, _ = self.process_stop_on("/", True)
        except ShellError:
            if sc.peek() is None:
                raise ShellError("syntax error: missing '/' in ${}") from None
            raise
        try:
            replacement, _ = self.process_stop_on("}", True)
        except ShellError:
            if sc.peek() is None:
                raise ShellError("syntax error: missing '}'") from None
            raise
        value, is_set = self.get_env(name)
        if self.lex.skip_unset_env and not is_set:
            return "${" + name + "/" + pattern + "/" + replacement + "}"
        rx = _pattern_regex(pattern, greedy=True, anchored=False)
        if replace_all:
            return rx.sub(lambda _m: replacement, value)
        return rx.sub(lambda _m: replacement, value, count=1)

    def process_name(self) -> str:
        """A name (letters, digits, `_`); digits alone or one special parameter stop it."""
        sc = self.scanner
        name: list[str] = []
        while sc.peek() is not None:
            ch = sc.peek()
            assert ch is not None
            if not name and is_digit(ch):
                while sc.peek() is not None and is_digit(sc.peek() or ""):
                    name.append(sc.next() or "")
                return "".join(name)
            if not name and ch in _SPECIAL_PARAMS:
                return sc.next() or ""
            if not is_letter(ch) and not is_digit(ch) and ch != "_":
                break
            name.append(sc.next() or "")
        return "".join(name)

    def process_possible_heredoc(self) -> str:
        sc = self.scanner
        sc.next()
        if sc.peek() != "<":
            return "<"
        sc.next()
        space: list[str] = []
        while sc.peek() in ("\t", "\r", " "):
            space.append(sc.next() or "")
        return "<<" + "".join(space)

    def get_env(self, name: str) -> tuple[str, bool]:
        if name in self.env:
            self.matches.add(name)
            return self.env[name], True
        self.nonmatches.add(name)
        return "", False


def _pattern_regex(pattern: str, greedy: bool, anchored: bool) -> re.Pattern[str]:
    """convertShellPatternToRegex: `?` one character, `*` the shortest (or longest) run."""
    out = ["^"] if anchored else []
    star = ".*" if greedy else ".*?"
    i = 0
    while i < len(pattern):
        tok = pattern[i]
        i += 1
        if tok == "*":
            out.append(star)
            continue
        if tok == "?":
            out.append(".")
            continue
        if tok == "\\":
            nxt = pattern[i] if i < len(pattern) else None
            if nxt in ("}", "/"):
                continue
            out.append("\\")
            tok = nxt if nxt is not None else ""
            i += 1
            if tok not in ("*", "?", "\\"):
                raise ShellError(f"invalid pattern ({pattern}) in substitution: invalid escape '\\{tok}'")
        elif tok in "[]{}.+()|^$":
            out.append("\\")
        out.append(tok)
    return re.compile("".join(out), re.DOTALL)


def _trim_prefix(word: str, value: str, greedy: bool) -> str:
    m = _pattern_regex(word, greedy, anchored=True).search(value)
    return value[m.end() :] if m else value


def _reverse_pattern(pattern: str) -> str:
    """Reverse a pattern, keeping each escape before the character it escapes."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern[i] == "\\" and i != len(pattern) - 1:
            out.append("\\" + pattern[i + 1])
            i += 2
        else:
            out.append(pattern[i])
            i += 1
    return "".join(reversed(out))


def _trim_suffix(pattern: str, word: str, greedy: bool) -> str:
    return _trim_prefix(_reverse_pattern(pattern), word[::-1], greedy)[::-1]


__all__ = ["Lex", "ShellError", "envs_from_list"]
