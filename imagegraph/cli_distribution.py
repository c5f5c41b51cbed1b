"""The `pull`, `push`, `login`, `save` and `load` subcommands of `imagegraph`.

Registered in this module's `COMMANDS` table and run as cli.py runs every command (commands.py).
Errors are one line on stderr, in Docker's words: the client's own checks (a bad reference,
credentials) as they are, the registry's and the store's prefixed `Error response from daemon: `,
as the docker CLI shows them.

Insecure (plain HTTP) registries: loopback always; others with `--insecure-registry HOST:PORT`
or listed under `insecure-registries` in `<store root>/daemon.json`, like dockerd's option.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from .commands import DAEMON_PREFIX, CLIError, CommandTable, Context, Run, positive_int
from .reference import InvalidReference, Reference, familiar_name, parse_normalized_named, tag_name_only

if TYPE_CHECKING:
    from .distribution.progress import ProgressWriter

# The registry client (http.client, ssl), pull, push and save/load are imported by the commands
# that use them, not here: this module is imported by every imagegraph command for its parser.

COMMANDS = CommandTable()


class _Sink:
    """Where progress goes with -q."""

    def write(self, s: str) -> int:
        return len(s)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def _insecure(args: argparse.Namespace, root: Path) -> tuple[str, ...]:
    """`--insecure-registry` values, then the store's daemon.json `insecure-registries`."""
    names = list(getattr(args, "insecure_registry", None) or [])
    try:
        daemon = json.loads((root / "daemon.json").read_text())
        names += [str(x) for x in daemon.get("insecure-registries") or []]
    except (OSError, ValueError, AttributeError):  # no store (yet), or no daemon.json in it
        pass
    return tuple(names)


def _fail(err: TextIO, message: str, daemon: bool = True) -> int:
    text = " ".join(str(message).splitlines()) or "unknown error"
    err.write((DAEMON_PREFIX if daemon else "") + text + "\n")
    err.flush()
    return 1


def _errors(run: Run) -> Run:
    """Docker's wording for what these commands know can fail; the rest goes to cli.main."""

    def translated(args: argparse.Namespace, ctx: Context) -> int:
        from .distribution.credentials import CredentialsError
        from .distribution.errors import RegistryError
        from .store import StoreError, os_error_line
        from .tarexport import TarExportError

        try:
            return run(args, ctx)
        except (InvalidReference, CredentialsError) as exc:  # the docker CLI's own checks
            return _fail(ctx.err, str(exc), daemon=False)
        except (RegistryError, TarExportError) as exc:
            return _fail(ctx.err, str(exc))
        except StoreError as exc:
            return _fail(ctx.err, f"Error: {exc}", daemon=False)
        except OSError as exc:
            return _fail(ctx.err, os_error_line(exc, ctx.root))

    return translated


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
    from .distribution.progress import ProgressWriter

    return ProgressWriter(_Sink() if args.quiet else out)  # type: ignore[arg-type]  # _Sink has what it uses


def _setup_pull(p: argparse.ArgumentParser) -> None:
    from .distribution.pull import DEFAULT_DOWNLOADS  # set up only for `pull` (cli.build_parser)

    p.add_argument("name", metavar="NAME[:TAG|@DIGEST]")
    p.add_argument("-a", "--all-tags", action="store_true", help="Download all tagged images in the repository")
    p.add_argument("--platform", help="Set platform if server is multi-platform capable (OS/ARCH[/VARIANT])")
    p.add_argument("-q", "--quiet", action="store_true", help="Suppress verbose output")
    p.add_argument(
        "--max-concurrent-downloads",
        type=positive_int,
        default=DEFAULT_DOWNLOADS,
        metavar="N",
        help=f"Layers downloaded at once (default {DEFAULT_DOWNLOADS}, as dockerd's)",
    )
    _insecure_registry_flag(p)


def _insecure_registry_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--insecure-registry",
        action="append",
        metavar="HOST:PORT",
        help="Use plain HTTP for this registry (repeatable)",
    )


@COMMANDS.command("pull", "Download an image from a registry", setup=_setup_pull)
@_errors
def cmd_pull(args: argparse.Namespace, ctx: Context) -> int:
    from .distribution import manifest as M
    from .distribution.pull import PullOptions, pull, pull_all_tags

    ref = parse_normalized_named(args.name)
    platform = M.parse_platform(args.platform) if args.platform else None
    if args.all_tags and not ref.is_name_only:
        raise CLIError("tag can't be used with --all-tags/-a")
    if not args.all_tags:
        ref = _default_tag(ref, args, ctx.out)
    options = PullOptions(
        platform=platform,
        insecure_registries=_insecure(args, ctx.root),
        max_concurrent_downloads=args.max_concurrent_downloads,
    )
    if args.all_tags:
        pull_all_tags(ctx.store, ref, _progress(args, ctx.out), options)
    else:
        pull(ctx.store, ref, _progress(args, ctx.out), options)
    ctx.print(str(ref))
    return 0


def _setup_push(p: argparse.ArgumentParser) -> None:
    from .distribution.pull import DEFAULT_UPLOADS

    p.add_argument("name", metavar="NAME[:TAG]")
    p.add_argument("-a", "--all-tags", action="store_true", help="Push all tags of an image to the repository")
    p.add_argument("-q", "--quiet", action="store_true", help="Suppress verbose output")
    p.add_argument(
        "--max-concurrent-uploads",
        type=positive_int,
        default=DEFAULT_UPLOADS,
        metavar="N",
        help=f"Layers uploaded at once (default {DEFAULT_UPLOADS}, as dockerd's)",
    )
    _insecure_registry_flag(p)


@COMMANDS.command("push", "Upload an image to a registry", setup=_setup_push)
@_errors
def cmd_push(args: argparse.Namespace, ctx: Context) -> int:
    from .distribution.pull import PullOptions
    from .distribution.push import push, push_all_tags

    ref = parse_normalized_named(args.name)
    if ref.digest is not None:
        return _fail(ctx.err, "cannot push a digest reference", daemon=False)
    if args.all_tags and not ref.is_name_only:
        raise CLIError("tag can't be used with --all-tags/-a")
    if not args.all_tags:
        ref = _default_tag(ref, args, ctx.out)
    if not ctx.root.is_dir():  # nothing to push, and no store folders to make for it
        missing = f"no tags to push for {familiar_name(ref)}" if args.all_tags else None
        return _fail(ctx.err, missing or f"An image does not exist locally with the tag: {familiar_name(ref)}")
    uploads = args.max_concurrent_uploads
    options = PullOptions(insecure_registries=_insecure(args, ctx.root), max_concurrent_uploads=uploads)
    if args.all_tags:
        push_all_tags(ctx.store, ref, _progress(args, ctx.out), options)
    else:
        push(ctx.store, ref, _progress(args, ctx.out), options)
    if args.quiet:
        ctx.print(str(ref))
    return 0


def _setup_login(p: argparse.ArgumentParser) -> None:
    p.add_argument("server", nargs="?", metavar="SERVER")
    p.add_argument("-u", "--username", help="Username")
    p.add_argument("-p", "--password", help="Password")
    p.add_argument("--password-stdin", action="store_true", help="Take the password from stdin")
    _insecure_registry_flag(p)


@COMMANDS.command("login", "Log in to a registry", setup=_setup_login)
@_errors
def cmd_login(args: argparse.Namespace, ctx: Context) -> int:
    from .distribution.client import RegistryClient
    from .distribution.credentials import INDEX_SERVER, AuthConfig, config_path, login_domain, store_auth

    out, err = ctx.out, ctx.err
    domain = login_domain(args.server)
    username, password = args.username or "", args.password or ""
    if args.password and args.password_stdin:
        return _fail(err, "--password and --password-stdin are mutually exclusive", daemon=False)
    if args.password:
        err.write("WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n")
    if args.password_stdin:
        if not username:
            return _fail(err, "Must provide --username with --password-stdin", daemon=False)
        password = sys.stdin.read().rstrip("\r\n")
    if not username or not password:
        if not sys.stdin.isatty():
            return _fail(err, "Error: Cannot perform an interactive login from a non TTY device", daemon=False)
        if not username:
            out.write("Username: ")
            out.flush()
            username = sys.stdin.readline().strip()
        if not password:
            password = getpass.getpass("Password: ")
    if not username:
        return _fail(err, "Error: Non-null Username Required", daemon=False)
    auth = AuthConfig(username, password)
    RegistryClient(domain, auth, _insecure(args, ctx.root)).check_login()
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
    ctx.print("Login Succeeded")
    return 0


def _setup_save(p: argparse.ArgumentParser) -> None:
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("-o", "--output", help="Write to a file, instead of STDOUT")


@COMMANDS.command("save", "Save one or more images to a tar archive", setup=_setup_save, readonly=True)
@_errors
def cmd_save(args: argparse.Namespace, ctx: Context) -> int:
    from .tarexport import check_output_path, save, save_to_file

    if args.output:
        check_output_path(Path(args.output))
    store = ctx.store
    if args.output:
        save_to_file(store, args.images, Path(args.output))
        return 0
    binary = getattr(ctx.out, "buffer", None)
    if ctx.out.isatty() or binary is None:
        return _fail(ctx.err, "cowardly refusing to save to a terminal. Use the -o flag or redirect", daemon=False)
    # Build the whole tar first, so a failure writes nothing to stdout.
    with tempfile.TemporaryFile(dir=store.tmp_dir) as spool:
        save(store, args.images, spool)
        spool.seek(0)
        while chunk := spool.read(1 << 20):
            binary.write(chunk)
    binary.flush()
    return 0


def _setup_load(p: argparse.ArgumentParser) -> None:
    p.add_argument("-i", "--input", help="Read from tar archive file, instead of STDIN")
    p.add_argument("-q", "--quiet", action="store_true", help="Suppress the load output")


@COMMANDS.command("load", "Load an image from a tar archive or STDIN", setup=_setup_load)
@_errors
def cmd_load(args: argparse.Namespace, ctx: Context) -> int:
    from .tarexport import load

    writer = _progress(args, ctx.out)
    if args.input:
        with open(args.input, "rb") as f:
            lines = load(ctx.store, f, writer)
    else:
        if sys.stdin.isatty():
            return _fail(ctx.err, "requested load from stdin, but stdin is empty", daemon=False)
        lines = load(ctx.store, sys.stdin.buffer, writer)
    if args.quiet:
        for line in lines:
            ctx.print(line)
    return 0
