"""`layerfs mount`, `layerfs umount`, and the argv forms other programs use to mount.

    layerfs mount [-f] -o OPTIONS [-o OPTIONS]... MOUNTPOINT
    layerfs [-f] -o OPTIONS [SOURCE] MOUNTPOINT          (fuse-overlayfs's form)
    layerfs SOURCE MOUNTPOINT -o OPTIONS                  (what mount.fuse runs for
                                                           `mount -t fuse.layerfs SOURCE MOUNTPOINT -o …`)
    layerfs umount [-l] MOUNTPOINT

containers-storage runs `[mount_program, "-o", OPTIONS, TARGET]` (the second form). SOURCE is
ignored, as fuse-overlayfs ignores it: the layers are in the options.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

from .mount import MountError, MountRequest, mount, unmount
from .options import OptionError

PROG = "layerfs"
USAGE = (
    "usage: layerfs mount [-f] -o OPTIONS MOUNTPOINT\n"
    "       layerfs [-f] -o OPTIONS [SOURCE] MOUNTPOINT\n"
    "       layerfs SOURCE MOUNTPOINT -o OPTIONS\n"
    "       layerfs umount [-l] MOUNTPOINT\n"
    "       layerfs tree|explain|trace …  (see 'layerfs --help')\n"
)


class CommandLineError(Exception):
    """An argv that names no mount; one line."""


@dataclass
class MountArgs:
    options: list[str] = field(default_factory=list)
    positionals: list[str] = field(default_factory=list)
    foreground: bool = False


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
        elif token in ("-s", "-n", "-v"):
            pass  # single-threaded / no mtab / verbose, as mount helpers may pass: nothing to do
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


def run_mount_command(argv: Sequence[str]) -> int:
    """Entry point for every argv that is not `tree`, `explain` or `trace`."""
    argv = list(argv)
    try:
        if not argv:
            raise CommandLineError("give a command: mount, umount, tree, explain or trace (see 'layerfs --help')")
        if argv[0] == "umount":
            rest = [a for a in argv[1:] if a not in ("-l", "--lazy")]
            if len(rest) != 1 or rest[0].startswith("-"):
                raise CommandLineError("usage: layerfs umount [-l] MOUNTPOINT")
            unmount(rest[0], lazy=len(rest) != len(argv) - 1)
            return 0
        command = "mount"
        if argv[0] == "mount":
            argv = argv[1:]
        args = parse_mount_argv(argv)
        mount(MountRequest(tuple(args.options), _mountpoint(args, command), os.getcwd(), args.foreground))
        return 0
    except (OptionError, MountError, CommandLineError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
