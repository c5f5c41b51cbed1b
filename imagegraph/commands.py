"""How `imagegraph` subcommands are declared: one table type, one context, one set of errors.

Every subcommand, whatever module defines it (cli.py: images and containers;
cli_distribution.py: pull, push, login, save, load), is a function `run(args, ctx) -> int`
registered with its module's `CommandTable.command(...)`. cli.py builds one parser from the
tables, so every command gets `--root`, `--whiteouts`, the store lock and its help the same way.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .distribution.localstore import LocalStore
    from .service import Services

DAEMON_PREFIX = "Error response from daemon: "


def package_version() -> str:
    """layerlab's version, as installed (pyproject.toml's), for `--version`.

    importlib.metadata is imported here, not at the top: it costs 20-50 ms of every start
    (email, zipfile, csv) and only `--version` needs it.
    """
    import importlib.metadata

    try:
        return importlib.metadata.version("layerlab")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


class VersionAction(argparse.Action):
    """argparse's "version" action, with the version read only when the flag is given."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        sys.stdout.write(f"{parser.prog} version {package_version()}\n")
        parser.exit()


class UsageError(Exception):
    """Bad command-line use: one line, exit status 125 (docker's)."""


class CLIError(Exception):
    """An error printed as is (client-side checks in docker)."""


@dataclass
class Context:
    """What a command needs: the store (opened lazily), output streams and the clock."""

    root: Path
    driver_encoding: str | None
    out: Any
    err: Any
    now: float
    readonly: bool = False  # a command that only reads: a new root is not made on disk
    _svc: Services | None = field(default=None, repr=False)

    @property
    def svc(self) -> Services:
        if self._svc is None:
            from .service import Services  # the store's modules: not for --help or --version

            self._svc = Services.open(self.root, self.driver_encoding, create=not self.readonly)
        return self._svc

    @property
    def store(self) -> LocalStore:
        """The slice of the store that pull, push, save and load use (sharing `svc`'s lock)."""
        from .distribution.localstore import local_store

        return local_store(self.svc)

    def print(self, s: str = "") -> None:
        self.out.write(s + "\n")


Setup = Callable[[argparse.ArgumentParser], None]
Run = Callable[[argparse.Namespace, Context], int]


def _no_arguments(parser: argparse.ArgumentParser) -> None:
    pass


@dataclass
class Command:
    name: str  # one word, or "group word" (`image prune`)
    help: str
    setup: Setup  # adds the subcommand's arguments to its parser
    run: Run
    aliases: tuple[str, ...] = ()
    readonly: bool = False  # runs under a shared lock, so a concurrent writer is never seen half-way


class CommandTable(list[Command]):
    """The commands one module defines, in the order `imagegraph --help` lists them."""

    def command(
        self,
        name: str,
        help: str,
        setup: Setup = _no_arguments,
        aliases: tuple[str, ...] = (),
        readonly: bool = False,
    ) -> Callable[[Run], Run]:
        """Register the decorated `run(args, ctx)` under `name`."""

        def register(run: Run) -> Run:
            self.append(Command(name, help, setup, run, aliases, readonly))
            return run

        return register


def positive_int(text: str) -> int:
    """argparse type for a count of 1 or more (dockerd refuses 0 and negatives too)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: not a number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: must be 1 or more")
    return value
