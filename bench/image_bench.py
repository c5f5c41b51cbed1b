#!/usr/bin/env python3
"""imagegraph beside its yardsticks, in one run, on the same trees and images.

    .venv/bin/python bench/image_bench.py [--repeat N] [--quick] [--measures GROUP,...]
                                          [--json FILE] [--workdir DIR]

Each figure pairs an `imagegraph` command with the tool a user would otherwise reach for, run
on the same data in the same run: `tar -c DIR | sha256sum` ("tar + sha256sum" in the tables)
for import and commit, `skopeo copy` for push, pull, save and load, `skopeo copy` + `umoci
unpack` for pull + mount, and `imagegraph` itself for the same work through `imagegraph daemon`
and the real `docker` CLI. Import and commit also time a floor, "tar -x": `tar -c DIR | tar -x`
into a new folder beside the store, the file creation any store laid out like Docker's must do.
Every figure is the median of N runs (min and max beside it) and its ratio to its yardstick;
runs are interleaved (run 1 of both, then run 2, ...), so a noisy neighbour slows both alike.
Each command runs as its own process, and its peak RSS (from wait4) is reported too.

Fixtures: a single-file layer (1 GiB), a layer of small files (20,000), and a 5-layer image
(500 MiB); --quick shrinks them for a smoke run. The file data is a quarter random bytes and
three quarters text, so gzip shrinks it about 4:1, as it shrinks real layers' binaries and text.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# bench/ is a folder of scripts: its common.py, and the checkout's packages.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    BenchError,
    Figure,
    MountSet,
    Terminated,
    format_ratio,
    format_seconds,
    raise_terminated,
    save_json,
)

try:
    from tabulate import tabulate
except ImportError:  # the venv has it; a bare python3 may not
    print("image_bench: the tabulate package is missing (run `make setup`, then use .venv/bin/python)", file=sys.stderr)
    raise SystemExit(2) from None

REPO = Path(__file__).resolve().parents[1]
PROG = "image_bench"
MiB = 1 << 20
GROUPS = ("import", "commit", "push", "pull", "pull-mount", "save", "load", "daemon")
REGISTRY_GROUPS = frozenset({"push", "pull", "pull-mount", "save", "load", "daemon"})  # they need the registry
IMAGEGRAPH = "imagegraph"
RSS_AIM = 150 * MiB
REGISTRY_BIN = "/usr/bin/docker-registry"


# -- sizes and fixtures --------------------------------------------------------------------
@dataclass(frozen=True)
class Sizes:
    """How big the fixtures are: the issue's figures, or small ones for a smoke run."""

    big_bytes: int = 1024 * MiB
    small_files: int = 20_000
    small_dirs: int = 100
    layers: int = 5
    image_bytes: int = 500 * MiB
    layer_files: int = 200  # small files in each of the image's layers, beside its big one
    images: int = 200
    inspect_clients: int = 50

    @classmethod
    def quick(cls) -> Sizes:
        return cls(
            big_bytes=4 * MiB,
            small_files=200,
            small_dirs=4,
            layers=5,
            image_bytes=5 * MiB,
            layer_files=20,
            images=5,
            inspect_clients=5,
        )


def _n(value: int) -> str:
    return f"{value:,}"


def _mib(value: int) -> str:
    return f"{value / (1 << 30):g} GiB" if value >= 1 << 30 else f"{value / MiB:g} MiB"


@dataclass(frozen=True)
class Fixture:
    key: str  # big, small, image
    label: str


def fixtures(sizes: Sizes) -> dict[str, Fixture]:
    return {
        "big": Fixture("big", f"1 file of {_mib(sizes.big_bytes)}"),
        "small": Fixture("small", f"{_n(sizes.small_files)} small files"),
        "image": Fixture("image", f"{sizes.layers} layers, {_mib(sizes.image_bytes)}"),
    }


_TEXT = b"".join(
    f"{i:08d} the quick brown fox jumps over the lazy dog; layerlab image bench line\n".encode() for i in range(2048)
)


def _data(rng: random.Random, size: int) -> Iterator[bytes]:
    """`size` bytes in 1 MiB blocks: a quarter random, three quarters text (gzip: about 4:1)."""
    left = size
    while left > 0:
        n = min(MiB, left)
        rand = rng.randbytes(min(n, MiB // 4))
        text = (_TEXT * (MiB // len(_TEXT) + 1))[: n - len(rand)]
        yield rand + text
        left -= n


def _write(path: Path, size: int, rng: random.Random) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        for block in _data(rng, size):
            f.write(block)


def _build_small(base: Path, files: int, dirs: int, rng: random.Random) -> None:
    for i in range(files):
        _write(base / f"d{i % dirs:03d}" / f"f{i:05d}", rng.randint(512, 4096), rng)


def _build_image_layers(base: Path, sizes: Sizes, rng: random.Random) -> list[Path]:
    """Each layer: one big file, `layer_files` files of its own and a change to a file of the layer below."""
    per_layer = sizes.image_bytes // sizes.layers
    out = []
    for i in range(sizes.layers):
        layer = base / f"layer{i + 1}"
        _write(layer / f"data{i + 1}.bin", per_layer * 3 // 4, rng)
        for j in range(sizes.layer_files):
            _write(layer / "files" / f"l{i + 1}-{j:03d}", per_layer // 4 // sizes.layer_files, rng)
        (layer / "etc").mkdir(exist_ok=True)
        (layer / "etc" / "release").write_text(f"layer {i + 1}\n")
        out.append(layer)
    return out


def prepare_fixtures(workdir: Path, sizes: Sizes, needed: Collection[str] = ("big", "small", "image")) -> Path:
    """The trees this run needs, each built once under workdir/fixtures and reused while the sizes stay the same."""
    base = workdir / "fixtures"
    base.mkdir(parents=True, exist_ok=True)
    wanted = json.dumps(asdict(sizes), sort_keys=True)
    builders: dict[str, Callable[[Path, random.Random], object]] = {
        "big": lambda path, rng: _write(path / "blob.bin", sizes.big_bytes, rng),
        "small": lambda path, rng: _build_small(path, sizes.small_files, sizes.small_dirs, rng),
        "image": lambda path, rng: _build_image_layers(path, sizes, rng),
    }
    for key, build in builders.items():
        stamp = base / f"{key}.sizes.json"
        if key not in needed or (stamp.exists() and stamp.read_text() == wanted):
            continue
        _progress(f"building the fixture '{key}'")
        stamp.unlink(missing_ok=True)
        shutil.rmtree(base / key, ignore_errors=True)
        build(base / key, random.Random(f"16-{key}"))
        stamp.write_text(wanted)
    return base


def fixtures_needed(groups: Collection[str], trees: list[Fixture], chosen: list[Fixture]) -> set[str]:
    """Which fixtures the measures will read: a run of the image's measures builds no 1 GiB tree."""
    needed = {fx.key for fx in trees} if {"import", "commit"} & set(groups) else set()
    registry_groups = REGISTRY_GROUPS & set(groups)
    if registry_groups - {"daemon"}:
        needed |= {fx.key for fx in chosen}
    elif registry_groups:
        needed.add("image")
    return needed


# -- running commands ------------------------------------------------------------------------
Step = Sequence[str] | tuple[Sequence[str], ...]  # a command, or a pipeline of commands


@dataclass
class Sample:
    seconds: float
    peak_rss: int  # bytes, the largest of the step's processes


def _env() -> dict[str, str]:
    """This checkout's venv first on PATH (the `layerfs` that mounts are made with), no docker config."""
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.pop("DOCKER_API_VERSION", None)
    env.setdefault("DOCKER_CLI_HINTS", "false")
    return env


def _wait(pids: list[int]) -> tuple[int, int]:
    """Reap the processes; (first non-zero exit status or 0, peak RSS in bytes)."""
    status, peak = 0, 0
    for pid in pids:
        _, raw, usage = os.wait4(pid, 0)
        code = os.waitstatus_to_exitcode(raw)
        peak = max(peak, usage.ru_maxrss * 1024)
        status = status or code
    return status, peak


def _spawn(argv: Sequence[str], env: dict[str, str], stdin: int | None, stdout: int | None, err: int) -> int:
    proc = subprocess.Popen(list(argv), env=env, stdin=stdin, stdout=stdout, stderr=err, close_fds=True)
    pid = proc.pid
    proc.returncode = 0  # reaped by _wait (wait4 gives the rusage); stop Popen from reaping it
    return pid


def run_step(step: Step, env: dict[str, str], what: str) -> Sample:
    """Run one command or pipeline, timed from the first spawn to the last exit."""
    commands: tuple[Sequence[str], ...] = step if isinstance(step, tuple) else (step,)
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        pids = []
        prev: int | None = None
        for i, argv in enumerate(commands):
            last = i == len(commands) - 1
            r, w = (None, None) if last else os.pipe()
            out = subprocess.DEVNULL if last else w
            pids.append(_spawn(argv, env, prev, out, err.fileno()))
            if prev is not None:
                os.close(prev)
            if w is not None:
                os.close(w)
            prev = r
        status, peak = _wait(pids)
        seconds = time.perf_counter() - start
        if status != 0:
            err.seek(0)
            lines = [line.strip() for line in err.read().decode(errors="replace").splitlines() if line.strip()]
            raise BenchError(f"{what} failed: {lines[-1] if lines else f'exit status {status}'}")
    return Sample(seconds, peak)


def check(argv: Sequence[str], env: dict[str, str], what: str) -> str:
    """An untimed command (set-up and tear-down); its stdout."""
    result = subprocess.run(list(argv), env=env, capture_output=True, text=True)
    if result.returncode != 0:
        lines = [line.strip() for line in result.stderr.splitlines() if line.strip()]
        raise BenchError(f"{what} failed: {lines[-1] if lines else f'exit status {result.returncode}'}")
    return result.stdout


def ig(root: Path, *args: str, python: str = sys.executable) -> list[str]:
    return [python, "-m", "imagegraph", "--root", str(root), *args]


REFERENCE = "imagegraph-ref"


def _progress(text: str) -> None:
    print(f"... {text}", file=sys.stderr, flush=True)


# -- the registry -----------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        conn.request("GET", "/v2/")
        ok = conn.getresponse().status in (200, 401)
        conn.close()
        return ok
    except OSError:
        return False


@contextlib.contextmanager
def registry(workdir: Path) -> Iterator[str]:
    """Debian's docker-registry on a free loopback port with its own storage; yields `127.0.0.1:PORT`."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    config = workdir / "config.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {workdir / 'storage'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n  secret: layerlab-bench\n"
    )
    with open(workdir / "registry.log", "wb") as log:
        proc = subprocess.Popen(
            [REGISTRY_BIN, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 20
        while not _answers(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"docker-registry did not start: see {workdir / 'registry.log'}")
            time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)


# -- the daemon -------------------------------------------------------------------------------
def _ping(sock: Path) -> bool:
    class Unix(http.client.HTTPConnection):
        def connect(self) -> None:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(2)
            s.connect(str(sock))
            self.sock = s

    try:
        conn = Unix("localhost", timeout=2)
        conn.request("GET", "/_ping")
        ok = conn.getresponse().status == 200
        conn.close()
        return ok
    except OSError:
        return False


@contextlib.contextmanager
def daemon(root: Path, workdir: Path, env: dict[str, str]) -> Iterator[tuple[dict[str, str], int]]:
    """`imagegraph daemon` on a private socket; yields (the docker CLI's environment, the pid)."""
    workdir.mkdir(parents=True, exist_ok=True)
    sock = workdir / "d.sock"
    (workdir / "docker-config").mkdir(exist_ok=True)
    with open(workdir / "daemon.log", "wb") as log:
        proc = subprocess.Popen(
            ig(root, "daemon", "-H", f"unix://{sock}"),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 30
        while not _ping(sock):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"imagegraph daemon did not start: see {workdir / 'daemon.log'}")
            time.sleep(0.05)
        yield dict(env, DOCKER_HOST=f"unix://{sock}", DOCKER_CONFIG=str(workdir / "docker-config")), proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- the bench ------------------------------------------------------------------------------
@dataclass
class Pair:
    """One measure: an imagegraph figure and its yardstick's, with the aim for their ratio."""

    key: str
    label: str
    yardstick: str
    aim: float | None
    floor: str = ""  # a third system: what the same files cost to create (no aim)


@dataclass
class Bench:
    workdir: Path
    sizes: Sizes
    repeat: int
    env: dict[str, str]
    fixtures: Path
    pairs: list[Pair] = field(default_factory=list)
    figures: dict[tuple[str, str], Figure] = field(default_factory=dict)
    rss: dict[tuple[str, str], int] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    reference: str | None = None  # another checkout's Python: its imagegraph timed as REFERENCE
    leftovers: list[Path] = field(default_factory=list)  # removed after the last measure (see import)

    def scratch(self, name: str) -> Path:
        path = self.workdir / "runs" / name
        shutil.rmtree(path, ignore_errors=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def record(self, key: str, system: str, sample: Sample) -> None:
        self.figures.setdefault((key, system), Figure(key, system)).samples.append(sample.seconds)
        self.rss[(key, system)] = max(self.rss.get((key, system), 0), sample.peak_rss)

    def pair(
        self,
        pair: Pair,
        ours: Callable[[int], Sample],
        theirs: Callable[[int], Sample],
        peers: Sequence[tuple[str, Callable[[int], Sample]]] = (),
        rotate: bool = False,
    ) -> None:
        """Run both sides `repeat` times, interleaved; a failure drops the measure with a line.
        `peers` (system, run) are timed in the same turns: the floor (`pair.floor`, the part of
        the work no implementation can skip) and the reference checkout's imagegraph. `rotate`:
        each turn starts with the next system (run 1: imagegraph first, run 2: the yardstick,
        …), for runs that do not depend on one another: the first of a turn pays for what the
        last one left (writeback, freed inodes), so no system pays it every time."""
        self.pairs.append(pair)
        _progress(pair.label)
        systems = [(IMAGEGRAPH, ours), (pair.yardstick, theirs), *peers]
        try:
            for i in range(self.repeat):
                start = i % len(systems) if rotate else 0
                for system, run in systems[start:] + systems[:start]:
                    self.record(pair.key, system, run(i))
        except BenchError as exc:
            self.failed[pair.key] = str(exc)
            print(f"failed: {pair.label}: {exc}", flush=True)
            return
        # Each result as it comes (stderr): a long run cut short still says what it measured.
        mine, base = self.figures[(pair.key, IMAGEGRAPH)], self.figures[(pair.key, pair.yardstick)]
        low = self.figures.get((pair.key, pair.floor))
        _progress(
            f"{pair.label}: imagegraph {format_seconds(mine.median)}, {pair.yardstick} "
            f"{format_seconds(base.median)}, {format_ratio(mine.median / base.median if base.median else None)}"
            + (f"; {pair.floor} {format_seconds(low.median)}" if low else "")
        )


def tar_sha256(tree: Path) -> tuple[Sequence[str], ...]:
    return (["tar", "-cf", "-", "-C", str(tree), "."], ["sha256sum"])


FLOOR = "tar -x"


def tar_extract(tree: Path, dest: Path) -> tuple[Sequence[str], ...]:
    """The tree's files created again in `dest`, on the store's filesystem: what any store laid
    out like Docker's must do for an import or commit (as root, tar keeps owners as we do)."""
    dest.mkdir(parents=True)
    return (["tar", "-cf", "-", "-C", str(tree), "."], ["tar", "-xf", "-", "-C", str(dest)])


# -- import and commit ----------------------------------------------------------------------
def measure_import(bench: Bench, fx: Fixture) -> None:
    """Every run's store and floor copy is removed only after the last run: on a filesystem
    that avoids reusing the inodes it freed in the last minutes (ext4 without a journal, as
    here), files created just after 20,000 were deleted cost many times more (bench/README.md)."""
    tree = bench.fixtures / fx.key
    runs = bench.scratch("import-runs")

    def ours(i: int) -> Sample:
        return run_step(
            ig(runs / f"root-{i}", "import", str(tree), "bench/import:latest"), bench.env, "imagegraph import"
        )

    def theirs(i: int) -> Sample:
        return run_step(tar_sha256(tree), bench.env, "tar + sha256sum")

    def floor(i: int) -> Sample:
        return run_step(tar_extract(tree, runs / f"floor-{i}"), bench.env, FLOOR)

    def reference(i: int) -> Sample:
        argv = ig(runs / f"ref-root-{i}", "import", str(tree), "bench/import:latest", python=bench.reference or "")
        return run_step(argv, bench.env, f"{REFERENCE} import")

    pair = Pair(f"import-{fx.key}", f"import: {fx.label}", "tar + sha256sum", 1.2, FLOOR)
    bench.pair(pair, ours, theirs, [(FLOOR, floor), *([(REFERENCE, reference)] if bench.reference else [])])
    bench.leftovers.append(runs)


def measure_commit(bench: Bench, fx: Fixture) -> None:
    """A container on a one-file base image, the fixture copied into its top layer."""
    root = bench.scratch("commit-root")
    base = bench.scratch("commit-base")
    (base / "etc").mkdir(parents=True)
    (base / "etc" / "hostname").write_text("bench\n")
    svc = services(root)
    svc.import_image(str(base), "bench/base:latest")
    upper = container_with(svc, "bench/base:latest", "committer", bench.fixtures / fx.key)
    floors = bench.scratch("commit-floors")

    def ours(i: int) -> Sample:
        # One file more per run makes each run's layer new (the same layer would be found and
        # its copy dropped); the committed images are deleted after the last run (see import).
        (upper / f".bench-run-{i - 1}").unlink(missing_ok=True)
        (upper / f".bench-run-{i}").write_text(f"{i}\n")
        return run_step(ig(root, "commit", "committer", f"bench/committed:{i}"), bench.env, "imagegraph commit")

    def theirs(i: int) -> Sample:
        return run_step(tar_sha256(upper), bench.env, "tar + sha256sum")

    def floor(i: int) -> Sample:
        return run_step(tar_extract(upper, floors / f"floor-{i}"), bench.env, FLOOR)

    def reference(i: int) -> Sample:
        (upper / f".bench-run-{i}").rename(upper / f".bench-run-{i}r")  # a new layer for it too
        argv = ig(root, "commit", "committer", f"bench/committed:{i}r", python=bench.reference or "")
        sample = run_step(argv, bench.env, f"{REFERENCE} commit")
        (upper / f".bench-run-{i}r").rename(upper / f".bench-run-{i}")
        return sample

    pair = Pair(f"commit-{fx.key}", f"commit: {fx.label}", "tar + sha256sum", 1.2, FLOOR)
    bench.pair(pair, ours, theirs, [(FLOOR, floor), *([(REFERENCE, reference)] if bench.reference else [])])
    bench.leftovers += [root, floors]


# -- the images: a source store, a registry with them, OCI layouts and archives for skopeo -----
@dataclass
class Images:
    store: Path  # imagegraph store holding bench/<fixture>:latest
    registry: str  # 127.0.0.1:PORT holding bench/<fixture>:latest (pushed by imagegraph)
    layouts: Path  # <fixture>/ : OCI layout of each image (skopeo's source)
    archives: Path  # <fixture>.tar : `imagegraph save` of each image


def services(root: Path) -> Any:
    """imagegraph's service layer on `root`, in this process: set-up needs no start-up per step."""
    from imagegraph.service import Services

    return Services.open(root)


def container_with(svc: Any, image: str, name: str, tree: Path) -> Path:
    """A container of `image` whose top layer holds a copy of `tree`; its top layer's folder."""
    c = svc.create_container(image, ["true"], name)
    upper = svc.layout.layer_dir(svc.containers.mount_layer(c).mount_id) / "diff"
    subprocess.run(["cp", "-a", f"{tree}/.", str(upper)], check=True)
    return Path(upper)


def layered_image(svc: Any, layers: list[Path], name: str) -> str:
    """An image of one layer per folder, registered in this process layer on layer (what a
    build of COPY steps makes, without its containers); its ID."""
    from imagegraph.commit import go_arch
    from imagegraph.digest import canonical_config_json
    from imagegraph.reference import parse_normalized_named

    with svc.lock.held():
        parent, diff_ids, history = None, [], []
        for layer_dir in layers:
            layer, _ = svc.layers.register_dir(layer_dir, parent)
            parent = layer.chain_id
            diff_ids.append(layer.diff_id)
            history.append({"created": "2026-11-30T00:00:00Z", "created_by": f"COPY {layer_dir.name} /"})
        config = {
            "architecture": go_arch(),
            "config": {},
            "created": "2026-11-30T00:00:00Z",
            "history": history,
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }
        image_id: str = svc.images.create(canonical_config_json(config))
        svc.refs.reload()
        svc.refs.add_tag(parse_normalized_named(name), image_id, force=True)
    return image_id


def build_images(bench: Bench, reg: str, wanted: list[Fixture]) -> Images:
    """Import each fixture as an image (the 5-layer one layer on layer), push it, save it."""
    store = bench.scratch("source-store")
    layouts = bench.scratch("layouts")
    archives = bench.scratch("archives")
    archives.mkdir(parents=True)
    env = bench.env
    for fx in wanted:
        _progress(f"preparing the image {fx.label}")
        name = f"bench/{fx.key}:latest"
        svc = services(store)
        if fx.key != "image":
            svc.import_image(str(bench.fixtures / fx.key), name)
        else:
            layered_image(svc, sorted((bench.fixtures / "image").iterdir()), name)
        svc.tag(name, f"{reg}/{name}")
        check(ig(store, "push", f"{reg}/{name}"), env, "imagegraph push")
        services(store).image_delete(f"{reg}/{name}")
        archive = archives / f"{fx.key}.tar"
        check(ig(store, "save", "-o", str(archive), name), env, "imagegraph save")
        with tarfile.open(archive) as tar:  # our own `save` output
            if hasattr(tarfile, "tar_filter"):
                tar.extractall(layouts / fx.key, filter="tar")
            else:  # Debian 12's 3.11.2, which .venv is made with (Makefile), has no filters
                tar.extractall(layouts / fx.key)
    return Images(store, reg, layouts, archives)


def _skopeo(*args: str) -> list[str]:
    return ["skopeo", "--insecure-policy", "copy", "--quiet", *args]


def measure_push(bench: Bench, images: Images, fx: Fixture) -> None:
    """Each run pushes to a registry of its own: nothing is there yet, nothing can be mounted."""
    name = f"bench/{fx.key}:latest"

    def ours(i: int) -> Sample:
        with registry(bench.scratch("push-registry")) as reg:
            services(images.store).tag(name, f"{reg}/{name}")
            sample = run_step(ig(images.store, "push", f"{reg}/{name}"), bench.env, "imagegraph push")
            services(images.store).image_delete(f"{reg}/{name}")
        return sample

    def theirs(i: int) -> Sample:
        with registry(bench.scratch("push-registry")) as reg:
            return run_step(
                _skopeo("--dest-tls-verify=false", f"oci:{images.layouts / fx.key}:latest", f"docker://{reg}/{name}"),
                bench.env,
                "skopeo copy",
            )

    bench.pair(Pair(f"push-{fx.key}", f"push: {fx.label}", "skopeo copy", 1.0), ours, theirs, rotate=True)


def measure_pull(bench: Bench, images: Images, fx: Fixture) -> None:
    """Every run's store (and skopeo's layout) is removed only after the last measure, as for
    import: a pull creates the layers' files, and right after a pull's store was deleted on a
    filesystem that does not reuse freed inodes at once, each new file cost many times more
    (bench/README.md)."""
    ref = f"{images.registry}/bench/{fx.key}:latest"
    runs = bench.scratch(f"pull-runs-{fx.key}")

    def ours(i: int) -> Sample:
        return run_step(ig(runs / f"root-{i}", "pull", ref), bench.env, "imagegraph pull")

    def theirs(i: int) -> Sample:
        copy = _skopeo("--src-tls-verify=false", f"docker://{ref}", f"oci:{runs / f'oci-{i}'}:latest")
        return run_step(copy, bench.env, "skopeo")

    def reference(i: int) -> Sample:
        argv = ig(runs / f"ref-root-{i}", "pull", ref, python=bench.reference or "")
        return run_step(argv, bench.env, f"{REFERENCE} pull")

    pair = Pair(f"pull-{fx.key}", f"pull: {fx.label}", "skopeo copy", 1.0)
    bench.pair(pair, ours, theirs, [(REFERENCE, reference)] if bench.reference else [], rotate=True)
    bench.leftovers.append(runs)


def measure_pull_mount(bench: Bench, images: Images, fx: Fixture) -> None:
    """pull, create and mount (layerfs) against skopeo copy and umoci unpack (a full extraction)."""
    ref = f"{images.registry}/bench/{fx.key}:latest"
    rootless = ["--rootless"] if os.geteuid() != 0 else []

    def ours(i: int) -> Sample:
        root = bench.scratch("pullmount-root")
        steps = [
            ig(root, "pull", "-q", ref),
            ig(root, "create", "--name", "mounted", ref, "true"),
            ig(root, "mount", "mounted"),
        ]
        samples = [run_step(step, bench.env, f"imagegraph {step[5]}") for step in steps]
        subprocess.run(ig(root, "umount", "mounted"), env=bench.env, capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
        return Sample(sum(s.seconds for s in samples), max(s.peak_rss for s in samples))

    def theirs(i: int) -> Sample:
        dest, bundle = bench.scratch("pullmount-oci"), bench.scratch("pullmount-bundle")
        copy = run_step(_skopeo("--src-tls-verify=false", f"docker://{ref}", f"oci:{dest}:latest"), bench.env, "skopeo")
        unpack = run_step(["umoci", "unpack", *rootless, "--image", f"{dest}:latest", str(bundle)], bench.env, "umoci")
        shutil.rmtree(dest, ignore_errors=True)
        shutil.rmtree(bundle, ignore_errors=True)
        return Sample(copy.seconds + unpack.seconds, max(copy.peak_rss, unpack.peak_rss))

    bench.pair(
        Pair(f"pull-mount-{fx.key}", f"pull + mount: {fx.label}", "skopeo copy + umoci unpack", 1.0), ours, theirs
    )


def measure_save(bench: Bench, images: Images, fx: Fixture) -> None:
    name = f"bench/{fx.key}:latest"

    def ours(i: int) -> Sample:
        out = bench.scratch("save.tar")
        sample = run_step(ig(images.store, "save", "-o", str(out), name), bench.env, "imagegraph save")
        out.unlink()
        return sample

    def theirs(i: int) -> Sample:
        out = bench.scratch("save.tar")
        sample = run_step(
            _skopeo(f"oci:{images.layouts / fx.key}:latest", f"docker-archive:{out}:{name}"), bench.env, "skopeo"
        )
        out.unlink()
        return sample

    bench.pair(Pair(f"save-{fx.key}", f"save: {fx.label}", "skopeo copy", 1.2), ours, theirs)


def measure_load(bench: Bench, images: Images, fx: Fixture) -> None:
    archive = images.archives / f"{fx.key}.tar"

    def ours(i: int) -> Sample:
        root = bench.scratch("load-root")
        sample = run_step(ig(root, "load", "-q", "-i", str(archive)), bench.env, "imagegraph load")
        shutil.rmtree(root, ignore_errors=True)
        return sample

    def theirs(i: int) -> Sample:
        dest = bench.scratch("load-oci")
        sample = run_step(_skopeo(f"docker-archive:{archive}", f"oci:{dest}:latest"), bench.env, "skopeo")
        shutil.rmtree(dest, ignore_errors=True)
        return sample

    bench.pair(Pair(f"load-{fx.key}", f"load: {fx.label}", "skopeo copy", 1.2), ours, theirs)


# -- through the daemon ---------------------------------------------------------------------
def _fill_store(root: Path, count: int, workdir: Path) -> None:
    """`count` small distinct images, imported in this process (the quickest way to many)."""
    svc = services(root)
    for i in range(count):
        tree = workdir / f"img{i}"
        (tree / "etc").mkdir(parents=True, exist_ok=True)
        (tree / "etc" / "id").write_text(f"image {i}\n")
        svc.import_image(str(tree), f"bench/many{i}:latest", created=1_700_000_000 + i)
        shutil.rmtree(tree)


def measure_daemon(bench: Bench, images: Images | None) -> None:
    sizes = bench.sizes
    root = bench.scratch("daemon-root")
    _progress(f"importing {sizes.images} images for the daemon")
    _fill_store(root, sizes.images, bench.scratch("daemon-trees"))
    with daemon(root, bench.scratch("daemon"), bench.env) as (docker_env, pid):
        bench.pair(
            Pair("daemon-images", f"docker images, {_n(sizes.images)} images", "imagegraph images", None),
            lambda i: run_step(["docker", "images"], docker_env, "docker images"),
            lambda i: run_step(ig(root, "images"), bench.env, "imagegraph images"),
        )

        def concurrent(i: int) -> Sample:
            return _concurrent_inspects(docker_env, sizes.inspect_clients)

        bench.pair(
            Pair(
                "daemon-inspect",
                f"{sizes.inspect_clients} concurrent docker inspect",
                "1 docker inspect",
                None,
            ),
            concurrent,
            lambda i: run_step(["docker", "inspect", "bench/many0:latest"], docker_env, "docker inspect"),
        )
        if images is not None:
            _daemon_pull(bench, images, docker_env)
        hwm = _vm_hwm(pid)
        if hwm:
            bench.notes.append(f"imagegraph daemon's peak RSS over the daemon measures: {hwm / MiB:.0f} MiB")


def _concurrent_inspects(env: dict[str, str], clients: int) -> Sample:
    """`clients` docker inspect processes started together; the time until the last is done."""
    results: list[Sample] = []
    errors: list[str] = []

    def one(n: int) -> None:
        try:
            results.append(run_step(["docker", "inspect", f"bench/many{n}:latest"], env, "docker inspect"))
        except BenchError as exc:
            errors.append(str(exc))

    threads = [threading.Thread(target=one, args=(n,)) for n in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - start
    if errors:
        raise BenchError(errors[0])
    return Sample(seconds, max(s.peak_rss for s in results))


def _daemon_pull(bench: Bench, images: Images, docker_env: dict[str, str]) -> None:
    ref = f"{images.registry}/bench/image:latest"

    def through_daemon(i: int) -> Sample:
        sample = run_step(["docker", "pull", "-q", ref], docker_env, "docker pull")
        check(["docker", "rmi", ref], docker_env, "docker rmi")
        return sample

    def direct(i: int) -> Sample:
        root = bench.scratch("pull-root")
        sample = run_step(ig(root, "pull", "-q", ref), bench.env, "imagegraph pull")
        shutil.rmtree(root, ignore_errors=True)
        return sample

    fx = fixtures(bench.sizes)["image"]
    bench.pair(
        Pair("daemon-pull", f"docker pull through the daemon: {fx.label}", "imagegraph pull", 1.1),
        through_daemon,
        direct,
    )


def _vm_hwm(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


# -- report ----------------------------------------------------------------------------------
def ratio(bench: Bench, pair: Pair) -> float | None:
    mine = bench.figures.get((pair.key, IMAGEGRAPH))
    base = bench.figures.get((pair.key, pair.yardstick))
    if not mine or not base or base.median <= 0:
        return None
    return mine.median / base.median


def _verdict(value: float | None, aim: float | None) -> str:
    if aim is None:
        return ""
    if value is None:
        return f"≤ {aim:.1f}×"
    return f"≤ {aim:.1f}× — {'met' if value <= aim else 'missed'}"


def report(bench: Bench) -> str:
    detail = []
    for pair in bench.pairs:
        for system in (IMAGEGRAPH, REFERENCE, pair.yardstick, *([pair.floor] if pair.floor else [])):
            fig = bench.figures.get((pair.key, system))
            if fig is None:
                continue
            detail.append(
                [
                    pair.label,
                    system,
                    format_seconds(fig.median),
                    format_seconds(fig.low),
                    format_seconds(fig.high),
                    len(fig.samples),
                    f"{bench.rss[(pair.key, system)] / MiB:.0f} MiB",
                ]
            )
    ratios = []
    for pair in bench.pairs:
        value = ratio(bench, pair)
        if value is None:
            continue
        ratios.append([pair.label, pair.yardstick, format_ratio(value), _verdict(value, pair.aim)])
        mine, floor = bench.figures.get((pair.key, IMAGEGRAPH)), bench.figures.get((pair.key, pair.floor))
        if mine and floor and floor.median > 0:
            ratios.append([pair.label, f"{pair.floor} (the floor)", format_ratio(mine.median / floor.median), ""])
        ref, base = bench.figures.get((pair.key, REFERENCE)), bench.figures.get((pair.key, pair.yardstick))
        if ref and base and base.median > 0:
            row = [pair.label, f"{pair.yardstick}, for {REFERENCE}", format_ratio(ref.median / base.median)]
            ratios.append([*row, _verdict(ref.median / base.median, pair.aim)])
    ours = [(rss, key) for (key, system), rss in bench.rss.items() if system == IMAGEGRAPH]
    parts = [
        "Medians with min and max (seconds of wall clock; lower is better) and peak RSS:",
        "",
        tabulate(
            detail,
            headers=["measure", "system", "median", "min", "max", "runs", "peak RSS"],
            tablefmt="github",
            disable_numparse=True,
        ),
        "",
        "Ratios of imagegraph's median to its yardstick's (1.00× = as fast; lower is better):",
        "",
        tabulate(ratios, headers=["measure", "yardstick", "ratio", "aim"], tablefmt="github", disable_numparse=True),
    ]
    if ours:
        rss, key = max(ours)
        verdict = "met" if rss <= RSS_AIM else "missed"
        parts += [
            "",
            f"Peak RSS of imagegraph's commands: at most {rss / MiB:.0f} MiB ({key}); aim ≤ 150 MiB — {verdict}",
        ]
    parts += bench.notes
    return "\n".join(parts) + "\n"


def imagegraph_version() -> str:
    """The checkout's commit, "+changes" when imagegraph/ has uncommitted edits."""
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "imagegraph"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+changes" if dirty else "")


def _tool_version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    lines = (out.stdout + out.stderr).strip().splitlines()
    return lines[0].strip() if lines else ""


# -- main ----------------------------------------------------------------------------------
def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=PROG, description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--repeat", type=int, help="runs per figure (default 5; 1 with --quick)")
    parser.add_argument("--quick", action="store_true", help="tiny fixtures and 1 run (a smoke run)")
    parser.add_argument(
        "--measures", default=",".join(GROUPS), help=f"comma-separated groups among {','.join(GROUPS)} (default all)"
    )
    parser.add_argument(
        "--fixtures",
        help="comma-separated fixtures among big,small,image (default all; with --quick, the small files "
        "for import and commit and the image for the rest)",
    )
    parser.add_argument("--json", type=Path, help="also save the figures to this JSON file")
    parser.add_argument(
        "--reference",
        metavar="PYTHON",
        help="another checkout's Python (its .venv/bin/python): its imagegraph is timed beside this one "
        f"for import, commit and pull, as {REFERENCE}",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path("/var/tmp/layerlab-image-bench"),
        help="where the fixtures, stores and registries live (default /var/tmp/layerlab-image-bench)",
    )
    return parser.parse_args(argv)


def _missing_tools(groups: list[str]) -> dict[str, str]:
    """Why each group cannot run here (a tool missing); the others go on."""
    need = {
        "import": ["tar", "sha256sum"],
        "commit": ["tar", "sha256sum"],
        "push": ["skopeo", REGISTRY_BIN],
        "pull": ["skopeo", REGISTRY_BIN],
        "pull-mount": ["skopeo", "umoci", REGISTRY_BIN],
        "save": ["skopeo"],
        "load": ["skopeo"],
        "daemon": ["docker", REGISTRY_BIN],
    }
    out = {}
    for group in groups:
        gone = [tool for tool in need[group] if not shutil.which(tool)]
        if gone:
            out[group] = f"{', '.join(gone)} not found (scripts/setup-system.sh installs it)"
    return out


def _chosen(args: argparse.Namespace, sizes: Sizes) -> tuple[list[str], list[Fixture], list[Fixture]]:
    """(measure groups, fixtures for import and commit, fixtures for the registry measures)."""
    groups = [g.strip() for g in args.measures.split(",") if g.strip()]
    bad = [g for g in groups if g not in GROUPS]
    if bad or not groups:
        raise BenchError(f"unknown measure '{bad[0] if bad else args.measures}' (choose among {', '.join(GROUPS)})")
    table = fixtures(sizes)
    names = [f.strip() for f in (args.fixtures or "big,small,image").split(",") if f.strip()]
    unknown = [n for n in names if n not in table]
    if unknown or not names:
        bad_name = unknown[0] if unknown else args.fixtures
        raise BenchError(f"unknown fixture '{bad_name}' (choose among big, small, image)")
    if args.repeat is not None and args.repeat < 1:
        raise BenchError("--repeat must be at least 1")
    chosen = [table[n] for n in names]
    if args.quick and not args.fixtures:
        # A smoke run: the small files for import and commit (the path the single big file
        # takes is the same code), the 5-layer image for the rest.
        return groups, [table["small"]], [table["image"]]
    return groups, [fx for fx in chosen if fx.key != "image"], chosen


def remove_leftovers(bench: Bench, runs: Path) -> None:
    """The import, commit and pull runs' stores and copies, kept to the end so that their deletion
    slows no later measure that creates files. Called after the tables are out: deleting a few
    hundred thousand files can take minutes (a filesystem mounted with `discard`)."""
    if bench.leftovers:
        _progress("removing the runs' stores and copies")
    for path in [*bench.leftovers, runs]:
        shutil.rmtree(path, ignore_errors=True)


def _run_measures(bench: Bench, groups: list[str], trees: list[Fixture], chosen: list[Fixture]) -> None:
    if "import" in groups:
        for fx in trees:
            measure_import(bench, fx)
    if "commit" in groups:
        for fx in trees:
            measure_commit(bench, fx)
    registry_groups = REGISTRY_GROUPS & set(groups)
    if not registry_groups:
        return
    image_fx = [fx for fx in chosen if fx.key == "image"] or [fixtures(bench.sizes)["image"]]
    wanted = chosen if registry_groups - {"daemon"} else image_fx
    with registry(bench.scratch("registry")) as reg:
        images = build_images(bench, reg, wanted)
        for group, measure in (
            ("push", measure_push),
            ("pull", measure_pull),
            ("pull-mount", measure_pull_mount),
        ):
            if group in groups:
                for fx in chosen:
                    measure(bench, images, fx)
        for group, measure in (("save", measure_save), ("load", measure_load)):
            if group in groups:
                for fx in [fx for fx in chosen if fx.key != "small"] or chosen:
                    measure(bench, images, fx)
        if "daemon" in groups:
            measure_daemon(bench, images)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        sizes = Sizes.quick() if args.quick else Sizes()
        groups, trees, chosen = _chosen(args, sizes)
        repeat = args.repeat or (1 if args.quick else 5)
        signal.signal(signal.SIGTERM, raise_terminated)
        for group, reason in _missing_tools(groups).items():
            print(f"skip: {group}: {reason}", flush=True)
            groups.remove(group)
        workdir = args.workdir.resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        base = prepare_fixtures(workdir, sizes, fixtures_needed(groups, trees, chosen))
        started = time.time()
        load = os.getloadavg()
        bench = Bench(workdir, sizes, repeat, _env(), base, reference=args.reference)
        try:
            with MountSet(str(workdir / "runs")):  # a mount left by pull + mount comes down, whatever happens
                _run_measures(bench, groups, trees, chosen)
            after = os.getloadavg()
            print_results(args, bench, repeat, started, load, after)
        finally:
            remove_leftovers(bench, workdir / "runs")
        return 1 if bench.failed else 0
    except BenchError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; every registry and daemon was stopped", file=sys.stderr)
        return 130
    except Terminated:
        print(f"{PROG}: terminated; every registry and daemon was stopped", file=sys.stderr)
        return 143


def print_results(
    args: argparse.Namespace,
    bench: Bench,
    repeat: int,
    started: float,
    load: tuple[float, float, float],
    after: tuple[float, float, float],
) -> None:
    """The header line, the tables, and the JSON file if one was asked for."""
    print(
        f"{PROG}: {time.strftime('%Y-%m-%d %H:%M', time.localtime(started))}, {repeat} "
        f"run{'s' * (repeat > 1)} per figure, {os.cpu_count()} CPUs, kernel {platform.release()}, "
        f"imagegraph at {imagegraph_version()}, load average {load[0]:.1f} before, {after[0]:.1f} after",
        flush=True,
    )
    print(report(bench), end="", flush=True)
    if args.json:
        save_json(
            args.json,
            {
                "date": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
                "load": [load[0], after[0]],
                "versions": {
                    "imagegraph": imagegraph_version(),
                    "skopeo": _tool_version(["skopeo", "--version"]),
                    "umoci": _tool_version(["umoci", "--version"]),
                    "python": platform.python_version(),
                },
                "repeat": repeat,
                "sizes": asdict(bench.sizes),
                "failed": bench.failed,
                "pairs": [dict(asdict(p), ratio=ratio(bench, p)) for p in bench.pairs],
                "figures": [
                    dict(f.as_dict(), peak_rss=bench.rss[(f.measure, f.system)]) for f in bench.figures.values()
                ],
            },
        )


if __name__ == "__main__":
    sys.exit(main())
