"""One function per instruction (moby builder/dockerfile/dispatchers.go, dispatchers_unix.go).

Each changes the build's configuration and commits the step, with the `created_by` text the
classic builder writes: `ENV A=b` (keys and values as expanded), `CMD ["/bin/sh" "-c" "x"]`
(Go's %q of the command), `VOLUME [/data]` (Go's %v), `HEALTHCHECK &{Test:[…] Interval:30s …}`.
RUN runs a container; COPY and ADD are in `copier`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from ..runtime.manager import ContainerRuntimeError, parse_signal
from . import instructions as ins
from .dockerignore import go_clean
from .gotext import go_duration, go_list, go_quote_list
from .internals import BuildError, DispatchState, copy_run_config, get_shell, with_cmd_comment_string
from .parser import chomp_heredoc_content, parse_heredoc
from .shell_lex import Lex, ShellError

if TYPE_CHECKING:
    from .evaluator import Builder


BUILDKIT_ONLY = (
    "the --{} option requires BuildKit. Refer to https://docs.docker.com/go/buildkit/ "
    "to learn how to build images with BuildKit enabled"
)


def dispatch_env(b: Builder, state: DispatchState, c: ins.EnvCommand) -> None:
    cfg = state.run_config
    env = list(cfg.get("Env") or [])
    message = "ENV"
    for kv in c.env:
        new = str(kv)
        message += " " + new
        for i, e in enumerate(env):
            if e.split("=", 1)[0] == kv.key:
                env[i] = new
                break
        else:
            env.append(new)
    cfg["Env"] = env
    b.internals.commit(state, message)


def dispatch_maintainer(b: Builder, state: DispatchState, c: ins.MaintainerCommand) -> None:
    state.maintainer = c.maintainer
    b.internals.commit(state, "MAINTAINER " + c.maintainer)


def dispatch_label(b: Builder, state: DispatchState, c: ins.LabelCommand) -> None:
    labels = dict(state.run_config.get("Labels") or {})
    message = "LABEL"
    for kv in c.labels:
        labels[kv.key] = kv.value
        message += " " + str(kv)
    state.run_config["Labels"] = labels
    b.internals.commit(state, message)


def dispatch_onbuild(b: Builder, state: DispatchState, c: ins.OnbuildCommand) -> None:
    state.run_config["OnBuild"] = [*(state.run_config.get("OnBuild") or []), c.expression]
    b.internals.commit(state, "ONBUILD " + c.expression)


def normalize_workdir(current: str, requested: str) -> str:
    if not requested:
        raise BuildError("cannot normalize nothing")
    if not requested.startswith("/"):
        return go_clean("/" + current + "/" + requested)
    return go_clean(requested)


def dispatch_workdir(b: Builder, state: DispatchState, c: ins.WorkdirCommand) -> None:
    """WORKDIR: the directory is made now, in a container's top layer (a layer if it is new)."""
    cfg = state.run_config
    cfg["WorkingDir"] = normalize_workdir(cfg.get("WorkingDir") or "", c.path)
    if b.internals.disable_commit:
        return
    config = with_cmd_comment_string(cfg, "WORKDIR " + cfg["WorkingDir"])
    if b.internals.probe_cache(state, config):
        return
    container = b.internals.create(state, config)
    from .copier import make_workdir

    make_workdir(b.internals.union(container), cfg["WorkingDir"])
    b.internals.commit_container(state, container, config)


def heredoc_command(c: ins.RunCommand) -> list[str] | None:
    """A RUN whose command is a heredoc, as buildkit runs it: the document is the script."""
    args = c.cmd.args
    if not c.cmd.files:
        return args
    if args is None or len(args) != 1 or not c.cmd.prepend_shell:
        raise BuildError(f"parsing produced an invalid run command: {go_list(args)}")
    if parse_heredoc(args[0]) is not None:
        first = c.cmd.files[0]
        return [chomp_heredoc_content(first.data) if first.chomp else first.data]
    script = args[0]
    for f in c.cmd.files:
        script += "\n" + f.data + f.name
    return [script]


def resolve_cmd_line(cmd: list[str] | None, prepend_shell: bool, cfg: dict[str, Any]) -> list[str] | None:
    if prepend_shell and cmd is not None:
        return [*get_shell(cfg), *cmd]
    return cmd


def prepend_env_on_cmd(state: DispatchState, build_args: list[str], cmd: list[str]) -> list[str]:
    """`|N K=V … cmd`: the build args RUN saw, so a changed arg misses the cache."""
    env = sorted(e for e in build_args if state.build_args.is_referenced_or_not_builtin(e.split("=", 1)[0]))
    return [f"|{len(env)}", *env, *cmd]


def dispatch_run(b: Builder, state: DispatchState, c: ins.RunCommand) -> None:
    if c.flags_used:
        raise BuildError(BUILDKIT_ONLY.format(c.flags_used[0]))
    cfg = state.run_config
    cmd = resolve_cmd_line(heredoc_command(c), c.cmd.prepend_shell, cfg) or []
    build_args = state.build_args.filter_allowed(cfg.get("Env"))
    save_cmd = prepend_env_on_cmd(state, build_args, cmd) if build_args else cmd
    probe = copy_run_config(cfg, Cmd=save_cmd)
    probe.pop("ArgsEscaped", None)
    if save_cmd:
        probe["Entrypoint"] = None
    if b.internals.probe_cache(state, probe):
        return
    run_config = copy_run_config(cfg, Cmd=cmd, Env=[*(cfg.get("Env") or []), *build_args])
    run_config.pop("ArgsEscaped", None)
    run_config["Healthcheck"] = {"Test": ["NONE"]}
    if save_cmd:
        run_config["Entrypoint"] = [""]
    container = b.internals.create(state, run_config)
    code = b.internals.run(container)
    if code != 0:
        raise BuildError(f"The command '{' '.join(cmd)}' returned a non-zero code: {code}", code)
    b.internals.commit_container(state, container, probe)


def dispatch_cmd(b: Builder, state: DispatchState, c: ins.CmdCommand) -> None:
    cfg = state.run_config
    cmd = resolve_cmd_line(c.cmd.args, c.cmd.prepend_shell, cfg)
    cfg["Cmd"] = cmd
    cfg.pop("ArgsEscaped", None)
    b.internals.commit(state, "CMD " + go_quote_list(cmd))
    if c.cmd.args:
        state.cmd_set = True


def health_text(hc: dict[str, Any]) -> str:
    """Go's %+v of a *HealthConfig."""
    keys = ("Interval", "Timeout", "StartPeriod", "StartInterval")
    durations = " ".join(f"{k}:{go_duration(int(hc.get(k) or 0))}" for k in keys)
    return f"&{{Test:{go_list(hc.get('Test'))} {durations} Retries:{int(hc.get('Retries') or 0)}}}"


def dispatch_healthcheck(b: Builder, state: DispatchState, c: ins.HealthCheckCommand) -> None:
    cfg = state.run_config
    old = cfg.get("Healthcheck")
    if old and old.get("Test") and old["Test"][0] != "NONE":
        b.out.stdout(f"Note: overriding previous HEALTHCHECK: {go_list(old['Test'])}\n")
    cfg["Healthcheck"] = {k: v for k, v in c.health.items() if v or k == "Test"}
    b.internals.commit(state, "HEALTHCHECK " + health_text(c.health))


def dispatch_entrypoint(b: Builder, state: DispatchState, c: ins.EntrypointCommand) -> None:
    cfg = state.run_config
    cfg["Entrypoint"] = resolve_cmd_line(c.cmd.args, c.cmd.prepend_shell, cfg)
    cfg.pop("ArgsEscaped", None)
    if not state.cmd_set:
        cfg["Cmd"] = None
    b.internals.commit(state, "ENTRYPOINT " + go_quote_list(cfg["Entrypoint"]))


_PORT_RANGE = re.compile(r"^(\d+)(?:-(\d+))?\Z")


def parse_port_specs(ports: list[str]) -> list[str]:
    """`80`, `80/udp`, `8000-8002`, `1.2.3.4:80:80`: the `port/proto` keys EXPOSE adds (go-connections nat)."""
    out: list[str] = []
    for raw in ports:
        parts = raw.split(":")
        container = parts[-1]
        port, _, proto = container.partition("/")
        if not port:
            raise BuildError(f"no port specified: {raw}<empty>")
        proto = (proto or "tcp").lower()
        if proto not in ("tcp", "udp", "sctp"):
            raise BuildError("invalid proto: " + proto)
        m = _PORT_RANGE.match(port)
        if not m or int(m.group(1)) > 65535 or int(m.group(2) or m.group(1)) > 65535:
            raise BuildError("invalid containerPort: " + port)
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if hi < lo:
            raise BuildError("invalid containerPort: " + port)
        out += [f"{n}/{proto}" for n in range(lo, hi + 1)]
    return out


def dispatch_expose(b: Builder, state: DispatchState, c: ins.ExposeCommand, envs: dict[str, str]) -> None:
    ports: list[str] = []
    for p in c.ports:
        try:
            ports += b.shlex.process_words(p, envs)
        except ShellError as exc:
            raise BuildError(str(exc)) from None
    exposed = dict(state.run_config.get("ExposedPorts") or {})
    for key in parse_port_specs(ports):
        exposed[key] = {}
    state.run_config["ExposedPorts"] = exposed
    b.internals.commit(state, "EXPOSE " + " ".join(ports))


def dispatch_user(b: Builder, state: DispatchState, c: ins.UserCommand) -> None:
    state.run_config["User"] = c.user
    b.internals.commit(state, "USER " + c.user)


def dispatch_volume(b: Builder, state: DispatchState, c: ins.VolumeCommand) -> None:
    volumes = dict(state.run_config.get("Volumes") or {})
    for v in c.volumes:
        if not v:
            raise BuildError("VOLUME specified can not be an empty string")
        volumes[v] = {}
    state.run_config["Volumes"] = volumes
    b.internals.commit(state, "VOLUME " + go_list(c.volumes))


def dispatch_stopsignal(b: Builder, state: DispatchState, c: ins.StopSignalCommand) -> None:
    try:
        parse_signal(c.signal)
    except ContainerRuntimeError as exc:
        raise BuildError(str(exc)) from None
    state.run_config["StopSignal"] = c.signal
    b.internals.commit(state, "STOPSIGNAL " + c.signal)


def dispatch_arg(b: Builder, state: DispatchState, c: ins.ArgCommand) -> None:
    parts = []
    for arg in c.args:
        parts.append(str(arg))
        state.build_args.add_arg(arg.key, arg.value)
    b.internals.commit(state, "ARG " + " ".join(parts))


def dispatch_shell(b: Builder, state: DispatchState, c: ins.ShellCommand) -> None:
    state.run_config["Shell"] = list(c.shell)
    b.internals.commit(state, "SHELL " + go_list(c.shell))


def expand_word(lex: Lex, word: str, envs: dict[str, str]) -> str:
    try:
        return lex.process_word(word, envs)
    except ShellError as exc:
        raise BuildError(str(exc)) from None


__all__ = ["BUILDKIT_ONLY", "normalize_workdir", "parse_port_specs", "health_text", "expand_word"]
