"""The commands of running containers: run, start, stop, kill, restart, wait, logs, exec, top, attach.

Flags, output and exit statuses follow the docker CLI: `run` without -d exits with the
container's exit code (125 when the daemon fails, 126/127 when the command cannot be run),
`-t` puts the user's terminal in raw mode for a pty in the container, `-i` keeps stdin open,
--rm removes the container when it ends. `create` shares run's container flags.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .commands import CLIError, CommandTable, UsageError

if TYPE_CHECKING:
    from .commands import Context

# The runtime (runtime.manager: namespaces, cgroups, ctypes) and the service layer are imported by
# the commands that run, not here: this module is imported by every imagegraph command for its
# parser, and `create` shares its flags.

#: run, start, stop, kill, restart, wait, logs, attach, exec, top (cli.py adds them to its parser).
COMMANDS = CommandTable()

_RAM = re.compile(r"^(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$")
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
MIN_MEMORY = 6 * 1024 * 1024  # moby linuxMinMemory


def ram_in_bytes(value: str) -> int:
    """go-units RAMInBytes: 512m, 1g, 100MB, 1.5GiB (binary units)."""
    m = _RAM.match(value.strip())
    if not m:
        raise ValueError(f"invalid size: '{value}'")
    return int(float(m.group(1)) * _UNITS[(m.group(2) or "").lower()])


def _flag_error(flag: str, value: str, why: str) -> Exception:
    return UsageError(f'invalid argument "{value}" for "{flag}" flag: {why}')


def add_container_flags(p: argparse.ArgumentParser) -> None:
    """The flags `create` and `run` share (docker/cli's containerOptions, the ones this runtime has)."""
    help_action = p._option_string_actions.pop("-h", None)  # docker's -h is --hostname; --help stays
    if help_action is not None:
        help_action.option_strings = [o for o in help_action.option_strings if o != "-h"]
    p.add_argument("--name", help="Assign a name to the container")
    p.add_argument("-i", "--interactive", action="store_true", help="Keep STDIN open even if not attached")
    p.add_argument("-t", "--tty", action="store_true", help="Allocate a pseudo-TTY")
    p.add_argument("-e", "--env", action="append", default=[], help="Set environment variables")
    p.add_argument("--env-file", action="append", default=[], help="Read in a file of environment variables")
    p.add_argument("-w", "--workdir", default="", help="Working directory inside the container")
    p.add_argument("-u", "--user", default="", help="Username or UID (format: <name|uid>[:<group|gid>])")
    p.add_argument("--entrypoint", help="Overwrite the default ENTRYPOINT of the image")
    p.add_argument("-h", "--hostname", default="", help="Container host name")
    p.add_argument("--network", "--net", default="", help="Connect a container to a network: none (default) or host")
    p.add_argument("--read-only", action="store_true", help="Mount the container's root filesystem as read only")
    p.add_argument("--cap-add", action="append", default=[], help="Add Linux capabilities")
    p.add_argument("--cap-drop", action="append", default=[], help="Drop Linux capabilities")
    p.add_argument("--security-opt", action="append", default=[], help="Security Options (no-new-privileges)")
    p.add_argument("-m", "--memory", help="Memory limit")
    p.add_argument("--pids-limit", help="Tune container pids limit (set -1 for unlimited)")
    p.add_argument("--cpus", help="Number of CPUs")
    p.add_argument("--stop-signal", default="", help="Signal to stop the container")
    p.add_argument("--stop-timeout", type=int, help="Timeout (in seconds) to stop a container")
    p.add_argument("-l", "--label", action="append", default=[], help="Set meta data on a container")
    p.add_argument("--rm", action="store_true", help="Automatically remove the container when it exits")
    p.add_argument("image")
    p.add_argument("cmd", nargs=argparse.REMAINDER)


def _env_list(values: list[str], files: list[str]) -> list[str]:
    """docker/cli opts.ReadKVEnvStrings: files first, then -e; a bare NAME takes the client's value."""
    from .service import DaemonError

    out: list[str] = []
    for path in files:
        try:
            with open(path, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except OSError as exc:
            raise DaemonError(f"open {path}: {(exc.strerror or str(exc)).lower()}") from None
        for line in lines:
            line = line.strip()
            if line and not line.startswith("#"):
                out.append(line)
    out += values
    result = []
    for e in out:
        if "=" in e:
            result.append(e)
        elif e in os.environ:
            result.append(f"{e}={os.environ[e]}")
    return result


def container_request(a: argparse.Namespace, attach: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """The create request docker/cli builds from the flags: (container.Config, HostConfig)."""
    from .runtime.manager import ContainerRuntimeError, parse_signal
    from .service import DaemonError

    if a.memory:
        try:
            memory = ram_in_bytes(a.memory)
        except ValueError as exc:
            raise _flag_error("-m, --memory", a.memory, str(exc)) from None
        if 0 < memory < MIN_MEMORY:
            raise DaemonError("Minimum memory limit allowed is 6MB")
    else:
        memory = 0
    nano_cpus = 0
    if a.cpus:
        try:
            nano_cpus = round(float(a.cpus) * 1e9)
        except ValueError:
            raise _flag_error("--cpus", a.cpus, "failed to parse as a number") from None
        cpus = os.cpu_count() or 1
        if nano_cpus < 10_000_000 or nano_cpus > cpus * 1_000_000_000:
            raise DaemonError(f"Range of CPUs is from 0.01 to {cpus}.00, as there are only {cpus} CPUs available")
    pids = None
    if a.pids_limit is not None:
        try:
            pids = int(a.pids_limit)
        except ValueError:
            raise _flag_error("--pids-limit", a.pids_limit, "strconv.ParseInt: parsing: invalid syntax") from None
    labels = {}
    for lbl in a.label:
        k, _, v = lbl.partition("=")
        labels[k] = v
    config: dict[str, Any] = {
        "Hostname": a.hostname,
        "User": a.user,
        "AttachStdin": attach and a.interactive,
        "AttachStdout": attach,
        "AttachStderr": attach,
        "Tty": a.tty,
        "OpenStdin": a.interactive,
        "StdinOnce": attach and a.interactive,
        "Env": _env_list(a.env, a.env_file),
        "Cmd": list(a.cmd) or None,
        "WorkingDir": a.workdir,
        "Labels": labels or None,
        "StopSignal": a.stop_signal,
    }
    if a.entrypoint is not None:
        config["Entrypoint"] = [a.entrypoint] if a.entrypoint else [""]
    if a.stop_timeout is not None:
        config["StopTimeout"] = a.stop_timeout
    if a.stop_signal:
        try:
            parse_signal(a.stop_signal)
        except ContainerRuntimeError as exc:
            raise DaemonError(str(exc)) from None
    host: dict[str, Any] = {
        "NetworkMode": a.network or "default",
        "AutoRemove": a.rm,
        "ReadonlyRootfs": a.read_only,
        "CapAdd": a.cap_add or None,
        "CapDrop": a.cap_drop or None,
        "SecurityOpt": a.security_opt or None,
        "Memory": memory,
        "NanoCpus": nano_cpus,
        "PidsLimit": pids,
    }
    if a.tty:
        size = _terminal_size(sys.stdout)
        if size:
            host["ConsoleSize"] = list(size)
    return config, host


def _terminal_size(f: Any) -> tuple[int, int] | None:
    try:
        s = os.get_terminal_size(f.fileno())
    except (OSError, AttributeError, ValueError):
        return None
    return s.lines, s.columns


def _writer(stream: Any) -> Callable[[bytes], None]:
    """Bytes to a binary stream when there is one (a terminal, a pipe), decoded text otherwise."""
    buf = getattr(stream, "buffer", None)
    if buf is not None:

        def write(data: bytes) -> None:
            buf.write(data)
            buf.flush()

        return write

    def write_text(data: bytes) -> None:
        stream.write(data.decode("utf-8", errors="replace"))

    return write_text


def _stdin_fd() -> int | None:
    try:
        return sys.stdin.fileno()
    except (AttributeError, ValueError, OSError):
        return None


def _relay(ctx: Context, sock: Any, ref: str, stdin: bool, tty: bool, detach_keys: bytes, proxy: bool) -> int | None:
    from .runtime.manager import ContainerRuntimeError
    from .runtime.terminal import Relay
    from .service import DaemonError

    runtime = ctx.svc.runtime

    def send(sig: int) -> None:
        try:
            runtime.kill(ref, sig)
        except (DaemonError, ContainerRuntimeError):
            pass

    stdin_fd = _stdin_fd() if stdin else None
    tty_fd = None
    if tty:
        for candidate in (stdin_fd, _stdin_fd()):
            if candidate is not None and os.isatty(candidate):
                tty_fd = candidate
                break
    relay = Relay(
        sock,
        _writer(ctx.out),
        _writer(ctx.err),
        stdin_fd=stdin_fd,
        tty=tty,
        tty_fd=tty_fd,
        detach_keys=detach_keys,
        proxy=send if proxy and not tty else None,
    )
    try:
        return relay.run()
    finally:
        sock.close()


def _exit_after_relay(ctx: Context, ref: str, code: int | None) -> int:
    """The container's exit code; after a lost connection, what the store says (255 after a crash)."""
    from .service import DaemonError

    if code is not None:
        return code
    try:
        c = ctx.svc.runtime.get(ref)
    except DaemonError:
        return 0
    if c.state.get("Running"):
        return 0  # detached, or only the connection ended
    return int(c.state.get("ExitCode") or 0)


def _detach_keys(value: str) -> bytes:
    """--detach-keys, or docker's default ctrl-p,ctrl-q."""
    from .runtime.terminal import DETACH_KEYS, parse_detach_keys

    return parse_detach_keys(value) if value else DETACH_KEYS


def _check_tty(a: argparse.Namespace) -> None:
    if a.tty and a.interactive:
        fd = _stdin_fd()
        if fd is None or not os.isatty(fd):
            raise CLIError("the input device is not a TTY")


# ---- run, start ----------------------------------------------------------------------------------


def _setup_run(p: argparse.ArgumentParser) -> None:
    p.add_argument("-d", "--detach", action="store_true", help="Run container in background and print container ID")
    p.add_argument("--sig-proxy", default="true", help="Proxy received signals to the process (default true)")
    p.add_argument("--detach-keys", default="", help="Override the key sequence for detaching a container")
    add_container_flags(p)


@COMMANDS.command("run", "Create and run a new container from an image", setup=_setup_run)
def cmd_run(a: argparse.Namespace, ctx: Context) -> int:
    from .runtime.manager import AttachOptions, ContainerRuntimeError
    from .service import DaemonError

    if a.detach and a.rm:
        pass  # allowed since Docker 1.13: removed when it exits
    if not a.detach:
        _check_tty(a)
    config, host = container_request(a, attach=not a.detach)
    svc = ctx.svc
    c = svc.create_container(a.image, None, a.name, config=config, host_config=host)
    runtime = svc.runtime
    if a.detach:
        try:
            runtime.start(c.id)
        except ContainerRuntimeError as exc:
            raise DaemonError(str(exc)) from None
        ctx.print(c.id)
        return 0
    try:
        socks = runtime.start(c.id, AttachOptions(stdin=a.interactive, stdout=True, stderr=True))
    except ContainerRuntimeError as exc:
        ctx.err.write(f"Error response from daemon: {exc}\n")
        return exc.code
    assert socks is not None
    sock = socks[0]
    keys = _detach_keys(a.detach_keys)
    code = _relay(ctx, sock, c.id, a.interactive, a.tty, keys, a.sig_proxy.lower() != "false")
    return _exit_after_relay(ctx, c.id, code)


def _setup_start(p: argparse.ArgumentParser) -> None:
    p.add_argument("-a", "--attach", action="store_true", help="Attach STDOUT/STDERR and forward signals")
    p.add_argument("-i", "--interactive", action="store_true", help="Attach container's STDIN")
    p.add_argument("--detach-keys", default="")
    p.add_argument("containers", nargs="+")


@COMMANDS.command("start", "Start one or more stopped containers", setup=_setup_start)
def cmd_start(a: argparse.Namespace, ctx: Context) -> int:
    from .cli import _each
    from .runtime.manager import AttachOptions, ContainerRuntimeError
    from .service import DaemonError

    runtime = ctx.svc.runtime
    if a.attach or a.interactive:
        if len(a.containers) > 1:
            raise CLIError("you cannot start and attach multiple containers at once")
        ref = a.containers[0]
        c = runtime.get(ref)
        tty = bool(c.config.get("Tty"))
        try:
            socks = runtime.start(ref, AttachOptions(stdin=a.interactive, stdout=True, stderr=True))
        except ContainerRuntimeError as exc:
            ctx.err.write(f"Error response from daemon: {exc}\n")
            return exc.code
        # already running: attach to it
        sock = socks[0] if socks else runtime.attach(ref, AttachOptions(stdin=a.interactive))
        keys = _detach_keys(a.detach_keys)
        return _exit_after_relay(ctx, ref, _relay(ctx, sock, ref, a.interactive, tty, keys, True))

    def start(ref: str) -> None:
        try:
            runtime.start(ref)
        except ContainerRuntimeError as exc:
            raise DaemonError(str(exc)) from None
        ctx.print(ref)

    return _each(ctx, a.containers, start)


# ---- stop, kill, restart, wait ------------------------------------------------------------------


def _setup_stop(p: argparse.ArgumentParser) -> None:
    p.add_argument("-s", "--signal", default="", help="Signal to send to the container")
    p.add_argument("-t", "--time", "--timeout", dest="time", type=int, help="Seconds to wait before killing it")
    p.add_argument("containers", nargs="+")


def _each_runtime(ctx: Context, names: list[str], action: Callable[[str], None]) -> int:
    from .cli import _each
    from .runtime.manager import ContainerRuntimeError
    from .service import DaemonError

    def wrapped(ref: str) -> None:
        try:
            action(ref)
        except ContainerRuntimeError as exc:
            raise DaemonError(str(exc)) from None

    return _each(ctx, names, wrapped)


@COMMANDS.command("stop", "Stop one or more running containers", setup=_setup_stop)
def cmd_stop(a: argparse.Namespace, ctx: Context) -> int:
    runtime = ctx.svc.runtime

    def stop(ref: str) -> None:
        runtime.stop(ref, a.time, a.signal or None)
        ctx.print(ref)

    return _each_runtime(ctx, a.containers, stop)


def _setup_kill(p: argparse.ArgumentParser) -> None:
    p.add_argument("-s", "--signal", default="KILL", help="Signal to send to the container")
    p.add_argument("containers", nargs="+")


@COMMANDS.command("kill", "Kill one or more running containers", setup=_setup_kill)
def cmd_kill(a: argparse.Namespace, ctx: Context) -> int:
    runtime = ctx.svc.runtime

    def kill(ref: str) -> None:
        runtime.kill(ref, a.signal)
        ctx.print(ref)

    return _each_runtime(ctx, a.containers, kill)


@COMMANDS.command("restart", "Restart one or more containers", setup=_setup_stop)
def cmd_restart(a: argparse.Namespace, ctx: Context) -> int:
    runtime = ctx.svc.runtime

    def restart(ref: str) -> None:
        runtime.restart(ref, a.time)
        ctx.print(ref)

    return _each_runtime(ctx, a.containers, restart)


def _setup_wait(p: argparse.ArgumentParser) -> None:
    p.add_argument("containers", nargs="+")


@COMMANDS.command("wait", "Block until one or more containers stop, then print their exit codes", setup=_setup_wait)
def cmd_wait(a: argparse.Namespace, ctx: Context) -> int:
    runtime = ctx.svc.runtime

    def wait(ref: str) -> None:
        code, _ = runtime.wait(ref)
        ctx.print(str(code))

    return _each_runtime(ctx, a.containers, wait)


# ---- logs, attach, exec, top ----------------------------------------------------------------------


def _setup_logs(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--follow", action="store_true", help="Follow log output")
    p.add_argument("-t", "--timestamps", action="store_true", help="Show timestamps")
    p.add_argument(
        "-n", "--tail", default="all", help='Number of lines to show from the end of the logs (default "all")'
    )
    p.add_argument("--since", default="", help="Show logs since timestamp or relative (e.g. 42m)")
    p.add_argument("--until", default="", help="Show logs before a timestamp or relative (e.g. 42m)")
    p.add_argument("container")


@COMMANDS.command("logs", "Fetch the logs of a container", setup=_setup_logs)
def cmd_logs(a: argparse.Namespace, ctx: Context) -> int:
    from .runtime.jsonlog import LogQuery, format_ns, parse_time_arg
    from .service import DaemonError

    tail = -1
    if a.tail != "all":
        try:
            tail = int(a.tail)
        except ValueError:
            raise UsageError(f'invalid argument "{a.tail}" for "-n, --tail" flag: not a number') from None
    try:
        since = parse_time_arg(a.since, ctx.now)
        until = parse_time_arg(a.until, ctx.now) if a.until else 0
    except ValueError as exc:
        raise DaemonError(str(exc)) from None
    query = LogQuery(since_ns=since, until_ns=until, tail=tail if tail >= 0 else -1, follow=a.follow)
    out, err = _writer(ctx.out), _writer(ctx.err)
    for e in ctx.svc.runtime.logs(a.container, query):
        data = (format_ns(e.time_ns).encode() + b" " + e.data) if a.timestamps else e.data
        (err if e.stream == "stderr" else out)(data)
    return 0


def _setup_attach(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-stdin", action="store_true", help="Do not attach STDIN")
    p.add_argument("--sig-proxy", default="true", help="Proxy all received signals to the process")
    p.add_argument("--detach-keys", default="")
    p.add_argument("container")


@COMMANDS.command(
    "attach", "Attach local standard input, output, and error streams to a running container", setup=_setup_attach
)
def cmd_attach(a: argparse.Namespace, ctx: Context) -> int:
    from .runtime.manager import AttachOptions, ContainerRuntimeError
    from .service import DaemonError

    runtime = ctx.svc.runtime
    c = runtime.get(a.container)
    if not c.state.get("Running"):  # the docker CLI's own check, before it asks the daemon
        raise CLIError("You cannot attach to a stopped container, start it first")
    stdin = bool(c.config.get("OpenStdin")) and not a.no_stdin
    tty = bool(c.config.get("Tty"))
    if tty and stdin:
        fd = _stdin_fd()
        if fd is None or not os.isatty(fd):
            raise CLIError("the input device is not a TTY")
    try:
        sock = runtime.attach(a.container, AttachOptions(stdin=stdin))
    except ContainerRuntimeError as exc:
        raise DaemonError(str(exc)) from None
    keys = _detach_keys(a.detach_keys)
    code = _relay(ctx, sock, c.id, stdin, tty, keys, a.sig_proxy.lower() != "false")
    return _exit_after_relay(ctx, c.id, code)


def _setup_exec(p: argparse.ArgumentParser) -> None:
    p.add_argument("-d", "--detach", action="store_true", help="Detached mode: run command in the background")
    p.add_argument("-i", "--interactive", action="store_true", help="Keep STDIN open even if not attached")
    p.add_argument("-t", "--tty", action="store_true", help="Allocate a pseudo-TTY")
    p.add_argument("-e", "--env", action="append", default=[], help="Set environment variables")
    p.add_argument("--env-file", action="append", default=[])
    p.add_argument("-w", "--workdir", default="", help="Working directory inside the container")
    p.add_argument("-u", "--user", default="", help="Username or UID (format: <name|uid>[:<group|gid>])")
    p.add_argument("--privileged", action="store_true", help="Give extended privileges to the command")
    p.add_argument("container")
    p.add_argument("cmd", nargs=argparse.REMAINDER)


@COMMANDS.command("exec", "Execute a command in a running container", setup=_setup_exec)
def cmd_exec(a: argparse.Namespace, ctx: Context) -> int:
    from .runtime.manager import ContainerRuntimeError, ExecConfig, NotRunning
    from .service import DaemonError

    if not a.cmd:
        raise UsageError('"docker exec" requires at least 2 arguments.')
    _check_tty(a)
    cfg = ExecConfig(
        cmd=list(a.cmd),
        env=_env_list(a.env, a.env_file),
        workdir=a.workdir,
        user=a.user,
        tty=a.tty,
        privileged=a.privileged,
        detach=a.detach,
    )
    runtime = ctx.svc.runtime
    if a.detach:
        try:
            runtime.exec(a.container, cfg)
        except ContainerRuntimeError as exc:
            raise DaemonError(str(exc)) from None
        return 0
    stdin_fd = _stdin_fd() if a.interactive else None
    if a.tty:
        try:
            proc = runtime.exec(a.container, cfg)
        except NotRunning as exc:
            raise DaemonError(str(exc)) from None
        except ContainerRuntimeError as exc:
            ctx.err.write(f"{exc}\n")
            return exc.code
        assert proc.master is not None
        return _pty_relay(ctx, proc, stdin_fd)
    out_fd = _fileno(ctx.out)
    err_fd = _fileno(ctx.err)
    import subprocess

    try:
        proc = runtime.exec(
            a.container,
            cfg,
            stdin=stdin_fd,
            stdout=out_fd if out_fd is not None else subprocess.PIPE,
            stderr=err_fd if err_fd is not None else subprocess.PIPE,
        )
    except NotRunning as exc:
        raise DaemonError(str(exc)) from None
    except ContainerRuntimeError as exc:
        ctx.err.write(f"{exc}\n")
        return exc.code
    out, err = proc.helper.communicate()
    if out:
        _writer(ctx.out)(out)
    if err:
        _writer(ctx.err)(err)
    return proc.helper.returncode


def _fileno(stream: Any) -> int | None:
    try:
        stream.flush()
        return int(stream.fileno())
    except (AttributeError, ValueError, OSError):
        return None


def _pty_relay(ctx: Context, proc: Any, stdin_fd: int | None) -> int:
    """exec -t: the user's terminal ↔ the exec'd process's pty master, until it ends."""
    import selectors

    from .runtime.monitor import set_winsize
    from .runtime.terminal import raw_terminal, terminal_size

    master = proc.master
    size = terminal_size(stdin_fd) if stdin_fd is not None else None
    if size:
        set_winsize(master, *size)
    out = _writer(ctx.out)
    sel = selectors.DefaultSelector()
    sel.register(master, selectors.EVENT_READ, "pty")
    if stdin_fd is not None:
        sel.register(stdin_fd, selectors.EVENT_READ, "stdin")
    try:
        with raw_terminal(stdin_fd):
            done = False
            while not done:
                for key, _ in sel.select():
                    if key.data == "pty":
                        try:
                            data = os.read(master, 65536)
                        except OSError:
                            data = b""
                        if not data:
                            done = True
                            break
                        out(data)
                    else:
                        data = os.read(int(key.fd), 65536)
                        if not data:
                            sel.unregister(key.fd)
                            continue
                        os.write(master, data)
    finally:
        sel.close()
        os.close(master)
    return int(proc.wait())


def _setup_top(p: argparse.ArgumentParser) -> None:
    p.add_argument("container")
    p.add_argument("ps_args", nargs=argparse.REMAINDER)


@COMMANDS.command("top", "Display the running processes of a container", setup=_setup_top, readonly=True)
def cmd_top(a: argparse.Namespace, ctx: Context) -> int:
    from .runtime.manager import ContainerRuntimeError
    from .service import DaemonError

    try:
        res = ctx.svc.runtime.top(a.container, " ".join(a.ps_args) or "-ef")
    except ContainerRuntimeError as exc:
        raise DaemonError(str(exc)) from None
    ctx.out.write(top_table(res["Titles"], res["Processes"]))
    return 0


def top_table(titles: list[str], rows: list[list[str]]) -> str:
    """docker top's tabwriter (minwidth 20, padding 3): every column but the last padded."""
    lines = [titles, *rows]
    widths = [max(20, max(len(r[i]) for r in lines if i < len(r)) + 3) for i in range(len(titles) - 1)]
    out = []
    for r in lines:
        cells = [c.ljust(w) for c, w in zip(r[:-1], widths, strict=False)] + r[-1:]
        out.append("".join(cells))
    return "".join(line + "\n" for line in out)
