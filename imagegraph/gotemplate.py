"""The part of Go's text/template that `docker ... --format` users write, run as docker/cli runs it.

Students copy `docker inspect -f '{{.GraphDriver.Data.UpperDir}}' c` and `docker ps --format
'table {{.ID}}\\t{{.Names}}'` from tutorials; `imagegraph` should answer those the same way.
What is here: text and actions, `{{- -}}` trimming, comments, fields and field chains, `$`,
variables, pipelines, parentheses, `if`/`else if`/`else`, `range` (with `$i, $e :=`), `with`,
and the functions docker/cli adds (json, join, split, upper, lower, title, pad, truncate,
println) beside Go's (index, len, print, printf, println, eq, ne, lt, le, gt, ge, and, or,
not). What is not (`define`, `template`, `block`, `break`, methods) is refused with one line,
never silently printed as text. Nesting is capped, so no input depth reaches the recursion.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

from imagegraph.digest import go_json

MAX_NESTING = 64  # blocks and parentheses; Go has no limit, a typed template needs a few


class TemplateError(Exception):
    """A template that does not parse or cannot run: str() is Go's one line, `template: …`."""


# -- lexing ------------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<raw>`[^`]*`)
  | (?P<decl>:=)
  | (?P<assign>=)
  | (?P<pipe>\|)
  | (?P<lparen>\()
  | (?P<rparen>\))
  | (?P<comma>,)
  | (?P<var>\$[A-Za-z0-9_]*)
  | (?P<field>(?:\.[A-Za-z_][A-Za-z0-9_]*)+|\.)
  | (?P<number>[-+]?(?:0[xX][0-9a-fA-F_]+|(?:\d[\d_]*)?\.?\d[\d_]*(?:[eE][-+]?\d+)?))
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    """,
    re.VERBOSE,
)
_CHAIN = re.compile(r"(?:\.[A-Za-z_][A-Za-z0-9_]*)+")


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    col: int  # where it starts in its line, as Go's "line:col" counts
    line: int
    adjacent: bool  # no space before it (a chain after `)` or `$x`)


def _tokens(body: str, line: int, col: int) -> list[Token]:
    out: list[Token] = []
    pos, adjacent = 0, False
    while pos < len(body):
        m = _TOKEN.match(body, pos)
        if m is None:
            raise TemplateError(f"template: :{line}: bad character {_go_char(body[pos])}")
        kind = m.lastgroup or ""
        if kind == "space":
            adjacent = False
        else:
            out.append(Token(kind, m.group(), col + pos, line, adjacent))
            adjacent = True
        pos = m.end()
    return out


# -- the tree ------------------------------------------------------------------------------------


@dataclass
class Operand:
    """A field chain on dot (`.A.B`), a variable with a chain, a literal, a function name, or
    a parenthesised pipeline with a chain."""

    kind: str  # "field", "var", "literal", "func", "pipe"
    value: Any
    chain: tuple[str, ...] = ()
    source: str = ""
    col: int = 0
    line: int = 1


@dataclass
class Command:
    operands: list[Operand]


@dataclass
class Pipeline:
    commands: list[Command]
    decl: list[str] = field(default_factory=list)
    source: str = ""


@dataclass
class Text:
    text: str


@dataclass
class Action:
    pipe: Pipeline


@dataclass
class Block:
    """`if`, `with` or `range`: a body and an optional `else` list."""

    kind: str
    pipe: Pipeline
    body: list[Any] = field(default_factory=list)
    otherwise: list[Any] | None = None


@dataclass
class Template:
    """A parsed template; `execute` runs it on one value (an object, a row)."""

    nodes: list[Any]

    def execute(self, dot: Any) -> str:
        out: list[str] = []
        _run(self.nodes, dot, {"$": dot}, out)
        return "".join(out)


def parse(text: str) -> Template:
    """Parse `text` as Go's template.New("").Funcs(docker's).Parse does, or raise TemplateError."""
    root: list[Any] = []
    stack: list[tuple[Block | None, list[Any]]] = [(None, root)]
    pos = 0
    trim_next = False
    while True:
        start = text.find("{{", pos)
        chunk = text[pos:] if start < 0 else text[pos:start]
        if trim_next:
            chunk = chunk.lstrip(" \t\r\n")
        if start < 0:
            if chunk:
                stack[-1][1].append(Text(chunk))
            break
        line = text.count("\n", 0, start) + 1
        trim_left = text.startswith("{{- ", start)
        if trim_left:
            chunk = chunk.rstrip(" \t\r\n")
        if chunk:
            stack[-1][1].append(Text(chunk))
        inner = start + (4 if trim_left else 2)
        end = _action_end(text, inner, line)
        trim_next = text.startswith(" -}}", end - 2)
        body_end = end - 2 if trim_next else end
        body = text[inner:body_end]
        pos = end + 2
        stripped = body.strip()
        if stripped.startswith("/*"):
            if not stripped.endswith("*/"):
                raise TemplateError(f"template: :{line}: unclosed comment")
            continue
        col = inner - (text.rfind("\n", 0, inner) + 1)
        _add_action(_tokens(body, line, col), stack, line)
    if len(stack) > 1:
        raise TemplateError(f"template: :{text.count(chr(10)) + 1}: unexpected EOF")
    return Template(root)


def _action_end(text: str, inner: int, line: int) -> int:
    """Where the action's `}}` is, past any `}}` inside a string literal."""
    i = inner
    while i < len(text):
        c = text[i]
        if c in '"`':
            close = text.find(c, i + 1) if c == "`" else _string_end(text, i)
            if close < 0:
                raise TemplateError(f"template: :{line}: unterminated quoted string")
            i = close + 1
            continue
        if text.startswith("}}", i):
            return i
        i += 1
    if "}" in text[inner:]:  # Go's lexer stops at the lone brace first
        raise TemplateError(f"template: :{line}: bad character {_go_char('}')}")
    raise TemplateError(f"template: :{line}: unclosed action")


def _go_char(c: str) -> str:
    return f"U+{ord(c):04X} {c!r}"


def _string_end(text: str, i: int) -> int:
    j = i + 1
    while j < len(text):
        if text[j] == "\\":
            j += 2
            continue
        if text[j] == '"':
            return j
        if text[j] == "\n":
            return -1
        j += 1
    return -1


def _add_action(tokens: list[Token], stack: list[tuple[Block | None, list[Any]]], line: int) -> None:
    if not tokens:
        raise TemplateError(f"template: :{line}: missing value for command")
    head = tokens[0]
    word = head.text if head.kind == "ident" else ""
    current = stack[-1][1]
    if word in ("if", "with", "range"):
        if len(stack) > MAX_NESTING:
            raise TemplateError(f"template: :{line}: blocks nest deeper than {MAX_NESTING}")
        if len(tokens) == 1:
            raise TemplateError(f"template: :{line}: missing value for {word}")
        opened = Block(word, _pipeline(tokens[1:], line, word == "range"))
        current.append(opened)
        stack.append((opened, opened.body))
    elif word == "else":
        block = stack[-1][0]
        if block is None or block.otherwise is not None:
            raise TemplateError(f"template: :{line}: unexpected {{{{else}}}}")
        block.otherwise = []
        rest = tokens[1:]
        if rest and rest[0].kind == "ident" and rest[0].text in ("if", "with"):
            if len(rest) == 1:
                raise TemplateError(f"template: :{line}: missing value for {rest[0].text}")
            inner = Block(rest[0].text, _pipeline(rest[1:], line, False))
            block.otherwise.append(inner)
            stack[-1] = (inner, inner.body)  # one {{end}} closes both, as in Go
        elif rest:
            raise TemplateError(f"template: :{line}: unexpected {rest[0].text!r} in else")
        else:
            stack[-1] = (block, block.otherwise)
    elif word == "end":
        if len(stack) == 1 or len(tokens) > 1:
            raise TemplateError(f"template: :{line}: unexpected {{{{end}}}}")
        stack.pop()
    elif word in ("define", "template", "block", "break", "continue"):
        raise TemplateError(f"template: :{line}: {{{{{word}}}}} is not supported by imagegraph's --format")
    else:
        current.append(Action(_pipeline(tokens, line, True)))


def _pipeline(tokens: list[Token], line: int, may_declare: bool, depth: int = 0) -> Pipeline:
    if depth > MAX_NESTING:
        raise TemplateError(f"template: :{line}: parentheses nest deeper than {MAX_NESTING}")
    decl: list[str] = []
    i = 0
    if may_declare and tokens and tokens[0].kind == "var":
        j = 1
        names = [tokens[0].text]
        if j + 1 < len(tokens) and tokens[j].kind == "comma" and tokens[j + 1].kind == "var":
            names.append(tokens[j + 1].text)
            j += 2
        if j < len(tokens) and tokens[j].kind in ("decl", "assign"):
            decl, i = names, j + 1
    if not tokens[i:]:
        raise TemplateError(f"template: :{line}: missing value for command")
    commands: list[Command] = []
    operands: list[Operand] = []
    while i < len(tokens):
        tok = tokens[i]
        if tok.kind == "pipe":
            if not operands:
                raise TemplateError(f"template: :{line}: missing value for command")
            commands.append(Command(operands))
            operands = []
            i += 1
            continue
        if tok.kind == "lparen":
            close = _matching(tokens, i, line)
            inner = _pipeline(tokens[i + 1 : close], line, False, depth + 1)
            i = close + 1
            chain: tuple[str, ...] = ()
            if i < len(tokens) and tokens[i].kind == "field" and tokens[i].adjacent:
                chain = _split_chain(tokens[i].text)
                i += 1
            operands.append(Operand("pipe", inner, chain, "(...)", tok.col, tok.line))
            continue
        operands.append(_operand(tok, tokens[i + 1] if i + 1 < len(tokens) else None, line))
        i += 2 if operands[-1].kind == "var" and operands[-1].chain else 1
    if not operands:
        raise TemplateError(f"template: :{line}: missing value for command")
    commands.append(Command(operands))
    for stage, cmd in enumerate(commands[1:], 2):  # Go: a later stage is a call, a field or a method
        head = cmd.operands[0]
        if head.kind == "literal" or (head.kind == "field" and not head.chain):
            raise TemplateError(f"template: :{line}: non executable command in pipeline stage {stage}")
    return Pipeline(commands, decl, " ".join(t.text for t in tokens))


def _matching(tokens: list[Token], i: int, line: int) -> int:
    depth = 0
    for j in range(i, len(tokens)):
        if tokens[j].kind == "lparen":
            depth += 1
        elif tokens[j].kind == "rparen":
            depth -= 1
            if depth == 0:
                return j
    raise TemplateError(f"template: :{line}: unclosed left paren")


def _split_chain(text: str) -> tuple[str, ...]:
    return tuple(p for p in text.split(".") if p)


def _operand(tok: Token, nxt: Token | None, line: int) -> Operand:
    kind, text = tok.kind, tok.text
    if kind == "field":
        return Operand("field", None, _split_chain(text), text, tok.col, tok.line)
    if kind == "var":
        chain = _split_chain(nxt.text) if nxt is not None and nxt.kind == "field" and nxt.adjacent else ()
        return Operand("var", text, chain, text + "".join("." + c for c in chain), tok.col, tok.line)
    if kind == "string":
        return Operand("literal", _unquote(text[1:-1], line), source=text, col=tok.col, line=tok.line)
    if kind == "raw":
        return Operand("literal", text[1:-1], source=text, col=tok.col, line=tok.line)
    if kind == "number":
        return Operand("literal", _number(text, line), source=text, col=tok.col, line=tok.line)
    if kind == "ident":
        if text in ("true", "false"):
            return Operand("literal", text == "true", source=text, col=tok.col, line=tok.line)
        if text == "nil":
            return Operand("literal", None, source=text, col=tok.col, line=tok.line)
        if text not in FUNCTIONS:
            raise TemplateError(f'template: :{line}: function "{text}" not defined')
        return Operand("func", text, source=text, col=tok.col, line=tok.line)
    raise TemplateError(f"template: :{line}: unexpected {text!r} in operand")


def _number(text: str, line: int) -> int | float:
    clean = text.replace("_", "")
    try:
        return int(clean, 0)
    except ValueError:
        try:
            return float(clean)
        except ValueError:
            raise TemplateError(f"template: :{line}: bad number syntax: {text!r}") from None


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "a": "\a", "b": "\b", "f": "\f", "v": "\v"}


def _unquote(body: str, line: int) -> str:
    """A Go interpreted string literal's escapes: \\n, \\t, \\", \\\\, \\xNN, \\uNNNN, \\UNNNNNNNN."""
    out: list[str] = []
    i = 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        e = body[i + 1 : i + 2]
        if e in _ESCAPES:
            out.append(_ESCAPES[e])
            i += 2
            continue
        size = {"x": 2, "u": 4, "U": 8}.get(e)
        digits = body[i + 2 : i + 2 + size] if size else ""
        if size is None or len(digits) != size or not all(d in "0123456789abcdefABCDEF" for d in digits):
            raise TemplateError(f"template: :{line}: invalid syntax in string literal")
        out.append(chr(int(digits, 16)))
        i += 2 + size
    return "".join(out)


# -- running ----------------------------------------------------------------------------------------


def _run(nodes: list[Any], dot: Any, variables: dict[str, Any], out: list[str]) -> None:
    for node in nodes:
        if isinstance(node, Text):
            out.append(node.text)
        elif isinstance(node, Action):
            value = _pipe(node.pipe, dot, variables)
            if not node.pipe.decl:
                out.append(show(value))
        elif node.kind == "range":
            _range(node, dot, variables, out)
        else:
            inner = dict(variables)
            value = _pipe(node.pipe, dot, inner)
            if truth(value):
                _run(node.body, value if node.kind == "with" else dot, inner, out)
            elif node.otherwise is not None:
                _run(node.otherwise, dot, inner, out)


def _range(node: Block, dot: Any, variables: dict[str, Any], out: list[str]) -> None:
    decl = node.pipe.decl  # the loop's variables, set per element below
    value = _pipe(node.pipe, dot, variables, declare=False)
    if isinstance(value, Mapping):
        items: list[tuple[Any, Any]] = [(k, value[k]) for k in sorted(value)]
    elif isinstance(value, (list, tuple)):
        items = list(enumerate(value))
    elif value is None or value is MISSING:  # Go: nothing to range over, not an error
        items = []
    else:
        raise TemplateError(f"template: :1: range can't iterate over {show(value)}")
    if not items:
        if node.otherwise is not None:
            _run(node.otherwise, dot, dict(variables), out)
        return
    for key, element in items:
        inner = dict(variables)
        if len(decl) == 1:
            inner[decl[0]] = element
        elif len(decl) == 2:
            inner[decl[0]], inner[decl[1]] = key, element
        _run(node.body, element, inner, out)


_NO_VALUE = object()  # nothing piped in yet


def _pipe(pipe: Pipeline, dot: Any, variables: dict[str, Any], declare: bool = True) -> Any:
    value: Any = _NO_VALUE
    for cmd in pipe.commands:
        value = _command(cmd, dot, variables, value)
    if declare and pipe.decl:
        variables[pipe.decl[-1]] = value
    return value


def _command(cmd: Command, dot: Any, variables: dict[str, Any], piped: Any) -> Any:
    first = cmd.operands[0]
    if first.kind == "func":
        args = [_operand_value(o, dot, variables) for o in cmd.operands[1:]]
        if piped is not _NO_VALUE:
            args.append(piped)
        try:
            return FUNCTIONS[first.value](*args)
        except TemplateError:
            raise
        except (TypeError, ValueError, KeyError, IndexError, AttributeError) as exc:
            raise TemplateError(
                f'template: :{first.line}:{first.col}: executing "" at <{first.source}>: '
                f"error calling {first.value}: {_reason(exc)}"
            ) from None
    if first.kind == "field" and first.chain and (len(cmd.operands) > 1 or piped is not _NO_VALUE):
        method = _method(first, dot, variables)
        if method is not None:  # a row's method with arguments: `{{.Label "com.example"}}`
            args = [_operand_value(o, dot, variables) for o in cmd.operands[1:]]
            return method(*args, *(() if piped is _NO_VALUE else (piped,)))
    if len(cmd.operands) > 1 or piped is not _NO_VALUE:
        raise TemplateError(
            f'template: :{first.line}:{first.col}: executing "" at <{first.source}>: '
            f"can't give argument to non-function {first.source}"
        )
    return _operand_value(first, dot, variables)


def _method(o: Operand, dot: Any, variables: dict[str, Any]) -> Callable[..., Any] | None:
    """The method `o` names on a row (docker/cli's context methods that take arguments)."""
    owner = _operand_value(Operand(o.kind, o.value, o.chain[:-1], o.source, o.col, o.line), dot, variables)
    return owner.methods.get(o.chain[-1]) if isinstance(owner, Row) else None


def _reason(exc: Exception) -> str:
    text = str(exc.args[0]) if exc.args else type(exc).__name__
    return text.splitlines()[0] if text else type(exc).__name__


def _operand_value(o: Operand, dot: Any, variables: dict[str, Any]) -> Any:
    if o.kind == "literal":
        return o.value
    if o.kind == "func":  # a function as an argument: called with no arguments, as Go does
        return FUNCTIONS[o.value]()
    if o.kind == "field":
        base = dot
    elif o.kind == "var":
        if o.value not in variables:
            raise TemplateError(f"template: :{o.line}: undefined variable: {o.value}")
        base = variables[o.value]
    else:
        base = _pipe(o.value, dot, variables)
    # Go reports a chain at its last field: `{{.State.Running}}` fails at column 8.
    col = o.col + sum(len(n) + 1 for n in o.chain[:-1])
    where = f'template: :{o.line}:{col}: executing "" at <{o.source}>: '
    for name in o.chain:
        base = _field(base, name, where)
    return base


def _field(base: Any, name: str, where: str) -> Any:
    """`.name` of `base`, as Go finds a field: a map's missing key is <no value>; a struct
    without the field is an error (a row's, "can't evaluate field"; an object's, as docker
    inspect says it after falling back to the raw JSON, "map has no entry for key")."""
    if isinstance(base, RawMap):
        if name not in base:
            raise TemplateError(f'{where}map has no entry for key "{name}"')
        return base[name]
    if isinstance(base, GoMap):
        return base.get(name, MISSING)
    if isinstance(base, Row):
        if name not in base:
            raise TemplateError(f"{where}can't evaluate field {name} in type {base.go_type}")
        return base[name]
    if isinstance(base, Struct):
        value = base.get(name, MISSING)
        if name in base.zeros and (value is MISSING or value is None):
            return base.zeros[name]  # a typed field the JSON left out (omitempty) or null
        if value is MISSING:  # the typed run fails; docker inspect then runs the raw JSON
            raise TemplateError(f"{where}can't evaluate field {name} in type struct")
        return value
    if isinstance(base, Mapping):  # any other object: a Go map
        return base.get(name, MISSING)
    if base is None or base is MISSING:
        raise TemplateError(f"{where}nil pointer evaluating interface {{}}.{name}")
    raise TemplateError(f"{where}can't evaluate field {name} in type {go_type(base)}")


class _Missing:
    """Go's invalid value: a map's missing key, printed "<no value>"."""

    def __repr__(self) -> str:
        return "<no value>"


MISSING: Any = _Missing()


class GoMap(dict):
    """A JSON object that is a Go map (Labels, ExposedPorts, GraphDriver.Data, ...): a missing
    key is <no value>; it prints as `map[k:v]` and marshals with its keys sorted."""


class RawMap(GoMap):
    """A JSON object as docker inspect's second run sees it (map[string]interface{} with
    missingkey=error): a missing key is an error."""


class Struct(dict):
    """A JSON object that is a Go struct: prints as `{v1 v2}`; `zeros` are the fields the JSON
    may leave out (omitempty) and what a typed template sees for them."""

    def __init__(self, items: Mapping[str, Any], zeros: Mapping[str, Any]) -> None:
        super().__init__(items)
        self.zeros = zeros


class Row(dict):
    """A row of a list command (docker/cli's typed context, `go_type` names it). A field it
    lacks is an error; its `{{json .}}` goes through the context's MarshalJSON, a json.Marshal:
    `<>&` escaped as \\u003c…, unlike a plain value's (the template's encoder does not escape
    HTML)."""

    def __init__(
        self, items: Mapping[str, Any], go_type: str, methods: Mapping[str, Callable[..., Any]] | None = None
    ) -> None:
        super().__init__(items)
        self.go_type = go_type
        self.methods = methods or {}


class NilList(list):
    """A typed nil slice: prints `[]`, marshals as `null`."""


class NilMap(GoMap):
    """A typed nil map: prints `map[]`, marshals as `null`."""


#: The Go maps of docker inspect's objects, by the key that holds them.
MAP_KEYS = frozenset(
    {"Labels", "ExposedPorts", "Volumes", "Data", "Options", "Ports", "Networks", "DriverOpts", "Sysctls",
     "StorageOpt", "Annotations", "Tmpfs"}
)  # fmt: skip
#: What a typed container.Config shows for the fields its JSON leaves out or sets to null.
CONFIG_ZEROS: dict[str, Any] = {
    "User": "", "ExposedPorts": NilMap(), "Env": NilList(), "Cmd": NilList(), "Healthcheck": None,
    "ArgsEscaped": False, "Volumes": NilMap(), "WorkingDir": "", "Entrypoint": NilList(), "OnBuild": NilList(),
    "Labels": NilMap(), "StopSignal": "", "Shell": NilList(),
}  # fmt: skip
#: ... and a typed image.InspectResponse for its optional fields.
IMAGE_ZEROS: dict[str, Any] = {
    "Parent": "", "Comment": "", "Container": "", "ContainerConfig": None, "DockerVersion": "", "Author": "",
    "Variant": "", "RepoDigests": NilList(), "RepoTags": NilList(),
}  # fmt: skip


def typed_object(obj: Mapping[str, Any], kind: str) -> Struct:
    """An inspect object (kind "image" or "container") as docker inspect's first, typed run
    sees it: its maps and structs marked, `Id` under its Go name `ID`."""

    def typed(key: str | int, value: Mapping[str, Any]) -> dict[str, Any]:
        if key in MAP_KEYS:
            return GoMap((k, value[k]) for k in sorted(value))
        return Struct(value, CONFIG_ZEROS if key in ("Config", "ContainerConfig") else {})

    top = {("ID" if k == "Id" else k): v for k, v in obj.items()}
    return _rebuilt(Struct(top, IMAGE_ZEROS if kind == "image" else {}), typed)


def raw_object(obj: Mapping[str, Any]) -> RawMap:
    """The same object as docker inspect's fallback run sees it: the decoded JSON, every object
    a map whose missing keys are errors."""
    return _rebuilt(RawMap((k, obj[k]) for k in sorted(obj)), lambda _, v: RawMap((k, v[k]) for k in sorted(v)))


_R = TypeVar("_R", bound=dict)


def _rebuilt(root: _R, make: Callable[[str | int, Mapping[str, Any]], dict[str, Any]]) -> _R:
    """`root` with every object below it remade by `make(key, object)` and every list copied,
    the originals left alone. Iterative: depth is the JSON's."""
    todo: list[tuple[dict[str, Any] | list[Any], str | int, Any]] = [(root, k, v) for k, v in root.items()]
    while todo:
        parent, key, value = todo.pop()
        if isinstance(value, Mapping):
            made: Any = make(key, value)
            children = made.items()
        elif isinstance(value, list):
            made = list(value)
            children = enumerate(made)
        else:
            continue
        parent[key] = made  # type: ignore[index]
        todo.extend((made, k, v) for k, v in children)
    return root


def inspect_line(template: Template, obj: Mapping[str, Any], kind: str) -> str:
    """docker/cli's TemplateInspector: the typed object first; if that fails, the raw JSON
    (whose error, if any, is the one reported)."""
    try:
        return template.execute(typed_object(obj, kind))
    except TemplateError:
        return template.execute(raw_object(obj))


# -- values as Go prints them ------------------------------------------------------------------------


def go_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "map[string]interface {}"
    if isinstance(value, (list, tuple)):
        return "[]interface {}"
    return "interface {}"


def truth(value: Any) -> bool:
    """Go's `if`: false, 0, nil and empty strings, lists and maps are false."""
    if value is None or value is _NO_VALUE or value is MISSING:
        return False
    if isinstance(value, (bool, int, float, str, Mapping, list, tuple)):
        return bool(value)
    return True


def show(value: Any) -> str:
    """What `{{.}}` prints: fmt's %v; <no value> for a missing key, <nil> for null."""
    return "<no value>" if value is MISSING or value is _NO_VALUE else fmt_v(value)


def fmt_v(value: Any) -> str:
    """fmt.Sprint of a JSON value: `[a b]`, `map[k:v]` (keys sorted), `{v1 v2}` (a Struct),
    `<nil>`, Go's floats.
    Iterative: a value nested 5,000 deep does not reach the recursion limit."""
    out: list[str] = []
    todo: list[Any] = [value]
    while todo:
        item = todo.pop()
        if isinstance(item, _Lit):
            out.append(item.text)
        elif item is None:
            out.append("<nil>")
        elif isinstance(item, bool):
            out.append("true" if item else "false")
        elif isinstance(item, float):
            out.append(go_float(item))
        elif isinstance(item, (str, int)):
            out.append(str(item))
        elif item is MISSING:
            out.append("<no value>")
        elif isinstance(item, Struct):  # Go's %v of a struct: its fields' values, in order
            parts: list[Any] = [_Lit("{")]
            for n, v in enumerate(item.values()):
                parts += [_Lit(" " if n else ""), v]
            todo.extend(reversed([*parts, _Lit("}")]))
        elif isinstance(item, Mapping):
            parts = [_Lit("map[")]
            for n, k in enumerate(sorted(item, key=str)):
                parts += [_Lit(" " if n else ""), _Lit(f"{k}:"), item[k]]
            todo.extend(reversed([*parts, _Lit("]")]))
        elif isinstance(item, (list, tuple)):
            parts = [_Lit("[")]
            for n, e in enumerate(item):
                parts += [_Lit(" " if n else ""), e]
            todo.extend(reversed([*parts, _Lit("]")]))
        else:
            out.append(str(item))
    return "".join(out)


@dataclass(frozen=True)
class _Lit:
    text: str


def go_float(f: float) -> str:
    """strconv.FormatFloat(f, 'g', -1, 64), as %v prints a float64: 1e+06, 123456, 0.5
    (the shortest digits; the exponent form from 1e+06 up and below 1e-04)."""
    if f != f:
        return "NaN"
    if f in (float("inf"), float("-inf")):
        return "+Inf" if f > 0 else "-Inf"
    if f == 0:
        return "-0" if str(f).startswith("-") else "0"
    sign, digit_tuple, exponent = Decimal(repr(f)).normalize().as_tuple()
    digits = "".join(map(str, digit_tuple))
    assert isinstance(exponent, int)
    exp = len(digits) + exponent - 1
    minus = "-" if sign else ""
    if exp < -4 or exp >= 6:
        mant = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{minus}{mant}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if exp >= len(digits) - 1:
        return minus + digits + "0" * (exp - len(digits) + 1)
    if exp >= 0:
        return f"{minus}{digits[: exp + 1]}.{digits[exp + 1 :]}"
    return f"{minus}0.{'0' * (-exp - 1)}{digits}"


# -- functions ---------------------------------------------------------------------------------------


def _json(v: Any) -> str:
    """docker/cli's `json`: a struct's fields in order, a map's keys sorted (GoMap is built
    sorted); a row marshals as a map, with HTML escaped (see Row)."""
    if v is MISSING or isinstance(v, (NilList, NilMap)):
        v = None
    as_map = isinstance(v, Row) or type(v) is dict
    return go_json(v, escape_html=isinstance(v, Row), sort_keys=as_map).decode("utf-8").strip()


def _join(items: Sequence[Any], sep: str) -> str:
    return sep.join(fmt_v(i) for i in (items or []))


def _title(s: str) -> str:
    return re.sub(r"(^|[^\w'])(\w)", lambda m: m.group(1) + m.group(2).upper(), s)


def _pad(s: str, prefix: int, suffix: int) -> str:
    return s if s == "" else " " * prefix + s + " " * suffix


def _truncate(s: str, length: int) -> str:
    return s if len(s) < length else s[:length]


def _index(item: Any, *keys: Any) -> Any:
    for key in keys:
        if isinstance(item, RawMap):  # map[string]interface{}: nil
            item = item.get(key)
        elif isinstance(item, Mapping):  # a typed map's zero value (labels: "")
            item = item.get(key, "" if all(isinstance(v, str) for v in item.values()) else None)
        elif isinstance(item, (list, tuple, str)):
            if not isinstance(key, int) or not 0 <= key < len(item):
                raise IndexError(f"index out of range: {key}")
            item = item[key]
        elif item is None:
            raise TypeError("index of untyped nil")
        else:
            raise TypeError(f"can't index item of type {go_type(item)}")
    return item


def _len(item: Any) -> int:
    if isinstance(item, (Mapping, list, tuple, str)):
        return len(item.encode() if isinstance(item, str) else item)
    raise TypeError(f"len of type {go_type(item)}")


def _sprint(*args: Any) -> str:
    """fmt.Sprint: a space between operands when neither is a string."""
    out = ""
    for i, a in enumerate(args):
        if i and not isinstance(a, str) and not isinstance(args[i - 1], str):
            out += " "
        out += fmt_v(a)
    return out


def _sprintln(*args: Any) -> str:
    return " ".join(fmt_v(a) for a in args) + "\n"


_VERB = re.compile(r"%([-+# 0]*)(\d*)(?:\.(\d+))?([a-zA-Z%])")


def _sprintf(pattern: str, *args: Any) -> str:
    """fmt.Sprintf for the verbs people use in templates: %s %v %d %q %x %t %f %%."""
    values = list(args)

    def verb(m: re.Match[str]) -> str:
        flags, width, precision, v = m.groups()
        if v == "%":
            return "%"
        if not values:
            return f"%!{v}(MISSING)"
        a = values.pop(0)
        if v in "sv":
            text = fmt_v(a)
            text = text[: int(precision)] if precision and v == "s" else text
        elif v == "q":
            text = go_json(fmt_v(a) if not isinstance(a, str) else a, escape_html=False).decode()
        elif v == "d" and isinstance(a, int) and not isinstance(a, bool):
            text = str(a)
        elif v == "x" and isinstance(a, (int, str)) and not isinstance(a, bool):
            text = format(a, "x") if isinstance(a, int) else a.encode().hex()
        elif v == "t" and isinstance(a, bool):
            text = "true" if a else "false"
        elif v in "feg" and isinstance(a, (int, float)) and not isinstance(a, bool):
            text = format(float(a), f".{precision or 6}{v}")
        else:
            return f"%!{v}({go_type(a)}={fmt_v(a)})"
        if width:
            text = text.ljust(int(width)) if "-" in flags else text.rjust(int(width), "0" if "0" in flags else " ")
        return text

    return _VERB.sub(verb, pattern)


def _eq(a: Any, *others: Any) -> bool:
    if not others:
        raise TypeError("missing argument for comparison")
    return any(a == b for b in others)


def _ordered(op: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def compare(a: Any, b: Any) -> bool:
        if (
            isinstance(a, bool)
            or isinstance(b, bool)
            or not (
                isinstance(a, (int, float)) and isinstance(b, (int, float)) or isinstance(a, str) and isinstance(b, str)
            )
        ):
            raise TypeError("incompatible types for comparison")
        return op(a, b)

    return compare


def _and(first: Any, *rest: Any) -> Any:
    for v in (first, *rest):
        if not truth(v):
            return v
    return (first, *rest)[-1]


def _or(first: Any, *rest: Any) -> Any:
    for v in (first, *rest):
        if truth(v):
            return v
    return (first, *rest)[-1]


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "json": _json,
    "join": _join,
    "split": lambda s, sep: s.split(sep) if sep else list(s),
    "upper": lambda s: s.upper(),
    "lower": lambda s: s.lower(),
    "title": _title,
    "pad": _pad,
    "truncate": _truncate,
    "println": _sprintln,
    "print": _sprint,
    "printf": _sprintf,
    "index": _index,
    "len": _len,
    "eq": _eq,
    "ne": lambda a, b: a != b,
    "lt": _ordered(lambda a, b: a < b),
    "le": _ordered(lambda a, b: a <= b),
    "gt": _ordered(lambda a, b: a > b),
    "ge": _ordered(lambda a, b: a >= b),
    "and": _and,
    "or": _or,
    "not": lambda v: not truth(v),
}


# -- docker/cli's formatter -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Format:
    """A `--format` value as docker/cli reads it: `table`, `json`, `table TEMPLATE` or a TEMPLATE."""

    table: bool
    json: bool
    template: str

    @classmethod
    def of(cls, text: str | None) -> Format:
        text = text or ""
        if text.strip() == "json":
            return cls(False, True, "")
        is_table = text.startswith("table")
        body = text[len("table") :] if is_table else text
        body = body.strip(" ").replace("\\t", "\t").replace("\\n", "\n")
        return cls(is_table, False, body)

    @property
    def default(self) -> bool:
        return not self.json and not self.template


def render_rows(
    fmt: Format,
    rows: Sequence[Mapping[str, Any]],
    headers: Mapping[str, str],
    type_name: str,
    wording: tuple[str, str] = ("template parsing error: ", "template parsing error: "),
) -> str:
    """Rows through `fmt`'s template, one line each; with `table`, a header line first (the
    template run on the header names) and the columns aligned as docker's tabwriter does.
    `wording` prefixes a parse error and an execution error, as each docker/cli command does."""
    try:
        template = parse(fmt.template)
    except TemplateError as exc:
        raise TemplateError(wording[0] + str(exc)) from None
    try:
        lines = [template.execute(row if isinstance(row, Row) else Row(row, type_name)) + "\n" for row in rows]
    except TemplateError as exc:
        raise TemplateError(wording[1] + str(exc)) from None
    if not fmt.table:
        return "".join(lines)
    header = template.execute(GoMap(headers)) + "\n"
    return tabwrite(header + "".join(lines))


def tabwrite(text: str, min_width: int = 10, padding: int = 3) -> str:
    """Go's text/tabwriter (minwidth 10, tabwidth 1, padding 3, ' ', no flags), as docker/cli
    aligns its tables: a column is a run of consecutive lines that have a tab-terminated cell
    there; each run is as wide as its widest cell plus the padding, and at least `min_width`."""
    lines = text.split("\n")
    cells = [line.split("\t") for line in lines]
    widths: list[list[int]] = [[0] * (len(c) - 1) for c in cells]
    column = 0
    while True:
        has = [len(c) - 1 > column for c in cells]
        if not any(has):
            break
        i = 0
        while i < len(cells):
            if not has[i]:
                i += 1
                continue
            j = i
            while j < len(cells) and has[j]:
                j += 1
            width = max(min_width, *(len(cells[k][column]) + padding for k in range(i, j)))
            for k in range(i, j):
                widths[k][column] = width
            i = j
        column += 1
    out = []
    for c, w in zip(cells, widths, strict=True):
        out.append("".join(cell.ljust(w[n]) for n, cell in enumerate(c[:-1])) + c[-1])
    return "\n".join(out)
