"""`imagegraph build`: docker build with the classic builder, without a daemon.

The command does the client's half as the docker CLI does it (the context tar, `.dockerignore`,
`-f -`, `-` on stdin, `Sending build context to Docker daemon  12.29kB`) and hands the tar to
the same builder the daemon's `POST /build` runs. Flags are `docker build`'s (the classic
builder's ones). Errors are one line; a failed RUN exits with the command's exit code, as
`docker build` does.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

from .commands import DAEMON_PREFIX, CLIError, CommandTable, Context, UsageError
from .formatting import human_size
from .reference import InvalidReference, parse_normalized_named

if TYPE_CHECKING:
    from .builder.internals import BuildOptions

#: build (cli.py adds it to its parser).
COMMANDS = CommandTable()


def _bool_flag(value: str) -> bool:
    v = value.lower()
    if v in ("1", "t", "true"):
        return True
    if v in ("0", "f", "false"):
        return False
    raise argparse.ArgumentTypeError(
        f'invalid argument "{value}": strconv.ParseBool: parsing "{value}": invalid syntax'
    )


def _setup(p: argparse.ArgumentParser) -> None:
    p.add_argument("-t", "--tag", action="append", default=[], help="Name and optionally a tag (name:tag)")
    p.add_argument("-f", "--file", default="", help="Name of the Dockerfile (default: PATH/Dockerfile)")
    p.add_argument("--build-arg", action="append", default=[], help="Set build-time variables")
    p.add_argument("--label", action="append", default=[], help="Set metadata for an image")
    p.add_argument("--no-cache", action="store_true", help="Do not use cache when building the image")
    p.add_argument("--pull", action="store_true", help="Always attempt to pull a newer version of the image")
    p.add_argument("--target", default="", help="Set the target build stage to build")
    p.add_argument("-q", "--quiet", action="store_true", help="Suppress the build output and print image ID on success")
    p.add_argument(
        "--rm",
        nargs="?",
        const=True,
        default=True,
        type=_bool_flag,
        help="Remove intermediate containers after a successful build (default true; --rm=false keeps them)",
    )
    p.add_argument("--force-rm", action="store_true", help="Always remove intermediate containers")
    p.add_argument("--platform", default="", help="Set platform if server is multi-platform capable")
    p.add_argument("--network", default="", help="Networking mode for the RUN instructions: none (default) or host")
    p.add_argument("--iidfile", default="", help="Write the image ID to the file")
    p.add_argument("context", metavar="PATH|-")


def build_args(values: list[str]) -> dict[str, str | None]:
    """`--build-arg K=V`, or `K` alone: the client's $K if set, else a name with no value."""
    out: dict[str, str | None] = {}
    for v in values:
        k, eq, val = v.partition("=")
        if eq:
            out[k] = val
        else:
            out[k] = os.environ.get(k)
    return out


def labels(values: list[str]) -> dict[str, str]:
    return {k: val for k, _, val in (v.partition("=") for v in values)}


def options_from(a: argparse.Namespace) -> BuildOptions:
    from .builder.internals import BuildOptions

    for tag in a.tag:
        try:
            parse_normalized_named(tag)
        except InvalidReference as exc:
            raise UsageError(f'invalid argument "{tag}" for "-t, --tag" flag: {exc}') from None
    return BuildOptions(
        tags=list(a.tag),
        build_args=build_args(a.build_arg),
        labels=labels(a.label),
        no_cache=a.no_cache,
        remove=a.rm or a.force_rm,
        force_remove=a.force_rm,
        pull=a.pull,
        target=a.target,
        platform=a.platform,
        network_mode=a.network,
    )


def _terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


@COMMANDS.command("build", "Build an image from a Dockerfile (the classic builder)", setup=_setup)
def cmd_build(a: argparse.Namespace, ctx: Context) -> int:
    # The builder is imported here, not at start-up: it is a fifth of every other command's.
    from .builder.backend import build
    from .builder.context import ContextError, prepare
    from .builder.internals import BuildError
    from .builder.output import BufferedOutput, BuildOutput

    options = options_from(a)
    if a.iidfile:
        try:
            os.remove(a.iidfile)
        except FileNotFoundError:
            pass
    try:
        client = prepare(a.context, a.file, sys.stdin.buffer if "-" in (a.context, a.file) else None)
    except ContextError as exc:
        raise CLIError(str(exc)) from None
    options.dockerfile = client.dockerfile
    if a.quiet:
        out: BuildOutput = BufferedOutput()
    else:
        ctx.out.write(f"Sending build context to Docker daemon {human_size(client.size, 4):>8}\n")
        ctx.out.flush()

        def write(text: str) -> None:
            ctx.out.write(text)
            ctx.out.flush()

        out = BuildOutput(write, color=_terminal(ctx.out))
    try:
        image_id = build(ctx.svc, options, client.body, out)
    except BuildError as exc:
        if isinstance(out, BufferedOutput):
            ctx.err.write(out.text)
        ctx.err.write((DAEMON_PREFIX if not out.started else "") + f"{exc}\n")
        return exc.code or 1
    finally:
        client.body.close()
    if a.quiet:
        ctx.print(image_id)
    if a.iidfile:
        with open(a.iidfile, "w") as f:
            f.write(image_id)
    return 0
