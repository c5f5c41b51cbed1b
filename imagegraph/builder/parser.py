"""A Dockerfile to its syntax tree (buildkit frontend/dockerfile/parser: parser.go, line_parsers.go,
split_command.go, directives.go), the parser moby's classic builder uses.

The tree is buildkit's: a root whose children are the instructions, each a `Node` whose
`next` chain holds the arguments as the instruction's line parser shaped them (JSON arrays,
whitespace-split lists, `key value sep` triples for ENV and LABEL, a child node for ONBUILD's
trigger). `Node.dump()` prints it as buildkit's `Dump()`, so buildkit's own test files check
this module. Parser directives (`# escape=`, `# syntax=`, `# check=`), line continuations,
comments inside continued lines and heredocs (`<<EOF`, `<<-EOF`, quoted terminators) follow
the same rules. Every error carries the line it was found on.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from .gotext import go_quote, go_quote_list, is_space
from .shell_lex import Lex, ShellError

DEFAULT_ESCAPE = "\\"
MAX_LINE = 64 * 1024  # bufio.MaxScanTokenSize: Go's scanner refuses longer lines

_WHITESPACE = re.compile(r"[\t\v\f\r ]+")
_HEREDOC = re.compile(r"^([0-9]*)<<(-?)[\t\n\f\r ]*([^<]*)\Z")
_LEADING_TABS = re.compile(r"^\t+", re.MULTILINE)
_DIRECTIVE = re.compile(r"^([a-zA-Z][a-zA-Z0-9]*)[\t\n\f\r ]*=[\t\n\f\r ]*(.+?)[\t\n\f\r ]*\Z")
_VALID_DIRECTIVES = ("syntax", "escape", "check")
HEREDOC_INSTRUCTIONS = ("add", "copy", "run")


class ParseError(ValueError):
    """A Dockerfile that cannot be parsed; `line` is where (1-based), str() the message alone."""

    def __init__(self, message: str, line: int = 0) -> None:
        super().__init__(message)
        self.line = line


@dataclass
class Heredoc:
    name: str
    file_descriptor: int = 0
    expand: bool = True
    chomp: bool = False
    content: str = ""


@dataclass(eq=False)
class Node:
    """One instruction (or one argument in an instruction's `next` chain)."""

    value: str = ""
    next: Node | None = None
    children: list[Node] = field(default_factory=list)
    heredocs: list[Heredoc] = field(default_factory=list)
    attributes: dict[str, bool] = field(default_factory=dict)
    original: str = ""
    flags: list[str] = field(default_factory=list)
    start_line: int = 0
    end_line: int = 0

    def args(self) -> list[str]:
        """The values of the `next` chain."""
        out = []
        n = self.next
        while n is not None:
            out.append(n.value)
            n = n.next
        return out

    def dump(self) -> str:
        """buildkit's Node.Dump: the tree as s-expressions."""
        parts = [self.value.lower()]
        if self.flags:
            parts.append(" " + go_quote_list(self.flags))
        for child in self.children:
            parts.append("(" + child.dump() + ")\n")
        n = self.next
        while n is not None:
            parts.append(" " + (n.dump() if n.children else go_quote(n.value)))
            n = n.next
        return "".join(parts).strip()


@dataclass
class Result:
    ast: Node
    escape_token: str = DEFAULT_ESCAPE
    warnings: list[str] = field(default_factory=list)


class _Directives:
    """The escape token and the parser directives seen so far (only before the first other line)."""

    def __init__(self) -> None:
        self.escape_token = DEFAULT_ESCAPE
        self.continuation = _continuation_regex(DEFAULT_ESCAPE)
        self.done = False
        self.seen: set[str] = set()

    def set_escape_token(self, s: str) -> None:
        if s not in ("`", "\\"):
            raise ParseError(f"invalid escape token '{s}' does not match ` or \\")
        self.escape_token = s
        self.continuation = _continuation_regex(s)

    def possible_directive(self, line: str) -> bool:
        """DirectiveParser.ParseLine: `# name=value` at the very top; True if it was one."""
        if self.done:
            return False
        if not line.startswith("#"):
            self.done = True
            return False
        m = _DIRECTIVE.match(_lstrip(line[1:]))
        if not m or m.group(1).lower() not in _VALID_DIRECTIVES:
            self.done = True
            return False
        name = m.group(1).lower()
        if name in self.seen:
            raise ParseError(f"only one {name} parser directive can be used")
        self.seen.add(name)
        if name == "escape":
            self.set_escape_token(m.group(2))
        return True


def _continuation_regex(token: str) -> re.Pattern[str]:
    e = re.escape(token)
    return re.compile(rf"([^{e}]){e}[ \t]*\Z|^{e}[ \t]*\Z")


def _lstrip(s: str) -> str:
    i = 0
    while i < len(s) and is_space(s[i]):
        i += 1
    return s[i:]


def _strip(s: str) -> str:
    s = _lstrip(s)
    j = len(s)
    while j > 0 and is_space(s[j - 1]):
        j -= 1
    return s[:j]


def _trim_newline(s: str) -> str:
    return s.rstrip("\r\n")


def _is_comment(line: str) -> bool:
    return _lstrip(line).startswith("#")


def _trim_continuation(line: str, d: _Directives) -> tuple[str, bool]:
    """(the line without its continuation token, whether the instruction ends here)."""
    m = d.continuation.search(line)
    if m:
        return line[: m.start()] + (m.group(1) or ""), False
    return line, True


def _process_line(d: _Directives, token: str, strip_left: bool) -> tuple[str, bool]:
    """A physical line without its newline (and leading space); comments become empty."""
    token = _trim_newline(token)
    if strip_left:
        token = _lstrip(token)
    directive = d.possible_directive(token)
    return ("" if _is_comment(token) else token), directive


def _split_lines(text: str) -> list[str]:
    """bufio.Scanner with buildkit's scanLines: lines end at `\\n` only, and keep it."""
    out: list[str] = []
    start = 0
    while start < len(text):
        i = text.find("\n", start)
        end = len(text) if i < 0 else i + 1
        line = text[start:end]
        if len(line.encode("utf-8", "surrogateescape")) > MAX_LINE:
            raise ParseError(f"dockerfile line greater than max allowed size of {MAX_LINE - 1}", len(out) + 1)
        out.append(line)
        start = end
    return out


def parse(source: bytes | str) -> Result:
    """buildkit parser.Parse: the whole Dockerfile to a root Node with one child per instruction."""
    text = source.decode("utf-8", "surrogateescape") if isinstance(source, bytes) else source
    lines = _split_lines(text.removeprefix("\ufeff"))
    return _Parser(lines).run()


class _Parser:
    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.pos = 0  # next physical line to read
        self.d = _Directives()
        self.warnings: list[str] = []

    def next_line(self) -> str | None:
        if self.pos >= len(self.lines):
            return None
        line = self.lines[self.pos]
        self.pos += 1
        return line

    def run(self) -> Result:
        root = Node(start_line=-1)
        while (raw := self.next_line()) is not None:
            try:
                first, _ = _process_line(self.d, raw, True)
            except ParseError as exc:
                raise ParseError(str(exc), self.pos) from None
            start = self.pos
            line = self.logical_line(first)
            if line is None:
                continue
            try:
                child = node_from_line(line, self.d)
            except ParseError as exc:
                raise ParseError(str(exc), start) from None
            if _can_contain_heredoc(child) and "<<" in line:
                self.read_heredocs(child, line, start)
            child.start_line, child.end_line = start, self.pos
            if root.start_line < 0:
                root.start_line = start
            root.end_line = self.pos
            root.children.append(child)
        if root.start_line < 0:
            raise ParseError("file with no instructions", self.pos)
        return Result(root, self.d.escape_token, self.warnings)

    def logical_line(self, first: str) -> str | None:
        """The instruction that starts with `first`, its continued lines joined; None if blank."""
        part, end = _trim_continuation(first, self.d)
        if end and not part:
            return None
        buf = [part]
        empty_continuation = False
        while not end:
            raw = self.next_line()
            if raw is None:
                break
            try:
                text, _ = _process_line(self.d, raw, False)
            except ParseError as exc:
                raise ParseError(str(exc), self.pos) from None
            if _is_comment(raw):
                continue
            if not _lstrip(_trim_newline(text)):
                empty_continuation = True
                continue
            text, end = _trim_continuation(text, self.d)
            buf.append(text)
        line = "".join(buf)
        if empty_continuation:
            self.warnings.append("Empty continuation line found in: " + line)
        return line

    def read_heredocs(self, child: Node, line: str, start: int) -> None:
        try:
            docs = heredocs_from_line(line)
        except ParseError as exc:
            raise ParseError(str(exc), start) from None
        for doc in docs:
            terminated = False
            content = [doc.content]
            while (raw := self.next_line()) is not None:
                candidate = _trim_newline(raw)
                if doc.chomp:
                    candidate = candidate.lstrip("\t")
                if candidate == doc.name:
                    terminated = True
                    break
                content.append(raw)
            if not terminated:
                raise ParseError("unterminated heredoc", start)
            doc.content = "".join(content)
            child.heredocs.append(doc)


def _can_contain_heredoc(node: Node) -> bool:
    if node.value.lower() == "onbuild" and node.next is not None and node.next.children:
        node = node.next.children[0]
    return node.value.lower() in HEREDOC_INSTRUCTIONS and not node.attributes.get("json")


# ---- heredocs ------------------------------------------------------------------------------


def parse_heredoc(src: str) -> Heredoc | None:
    """ParseHeredoc: `<<EOF`, `<<-EOF`, `3<<"EOF"` to a Heredoc (None if `src` is not one)."""
    m = _HEREDOC.match(src)
    if not m or not m.group(3):
        return None
    rest = m.group(3)
    try:
        words = Lex("\\", skip_unset_env=True).process_words(rest, {})
        if len(words) != 1:
            return None
        raw = Lex("\\", raw_quotes=True, skip_unset_env=True).process_words(rest, {})
    except ShellError as exc:
        raise ParseError(str(exc)) from None
    if len(raw) != len(words):
        raise ParseError(f"internal lexing of heredoc produced inconsistent results: {rest}")

    def quotes(w: str) -> int:
        return w.count("'") + w.count('"')

    return Heredoc(
        name=words[0],
        expand=quotes(words[0]) == quotes(raw[0]),
        chomp=m.group(2) == "-",
        file_descriptor=int(m.group(1) or "0"),
    )


def heredocs_from_line(line: str) -> list[Heredoc]:
    try:
        words = Lex("\\", raw_quotes=True, raw_escapes=True, skip_unset_env=True).process_words(line, {})
    except ShellError:
        words = []
    return [doc for doc in map(parse_heredoc, words) if doc is not None]


def chomp_heredoc_content(src: str) -> str:
    """`<<-`: leading tabs off every line."""
    return _LEADING_TABS.sub("", src)


# ---- one instruction -----------------------------------------------------------------------


def node_from_line(line: str, d: _Directives, depth: int = 0) -> Node:
    """newNodeFromLine: split off the instruction and its `--flags`, then its line parser."""
    cmd, flags, args = split_command(line, d)
    parser = _LINE_PARSERS.get(cmd.lower())
    if parser is None:
        nxt: Node | None = Node()
        attrs: dict[str, bool] = {}
    elif parser is _parse_sub_command:
        # ONBUILD's trigger is parsed once; a trigger that is itself ONBUILD (refused later)
        # is not parsed further, so a hostile file cannot nest it without bound.
        nxt, attrs = _parse_sub_command(args, d) if depth == 0 else (Node(), {})
    else:
        nxt, attrs = parser(args, d)
    return Node(value=cmd, original=line, flags=flags, next=nxt, attributes=attrs)


def split_command(line: str, d: _Directives) -> tuple[str, list[str], str]:
    parts = _WHITESPACE.split(_strip(line), maxsplit=1)
    flags: list[str] = []
    args = ""
    if len(parts) == 2:
        args, flags = extract_builder_flags(parts[1], d)
    return parts[0], flags, _strip(args)


def extract_builder_flags(line: str, d: _Directives) -> tuple[str, list[str]]:
    """The leading `--name=value` words (quotes and escapes processed) and the rest of the line."""
    words: list[str] = []
    in_spaces, in_word, in_quote = 0, 1, 2
    phase = in_spaces
    buf: list[str] = []
    quote = ""
    blank_ok = False
    pos = 0
    n = len(line)
    while pos <= n:
        ch = line[pos] if pos < n else ""
        if phase == in_spaces:
            if pos == n:
                break
            if is_space(ch):
                pos += 1
                continue
            if ch != "-" or pos + 1 == n or line[pos + 1] != "-":
                return line[pos:], words
            phase = in_word
        if pos == n:
            word = "".join(buf)
            if word != "--" and (blank_ok or word):
                words.append(word)
            break
        if phase == in_word:
            if is_space(ch):
                word = "".join(buf)
                phase = in_spaces
                if word == "--":
                    return line[pos:], words
                if blank_ok or word:
                    words.append(word)
                buf, blank_ok = [], False
                pos += 1
                continue
            if ch in "'\"":
                quote, blank_ok, phase = ch, True, in_quote
                pos += 1
                continue
            if ch == d.escape_token:
                if pos + 1 == n:
                    pos += 1
                    continue
                pos += 1
                ch = line[pos]
            buf.append(ch)
            pos += 1
            continue
        if ch == quote:
            phase = in_word
            pos += 1
            continue
        if ch == d.escape_token:
            if pos + 1 == n:
                phase = in_word
                pos += 1
                continue
            pos += 1
            ch = line[pos]
        buf.append(ch)
        pos += 1
    return "", words


# ---- the line parsers ----------------------------------------------------------------------

_Parsed = tuple["Node | None", dict[str, bool]]


def parse_words(rest: str, d: _Directives) -> list[str]:
    """Words split at unquoted spaces; quotes and escapes are kept (expansion strips them later)."""
    words: list[str] = []
    in_spaces, in_word, in_quote = 0, 1, 2
    phase = in_spaces
    quote = ""
    blank_ok = False
    buf: list[str] = []
    pos = 0
    n = len(rest)
    while pos <= n:
        ch = rest[pos] if pos < n else ""
        if phase == in_spaces:
            if pos == n:
                break
            if is_space(ch):
                pos += 1
                continue
            phase = in_word
        if pos == n:
            if blank_ok or buf:
                words.append("".join(buf))
            break
        if phase == in_word:
            if is_space(ch):
                phase = in_spaces
                if blank_ok or buf:
                    words.append("".join(buf))
                buf, blank_ok = [], False
                pos += 1
                continue
            if ch in "'\"":
                quote, blank_ok, phase = ch, True, in_quote
            if ch == d.escape_token:
                if pos + 1 == n:
                    pos += 1
                    continue
                buf.append(ch)
                pos += 1
                ch = rest[pos]
            buf.append(ch)
            pos += 1
            continue
        if ch == quote:
            phase = in_word
        if ch == d.escape_token and quote != "'":
            if pos + 1 == n:
                phase = in_word
                pos += 1
                continue
            pos += 1
            buf.append(ch)
            ch = rest[pos]
        buf.append(ch)
        pos += 1
    return words


def _chain(values: list[str]) -> Node | None:
    head: Node | None = None
    for v in reversed(values):
        head = Node(value=v, next=head)
    return head


def _parse_sub_command(rest: str, d: _Directives) -> _Parsed:
    if not rest:
        return None, {}
    return Node(children=[node_from_line(rest, d, depth=1)]), {}


def _parse_name_val(rest: str, key: str, d: _Directives) -> Node | None:
    """ENV/LABEL: `name value` (old form) or `name=value …`, as `name value sep` triples."""
    words = parse_words(rest, d)
    if not words:
        return None
    if "=" not in words[0]:
        parts = _WHITESPACE.split(rest, maxsplit=1)
        if len(parts) < 2:
            raise ParseError(f"{key} must have two arguments")
        return _chain([parts[0], parts[1], ""])
    values: list[str] = []
    for word in words:
        if "=" not in word:
            raise ParseError(f"Syntax error - can't find = in {go_quote(word)}. Must be of the form: name=value")
        k, v = word.split("=", 1)
        values += [k, v, "="]
    return _chain(values)


def _parse_env(rest: str, d: _Directives) -> _Parsed:
    return _parse_name_val(rest, "ENV", d), {}


def _parse_label(rest: str, d: _Directives) -> _Parsed:
    return _parse_name_val(rest, "LABEL", d), {}


def _parse_name_or_name_val(rest: str, d: _Directives) -> _Parsed:
    return _chain(parse_words(rest, d)), {}


def _parse_strings_whitespace_delimited(rest: str, d: _Directives) -> _Parsed:
    if not rest:
        return None, {}
    return _chain(_WHITESPACE.split(rest)), {}


def _parse_string(rest: str, d: _Directives) -> _Parsed:
    if not rest:
        return None, {}
    return Node(value=rest), {}


class _NotJSON(Exception):
    pass


_NOT_STRINGS = "when using JSON array syntax, arrays must be comprised of strings only"


def _reject_constant(name: str) -> object:
    raise ValueError(name)  # NaN and Infinity are not JSON to Go


def _parse_json(rest: str) -> _Parsed:
    rest = _lstrip(rest)
    if not rest.startswith("["):
        raise _NotJSON()
    try:
        value = json.loads(rest, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise _NotJSON() from None
    if not isinstance(value, list):
        raise _NotJSON()
    if not all(isinstance(v, str) for v in value):
        raise ParseError(_NOT_STRINGS)
    return _chain(value), {"json": True}


def _parse_maybe_json(rest: str, d: _Directives) -> _Parsed:
    if not rest:
        return None, {}
    try:
        return _parse_json(rest)
    except _NotJSON:
        return Node(value=rest), {}


def _parse_maybe_json_to_list(rest: str, d: _Directives) -> _Parsed:
    try:
        return _parse_json(rest)
    except _NotJSON:
        return _parse_strings_whitespace_delimited(rest, d)


def _parse_health_config(rest: str, d: _Directives) -> _Parsed:
    sep = 0
    while sep < len(rest) and not is_space(rest[sep]):
        sep += 1
    nxt = sep
    while nxt < len(rest) and is_space(rest[nxt]):
        nxt += 1
    if sep == 0:
        return None, {}
    cmd, attrs = _parse_maybe_json(rest[nxt:], d)
    return Node(value=rest[:sep], next=cmd), attrs


_LINE_PARSERS = {
    "add": _parse_maybe_json_to_list,
    "arg": _parse_name_or_name_val,
    "cmd": _parse_maybe_json,
    "copy": _parse_maybe_json_to_list,
    "entrypoint": _parse_maybe_json,
    "env": _parse_env,
    "expose": _parse_strings_whitespace_delimited,
    "from": _parse_strings_whitespace_delimited,
    "healthcheck": _parse_health_config,
    "label": _parse_label,
    "maintainer": _parse_string,
    "onbuild": _parse_sub_command,
    "run": _parse_maybe_json,
    "shell": _parse_maybe_json,
    "stopsignal": _parse_string,
    "user": _parse_string,
    "volume": _parse_maybe_json_to_list,
    "workdir": _parse_string,
}

__all__ = [
    "Node",
    "Heredoc",
    "Result",
    "ParseError",
    "parse",
    "parse_heredoc",
    "chomp_heredoc_content",
    "HEREDOC_INSTRUCTIONS",
]
