"""Syntax tree to typed instructions and build stages (buildkit frontend/dockerfile/instructions).

Each instruction becomes a dataclass with its flags checked (`--from`, `--chown`, `--chmod`,
`--platform`, HEALTHCHECK's durations) and its arguments shaped (key/value pairs, exec or
shell form, sources and destination, heredoc files). `expand` runs the build's variable
expansion on exactly the fields buildkit expands; RUN, CMD, ENTRYPOINT, SHELL, HEALTHCHECK and
ONBUILD are left for the shell (or the later build). Errors are buildkit's texts;
`parse_dockerfile` prefixes them with `dockerfile parse error on line N:`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .gotext import go_quote, parse_go_duration, suggest
from .parser import Heredoc, Node, ParseError, chomp_heredoc_content, parse_heredoc

Expander = Callable[[str], str]

INSTRUCTIONS = (
    "add",
    "arg",
    "cmd",
    "copy",
    "entrypoint",
    "env",
    "expose",
    "from",
    "healthcheck",
    "label",
    "maintainer",
    "onbuild",
    "run",
    "shell",
    "stopsignal",
    "user",
    "volume",
    "workdir",
)
_STAGE_NAME = re.compile(r"^[a-z][a-z0-9-_.]*\Z")
_ONBUILD_PREFIX = re.compile(r"^[\t\n\f\r ]*ONBUILD[\t\n\f\r ]*", re.IGNORECASE)


class InstructionError(ValueError):
    """An instruction buildkit refuses; `line` is where it starts."""

    def __init__(self, message: str, line: int = 0) -> None:
        super().__init__(message)
        self.line = line


# ---- flags ---------------------------------------------------------------------------------


class BFlags:
    """The `--name=value` words of one instruction, checked against the flags it declares."""

    def __init__(self, args: list[str]) -> None:
        self.args = args
        self.kinds: dict[str, str] = {}
        self.values: dict[str, str] = {}
        self.lists: dict[str, list[str]] = {}
        self.used: list[str] = []

    def add_string(self, name: str, default: str = "") -> None:
        self.kinds[name] = "string"
        self.values[name] = default

    def add_bool(self, name: str) -> None:
        self.kinds[name] = "bool"
        self.values[name] = "false"

    def add_strings(self, name: str) -> None:
        self.kinds[name] = "strings"
        self.lists[name] = []

    def parse(self) -> None:
        for a in self.args:
            if a == "--":
                return
            if not a.startswith("--"):
                raise InstructionError(f"arg should start with -- : {a}")
            flag_name, has_value, value = a.partition("=")
            name = flag_name[2:]
            kind = self.kinds.get(name)
            if kind is None:
                hint = suggest(name, list(self.kinds), case_sensitive=True)
                raise InstructionError(f"unknown flag: {flag_name}" + (f" (did you mean {hint}?)" if hint else ""))
            if name in self.used and kind != "strings":
                raise InstructionError(f"duplicate flag specified: {flag_name}")
            if name not in self.used:
                self.used.append(name)
            if kind == "bool":
                if has_value and value == "":
                    raise InstructionError(f"missing a value on flag: {flag_name}")
                if value.lower() not in ("true", "false", ""):
                    raise InstructionError(f"expecting boolean value for flag {flag_name}, not: {value}")
                self.values[name] = "false" if value.lower() == "false" else "true"
            elif not has_value:
                raise InstructionError(f"missing a value on flag: {flag_name}")
            elif kind == "string":
                self.values[name] = value
            else:
                self.lists[name].append(value)

    def get(self, name: str) -> str:
        return self.values[name]


# ---- the instructions ------------------------------------------------------------------------


@dataclass
class Command:
    """What every instruction has: its name as written, its source text, its first line."""

    name: str
    code: str
    line: int

    def __str__(self) -> str:
        return self.code

    def expand(self, expander: Expander) -> None:
        """Replace variables in the fields buildkit expands (none, for most instructions)."""


@dataclass
class KeyValue:
    key: str
    value: str
    no_delim: bool = False

    def __str__(self) -> str:
        return f"{self.key}={self.value}"


@dataclass
class EnvCommand(Command):
    env: list[KeyValue] = field(default_factory=list)

    def expand(self, expander: Expander) -> None:
        self.env = [KeyValue(expander(kv.key), expander(kv.value), kv.no_delim) for kv in self.env]


@dataclass
class MaintainerCommand(Command):
    maintainer: str = ""


@dataclass
class LabelCommand(Command):
    labels: list[KeyValue] = field(default_factory=list)
    no_expand: bool = False

    def expand(self, expander: Expander) -> None:
        if not self.no_expand:
            self.labels = [KeyValue(expander(kv.key), expander(kv.value), kv.no_delim) for kv in self.labels]


def new_label_command(key: str, value: str) -> LabelCommand:
    """`--label K=V` from the command line: a LABEL added to the last stage, never expanded."""
    kv = KeyValue(key, value)
    return LabelCommand(name="label", code=f"LABEL {kv}", line=0, labels=[kv], no_expand=True)


@dataclass
class SourceContent:
    """A heredoc given as a COPY/ADD source: a file made from the text."""

    path: str
    data: str
    expand: bool


@dataclass
class SourcesAndDest:
    dest: str
    sources: list[str]
    contents: list[SourceContent] = field(default_factory=list)

    def expand(self, expander: Expander) -> None:
        self.sources = [expander(s) for s in self.sources]
        self.dest = expander(self.dest)


@dataclass
class AddCommand(Command):
    files: SourcesAndDest = field(default_factory=lambda: SourcesAndDest("", []))
    chown: str = ""
    chmod: str = ""
    link: bool = False
    checksum: str = ""
    flags_used: list[str] = field(default_factory=list)

    def expand(self, expander: Expander) -> None:
        self.chown = expander(self.chown)
        self.chmod = expander(self.chmod)
        self.checksum = expander(self.checksum)
        self.files.expand(expander)


@dataclass
class CopyCommand(Command):
    files: SourcesAndDest = field(default_factory=lambda: SourcesAndDest("", []))
    from_: str = ""
    chown: str = ""
    chmod: str = ""
    link: bool = False
    flags_used: list[str] = field(default_factory=list)

    def expand(self, expander: Expander) -> None:
        self.chown = expander(self.chown)
        self.chmod = expander(self.chmod)
        self.files.expand(expander)


@dataclass
class OnbuildCommand(Command):
    expression: str = ""


@dataclass
class WorkdirCommand(Command):
    path: str = ""

    def expand(self, expander: Expander) -> None:
        self.path = expander(self.path)


@dataclass
class ShellInlineFile:
    name: str
    data: str
    chomp: bool


@dataclass
class CmdLine:
    """A command in exec form (`prepend_shell` False) or shell form, with its heredoc files."""

    args: list[str] | None
    prepend_shell: bool
    files: list[ShellInlineFile] = field(default_factory=list)


@dataclass
class RunCommand(Command):
    cmd: CmdLine = field(default_factory=lambda: CmdLine([], True))
    flags_used: list[str] = field(default_factory=list)


@dataclass
class CmdCommand(Command):
    cmd: CmdLine = field(default_factory=lambda: CmdLine([], True))


@dataclass
class EntrypointCommand(Command):
    cmd: CmdLine = field(default_factory=lambda: CmdLine([], True))


@dataclass
class HealthCheckCommand(Command):
    health: dict[str, Any] = field(default_factory=dict)


@dataclass
class ExposeCommand(Command):
    ports: list[str] = field(default_factory=list)


@dataclass
class UserCommand(Command):
    user: str = ""

    def expand(self, expander: Expander) -> None:
        self.user = expander(self.user)


@dataclass
class VolumeCommand(Command):
    volumes: list[str] = field(default_factory=list)

    def expand(self, expander: Expander) -> None:
        self.volumes = [expander(v) for v in self.volumes]


@dataclass
class StopSignalCommand(Command):
    signal: str = ""

    def expand(self, expander: Expander) -> None:
        self.signal = expander(self.signal)


@dataclass
class ArgDef:
    key: str
    value: str | None

    def __str__(self) -> str:
        return self.key if self.value is None else f"{self.key}={self.value}"


@dataclass
class ArgCommand(Command):
    args: list[ArgDef] = field(default_factory=list)

    def expand(self, expander: Expander) -> None:
        self.args = [ArgDef(expander(a.key), None if a.value is None else expander(a.value)) for a in self.args]


@dataclass
class ShellCommand(Command):
    shell: list[str] = field(default_factory=list)


@dataclass
class Stage:
    """FROM and the instructions up to the next FROM."""

    name: str
    base_name: str
    platform: str
    source_code: str
    line: int
    commands: list[Command] = field(default_factory=list)


# ---- parsing -------------------------------------------------------------------------------------


@dataclass
class _Request:
    command: str
    args: list[str]
    heredocs: list[Heredoc]
    attributes: dict[str, bool]
    original: str
    flags: BFlags
    line: int

    def base(self) -> dict[str, Any]:
        return {"name": self.command, "code": self.original.strip(), "line": self.line}


def _node_args(node: Node) -> list[str]:
    out: list[str] = []
    n = node.next
    while n is not None:
        if not n.children:
            out.append(n.value)
        elif len(n.children) == 1:
            out.append(n.children[0].value)
            out += _node_args(n.children[0])
        n = n.next
    return out


def parse_instruction(node: Node) -> Command | Stage:
    """ParseInstruction: one node to its typed instruction (FROM to a Stage)."""
    req = _Request(
        command=node.value,
        args=_node_args(node),
        heredocs=node.heredocs,
        attributes=node.attributes,
        original=node.original,
        flags=BFlags(node.flags),
        line=node.start_line,
    )
    name = node.value.lower()
    fn = _PARSERS.get(name)
    if fn is None:
        hint = suggest(node.value, [i.upper() for i in INSTRUCTIONS], case_sensitive=False)
        raise InstructionError(
            f"unknown instruction: {node.value}" + (f" (did you mean {hint}?)" if hint else ""), node.start_line
        )
    try:
        return fn(req)
    except (InstructionError, ParseError) as exc:
        raise InstructionError(str(exc), node.start_line) from None


def parse_command(node: Node) -> Command:
    """ParseCommand: an instruction that is not FROM (an ONBUILD trigger)."""
    cmd = parse_instruction(node)
    if isinstance(cmd, Stage):
        raise InstructionError("*instructions.Stage is not a command type", node.start_line)
    return cmd


def parse_dockerfile(ast: Node) -> tuple[list[Stage], list[ArgCommand]]:
    """instructions.Parse: the stages, and the ARGs before the first FROM (the meta args)."""
    stages: list[Stage] = []
    meta_args: list[ArgCommand] = []
    for n in ast.children:
        try:
            cmd = parse_instruction(n)
        except InstructionError as exc:
            raise InstructionError(f"dockerfile parse error on line {n.start_line}: {exc}", n.start_line) from None
        if not stages and isinstance(cmd, ArgCommand):
            meta_args.append(cmd)
            continue
        if isinstance(cmd, Stage):
            stages.append(cmd)
        elif not stages:
            raise InstructionError(
                f"dockerfile parse error on line {n.start_line}: no build stage in current context", n.start_line
            )
        else:
            stages[-1].commands.append(cmd)
    return stages, meta_args


def has_stage(stages: list[Stage], name: str) -> int | None:
    for i, s in enumerate(stages):
        if s.name.lower() == name.lower():
            return i
    return None


def _kvps(args: list[str], cmd: str) -> list[KeyValue]:
    if not args:
        raise InstructionError(f"{cmd} requires at least one argument")
    if len(args) % 3:
        raise InstructionError(f"Bad input to {cmd}, too many arguments")
    out = []
    for j in range(0, len(args), 3):
        if not args[j]:
            raise InstructionError(f"{cmd} names can not be blank")
        out.append(KeyValue(args[j], args[j + 1], args[j + 2] == ""))
    return out


def _parse_env(req: _Request) -> EnvCommand:
    req.flags.parse()
    return EnvCommand(**req.base(), env=_kvps(req.args, "ENV"))


def _parse_maintainer(req: _Request) -> MaintainerCommand:
    if len(req.args) != 1:
        raise InstructionError("MAINTAINER requires exactly one argument")
    req.flags.parse()
    return MaintainerCommand(**req.base(), maintainer=req.args[0])


def _parse_label(req: _Request) -> LabelCommand:
    req.flags.parse()
    return LabelCommand(**req.base(), labels=_kvps(req.args, "LABEL"))


def _sources_and_dest(req: _Request, cmd: str) -> SourcesAndDest:
    srcs, dest = req.args[:-1], req.args[-1]
    if parse_heredoc(dest) is not None:
        raise InstructionError(f"{cmd} cannot accept a heredoc as a destination")
    by_name = {h.name: h for h in req.heredocs}
    paths: list[str] = []
    contents: list[SourceContent] = []
    for src in srcs:
        doc = parse_heredoc(src)
        if doc is None:
            paths.append(src)
            continue
        data = by_name[doc.name].content if doc.name in by_name else ""
        if doc.chomp:
            data = chomp_heredoc_content(data)
        contents.append(SourceContent(doc.name, data, doc.expand))
    return SourcesAndDest(dest, paths, contents)


def _parse_add(req: _Request) -> AddCommand:
    if len(req.args) < 2:
        raise InstructionError(
            "ADD requires at least two arguments, but only one was provided. Destination could not be determined"
        )
    f = req.flags
    for name in ("chown", "chmod", "checksum"):
        f.add_string(name)
    for name in ("link", "keep-git-dir", "unpack"):
        f.add_bool(name)
    f.add_strings("exclude")
    f.parse()
    return AddCommand(
        **req.base(),
        files=_sources_and_dest(req, "ADD"),
        chown=f.get("chown"),
        chmod=f.get("chmod"),
        link=f.get("link") == "true",
        checksum=f.get("checksum"),
        flags_used=list(f.used),
    )


def _parse_copy(req: _Request) -> CopyCommand:
    if len(req.args) < 2:
        raise InstructionError(
            "COPY requires at least two arguments, but only one was provided. Destination could not be determined"
        )
    f = req.flags
    for name in ("chown", "from", "chmod"):
        f.add_string(name)
    for name in ("link", "parents"):
        f.add_bool(name)
    f.add_strings("exclude")
    f.parse()
    return CopyCommand(
        **req.base(),
        files=_sources_and_dest(req, "COPY"),
        from_=f.get("from"),
        chown=f.get("chown"),
        chmod=f.get("chmod"),
        link=f.get("link") == "true",
        flags_used=list(f.used),
    )


def _parse_from(req: _Request) -> Stage:
    args = req.args
    name = ""
    if len(args) == 3 and args[1].lower() == "as":
        name = args[2].lower()
        if not _STAGE_NAME.match(name):
            raise InstructionError(
                f"invalid name for build stage: {go_quote(args[2])}, name can't start with a number or contain symbols"
            )
    elif len(args) != 1:
        raise InstructionError("FROM requires either one or three arguments")
    req.flags.add_string("platform")
    req.flags.parse()
    return Stage(
        name=name,
        base_name=args[0],
        platform=req.flags.get("platform"),
        source_code=req.original.strip(),
        line=req.line,
    )


def _parse_onbuild(req: _Request) -> OnbuildCommand:
    if not req.args:
        raise InstructionError("ONBUILD requires at least one argument")
    req.flags.parse()
    trigger = req.args[0].strip().upper()
    if trigger == "ONBUILD":
        raise InstructionError("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    if trigger in ("MAINTAINER", "FROM"):
        raise InstructionError(f"{trigger} isn't allowed as an ONBUILD trigger")
    expression = _ONBUILD_PREFIX.sub("", req.original, count=1)
    for doc in req.heredocs:
        expression += "\n" + doc.content + doc.name
    return OnbuildCommand(**req.base(), expression=expression)


def _parse_workdir(req: _Request) -> WorkdirCommand:
    if len(req.args) != 1:
        raise InstructionError("WORKDIR requires exactly one argument")
    req.flags.parse()
    return WorkdirCommand(**req.base(), path=req.args[0])


def _json_args(args: list[str], attributes: dict[str, bool]) -> list[str]:
    """handleJSONArgs: exec form as given, shell form as one string."""
    if not args:
        return []
    if attributes.get("json"):
        return args
    return [" ".join(args)]


def _cmd_line(req: _Request, empty_as_nil: bool) -> CmdLine:
    files = [ShellInlineFile(h.name, h.content, h.chomp) for h in req.heredocs]
    args: list[str] | None = _json_args(req.args, req.attributes)
    if empty_as_nil and not args:
        args = None
    return CmdLine(args, not req.attributes.get("json"), files)


def _parse_run(req: _Request) -> RunCommand:
    f = req.flags
    f.add_strings("mount")
    f.add_string("network", "default")
    f.add_string("security", "sandbox")
    f.add_strings("device")
    f.parse()
    return RunCommand(**req.base(), cmd=_cmd_line(req, False), flags_used=list(f.used))


def _parse_cmd(req: _Request) -> CmdCommand:
    req.flags.parse()
    return CmdCommand(**req.base(), cmd=_cmd_line(req, False))


def _parse_entrypoint(req: _Request) -> EntrypointCommand:
    req.flags.parse()
    return EntrypointCommand(**req.base(), cmd=_cmd_line(req, True))


def _interval(req: _Request, name: str) -> int:
    value = req.flags.get(name)
    if not value:
        return 0
    try:
        d = parse_go_duration(value)
    except ValueError as exc:
        raise InstructionError(str(exc)) from None
    if d == 0:
        return 0
    if d < 1_000_000:
        raise InstructionError(f"Interval {go_quote(name)} cannot be less than 1ms")
    return d


def _parse_healthcheck(req: _Request) -> HealthCheckCommand:
    if not req.args:
        raise InstructionError("HEALTHCHECK requires at least one argument")
    typ = req.args[0].upper()
    args = req.args[1:]
    if typ == "NONE":
        if args:
            raise InstructionError("HEALTHCHECK NONE takes no arguments")
        return HealthCheckCommand(**req.base(), health={"Test": [typ]})
    f = req.flags
    for name in ("interval", "timeout", "start-period", "start-interval", "retries"):
        f.add_string(name)
    f.parse()
    if typ != "CMD":
        raise InstructionError(f"Unknown type {go_quote(typ)} in HEALTHCHECK (try CMD)")
    cmd = _json_args(args, req.attributes)
    if not cmd:
        raise InstructionError("Missing command after HEALTHCHECK CMD")
    test = ["CMD" if req.attributes.get("json") else "CMD-SHELL", *cmd]
    health: dict[str, Any] = {
        "Test": test,
        "Interval": _interval(req, "interval"),
        "Timeout": _interval(req, "timeout"),
        "StartPeriod": _interval(req, "start-period"),
        "StartInterval": _interval(req, "start-interval"),
        "Retries": 0,
    }
    retries = f.get("retries")
    if retries:
        try:
            n = int(retries, 10)
            if not -(2**31) <= n < 2**31 or not retries.lstrip("+-").isdigit():
                raise ValueError
        except ValueError:
            raise InstructionError(f"strconv.ParseInt: parsing {go_quote(retries)}: invalid syntax") from None
        if n < 0:
            raise InstructionError(f"--retries cannot be negative ({n})")
        health["Retries"] = n
    return HealthCheckCommand(**req.base(), health=health)


def _parse_expose(req: _Request) -> ExposeCommand:
    if not req.args:
        raise InstructionError("EXPOSE requires at least one argument")
    req.flags.parse()
    return ExposeCommand(**req.base(), ports=sorted(req.args))


def _parse_user(req: _Request) -> UserCommand:
    if len(req.args) != 1:
        raise InstructionError("USER requires exactly one argument")
    req.flags.parse()
    return UserCommand(**req.base(), user=req.args[0])


def _parse_volume(req: _Request) -> VolumeCommand:
    if not req.args:
        raise InstructionError("VOLUME requires at least one argument")
    req.flags.parse()
    volumes = []
    for v in req.args:
        v = v.strip()
        if not v:
            raise InstructionError("VOLUME specified can not be an empty string")
        volumes.append(v)
    return VolumeCommand(**req.base(), volumes=volumes)


def _parse_stopsignal(req: _Request) -> StopSignalCommand:
    if len(req.args) != 1:
        raise InstructionError("STOPSIGNAL requires exactly one argument")
    return StopSignalCommand(**req.base(), signal=req.args[0])


def _parse_arg(req: _Request) -> ArgCommand:
    if not req.args:
        raise InstructionError("ARG requires at least one argument")
    defs = []
    for arg in req.args:
        if "=" in arg:
            key, value = arg.split("=", 1)
            if not key:
                raise InstructionError("ARG names can not be blank")
            defs.append(ArgDef(key, value))
        else:
            defs.append(ArgDef(arg, None))
    return ArgCommand(**req.base(), args=defs)


def _parse_shell(req: _Request) -> ShellCommand:
    req.flags.parse()
    shell = _json_args(req.args, req.attributes)
    if not shell:
        raise InstructionError("SHELL requires at least one argument")
    if not req.attributes.get("json"):
        raise InstructionError("SHELL requires the arguments to be in JSON form")
    return ShellCommand(**req.base(), shell=shell)


_PARSERS: dict[str, Callable[[_Request], Command | Stage]] = {
    "env": _parse_env,
    "maintainer": _parse_maintainer,
    "label": _parse_label,
    "add": _parse_add,
    "copy": _parse_copy,
    "from": _parse_from,
    "onbuild": _parse_onbuild,
    "workdir": _parse_workdir,
    "run": _parse_run,
    "cmd": _parse_cmd,
    "healthcheck": _parse_healthcheck,
    "entrypoint": _parse_entrypoint,
    "expose": _parse_expose,
    "user": _parse_user,
    "volume": _parse_volume,
    "stopsignal": _parse_stopsignal,
    "arg": _parse_arg,
    "shell": _parse_shell,
}
