"""How `imagegraph` subcommands are declared: one table type, one context, one set of errors.

Every subcommand, whatever module defines it (cli.py: images and containers;
cli_distribution.py: pull, push, login, save, load), is a function `run(args, ctx) -> int`
registered with its module's `CommandTable.command(...)`. cli.py builds one parser from the
tables, so every command gets `--root`, `--whiteouts`, the store lock and its help the same way.
"""

from __future__ import annotations

import argparse
import importlib.metadata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .distribution.localstore import LocalStore, local_store
from .service import Services

DAEMON_PREFIX = "Error response from daemon: "


def package_version() -> str:
    """layerlab's version, as installed (pyproject.toml's), for `--version`."""
    try:
        return importlib.metadata.version("layerlab")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


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
    _svc: Services | None = field(default=None, repr=False)

    @property
    def svc(self) -> Services:
        if self._svc is None:
            self._svc = Services.open(self.root, self.driver_encoding)
        return self._svc

    @property
    def store(self) -> LocalStore:
        """The slice of the store that pull, push, save and load use (sharing `svc`'s lock)."""
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
