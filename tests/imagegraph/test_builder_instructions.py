"""Typed instructions and stages: shapes, flags, expansion, and buildkit's error texts with the line."""

from __future__ import annotations

import pytest

from imagegraph.builder.instructions import (
    AddCommand,
    ArgCommand,
    CmdCommand,
    CopyCommand,
    EntrypointCommand,
    EnvCommand,
    ExposeCommand,
    HealthCheckCommand,
    InstructionError,
    OnbuildCommand,
    RunCommand,
    ShellCommand,
    parse_dockerfile,
)
from imagegraph.builder.parser import parse
from imagegraph.builder.shell_lex import Lex


def _stages(text: str):
    return parse_dockerfile(parse(text).ast)


def test_stages_and_meta_args() -> None:
    stages, meta = _stages(
        "ARG V=1\nFROM --platform=linux/amd64 busybox:$V AS Build\nRUN x\nFROM scratch\nCOPY --from=build /a /b\n"
    )
    assert [a.args[0].key for a in meta] == ["V"]
    assert [(s.name, s.base_name, s.platform, s.source_code) for s in stages] == [
        ("build", "busybox:$V", "linux/amd64", "FROM --platform=linux/amd64 busybox:$V AS Build"),
        ("", "scratch", "", "FROM scratch"),
    ]
    copy = stages[1].commands[0]
    assert isinstance(copy, CopyCommand) and copy.from_ == "build" and str(copy) == "COPY --from=build /a /b"


def test_shell_and_exec_forms() -> None:
    (stage,), _ = _stages('FROM x\nRUN echo  hi\nCMD ["a", "b"]\nENTRYPOINT []\nSHELL ["/bin/bash", "-c"]\n')
    run, cmd, ep, sh = stage.commands
    assert isinstance(run, RunCommand) and run.cmd.args == ["echo  hi"] and run.cmd.prepend_shell
    assert isinstance(cmd, CmdCommand) and cmd.cmd.args == ["a", "b"] and not cmd.cmd.prepend_shell
    assert isinstance(ep, EntrypointCommand) and ep.cmd.args is None
    assert isinstance(sh, ShellCommand) and sh.shell == ["/bin/bash", "-c"]


def test_env_expansion() -> None:
    (stage,), _ = _stages('FROM x\nENV A="b c" D=${E:-e}\\ f\n')
    env = stage.commands[0]
    assert isinstance(env, EnvCommand)
    env.expand(lambda w: Lex().process_word(w, {}))
    assert [str(kv) for kv in env.env] == ["A=b c", "D=e f"]


def test_healthcheck() -> None:
    (stage,), _ = _stages("FROM x\nHEALTHCHECK --interval=30s --retries=3 CMD curl -f http://x/\nHEALTHCHECK NONE\n")
    hc, none = stage.commands
    assert isinstance(hc, HealthCheckCommand) and hc.health == {
        "Test": ["CMD-SHELL", "curl -f http://x/"],
        "Interval": 30_000_000_000,
        "Timeout": 0,
        "StartPeriod": 0,
        "StartInterval": 0,
        "Retries": 3,
    }
    assert isinstance(none, HealthCheckCommand) and none.health == {"Test": ["NONE"]}


def test_expose_sorted_and_onbuild_expression() -> None:
    (stage,), _ = _stages("FROM x\nEXPOSE 8080 80/udp 443\nonbuild   RUN echo hi\n")
    expose, onbuild = stage.commands
    assert isinstance(expose, ExposeCommand) and expose.ports == ["443", "80/udp", "8080"]
    assert isinstance(onbuild, OnbuildCommand) and onbuild.expression == "RUN echo hi"


def test_copy_heredoc_and_add_flags() -> None:
    (stage,), _ = _stages("FROM x\nCOPY <<EOF /etc/motd\nhello\nEOF\nADD --chown=1:2 --chmod=644 a.tar /\n")
    copy, add = stage.commands
    assert isinstance(copy, CopyCommand) and copy.files.sources == []
    assert [(c.path, c.data) for c in copy.files.contents] == [("EOF", "hello\n")]
    assert isinstance(add, AddCommand) and (add.chown, add.chmod, add.files.sources) == ("1:2", "644", ["a.tar"])


def test_arg_forms() -> None:
    (stage,), _ = _stages("FROM x\nARG A B=2 C=\n")
    arg = stage.commands[0]
    assert isinstance(arg, ArgCommand) and [str(a) for a in arg.args] == ["A", "B=2", "C="]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("FROM x\nENV\n", "dockerfile parse error on line 2: ENV requires at least one argument"),
        ("FROM x\nCOPY a\n", "dockerfile parse error on line 2: COPY requires at least two arguments"),
        ("FROM x\nCOPY --form=a b c\n", "dockerfile parse error on line 2: unknown flag: --form (did you mean from?)"),
        ("FROM x\nRUNN true\n", "dockerfile parse error on line 2: unknown instruction: RUNN (did you mean RUN?)"),
        ("FROM x\nfrum y\n", "dockerfile parse error on line 2: unknown instruction: frum (did you mean from?)"),
        ("FROM x AS 1st\n", 'dockerfile parse error on line 1: invalid name for build stage: "1st"'),
        ("FROM a b\n", "dockerfile parse error on line 1: FROM requires either one or three arguments"),
        ("RUN x\n", "dockerfile parse error on line 1: no build stage in current context"),
        ("FROM x\nONBUILD ONBUILD RUN x\n", "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
        ("FROM x\nONBUILD FROM y\n", "FROM isn't allowed as an ONBUILD trigger"),
        ("FROM x\nSHELL /bin/sh -c\n", "SHELL requires the arguments to be in JSON form"),
        ("FROM x\nHEALTHCHECK --interval=1us CMD x\n", 'Interval "interval" cannot be less than 1ms'),
        ("FROM x\nHEALTHCHECK --timeout=5 CMD x\n", 'time: missing unit in duration "5"'),
        ("FROM x\nHEALTHCHECK WAT x\n", 'Unknown type "WAT" in HEALTHCHECK (try CMD)'),
        ("FROM x\nSTOPSIGNAL\n", "STOPSIGNAL requires exactly one argument"),
        ("FROM x\nCOPY a <<EOF\nx\nEOF\n", "COPY cannot accept a heredoc as a destination"),
        ('FROM x\nVOLUME [""]\n', "VOLUME specified can not be an empty string"),
        ("FROM x\nCOPY --chown a b\n", "missing a value on flag: --chown"),
    ],
)
def test_errors_name_the_line(text: str, message: str) -> None:
    with pytest.raises(InstructionError) as exc:
        _stages(text)
    assert message in str(exc.value)
    assert str(exc.value).startswith("dockerfile parse error on line ")
