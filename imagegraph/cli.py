"""The `imagegraph` command: Docker's image and container commands on a local store.

Each subcommand is one `cmd_*` function registered with `@command(...)` in a module's
`CommandTable` (commands.py): this module's images and containers, cli_distribution's pull,
push, login, save and load; `build_parser` makes one parser of the tables. Output, tables and
error texts follow the docker CLI: a daemon error is printed as `Error response from daemon:
<text>`, every error is one line on stderr and exits 1; argument errors exit 125 as docker's do.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC
from pathlib import Path
from typing import Any, NoReturn

# Only what builds the parser is imported here. A command imports its implementation when it
# runs: the store (service.py and what it uses) for most, the registry client for pull and push,
# the runtime for run and exec, the builder for build, the Engine API for the daemon. Each
# subcommand's arguments are added only when that subcommand is parsed (_LazyParser).
from . import cli_build, cli_distribution, cli_run
from . import render as render_mod
from .commands import DAEMON_PREFIX, CLIError, CommandTable, Context, Setup, UsageError, VersionAction
from .formatting import ago, created_at, ellipsis, human_size, json_lines, short_id, table, truncate_cmd
from .reference import InvalidReference, familiar_name, parse_normalized_named
from .store import StoreError, os_error_line, resolve_root

COMMANDS = CommandTable()
command = COMMANDS.command


def go_time_string(ts: float) -> str:
    """Go's time.Time.String() in UTC, as `images`/`ps --format json` show CreatedAt."""
    from datetime import datetime

    return datetime.fromtimestamp(int(ts), UTC).strftime("%Y-%m-%d %H:%M:%S +0000 UTC")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}. See '{self.prog} --help'.")


class _LazyParser(_Parser):
    """A subcommand's parser whose arguments are added when it is first used: parsing its
    arguments, or its --help. Building all forty of them costs a start what one command needs."""

    def __init__(self, *args: Any, setup: Setup | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._setup = setup

    def _ready(self) -> None:
        setup, self._setup = self._setup, None
        if setup is not None:
            setup(self)

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        self._ready()
        return super().parse_known_args(args, namespace)

    def format_usage(self) -> str:
        self._ready()
        return super().format_usage()

    def format_help(self) -> str:
        self._ready()
        return super().format_help()


def _filters(values: list[str] | None) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for v in values or []:
        if "=" not in v:
            raise CLIError("bad format of filter (expected name=value)")
        k, val = v.split("=", 1)
        out.setdefault(k.strip().lower(), []).append(val)
    return out


# ---- images -----------------------------------------------------------------------------------


FORMAT_HELP = "json, a Go template ('{{.ID}}'), or 'table' and a template, as docker's --format"
#: docker/cli's header names for `--format 'table …'` (SubHeaderContext of each formatter).
IMAGE_HEADERS = {
    "ID": "IMAGE ID", "Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST", "CreatedSince": "CREATED",
    "CreatedAt": "CREATED AT", "Size": "SIZE", "Containers": "CONTAINERS", "VirtualSize": "SIZE",
    "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE",
}  # fmt: skip
CONTAINER_HEADERS = {
    "ID": "CONTAINER ID", "Names": "NAMES", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
    "RunningFor": "CREATED", "Ports": "PORTS", "State": "STATE", "Status": "STATUS", "Size": "SIZE",
    "Labels": "LABELS", "Mounts": "MOUNTS", "LocalVolumes": "LOCAL VOLUMES", "Networks": "NETWORKS",
}  # fmt: skip
HISTORY_HEADERS = {
    "ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "CreatedBy": "CREATED BY", "Size": "SIZE",
    "Comment": "COMMENT",
}  # fmt: skip


def _formatted(
    ctx: Context,
    text: str | None,
    rows: Sequence[Mapping[str, Any]],
    headers: dict[str, str],
    kind: str,
    wording: tuple[str, str] = ("template parsing error: ", "template parsing error: "),
) -> bool:
    """Print `rows` as `--format` asks (json lines, a Go template, `table TEMPLATE`), as docker/cli
    does; False when it asks for the default table, which the command prints itself."""
    from .gotemplate import Format, TemplateError, render_rows

    fmt = Format.of(text)
    if fmt.default:
        return False
    if fmt.json:  # docker/cli: `{{json .}}` on each row
        fmt = Format(False, False, "{{json .}}")
    try:
        ctx.out.write(render_rows(fmt, rows, headers, kind, wording))
    except TemplateError as exc:
        raise CLIError(str(exc)) from None
    return True


def _image_rows(summaries: list[dict[str, Any]], digests: bool) -> list[tuple[dict[str, Any], str, str, str]]:
    """docker/cli imageFormatTaggedAndDigest: one row per (repository, tag), digest-only repos, dangling."""
    rows = []
    for s in summaries:
        if not s["RepoTags"] and not s["RepoDigests"]:
            rows.append((s, "<none>", "<none>", "<none>"))
            continue
        repo_tags: dict[str, list[str]] = {}
        repo_digests: dict[str, list[str]] = {}
        for t in s["RepoTags"]:
            ref = parse_normalized_named(t)
            repo_tags.setdefault(familiar_name(ref), []).append(ref.tag or "")
        for d in s["RepoDigests"]:
            ref = parse_normalized_named(d)
            repo_digests.setdefault(familiar_name(ref), []).append(ref.digest or "")
        for repo in sorted(repo_tags):
            ds = repo_digests.pop(repo, [])
            if not digests:
                ds = []  # digests of a tagged repository get no rows of their own
            for tag in repo_tags[repo]:
                if not ds:
                    rows.append((s, repo, tag, "<none>"))
                for d in ds:
                    rows.append((s, repo, tag, d))
        for repo in sorted(repo_digests):
            if digests:
                rows.extend((s, repo, "<none>", d) for d in repo_digests[repo])
            else:
                rows.append((s, repo, "<none>", ""))
    return rows


def _setup_images(p: argparse.ArgumentParser) -> None:
    p.add_argument("repository", nargs="?")
    p.add_argument("-a", "--all", action="store_true", help="Show all images (default hides intermediate images)")
    p.add_argument("-q", "--quiet", action="store_true", help="Only show image IDs")
    p.add_argument("--digests", action="store_true", help="Show digests")
    p.add_argument("--no-trunc", action="store_true", help="Don't truncate output")
    p.add_argument("-f", "--filter", action="append", help="Filter output based on conditions provided")
    p.add_argument("--format", help=FORMAT_HELP)


@command("images", "List images", aliases=("image ls",), readonly=True, setup=_setup_images)
def cmd_images(a: argparse.Namespace, ctx: Context) -> int:
    filters = _filters(a.filter)
    if a.repository:
        filters.setdefault("reference", []).append(a.repository)
    summaries = ctx.svc.list_images(a.all, filters)
    rows = _image_rows(summaries, a.digests)

    def iid(s: dict[str, Any]) -> str:
        return s["Id"] if a.no_trunc else short_id(s["Id"])

    if a.quiet:
        for s, *_ in rows:
            ctx.print(iid(s))
        return 0
    if a.format:
        objs = []
        for s, repo, tag, dg in rows:
            objs.append(
                {
                    "Containers": "N/A",
                    "CreatedAt": go_time_string(s["Created"]),
                    "CreatedSince": ago(s["Created"], ctx.now),
                    "Digest": dg or "<none>",
                    "ID": iid(s),
                    "Repository": repo,
                    "SharedSize": "N/A",
                    "Size": human_size(s["Size"]),
                    "Tag": tag,
                    "UniqueSize": "N/A",
                    "VirtualSize": human_size(s["Size"]),
                }
            )
        if _formatted(ctx, a.format, objs, IMAGE_HEADERS, "*formatter.imageContext"):
            return 0
    headers = ["REPOSITORY", "TAG"] + (["DIGEST"] if a.digests else []) + ["IMAGE ID", "CREATED", "SIZE"]
    body = []
    for s, repo, tag, dg in rows:
        created = ago(s["Created"], ctx.now) if s["Created"] > 0 else "N/A"
        body.append([repo, tag] + ([dg or "<none>"] if a.digests else []) + [iid(s), created, human_size(s["Size"])])
    ctx.print(table(body, headers))
    return 0


def _setup_import(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help="a root filesystem directory, a tar (plain or gzip), or - for stdin")
    p.add_argument("repository", nargs="?")
    p.add_argument("-c", "--change", action="append", default=[], help="Apply Dockerfile instruction to the image")
    p.add_argument("-m", "--message", default="", help="Set commit message for imported image")


@command("import", "Import the contents from a directory or tarball to create a filesystem image", setup=_setup_import)
def cmd_import(a: argparse.Namespace, ctx: Context) -> int:
    from .service import DaemonError

    src: Any = a.source
    if src == "-":
        src = sys.stdin.buffer
    elif not os.path.exists(src):
        raise DaemonError(f"open {src}: no such file or directory")
    # The daemon's default (postImagesCreate): docker import streams the tar as "-", and a
    # directory is imported as its layer tar, so the same files give the same image either way.
    message = a.message or "Imported from -"
    image_id = ctx.svc.import_image(src, a.repository, a.change, message)
    ctx.print(image_id)
    return 0


def _setup_history(p: argparse.ArgumentParser) -> None:
    p.add_argument("image")
    p.add_argument(
        "-H", "--human", default="true", help="Print sizes and dates in human readable format (default true)"
    )
    p.add_argument("--no-trunc", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("--format", help=FORMAT_HELP)


@command("history", "Show the history of an image", readonly=True, setup=_setup_history)
def cmd_history(a: argparse.Namespace, ctx: Context) -> int:
    human = str(a.human).lower() not in ("false", "0", "no")
    rows = ctx.svc.history(a.image)

    def hid(r: dict[str, Any]) -> str:
        return r["Id"] if a.no_trunc or r["Id"] == "<missing>" else short_id(r["Id"])

    if a.quiet:
        for r in rows:
            ctx.print(hid(r))
        return 0
    if a.format:  # docker/cli's historyContext: what the table shows, under its field names
        objs = []
        for r in rows:
            at = created_at(r["Created"])
            since = (ago(r["Created"], ctx.now) if r["Created"] > 946684800 else "N/A") if human else at
            by = r["CreatedBy"].replace("\t", " ")
            objs.append(
                {
                    "Comment": r["Comment"],
                    "CreatedAt": at,
                    "CreatedBy": by if a.no_trunc else ellipsis(by, 45),
                    "CreatedSince": since,
                    "ID": hid(r),
                    "Size": human_size(r["Size"]) if human else str(r["Size"]),
                }
            )
        if _formatted(ctx, a.format, objs, HISTORY_HEADERS, "*image.historyContext"):
            return 0
    body = []
    for r in rows:
        by = r["CreatedBy"] if a.no_trunc else truncate_cmd(r["CreatedBy"], 45)
        if human:
            when = ago(r["Created"], ctx.now) if r["Created"] > 946684800 else "N/A"
            size = human_size(r["Size"])
        else:
            when = created_at(r["Created"]) if r["Created"] > 946684800 else "N/A"
            size = str(r["Size"])
        body.append([hid(r), when, by, size, r["Comment"]])
    ctx.print(table(body, ["IMAGE", "CREATED" if human else "CREATED AT", "CREATED BY", "SIZE", "COMMENT"]))
    return 0


def _setup_inspect(p: argparse.ArgumentParser) -> None:
    p.add_argument("names", nargs="+")
    p.add_argument("--type", choices=("image", "container"))
    p.add_argument("-f", "--format", help="a Go template run on each object ('{{.Id}}'), as docker inspect -f")


@command("inspect", "Return low-level information on images and containers", readonly=True, setup=_setup_inspect)
def cmd_inspect(a: argparse.Namespace, ctx: Context) -> int:
    """docker inspect: untyped, a miss is `Error: No such object`; with --type, the daemon's error."""
    from .service import DaemonError

    template = None
    if a.format:
        from .gotemplate import TemplateError, inspect_line, parse

        try:
            template = parse(a.format)
        except TemplateError as exc:
            ctx.err.write(f"template parsing error: {exc}\n")
            return 64  # docker/cli: a flag's bad value
    out: list[Any] = []
    errors: list[str] = []
    for n in a.names:
        obj = None
        failure = f"Error: No such object: {n}"
        kind = "container"
        if a.type in (None, "container"):
            try:
                obj = ctx.svc.inspect_container(ctx.svc.get_container(n))
            except DaemonError as exc:
                obj, failure = None, DAEMON_PREFIX + str(exc) if a.type else failure
        if obj is None and a.type in (None, "image"):
            kind = "image"
            try:
                obj = ctx.svc.inspect_image(ctx.svc.get_image(n))
            except DaemonError as exc:
                obj, failure = None, DAEMON_PREFIX + str(exc) if a.type else failure
        if obj is None:
            errors.append(failure)
        elif template is None:
            out.append(obj)
        else:  # docker/cli's TemplateInspector: each result on a line, each failure in the errors
            try:
                out.append(inspect_line(template, obj, kind) + "\n")
            except TemplateError as exc:
                errors.append(f"template parsing error: {exc}")
    if template is None:
        ctx.print(json.dumps(out, indent=4, ensure_ascii=False))
    else:
        ctx.out.write("".join(out) or "\n")
    for e in errors:
        ctx.err.write(f"{e}\n")
    return 1 if errors else 0


def _setup_tag(p: argparse.ArgumentParser) -> None:
    p.add_argument("source")
    p.add_argument("target")


@command("tag", "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE", setup=_setup_tag)
def cmd_tag(a: argparse.Namespace, ctx: Context) -> int:
    ctx.svc.tag(a.source, a.target)
    return 0


def _each(ctx: Context, names: list[str], action: Callable[[str], None]) -> int:
    """docker rm/rmi: act on every name, even after a failure; the daemon's errors are printed
    together at the end, and any of them makes the exit status 1."""
    from .service import DaemonError

    errors = []
    for name in names:
        try:
            action(name)
        except DaemonError as exc:
            errors.append(DAEMON_PREFIX + str(exc))
    for e in errors:
        ctx.err.write(e + "\n")
    return 1 if errors else 0


def _setup_rmi(p: argparse.ArgumentParser) -> None:
    p.add_argument("images", nargs="+")
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("--no-prune", action="store_true")


@command("rmi", "Remove one or more images", setup=_setup_rmi)
def cmd_rmi(a: argparse.Namespace, ctx: Context) -> int:
    def remove(name: str) -> None:
        for rec in ctx.svc.image_delete(name, a.force, not a.no_prune):
            ctx.print(f"Deleted: {rec['Deleted']}" if "Deleted" in rec else f"Untagged: {rec['Untagged']}")

    return _each(ctx, a.images, remove)


def _setup_prune(p: argparse.ArgumentParser) -> None:
    p.add_argument("-a", "--all", action="store_true", help="Remove all unused images, not just dangling ones")
    p.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")


@command("image prune", "Remove unused images", setup=_setup_prune)
def cmd_image_prune(a: argparse.Namespace, ctx: Context) -> int:
    if not a.force:
        warning = (
            "WARNING! This will remove all images without at least one container associated to them."
            if a.all
            else "WARNING! This will remove all dangling images."
        )
        ctx.out.write(warning + "\nAre you sure you want to continue? [y/N] ")
        ctx.out.flush()
        answer = sys.stdin.readline().strip().lower()
        if answer not in ("y", "yes"):
            ctx.print("Total reclaimed space: 0B")
            return 0
    records, reclaimed = ctx.svc.image_prune(a.all)
    if records:
        ctx.print("Deleted Images:")
        for r in records:
            ctx.print(f"untagged: {r['Untagged']}" if "Untagged" in r else f"deleted: {r['Deleted']}")
        ctx.print()
    ctx.print(f"Total reclaimed space: {human_size(reclaimed, 4)}")
    return 0


# ---- containers ---------------------------------------------------------------------------------


@command("create", "Create a new container", setup=cli_run.add_container_flags)
def cmd_create(a: argparse.Namespace, ctx: Context) -> int:
    # What the docker CLI sends for `docker create` (stdout and stderr attached by default), so a
    # container is the same whichever client made it.
    config, host = cli_run.container_request(a, attach=True)
    c = ctx.svc.create_container(a.image, a.cmd or None, a.name, config=config, host_config=host)
    ctx.print(c.id)
    return 0


def _setup_ps(p: argparse.ArgumentParser) -> None:
    p.add_argument("-a", "--all", action="store_true", help="Show all containers (default shows just running)")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("--no-trunc", action="store_true")
    p.add_argument("-s", "--size", action="store_true", help="Display total file sizes")
    p.add_argument("--format", help=FORMAT_HELP)


@command("ps", "List containers", readonly=True, setup=_setup_ps)
def cmd_ps(a: argparse.Namespace, ctx: Context) -> int:
    from .runtime.state import status, status_text

    cs = [c for c in ctx.svc.containers.containers() if a.all or c.state.get("Running")]
    if a.quiet:
        for c in cs:
            ctx.print(c.id if a.no_trunc else c.short_id)
        return 0
    # docker/cli asks the daemon for sizes with -s, or when the template shows {{.Size}}
    sized = a.size or bool(a.format and re.search(r"\.Size\b", a.format))
    rows = []
    for c in cs:
        cmd = c.command if a.no_trunc else ellipsis(c.command, 20)
        rows.append(
            {
                "ID": c.id if a.no_trunc else c.short_id,
                "Image": _ps_image(c.config.get("Image", ""), c.image_id, a.no_trunc),
                "Command": f'"{cmd}"',
                "CreatedAt": go_time_string(c.created),
                "RunningFor": ago(c.created, ctx.now),
                "Status": status_text(c.state, ctx.now),
                "Ports": "",
                "Names": c.name,
                "State": status(c.state),
                # what docker/cli's ContainerContext adds; the daemon lists no mounts or networks
                "Labels": ",".join(f"{k}={v}" for k, v in sorted((c.config.get("Labels") or {}).items())),
                "LocalVolumes": "0",
                "Mounts": "",
                "Networks": "",
                "Platform": None,
                "Size": _ps_size(*ctx.svc.container_size(c)) if sized else "0B",
            }
        )
    if a.format and a.format != "json":  # ContainerContext.Label(name), for `{{.Label "k"}}`
        from .gotemplate import Row

        def label_of(labels: dict[str, str]) -> Callable[[str], str]:
            return lambda name: labels.get(name, "")

        rows = [
            Row(r, "*formatter.ContainerContext", {"Label": label_of(c.config.get("Labels") or {})})
            for r, c in zip(rows, cs, strict=True)
        ]
    wording = ("failed to parse template: ", "failed to execute template: ")
    if _formatted(ctx, a.format, rows, CONTAINER_HEADERS, "*formatter.ContainerContext", wording):
        return 0
    columns = ["ID", "Image", "Command", "RunningFor", "Status", "Ports", "Names"] + (["Size"] if a.size else [])
    ctx.print(table([[r[k] for k in columns] for r in rows], [CONTAINER_HEADERS[k] for k in columns]))
    return 0


def _ps_size(rw: int, rootfs: int) -> str:
    """docker/cli ContainerContext.Size: the top layer, and with the image's layers as virtual."""
    return f"{human_size(rw)} (virtual {human_size(rootfs)})" if rootfs > 0 else human_size(rw)


def _ps_image(image: str, image_id: str, no_trunc: bool) -> str:
    """docker/cli ContainerContext.Image: an image given by ID (a build step's container) shows
    as the short ID."""
    if not no_trunc and image and short_id(image) == short_id(image_id):
        return short_id(image)
    return image


def _setup_rm(p: argparse.ArgumentParser) -> None:
    p.add_argument("containers", nargs="+")
    p.add_argument("-f", "--force", action="store_true")


@command("rm", "Remove one or more containers", setup=_setup_rm)
def cmd_rm(a: argparse.Namespace, ctx: Context) -> int:
    def remove(name: str) -> None:
        ctx.svc.remove_container(name, a.force)
        ctx.print(name)

    return _each(ctx, a.containers, remove)


def _setup_diff(p: argparse.ArgumentParser) -> None:
    p.add_argument("container")
    p.add_argument("--format")


@command(
    "diff", "Inspect changes to files or directories on a container's filesystem", readonly=True, setup=_setup_diff
)
def cmd_diff(a: argparse.Namespace, ctx: Context) -> int:
    from .container import KIND_LETTER

    c = ctx.svc.get_container(a.container)
    changes = ctx.svc.containers.changes(c)
    if a.format == "json":
        ctx.out.write(json_lines({"Kind": k, "Path": p} for k, p in changes))
        return 0
    for kind, path in changes:
        ctx.print(f"{KIND_LETTER[kind]} {path}")
    return 0


def _setup_commit(p: argparse.ArgumentParser) -> None:
    p.add_argument("container")
    p.add_argument("repository", nargs="?")
    p.add_argument("-a", "--author", default="")
    p.add_argument("-m", "--message", default="")
    p.add_argument("-c", "--change", action="append", default=[])
    # A flag, as in docker (`-p c1 img` is container c1); `--pause=false` as pflag spells it.
    p.add_argument("-p", "--pause", action="store_true", default=True, help="Pause container during commit (no-op)")
    p.add_argument("--pause=false", dest="pause", action="store_false", help=argparse.SUPPRESS)
    p.add_argument("--pause=true", dest="pause", action="store_true", help=argparse.SUPPRESS)


@command("commit", "Create a new image from a container's changes", setup=_setup_commit)
def cmd_commit(a: argparse.Namespace, ctx: Context) -> int:
    res = ctx.svc.commit(a.container, a.repository, a.author, a.message, a.change)
    ctx.print(res.image_id)
    return 0


def _setup_mount(p: argparse.ArgumentParser) -> None:
    p.add_argument("container")
    p.add_argument("dir", nargs="?")
    p.add_argument(
        "--driver",
        choices=("layerfs", "overlay"),
        default="layerfs",
        help="layerfs (FUSE, default) or the kernel's overlay",
    )


@command("mount", "Mount a container's layers and print the merged directory", setup=_setup_mount)
def cmd_mount(a: argparse.Namespace, ctx: Context) -> int:
    svc = ctx.svc
    with svc.lock.held():
        c = svc.get_container(a.container)
        path = svc.containers.mount(c, Path(a.dir) if a.dir else None, a.driver)
    ctx.print(str(path))
    return 0


def _setup_umount(p: argparse.ArgumentParser) -> None:
    p.add_argument("container")


@command("umount", "Unmount a container's layers", aliases=("unmount",), setup=_setup_umount)
def cmd_umount(a: argparse.Namespace, ctx: Context) -> int:
    svc = ctx.svc
    with svc.lock.held():
        c = svc.get_container(a.container)
        svc.containers.umount(c)
    ctx.print(c.id)
    return 0


def _setup_picture(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--format",
        choices=render_mod.FORMATS,
        default="text",
        help="text (for terminals), dot (Graphviz's language), svg or png (drawn by Graphviz)",
    )
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of standard output")


def _emit(ctx: Context, a: argparse.Namespace, text: str, dot: str) -> int:
    """Write the text, the DOT, or the picture Graphviz draws from it, where -o says."""
    if a.format in render_mod.PICTURES:
        data = render_mod.render(dot, a.format)
    else:
        body = text if a.format == "text" else dot
        data = (body if body.endswith("\n") else body + "\n").encode("utf-8")
    if a.output:
        tmp = f"{a.output}.tmp-{os.getpid()}"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, a.output)
        return 0
    if a.format == "png" and getattr(ctx.out, "isatty", lambda: False)():
        raise CLIError("--format png writes binary data: redirect it to a file, or use -o FILE")
    buffer = getattr(ctx.out, "buffer", None)
    if buffer is not None:
        ctx.out.flush()
        buffer.write(data)
        buffer.flush()
    else:
        ctx.out.write(data.decode("utf-8", "replace"))
    return 0


@command("graph", "Show images as a tree of parents and bases, with shared layers", readonly=True, setup=_setup_picture)
def cmd_graph(a: argparse.Namespace, ctx: Context) -> int:
    from . import graph as graph_mod

    images = ctx.svc.graph_images()
    text = graph_mod.render_text(images) if a.format == "text" else ""
    dot = graph_mod.render_dot(images) if a.format != "text" else ""
    return _emit(ctx, a, text, dot)


def _setup_stack(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", metavar="IMAGE|CONTAINER")
    _setup_picture(p)


@command(
    "stack",
    "Draw the layers of an image or a container, top first, beside their union mount",
    readonly=True,
    setup=_setup_stack,
)
def cmd_stack(a: argparse.Namespace, ctx: Context) -> int:
    from . import stack as stack_mod

    stack = stack_mod.stack_of(ctx.svc, a.name)
    text = stack_mod.render_text(stack) if a.format == "text" else ""
    dot = stack_mod.render_dot(stack) if a.format != "text" else ""
    return _emit(ctx, a, text, dot)


# ---- the daemon ------------------------------------------------------------------------------------


def _setup_daemon(p: argparse.ArgumentParser) -> None:
    from .daemon.options import setup_args

    setup_args(p)


@command("daemon", "Serve Docker's Engine API on a socket, so the docker client drives this store", setup=_setup_daemon)
def cmd_daemon(a: argparse.Namespace, ctx: Context) -> int:
    from .daemon.command import run

    return run(a, Path(a.daemon_root).absolute() if a.daemon_root else ctx.root, ctx.err)


# ---- the parser ------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="imagegraph", description="Docker's image model on a local store")
    parser.add_argument("-v", "-V", "--version", action=VersionAction, help="show the version and exit")
    parser.add_argument(
        "-D",
        "--debug",
        action="store_true",
        default=os.environ.get("IMAGEGRAPH_DEBUG", "") not in ("", "0"),
        help="show the traceback of an internal error (also IMAGEGRAPH_DEBUG=1)",
    )
    parser.add_argument(
        "--root", help="store root (default $IMAGEGRAPH_ROOT, /var/lib/imagegraph or ~/.local/share/imagegraph)"
    )
    parser.add_argument("--whiteouts", choices=("overlay", "aufs"), help="on-disk whiteout encoding of new layers")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_LazyParser)
    groups: dict[str, argparse._SubParsersAction] = {}
    for cmd in [*COMMANDS, *cli_distribution.COMMANDS, *cli_run.COMMANDS, *cli_build.COMMANDS]:
        flat = [x for x in cmd.aliases if " " not in x]
        names = [cmd.name, *(x for x in cmd.aliases if " " in x)]
        for n in names:
            words = n.split()
            if len(words) == 1:
                p = sub.add_parser(words[0], help=cmd.help, description=cmd.help, aliases=flat, setup=cmd.setup)
            else:
                if words[0] not in groups:
                    gp = sub.add_parser(words[0], help=f"Manage {words[0]}s")
                    groups[words[0]] = gp.add_subparsers(dest="subcommand", metavar="COMMAND", parser_class=_LazyParser)
                p = groups[words[0]].add_parser(words[1], help=cmd.help, description=cmd.help, setup=cmd.setup)
            p.set_defaults(_run=cmd.run, _readonly=cmd.readonly)
    return parser


def main(argv: list[str] | None = None, out: Any = None, err: Any = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    parser = build_parser()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):  # --help, --version
            a = parser.parse_args(argv)
    except UsageError as exc:
        err.write(f"{exc}\n")
        return 125
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    if a.root is not None and not a.root.strip():
        err.write('invalid argument "" for "--root" flag: the store root must not be empty\n')
        return 125
    run = getattr(a, "_run", None)
    if run is None:
        parser.print_help(out)
        return 0
    ctx = Context(
        resolve_root(a.root), a.whiteouts, out, err, time.time(), readonly=bool(getattr(a, "_readonly", False))
    )
    try:
        if getattr(a, "_readonly", False):
            with ctx.svc.lock.held(shared=True):
                return run(a, ctx)
        return run(a, ctx)
    except UsageError as exc:
        err.write(f"{exc}\n")
        return 125
    except (CLIError, render_mod.RenderError) as exc:
        err.write(f"{exc}\n")
        return 1
    except StoreError as exc:
        err.write(f"Error: {exc}\n")
        return 1
    except KeyboardInterrupt:
        err.write("interrupted\n")
        return 130
    except Exception as exc:
        if isinstance(exc, _client_errors()):
            err.write(f"{exc}\n")
        elif isinstance(exc, _daemon_errors()):
            err.write(DAEMON_PREFIX + str(exc) + "\n")
        elif isinstance(exc, OSError):
            err.write(f"Error: {os_error_line(exc, ctx.root)}\n")
        elif a.debug:  # a bug is one line, unless asked for its traceback (as pip's --debug)
            raise
        else:
            err.write(f"Error: internal error: {type(exc).__name__}: {exc} (--debug shows where)\n")
        return 1


def _client_errors() -> tuple[type[Exception], ...]:
    from .service import ClientError

    return (ClientError,)


def _daemon_errors() -> tuple[type[Exception], ...]:
    """The errors printed as the daemon's, imported only once a command has failed.

    The runtime's error is among them only if the runtime was loaded: a command that did not
    import it cannot have raised it, and loading it would cost a failing command ~20 ms.
    """
    from .archive import ArchiveError
    from .container import ContainerError
    from .imagestore import ImageError
    from .layerstore import LayerError
    from .refstore import RefError
    from .service import DaemonError

    known: tuple[type[Exception], ...] = (
        DaemonError,
        ContainerError,
        ImageError,
        LayerError,
        RefError,
        ArchiveError,
        InvalidReference,
    )
    runtime = sys.modules.get("imagegraph.runtime.manager")
    return known + ((runtime.ContainerRuntimeError,) if runtime is not None else ())


if __name__ == "__main__":
    sys.exit(main())
