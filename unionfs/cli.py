"""The `layerfs` command.

Subcommands that need no mount: `tree`, `explain`, `trace`. Mounting (`mount`, `umount`, and
the forms mount.fuse and containers-storage use: `layerfs [SOURCE] MOUNTPOINT -o OPTIONS`)
and `-V`/`--version` live in `cli_mount`. Every error is one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing on the mount's path
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence
    from typing import NoReturn, Protocol

    from .union import Union

    class Stream(Protocol):
        def isatty(self) -> bool: ...

# Only what every command needs is imported here: containers-storage runs `layerfs -o … MNT`
# for every mount, and that path goes straight to cli_mount, without the tree and trace code.

PROG = "layerfs"


class UsageError(Exception):
    """A command line that cannot run; printed as one line."""


def open_target(options: list[str] | None, target: str | None) -> tuple[Union, str, str]:
    """(union, union path, label) from `-o OPTIONS [PATH]` or from a path on a live mount."""
    if options:
        from .namei import normalize
        from .union import Union

        return Union.from_options(options), normalize(target or "/"), target or "."
    if not target:
        raise UsageError("give -o OPTIONS, or a path on a layerfs mount")
    from .mountinfo import union_for_path  # only needed for live mounts

    union, union_path = union_for_path(target)
    return union, union_path, target


def use_colour(when: str, stream: Stream | None = None) -> bool:
    """ls's --color rule: always, never, or auto (a terminal, unless NO_COLOR is set or TERM is dumb)."""
    if when == "always":
        return True
    if when == "never":
        return False
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    return (stream or sys.stdout).isatty()


def cmd_tree(args: argparse.Namespace) -> int:
    from .tree import TreeOptions, render_tree

    union, path, label = open_target(args.options, args.path)
    colour = use_colour(args.color)
    options = TreeOptions(args.all, args.origin, args.dirs_only, ascii=args.charset == "ascii", colour=colour)
    sys.stdout.write(render_tree(union, path, args.label or label, options))
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    union, path, label = open_target(args.options, args.path)
    lines = union.explain(path)
    sys.stdout.write(f"{path}\n")
    width_label = max(len(b.label) for b, _ in lines)
    for branch, text in lines:
        sys.stdout.write(f"  {branch.label:<{width_label}}  {branch.role.value:<5}  {text}\n")
    return 0


def cmd_trace(args: argparse.Namespace) -> int:
    from .trace import print_trace

    try:
        with open(args.file, encoding="utf-8") as f:
            print_trace(f, sys.stdout)
    except ValueError as exc:
        raise UsageError(f"{args.file}: {exc}") from None
    return 0


def build_parser() -> argparse.ArgumentParser:
    import argparse  # here: the mount commands (every containers-storage mount) parse their own argv

    class OneLineParser(argparse.ArgumentParser):
        """argparse, but a usage error is one line (the project's rule), not usage plus error."""

        def error(self, message: str) -> NoReturn:
            raise UsageError(f"{message} (see '{self.prog} --help')")

    parser = OneLineParser(
        prog=PROG,
        description="A union filesystem you can see through.",
        epilog="Also: layerfs -o OPTIONS [SOURCE] MOUNTPOINT (containers-storage's mount_program form) and "
        "mount -t fuse.layerfs -o OPTIONS SOURCE MOUNTPOINT. 'layerfs COMMAND --help' for each command.",
    )
    parser.add_argument("-V", "--version", action="store_true", help="print layerfs's and libfuse's versions")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    # mount and umount are parsed by cli_mount (they take mount.fuse's and fuse-overlayfs's argv
    # forms too); they are listed here so that --help names every command.
    sub.add_parser("mount", help="mount a union with FUSE (see 'layerfs mount --help' for every option)")
    sub.add_parser("umount", help="unmount a layerfs mount")

    p = sub.add_parser("tree", help="print the merged tree, as tree(1) does")
    p.add_argument("-o", dest="options", action="append", metavar="OPTIONS", help="mount options (repeatable)")
    p.add_argument("--origin", action="store_true", help="show the branch that serves each entry")
    p.add_argument("-a", dest="all", action="store_true", help="show dot files too")
    p.add_argument("-d", dest="dirs_only", action="store_true", help="directories only")
    p.add_argument("--label", help="the name printed on the first line (default: PATH, or '.')")
    p.add_argument("--charset", choices=["utf-8", "ascii"], default="utf-8", help="line drawing characters")
    p.add_argument(
        "--color",
        "--colour",
        nargs="?",
        const="always",
        default="auto",
        choices=["auto", "always", "never"],
        help="colour names by layer, with a legend: auto (on a terminal, unless NO_COLOR is set), always, never",
    )
    p.add_argument("path", nargs="?", help="union path (with -o) or a path on a layerfs mount")
    p.set_defaults(func=cmd_tree)

    p = sub.add_parser("explain", help="show how one path resolves, branch by branch")
    p.add_argument("-o", dest="options", action="append", metavar="OPTIONS")
    p.add_argument("path", help="union path (with -o) or a path on a layerfs mount")
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("trace", help="print a trace file (from -o trace=FILE) for people")
    p.add_argument("file")
    p.set_defaults(func=cmd_trace)
    return parser


SUBCOMMANDS = ("tree", "explain", "trace")
MOUNT_SUBCOMMANDS = ("mount", "umount")


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    try:
        if args_list and args_list[0] in ("-h", "--help"):
            build_parser().print_help()
            return 0
        if args_list and args_list[0] in ("-V", "--version"):
            from .cli_mount import version_text

            sys.stdout.write(version_text())
            return 0
        if not args_list or args_list[0] not in SUBCOMMANDS:
            # `layerfs mount …`, `layerfs umount …` and mount.fuse's `layerfs SRC MNT -o OPTS`.
            from .cli_mount import run_mount_command

            return run_mount_command(args_list)
        args = build_parser().parse_args(args_list)
        return args.func(args)
    except _usage_errors() as exc:
        return _fail(str(exc))
    except OSError as exc:
        where = exc.filename if exc.filename else ""
        return _fail(f"{where}: {exc.strerror}" if where else str(exc.strerror or exc))
    except KeyboardInterrupt:
        return 130


def _usage_errors() -> tuple[type[Exception], ...]:
    """A bad option or command line: imported when one is raised (an `except` clause evaluates
    its types then), so that a mount forks its daemon before `mountopts` is imported (early.py)."""
    from .mountopts import OptionError

    return (OptionError, UsageError)


def _fail(message: str) -> int:
    print(f"{PROG}: {message}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
