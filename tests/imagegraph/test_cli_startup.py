"""Each imagegraph command imports what it uses, not every other command's implementation.

Run in a fresh interpreter, as a user runs the command: `images` on an empty store must not
load the registry client (http.client, ssl), pull, push, the gzip engine, the runtime, the
builder or the Engine API; `--version` and `--help` not even the store. No timings here
(bench/README.md has those): a module that comes back at start-up fails these tests.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

# What `images` must not load: the other commands' implementations.
NOT_FOR_IMAGES = (
    "http.client",
    "ssl",
    "zlib_ng",
    "imagegraph.distribution.client",
    "imagegraph.distribution.pull",
    "imagegraph.distribution.push",
    "imagegraph.distribution.localstore",
    "imagegraph.tarexport",
    "imagegraph.builder",
    "imagegraph.daemon",
    "imagegraph.api",
    "imagegraph.stack",
)
NOT_FOR_IMAGES_PREFIXES = ("imagegraph.runtime.", "imagegraph.builder.", "imagegraph.daemon.", "imagegraph.api.")


def loaded_by(*argv: str) -> tuple[int, str, set[str]]:
    """Run `imagegraph ARGV` in a new interpreter: its exit status, stdout and sys.modules."""
    script = (
        "import json, sys\n"
        "from imagegraph.cli import main\n"
        "try:\n"
        "    rc = main(sys.argv[1:])\n"
        "except SystemExit as exc:\n"
        "    rc = exc.code\n"
        "sys.stdout.flush()\n"
        "sys.stderr.write(json.dumps([rc, sorted(sys.modules)]))\n"
    )
    r = subprocess.run([sys.executable, "-c", script, *argv], capture_output=True, text=True, timeout=60)
    rc, modules = json.loads(r.stderr.splitlines()[-1])
    return rc, r.stdout, set(modules)


# container.py (the store's containers) checks network modes with this small module, not the runtime.
STORE_USES = {"imagegraph.runtime.network"}


def unwanted(modules: set[str]) -> list[str]:
    return sorted(m for m in modules - STORE_USES if m in NOT_FOR_IMAGES or m.startswith(NOT_FOR_IMAGES_PREFIXES))


def test_images_loads_no_other_command(tmp_path: Path) -> None:
    rc, out, modules = loaded_by("--root", str(tmp_path / "store"), "images")
    assert (rc, out.split()) == (0, ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"])
    assert "imagegraph.service" in modules  # it did read the store
    assert unwanted(modules) == []


def test_images_on_a_store_with_images_and_a_stopped_container(tmp_path: Path) -> None:
    """Opening a store that exists checks for crashed containers; with none marked running,
    that check loads no runtime (nor does `ps`, `images` or `history`)."""
    from imagegraph.cli import main

    store, rootfs = tmp_path / "store", tmp_path / "rootfs"
    rootfs.mkdir()
    (rootfs / "hello").write_text("hi\n")
    assert main(["--root", str(store), "import", str(rootfs), "startup/app:1"], io.StringIO(), io.StringIO()) == 0
    assert main(["--root", str(store), "create", "--name", "c1", "startup/app:1", "/hello"], io.StringIO()) == 0
    rc, out, modules = loaded_by("--root", str(store), "images")
    assert rc == 0 and "startup/app" in out
    assert unwanted(modules) == []
    rc, out, modules = loaded_by("--root", str(store), "ps", "-a")
    assert rc == 0 and "c1" in out
    assert "imagegraph.runtime.manager" not in modules


@pytest.mark.parametrize("argv", [("--version",), ("--help",), ("run", "--help"), ("image", "ls", "--help")])
def test_version_and_help_load_no_store(argv: tuple[str, ...]) -> None:
    rc, out, modules = loaded_by(*argv)
    assert rc == 0 and out.startswith(("imagegraph version", "usage: imagegraph"))
    store_modules = {"imagegraph.service", "imagegraph.imagestore", "imagegraph.layerstore", "imagegraph.archive"}
    assert sorted(modules & store_modules) == []
    assert unwanted(modules) == []


def test_a_subcommand_still_checks_its_arguments_and_gets_its_defaults(tmp_path: Path) -> None:
    """The arguments of a subcommand are added when it is parsed: its errors and defaults stay."""
    from imagegraph.cli import build_parser
    from imagegraph.commands import UsageError

    parser = build_parser()
    a = parser.parse_args(["pull", "busybox"])
    assert (a.name, a.max_concurrent_downloads, a.quiet) == ("busybox", 3, False)
    with pytest.raises(UsageError, match="max-concurrent-downloads"):
        parser.parse_args(["pull", "--max-concurrent-downloads", "0", "busybox"])
    assert parser.parse_args(["image", "ls", "-q"]).quiet is True
