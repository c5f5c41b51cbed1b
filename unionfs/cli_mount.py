"""`layerfs mount`, `layerfs umount`, and the argv forms other programs use to mount.

    layerfs mount [-f] -o OPTIONS [-o OPTIONS]... MOUNTPOINT
    layerfs [-f] -o OPTIONS [SOURCE] MOUNTPOINT          (fuse-overlayfs's form)
    layerfs SOURCE MOUNTPOINT -o OPTIONS                  (what mount.fuse runs for
                                                           `mount -t fuse.layerfs SOURCE MOUNTPOINT -o …`)
    layerfs umount [-l] MOUNTPOINT
    layerfs -V | --version                                (podman info runs it)

containers-storage runs `[mount_program, "-o", OPTIONS, TARGET]` (the second form). SOURCE is
ignored, as fuse-overlayfs ignores it: the layers are in the options.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

PROG = "layerfs"
MOUNT_USAGE = """usage: layerfs mount [-f] [-d] [-s] -o OPTIONS [-o OPTIONS]... MOUNTPOINT
       layerfs [-f] -o OPTIONS [SOURCE] MOUNTPOINT      (fuse-overlayfs's form: containers-storage)
       layerfs SOURCE MOUNTPOINT -o OPTIONS             (what mount -t fuse.layerfs runs)

Mount a union of layer directories with FUSE; return once the mount is live.

  -o OPTIONS       comma-separated options (repeatable); the layers are either
                   dirs=TOP:…:BOTTOM or br=… (aufs: each BRANCH[=rw|ro|rr|ro+wh], the first
                   rw unless -o ro), or lowerdir=TOP:…:BOTTOM,upperdir=DIR,workdir=DIR
                   [,initdir=DIR] (the kernel's OverlayFS); \\: and \\, escape : and ,
  -f, --foreground stay in the foreground until unmounted
  -d, --debug      print every FUSE request (implies -f)
  -s               serve one request at a time (the same as -o threaded=0)
  -h, --help       this help
  -V, --version    layerfs's and libfuse's versions
"""
UMOUNT_USAGE = """usage: layerfs umount [-l] MOUNTPOINT

Unmount a layerfs mount (as umount(8) or fusermount3 -u would); the daemon then closes its
files and exits.

  -l, --lazy      detach now, finish when the mount is no longer busy
  -h, --help      this help
  -V, --version   layerfs's and libfuse's versions
"""


def mount_help() -> str:
    from .params import help_lines

    return MOUNT_USAGE + "\n".join(help_lines()) + "\n"


def version_text() -> str:
    """fuse-overlayfs's -V: our version, then libfuse's (and the kernel interface's)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        ours = version("layerlab")
    except PackageNotFoundError:
        ours = "unknown"
    lines = [f"layerfs: version {ours}"]
    try:
        from .fuse_ops import library_versions

        lines += library_versions()
    except (ImportError, OSError, AttributeError) as exc:
        lines.append(f"FUSE library not available: {exc}")
    return "\n".join(lines) + "\n"


class CommandLineError(Exception):
    """An argv that names no mount; one line."""


class MountArgs:
    """What a mount's argv says (a plain class: this module is on the mount's light path, mount.py)."""

    __slots__ = ("options", "positionals", "foreground")

    def __init__(self) -> None:
        self.options: list[str] = []
        self.positionals: list[str] = []
        self.foreground = False


def parse_mount_argv(argv: Sequence[str]) -> MountArgs:
    """Options may come before, between or after the positionals; `-o` may repeat."""
    args = MountArgs()
    i = 0
    only_positionals = False
    while i < len(argv):
        token = argv[i]
        if only_positionals or not token.startswith("-") or token == "-":
            args.positionals.append(token)
        elif token == "--":
            only_positionals = True
        elif token == "-o":
            if i + 1 >= len(argv):
                raise CommandLineError("-o needs OPTIONS")
            i += 1
            args.options.append(argv[i])
        elif token.startswith("-o"):
            args.options.append(token[2:])
        elif token in ("-f", "--foreground"):
            args.foreground = True
        elif token in ("-d", "--debug"):
            args.options.append("debug")
        elif token == "-s":
            args.options.append("threaded=0")
        elif token in ("-n", "-v"):
            pass  # no mtab / verbose, as mount(8) passes to helpers: nothing for us to do
        else:
            raise CommandLineError(f"unknown argument '{token}' (see 'layerfs --help')")
        i += 1
    return args


def _mountpoint(args: MountArgs, command: str) -> str:
    if not args.positionals:
        raise CommandLineError(f"{command}: give a MOUNTPOINT")
    if len(args.positionals) > 2:
        raise CommandLineError(f"{command}: too many arguments: {' '.join(args.positionals)}")
    return args.positionals[-1]  # [SOURCE] MOUNTPOINT: the source is ignored


def _errors() -> tuple[type[Exception], ...]:
    """What the command reports as one line: imported when one is raised (an `except` clause
    evaluates its types then), as `mount` and `mountopts` are not imported before the fork."""
    from .mount import MountError
    from .mountopts import OptionError

    return (OptionError, MountError, CommandLineError)


def run_mount_command(argv: Sequence[str]) -> int:
    """Entry point for every argv that is not `tree`, `explain` or `trace`.

    A mount forks its daemon (as root: `early.EarlyDaemon`) as soon as the argv says it is
    one, before `mount` and the option checks are imported."""
    argv = list(argv)
    try:
        if not argv:
            raise CommandLineError("give a command: mount, umount, tree, explain or trace (see 'layerfs --help')")
        if argv[0] == "umount":
            if any(a in ("-h", "--help") for a in argv[1:]):
                sys.stdout.write(UMOUNT_USAGE)
                return 0
            if any(a in ("-V", "--version") for a in argv[1:]):
                sys.stdout.write(version_text())
                return 0
            rest = [a for a in argv[1:] if a not in ("-l", "--lazy")]
            if len(rest) != 1 or rest[0].startswith("-"):
                raise CommandLineError("usage: layerfs umount [-l] MOUNTPOINT")
            from .mount import unmount

            unmount(rest[0], lazy=len(rest) != len(argv) - 1)
            return 0
        command = "mount"
        if argv[0] == "mount":
            argv = argv[1:]
        options_end = argv.index("--") if "--" in argv else len(argv)
        if any(a in ("-h", "--help") for a in argv[:options_end]):
            sys.stdout.write(mount_help())
            return 0
        if any(a in ("-V", "--version") for a in argv[:options_end]):
            sys.stdout.write(version_text())
            return 0
        args = parse_mount_argv(argv)
        target = _mountpoint(args, command)
        from .early import EarlyDaemon

        early = EarlyDaemon.start(args.foreground)
        from .mount import MountRequest, mount  # the daemon loads its side meanwhile

        mount(MountRequest(tuple(args.options), target, os.getcwd(), args.foreground), early)
        return 0
    except _errors() as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
