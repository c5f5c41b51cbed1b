"""The `pull`, `push`, `login`, `save` and `load` subcommands of `imagegraph`.

cli.py registers them with `cli_distribution.register(subparsers)`; each handler takes the
parsed args and returns the exit status. Errors are one line on stderr, in Docker's words
(server-side ones prefixed `Error response from daemon: `, as the docker CLI shows them).

Insecure (plain HTTP) registries: loopback always; others with `--insecure-registry HOST:PORT`
or listed under `insecure-registries` in `<store root>/daemon.json`, like dockerd's option.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from .distribution import manifest as M
from .distribution.client import RegistryClient
from .distribution.credentials import INDEX_SERVER, AuthConfig, CredentialsError, config_path, store_auth
from .distribution.errors import RegistryError
from .distribution.localstore import LocalStore, open_local_store
from .distribution.progress import ProgressWriter
from .distribution.pull import PullOptions, pull
from .distribution.push import push
from .reference import InvalidReference, Reference, parse_normalized_named, tag_name_only
from .store import StoreError, os_error_line, resolve_root
from .tarexport import TarExportError, check_output_path, load, save, save_to_file

DAEMON_PREFIX = "Error response from daemon: "


class _Sink:
    """Where progress goes with -q."""

    def write(self, s: str) -> int:
        return len(s)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def _store(args: argparse.Namespace, create: bool = True) -> LocalStore:
    """The store; `create` False for commands that only read it (save, push): a new root stays unmade."""
    root = resolve_root(getattr(args, "root", None))
    return open_local_store(root, getattr(args, "whiteouts", None), create)


def _insecure(args: argparse.Namespace, store: LocalStore) -> tuple[str, ...]:
    names = list(getattr(args, "insecure_registry", None) or [])
    try:
        daemon = json.loads((store.layout.root / "daemon.json").read_text())
        names += [str(x) for x in daemon.get("insecure-registries") or []]
    except (FileNotFoundError, ValueError, AttributeError):
        pass
    return tuple(names)


def _fail(err: TextIO, message: str, daemon: bool = True) -> int:
    text = " ".join(str(message).splitlines()) or "unknown error"
    err.write((DAEMON_PREFIX if daemon else "") + text + "\n")
    err.flush()
    return 1


def _errors(fn: Callable[[argparse.Namespace, TextIO, TextIO], int]):
    """Turn the failures we know into one line and exit status 1."""

    def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
        out = out or sys.stdout
        err = err or sys.stderr
        try:
            return fn(args, out, err)
        except InvalidReference as exc:
            return _fail(err, str(exc), daemon=False)
        except CredentialsError as exc:
            return _fail(err, str(exc), daemon=False)
        except (RegistryError, TarExportError) as exc:
            return _fail(err, str(exc))
        except StoreError as exc:
            return _fail(err, f"Error: {exc}", daemon=False)
        except OSError as exc:
            return _fail(err, os_error_line(exc, resolve_root(getattr(args, "root", None))))
        except Exception as exc:  # the store's own errors (ImageError, LayerError, ArchiveError, RefError…)
            return _fail(err, str(exc) or exc.__class__.__name__)

    return run


def _default_tag(ref: Reference, args: argparse.Namespace, out: TextIO) -> Reference:
    """docker pull/push of a bare name: `:latest`, said unless -q."""
    if not ref.is_name_only:
        return ref
    ref = tag_name_only(ref)
    if not args.quiet:
        out.write(f"Using default tag: {ref.tag}\n")
    return ref


def _progress(args: argparse.Namespace, out: TextIO) -> ProgressWriter:
    """Docker's progress lines on `out`, or nowhere with -q."""
    return ProgressWriter(_Sink() if args.quiet else out)  # type: ignore[arg-type]


@_errors
def cmd_pull(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    ref = parse_normalized_named(args.name)
    platform = M.parse_platform(args.platform) if args.platform else None
    ref = _default_tag(ref, args, out)
    store = _store(args)
    writer = _progress(args, out)
    pull(store, ref, writer, PullOptions(platform=platform, insecure_registries=_insecure(args, store)))
    out.write(f"{ref}\n")
    return 0


@_errors
def cmd_push(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    ref = parse_normalized_named(args.name)
    if ref.digest is not None:
        return _fail(err, "cannot push a digest reference", daemon=False)
    ref = _default_tag(ref, args, out)
    store = _store(args, create=False)
    writer = _progress(args, out)
    result = push(store, ref, writer, PullOptions(insecure_registries=_insecure(args, store)))
    if args.quiet:
        out.write(f"{ref}\n")
    del result
    return 0


def _login_domain(server: str | None) -> str:
    if not server:
        return "docker.io"
    for prefix in ("https://", "http://"):
        if server.startswith(prefix):
            server = server[len(prefix) :]
    server = server.split("/", 1)[0]
    return "docker.io" if server in ("index.docker.io", "registry-1.docker.io") else server


@_errors
def cmd_login(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    domain = _login_domain(args.server)
    stdin = getattr(args, "stdin", None) or sys.stdin
    username, password = args.username or "", args.password or ""
    if args.password and args.password_stdin:
        return _fail(err, "--password and --password-stdin are mutually exclusive", daemon=False)
    if args.password:
        err.write("WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n")
    if args.password_stdin:
        if not username:
            return _fail(err, "Must provide --username with --password-stdin", daemon=False)
        password = stdin.read().rstrip("\r\n")
    if not username or not password:
        if not stdin.isatty():
            return _fail(err, "Error: Cannot perform an interactive login from a non TTY device", daemon=False)
        if not username:
            out.write("Username: ")
            out.flush()
            username = stdin.readline().strip()
        if not password:
            password = getpass.getpass("Password: ")
    if not username:
        return _fail(err, "Error: Non-null Username Required", daemon=False)
    auth = AuthConfig(username, password)
    store = _store(args) if getattr(args, "root", None) or os.environ.get("IMAGEGRAPH_ROOT") else None
    insecure = _insecure(args, store) if store else tuple(getattr(args, "insecure_registry", None) or [])
    RegistryClient(domain, auth, insecure).check_login()
    raw = json.loads(Path(config_path()).read_text()) if Path(config_path()).exists() else {}
    key_has_helper = bool(
        raw.get("credsStore") or (raw.get("credHelpers") or {}).get(INDEX_SERVER if domain == "docker.io" else domain)
    )
    path = store_auth(domain, auth)
    if not key_has_helper:
        err.write(
            f"WARNING! Your password will be stored unencrypted in {path}.\n"
            "Configure a credential helper to remove this warning. See\n"
            "https://docs.docker.com/engine/reference/commandline/login/#credentials-store\n\n"
        )
    out.write("Login Succeeded\n")
    return 0


@_errors
def cmd_save(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if args.output:
        check_output_path(Path(args.output))
    store = _store(args, create=False)
    if args.output:
        save_to_file(store, args.images, Path(args.output))
        return 0
    binary = getattr(out, "buffer", None)
    if out.isatty() or binary is None:
        return _fail(err, "cowardly refusing to save to a terminal. Use the -o flag or redirect", daemon=False)
    # Build the whole tar first, so a failure writes nothing to stdout.
    import tempfile

    with tempfile.TemporaryFile(dir=store.tmp_dir) as spool:
        save(store, args.images, spool)
        spool.seek(0)
        while chunk := spool.read(1 << 20):
            binary.write(chunk)
    binary.flush()
    return 0


@_errors
def cmd_load(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    store = _store(args)
    writer = _progress(args, out)
    if args.input:
        with open(args.input, "rb") as f:
            lines = load(store, f, writer)
    else:
        stdin = getattr(args, "stdin", None) or sys.stdin
        if stdin.isatty():
            return _fail(err, "requested load from stdin, but stdin is empty", daemon=False)
        lines = load(store, stdin.buffer, writer)
    if args.quiet:
        for line in lines:
            out.write(line + "\n")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add pull, push, login, save and load to the `imagegraph` parser."""
    p = subparsers.add_parser("pull", help="Download an image from a registry")
    p.add_argument("name", metavar="NAME[:TAG|@DIGEST]")
    p.add_argument("--platform", help="Set platform if server is multi-platform capable (OS/ARCH[/VARIANT])")
    p.add_argument("-q", "--quiet", action="store_true", help="Suppress verbose output")
    p.add_argument(
        "--insecure-registry",
        action="append",
        metavar="HOST:PORT",
        help="Use plain HTTP for this registry (repeatable)",
    )
    p.set_defaults(func=cmd_pull)

    p = subparsers.add_parser("push", help="Upload an image to a registry")
    p.add_argument("name", metavar="NAME[:TAG]")
    p.add_argument("-q", "--quiet", action="store_true", help="Suppress verbose output")
    p.add_argument("--insecure-registry", action="append", metavar="HOST:PORT")
    p.set_defaults(func=cmd_push)

    p = subparsers.add_parser("login", help="Log in to a registry")
    p.add_argument("server", nargs="?", metavar="SERVER")
    p.add_argument("-u", "--username")
    p.add_argument("-p", "--password")
    p.add_argument("--password-stdin", action="store_true", help="Take the password from stdin")
    p.add_argument("--insecure-registry", action="append", metavar="HOST:PORT")
    p.set_defaults(func=cmd_login)

    p = subparsers.add_parser("save", help="Save one or more images to a tar archive")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("-o", "--output", help="Write to a file, instead of STDOUT")
    p.set_defaults(func=cmd_save)

    p = subparsers.add_parser("load", help="Load an image from a tar archive or STDIN")
    p.add_argument("-i", "--input", help="Read from tar archive file, instead of STDIN")
    p.add_argument("-q", "--quiet", action="store_true", help="Suppress the load output")
    p.set_defaults(func=cmd_load)


_SPECS = (
    ("pull", "Download an image from a registry"),
    ("push", "Upload an image to a registry"),
    ("login", "Log in to a registry"),
    ("save", "Save one or more images to a tar archive"),
    ("load", "Load an image from a tar archive or STDIN"),
)


def install(cli_module) -> None:
    """Add our commands to imagegraph.cli's COMMANDS table (its `register` hook).

    cli.py calls `cli_distribution.install(sys.modules[__name__])` once, after its own
    commands; each of ours runs as `handler(args, ctx.out, ctx.err)` and uses `args.root`.
    """
    scratch = argparse.ArgumentParser()
    sub = scratch.add_subparsers()
    register(sub)
    for name, help_text in _SPECS:
        if any(c.name == name for c in cli_module.COMMANDS):
            continue
        parser = sub.choices[name]
        handler = parser.get_default("func")

        def setup(p: argparse.ArgumentParser, _src: argparse.ArgumentParser = parser) -> None:
            for action in _src._actions:
                if isinstance(action, argparse._HelpAction):
                    continue
                kwargs = {"dest": action.dest, "default": action.default, "help": action.help}
                if action.option_strings:
                    if isinstance(action, argparse._StoreTrueAction):
                        p.add_argument(*action.option_strings, action="store_true", **kwargs)
                    elif isinstance(action, argparse._AppendAction):
                        p.add_argument(*action.option_strings, action="append", metavar=action.metavar, **kwargs)
                    else:
                        p.add_argument(*action.option_strings, metavar=action.metavar, **kwargs)
                else:
                    p.add_argument(action.dest, nargs=action.nargs, metavar=action.metavar, help=action.help)

        def run(a: argparse.Namespace, ctx, _handler=handler) -> int:
            return _handler(a, ctx.out, ctx.err)

        cli_module.COMMANDS.append(cli_module.Command(name, help_text, setup, run))


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (`python -m imagegraph.cli_distribution`) until cli.py registers us."""
    parser = argparse.ArgumentParser(prog="imagegraph")
    parser.add_argument("--root", help="store root (default $IMAGEGRAPH_ROOT or /var/lib/imagegraph)")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
