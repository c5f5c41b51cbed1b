#!/usr/bin/env python3
"""Union filesystems side by side, in one run, on the same layers.

    .venv/bin/python bench/union_bench.py [--repeat N] [--quick] [--only SYSTEM,...]
                                         [--baseline SYSTEM] [--json FILE] [--workdir DIR]

Systems: layerfs, fuse-overlayfs, unionfs-fuse, the kernel's OverlayFS ("kernel") and the bare
directory with no union ("bare"). Every figure is the median of N runs (min and max beside it)
and its ratio to fuse-overlayfs, the peer layerfs aims to match. `tar -cf /dev/null` of the
same tree and `sha256sum` of the same file are printed as yardsticks.

Runs are interleaved (repeat 1 of every system, then repeat 2, ...), so a noisy neighbour
slows every system alike instead of one. Cold figures drop the page cache (root only); a
union is mounted afresh, with an empty upper, for every run that needs it. Every mount is
undone on the way out, whatever happened.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

# bench/ is a folder of scripts: its common.py, and the checkout's packages (unionfs.mountinfo).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    BenchError,
    Figure,
    MountSet,
    Terminated,
    can_drop_caches,
    drop_caches,
    format_ratio,
    format_seconds,
    load_average,
    raise_terminated,
    run,
    save_json,
    timed,
    wait_mounted,
)

try:
    from tabulate import tabulate
except ImportError:  # the venv has it; a bare python3 may not
    print("union_bench: the tabulate package is missing (run `make setup`, then use .venv/bin/python)", file=sys.stderr)
    raise SystemExit(2) from None

PROG = "union_bench"
SYSTEMS = ("bare", "kernel", "fuse-overlayfs", "unionfs-fuse", "layerfs")
# --reference PROGRAM: another layerfs command (an older checkout's) as one more system, for a
# before/after figure from one run.
REFERENCE = "layerfs-ref"
SCALING_SYSTEMS = ("kernel", "fuse-overlayfs", "layerfs", REFERENCE)
GROUPS = ("read", "stat", "readdir", "copy-up", "create", "scale")  # what --measures selects
MiB = 1 << 20
#: the name looked up (absent) to see a fresh mount answer: see Bench.mounted
READY_PROBE = ".union-bench-ready"

# A warm walk starts this long after the previous walk of the same mount ended: what a user
# running `find` twice sees, past a short FUSE attribute timeout (libfuse's default is 1 s).
WARM_GAP = 2.0


# -- sizes and layers ----------------------------------------------------------------------
@dataclass(frozen=True)
class Sizes:
    """How big the layers are: the issue's figures, or tiny ones for the smoke test."""

    big_bytes: int = 256 * MiB
    layers: int = 5
    walk_dirs: int = 100
    walk_files: int = 10_000
    readdir_entries: int = 10_000
    create_files: int = 5_000
    scale_files: int = 1_000
    scale_layers: tuple[int, ...] = (1, 10, 50)

    @classmethod
    def quick(cls) -> Sizes:
        return cls(
            big_bytes=4 * MiB,
            walk_dirs=10,
            walk_files=300,
            readdir_entries=300,
            create_files=100,
            scale_files=30,
            scale_layers=(1, 5, 10),
        )


def _n(value: int) -> str:
    return f"{value:,}"


@dataclass(frozen=True)
class Measure:
    key: str
    label: str


def measures(sizes: Sizes) -> list[Measure]:
    size = f"{sizes.big_bytes // MiB} MiB"
    walk = f"{_n(sizes.walk_files)} files / {sizes.layers} layers"
    return [
        Measure("read-cold", f"sequential read {size}, cold"),
        Measure("read-warm", f"sequential read {size}, warm"),
        Measure("stat-cold", f"stat walk {walk}, cold"),
        Measure("stat-warm", f"stat walk {walk}, warm ({WARM_GAP:g} s later)"),
        Measure("stat-hot", f"stat walk {walk}, warm (at once)"),
        Measure("readdir", f"readdir {_n(sizes.readdir_entries)} merged entries"),
        Measure("copy-up", f"copy-up {size} by 1-byte append"),
        Measure("create", f"create {_n(sizes.create_files)} small files"),
        Measure("mount", f"mount {sizes.layers} layers, until a first lookup is answered"),
    ] + [
        Measure(f"scale-{n}", f"stat {_n(sizes.scale_files)} files under {n} layer{'s' * (n > 1)}")
        for n in sizes.scale_layers
    ]


@dataclass(frozen=True)
class LayerSet:
    """Lower directories, top first (OverlayFS's lowerdir order)."""

    name: str
    lowers: tuple[str, ...]


@dataclass(frozen=True)
class Layout:
    root: Path
    main: LayerSet
    bare: Path
    scaling: dict[int, LayerSet] = field(default_factory=dict)


def _write(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def _write_big(path: Path, size: int) -> None:
    """Incompressible data, really written (a sparse file would read as nothing)."""
    block = os.urandom(MiB)
    with open(path, "wb") as f:
        for offset in range(0, size, MiB):
            f.write(block[: min(MiB, size - offset)])


def _build_main(base: Path, sizes: Sizes) -> tuple[LayerSet, Path]:
    """Five layers: the big file at the bottom; `walk/` and `flat/` spread round-robin over all
    of them, so every directory is merged; an empty `inbox/` at the bottom for new files."""
    layers = [base / "main" / f"layer{i}" for i in range(1, sizes.layers + 1)]  # top first
    for layer in layers:
        for d in range(sizes.walk_dirs):
            (layer / "walk" / f"d{d:03d}").mkdir(parents=True)
        (layer / "flat").mkdir()
    bottom = layers[-1]
    (bottom / "inbox").mkdir()
    _write_big(bottom / "big.bin", sizes.big_bytes)
    payload = b"layerlab bench\n"
    for k in range(sizes.walk_files):
        _write(layers[k % sizes.layers] / "walk" / f"d{k % sizes.walk_dirs:03d}" / f"f{k:05d}", payload)
    for k in range(sizes.readdir_entries):
        _write(layers[k % sizes.layers] / "flat" / f"e{k:05d}", payload)
    bare = base / "bare"
    for layer in reversed(layers):  # bottom first: what a union shows, flattened
        shutil.copytree(layer, bare, dirs_exist_ok=True)
    return LayerSet("main", tuple(str(p) for p in layers)), bare


def _build_scaling(base: Path, sizes: Sizes, count: int) -> LayerSet:
    """`count` layers that all hold `d/` with a few files of their own; the files looked up
    live only in the bottom one, so a lookup passes every layer."""
    layers = [base / f"scale{count}" / f"l{i:02d}" for i in range(count)]
    for i, layer in enumerate(layers):
        (layer / "d").mkdir(parents=True)
        for k in range(20):
            _write(layer / "d" / f"x{i:02d}_{k:02d}", b"x")
    for k in range(sizes.scale_files):
        _write(layers[-1] / "d" / f"f{k:05d}", b"f")
    return LayerSet(f"scale{count}", tuple(str(p) for p in layers))


def prepare_layout(workdir: Path, sizes: Sizes) -> Layout:
    """Build the layers once and keep them: a second run with the same sizes reuses them."""
    base = workdir / "layers"
    stamp = base / "sizes.json"
    wanted = json.dumps(asdict(sizes), sort_keys=True)
    if not (stamp.exists() and stamp.read_text() == wanted):
        if base.exists():
            shutil.rmtree(base)
        base.mkdir(parents=True)
        print(f"building layers in {base} ...", file=sys.stderr, flush=True)
        _build_main(base, sizes)
        for count in sizes.scale_layers:
            _build_scaling(base, sizes, count)
        stamp.write_text(wanted)  # last: a half-built tree is rebuilt next time
    main = LayerSet("main", tuple(str(base / "main" / f"layer{i}") for i in range(1, sizes.layers + 1)))
    scaling = {
        n: LayerSet(f"scale{n}", tuple(str(base / f"scale{n}" / f"l{i:02d}") for i in range(n)))
        for n in sizes.scale_layers
    }
    return Layout(workdir, main, base / "bare", scaling)


# -- systems -------------------------------------------------------------------------------
def _layerfs_program() -> str | None:
    """This checkout's layerfs (next to the running python) before any other on PATH."""
    local = Path(sys.executable).parent / "layerfs"
    if local.exists():
        return str(local)
    return shutil.which("layerfs")


def _fuse_reason() -> str | None:
    return None if os.path.exists("/dev/fuse") else "/dev/fuse does not exist"


def unavailable(system: str) -> str | None:
    """Why `system` cannot run here (one line), or None."""
    if system == "bare":
        return None
    if system == "kernel":
        if os.geteuid() != 0:
            return "the kernel's OverlayFS needs root"
        with open("/proc/filesystems") as f:
            return None if "overlay" in f.read() else "the kernel has no overlay filesystem"
    if system == "fuse-overlayfs":
        if not shutil.which("fuse-overlayfs"):
            return "fuse-overlayfs is not installed (apt-get install fuse-overlayfs)"
        return _fuse_reason()
    if system == "unionfs-fuse":
        if not (shutil.which("unionfs") or shutil.which("unionfs-fuse")):
            return "unionfs is not installed (apt-get install unionfs-fuse)"
        return _fuse_reason()
    if system == "layerfs":
        if not _layerfs_program():
            return "the layerfs command is not installed (make setup)"
        return _fuse_reason()
    raise ValueError(system)


def mount_command(
    system: str, layers: LayerSet, upper: str, work: str, target: str, reference: str | None = None
) -> list[str]:
    lower = ":".join(layers.lowers)
    overlay = f"lowerdir={lower},upperdir={upper},workdir={work}"
    if system == "kernel":
        return ["mount", "-t", "overlay", "overlay", "-o", overlay, target]
    if system == "fuse-overlayfs":
        return ["fuse-overlayfs", "-o", overlay, target]
    if system == "unionfs-fuse":
        program = shutil.which("unionfs") or "unionfs-fuse"
        branches = ":".join([f"{upper}=RW"] + [f"{p}=RO" for p in layers.lowers])
        return [program, "-o", "cow", branches, target]
    if system == "layerfs":
        return [_layerfs_program() or "layerfs", "-o", overlay, "none", target]
    if system == REFERENCE and reference:
        return [reference, "-o", overlay, "none", target]
    raise ValueError(system)


@dataclass
class Bench:
    """One run: the layout, the mounts made, and the figures so far."""

    layout: Layout
    sizes: Sizes
    mounts: MountSet
    figures: dict[tuple[str, str], Figure] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    groups: frozenset[str] = frozenset(GROUPS)
    reference: str | None = None  # the layerfs-ref system's command
    _serial: int = 0

    def record(self, measure: str, system: str, seconds: float) -> None:
        self.figures.setdefault((measure, system), Figure(measure, system)).samples.append(seconds)

    @contextmanager
    def view(self, system: str, layers: LayerSet | None = None) -> Iterator[Path]:
        """The merged view of `layers` (default: the main set) on `system`, with an empty upper;
        unmounted (or, for the bare directory, put back as it was) on the way out."""
        layers = layers or self.layout.main
        if system == "bare":
            try:
                yield self.layout.bare
            finally:
                shutil.rmtree(self.layout.bare / "inbox" / "new", ignore_errors=True)
                big = self.layout.bare / "big.bin"
                if big.stat().st_size != self.sizes.big_bytes:
                    os.truncate(big, self.sizes.big_bytes)
            return
        self._serial += 1
        scratch = self.layout.root / "runs" / f"{system}-{self._serial}"
        upper, work, target = scratch / "upper", scratch / "work", scratch / "mnt"
        for d in (upper, work, target):
            d.mkdir(parents=True)
        command = mount_command(system, layers, str(upper), str(work), str(target), self.reference)

        def mount() -> None:
            run(command, f"mounting {system}")
            wait_mounted(str(target))
            # Ready: one lookup answered (a name no measure uses). layerfs's daemon answers what
            # umount(8) and podman ask of the root before it loads its core, and loads it on the
            # first other request: without this, that one-off load would land in whatever measure
            # comes first on the mount, and the mount would look cheaper than it is.
            os.path.lexists(target / READY_PROBE)

        self.mounts.add(str(target))
        try:
            seconds = timed(mount)
            if layers is self.layout.main:
                self.record("mount", system, seconds)
            yield target
        finally:
            self.mounts.unmount(str(target))
            shutil.rmtree(scratch, ignore_errors=True)


# -- what is timed -------------------------------------------------------------------------
def read_file(path: Path) -> int:
    """Read sequentially in 1 MiB requests, as cp and cat do; the byte count for checking."""
    total = 0
    buf = bytearray(MiB)
    fd = os.open(path, os.O_RDONLY)
    try:
        while n := os.readv(fd, [buf]):
            total += n
    finally:
        os.close(fd)
    return total


def stat_walk(root: Path) -> int:
    """lstat every entry of the tree (what find, du and tar do); the entry count."""
    count, stack = 0, [str(root)]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                if stat.S_ISDIR(entry.stat(follow_symlinks=False).st_mode):
                    stack.append(entry.path)
                count += 1
    return count


def stat_paths(paths: list[str]) -> None:
    for path in paths:
        os.lstat(path)


def append_byte(path: Path) -> None:
    """The smallest write that copies a lower file up whole."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, b"!")
    finally:
        os.close(fd)


def create_files(directory: Path, count: int) -> None:
    directory.mkdir()
    payload = b"x" * 64
    for k in range(count):
        fd = os.open(directory / f"n{k:05d}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, payload)
        finally:
            os.close(fd)


def _check(system: str, what: str, got: int, expected: int) -> None:
    """A union that shows the wrong tree must not win on speed."""
    if got != expected:
        raise BenchError(f"{system}: {what} saw {got}, expected {expected}")


# -- the measures --------------------------------------------------------------------------
def _each(bench: Bench, systems: list[str], repeat: int, body: Callable[[str], None]) -> None:
    """Interleave: run `body` for every system, `repeat` times; a failing system drops out."""
    for _ in range(repeat):
        for system in systems:
            if system in bench.failed:
                continue
            try:
                body(system)
            except (BenchError, OSError) as exc:
                bench.failed[system] = str(exc)
                print(f"{system}: failed: {exc}", file=sys.stderr, flush=True)


def run_measures(bench: Bench, systems: list[str], repeat: int, cold: bool) -> None:
    """Every measure the chosen groups ask for, each system in turn, `repeat` times."""
    want = bench.groups.__contains__
    if cold:
        _measure_cold(bench, systems, repeat)
    if want("read") or want("stat"):
        _measure_warm(bench, systems, repeat)
    _measure_on_fresh_mounts(bench, systems, repeat)
    if want("scale"):
        _measure_scaling(bench, [s for s in systems if s in SCALING_SYSTEMS], repeat)


def _progress(text: str) -> None:
    print(f"· {text}", file=sys.stderr, flush=True)


def _measure_cold(bench: Bench, systems: list[str], repeat: int) -> None:
    """A sequential read and a stat walk with the page cache dropped first (root only)."""
    sizes = bench.sizes
    walk_total = sizes.walk_files + sizes.walk_dirs

    def cold_read(system: str) -> None:
        with bench.view(system) as root:
            drop_caches()
            bench.record(
                "read-cold",
                system,
                timed(lambda: _check(system, "read bytes", read_file(root / "big.bin"), sizes.big_bytes)),
            )

    def cold_walk(system: str) -> None:
        with bench.view(system) as root:
            drop_caches()
            bench.record(
                "stat-cold", system, timed(lambda: _check(system, "stat walk", stat_walk(root / "walk"), walk_total))
            )

    if "read" in bench.groups:
        _progress("sequential read, cold")
        _each(bench, systems, repeat, cold_read)
    if "stat" in bench.groups:
        _progress("stat walk, cold")
        _each(bench, systems, repeat, cold_walk)


def _measure_warm(bench: Bench, systems: list[str], repeat: int) -> None:
    """The same read and walk again and again on one mount per system, caches warm."""
    sizes = bench.sizes
    walk_total = sizes.walk_files + sizes.walk_dirs
    want = bench.groups.__contains__
    _progress("sequential read and stat walk, warm")
    with _open_views(bench, systems) as views:
        walked: dict[str, float] = {}
        for system, root in list(views.items()):  # warm up, and check what each one shows
            try:
                if want("read"):
                    _check(system, "read bytes", read_file(root / "big.bin"), sizes.big_bytes)
                if want("stat"):
                    _check(system, "stat walk", stat_walk(root / "walk"), walk_total)
                    walked[system] = time.monotonic()
            except (BenchError, OSError) as exc:
                bench.failed[system] = str(exc)
        live = [s for s in views if s not in bench.failed]
        if want("read"):
            _each(
                bench,
                live,
                repeat,
                lambda s: bench.record("read-warm", s, timed(lambda: read_file(views[s] / "big.bin"))),
            )

        def warm_walks(system: str) -> None:
            time.sleep(max(0.0, walked[system] + WARM_GAP - time.monotonic()))
            bench.record("stat-warm", system, timed(lambda: stat_walk(views[system] / "walk")))
            bench.record("stat-hot", system, timed(lambda: stat_walk(views[system] / "walk")))
            walked[system] = time.monotonic()

        if want("stat"):
            _each(bench, live, repeat, warm_walks)


def _measure_on_fresh_mounts(bench: Bench, systems: list[str], repeat: int) -> None:
    """readdir, copy-up and file creation, each on a fresh mount with an empty upper."""
    sizes = bench.sizes

    def readdir(system: str) -> None:
        with bench.view(system) as root:
            names: list[str] = []
            bench.record("readdir", system, timed(lambda: names.extend(os.listdir(root / "flat"))))
            _check(system, "readdir", len(names), sizes.readdir_entries)

    def copy_up(system: str) -> None:
        with bench.view(system) as root:
            os.sync()  # earlier runs' writeback is not this run's cost
            bench.record("copy-up", system, timed(lambda: append_byte(root / "big.bin")))
            _check(system, "size after append", (root / "big.bin").stat().st_size, sizes.big_bytes + 1)

    def create(system: str) -> None:
        with bench.view(system) as root:
            os.sync()
            bench.record("create", system, timed(lambda: create_files(root / "inbox" / "new", sizes.create_files)))

    for group, text, body in (
        ("readdir", "readdir (fresh mount)", readdir),
        ("copy-up", "copy-up", copy_up),
        ("create", "create small files", create),
    ):
        if group in bench.groups:
            _progress(text)
            _each(bench, systems, repeat, body)


def _measure_scaling(bench: Bench, scaling: list[str], repeat: int) -> None:
    """Lookups of the same files under more and more layers (fresh mounts)."""
    paths = [f"d/f{k:05d}" for k in range(bench.sizes.scale_files)]
    for count, layers in bench.layout.scaling.items():
        _progress(f"lookups under {count} layer{'s' * (count > 1)} (fresh mount)")

        def scale(system: str, layers: LayerSet = layers, count: int = count) -> None:
            with bench.view(system, layers) as root:
                full = [str(root / p) for p in paths]
                bench.record(f"scale-{count}", system, timed(lambda: stat_paths(full)))

        stat_paths([os.path.join(layers.lowers[-1], p) for p in paths])  # the lower's dentries: warm
        _each(bench, scaling, repeat, scale)


@contextmanager
def _open_views(bench: Bench, systems: list[str]) -> Iterator[dict[str, Path]]:
    """Every system's view at once, for measures that reuse one mount (warm caches)."""
    with ExitStack() as exits:
        views: dict[str, Path] = {}
        for system in systems:
            if system in bench.failed:
                continue
            try:
                views[system] = exits.enter_context(bench.view(system))
            except (BenchError, OSError) as exc:
                bench.failed[system] = str(exc)
                print(f"{system}: failed: {exc}", file=sys.stderr, flush=True)
        yield views


def run_references(bench: Bench, repeat: int, cold: bool) -> None:
    """tar and sha256sum on the bare tree: what the same work costs a well-known tool."""
    bare = bench.layout.bare
    tar = ["tar", "-cf", "/dev/null", "-C", str(bare), "walk"]  # GNU tar stats, does not read, for /dev/null
    sha = ["sha256sum", str(bare / "big.bin")]
    jobs = [job for job in (("tar", "stat", tar), ("sha256sum", "read", sha)) if job[1] in bench.groups]
    for name, kind, command in jobs:
        if not shutil.which(command[0]):
            print(f"skip: {name}: not installed", flush=True)
            continue
        for _ in range(repeat):
            if cold:
                drop_caches()
                bench.record(f"{kind}-cold", name, timed(functools.partial(run, command, name)))
        run(command, name)
        for _ in range(repeat):
            bench.record(f"{kind}-warm", name, timed(functools.partial(run, command, name)))


# -- report --------------------------------------------------------------------------------
REFERENCES = ("tar", "sha256sum")


def ratio(bench: Bench, measure: str, system: str, baseline: str) -> float | None:
    base = bench.figures.get((measure, baseline))
    mine = bench.figures.get((measure, system))
    if not base or not mine or base.median <= 0:
        return None
    return mine.median / base.median


def report(bench: Bench, systems: list[str], baseline: str) -> str:
    parts = [
        "Medians with min and max (seconds of wall clock; lower is better):",
        "",
        _detail_table(bench, systems, baseline),
        "",
        f"Ratios of medians to {baseline} (1.00× = as fast; lower is better):",
        "",
        _ratio_table(bench, systems, baseline),
    ]
    growth = _growth_table(bench, systems)
    if growth:
        parts += [
            "",
            f"Stat of {_n(bench.sizes.scale_files)} files at the bottom of N layers, fresh mount "
            "(the aim: no growth with N):",
            "",
            growth,
        ]
    return "\n".join(parts) + "\n"


def _detail_table(bench: Bench, systems: list[str], baseline: str) -> str:
    """Every figure: median, min, max and runs, systems then the reference tools."""
    order = systems + [r for r in REFERENCES if any(k[1] == r for k in bench.figures)]
    rows = []
    for m in measures(bench.sizes):
        for system in order:
            fig = bench.figures.get((m.key, system))
            if not fig:
                continue
            rows.append(
                [
                    m.label,
                    system,
                    format_seconds(fig.median),
                    format_seconds(fig.low),
                    format_seconds(fig.high),
                    len(fig.samples),
                    format_ratio(ratio(bench, m.key, system, baseline)),
                ]
            )
    return tabulate(
        rows,
        headers=["measure", "system", "median", "min", "max", "runs", f"× {baseline}"],
        tablefmt="github",
        disable_numparse=True,
    )


def _ratio_table(bench: Bench, systems: list[str], baseline: str) -> str:
    """One row per measure, one ratio to the baseline per system."""
    rows = []
    for m in measures(bench.sizes):
        cells = [format_ratio(ratio(bench, m.key, s, baseline)) if (m.key, s) in bench.figures else "" for s in systems]
        if any(cells):
            rows.append([m.label] + cells)
    return tabulate(rows, headers=["median ÷ " + baseline] + systems, tablefmt="github", disable_numparse=True)


def _growth_table(bench: Bench, systems: list[str]) -> str:
    """Lookup time per layer count, and how much it grew; "" without scaling figures."""
    rows = []
    counts = bench.sizes.scale_layers
    for system in systems:
        found = [bench.figures.get((f"scale-{n}", system)) for n in counts]
        figs = [f for f in found if f is not None]
        if len(figs) == len(found):
            rows.append(
                [system] + [format_seconds(f.median) for f in figs] + [format_ratio(figs[-1].median / figs[0].median)]
            )
    if not rows:
        return ""
    return tabulate(
        rows,
        headers=["lookup scaling"] + [f"{n} layer{'s' * (n > 1)}" for n in counts] + [f"{counts[-1]}÷{counts[0]}"],
        tablefmt="github",
        disable_numparse=True,
    )


def layerfs_version() -> str:
    """The checkout's commit, "+changes" when unionfs/ has uncommitted edits: what was measured."""
    here = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--", "unionfs"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+changes" if dirty else "")


def machine() -> dict:
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    versions = {}
    for name, command in (
        ("fuse-overlayfs", ["fuse-overlayfs", "--version"]),
        ("unionfs-fuse", ["unionfs", "--version"]),
    ):
        if shutil.which(command[0]):
            out = subprocess.run(command, capture_output=True, text=True)
            lines = [line for line in (out.stdout + out.stderr).splitlines() if line.startswith(name)]
            versions[name] = lines[0].strip() if lines else ""
    return {
        "host": platform.node(),
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "load": list(os.getloadavg()),
        "versions": dict(versions, layerfs=layerfs_version()),
    }


# -- main ----------------------------------------------------------------------------------
def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, help="runs per figure (default 5; 3 with --quick)")
    parser.add_argument("--quick", action="store_true", help="tiny layers, a smoke run (make bench QUICK=1)")
    parser.add_argument("--only", default=",".join(SYSTEMS), help=f"comma-separated systems among {','.join(SYSTEMS)}")
    parser.add_argument("--baseline", default="fuse-overlayfs", help="the system ratios are to")
    parser.add_argument("--json", type=Path, help="also save the figures to this JSON file")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path("/var/tmp/layerlab-bench"),
        help="where the layers and mounts live (default /var/tmp/layerlab-bench)",
    )
    parser.add_argument(
        "--measures", default=",".join(GROUPS), help=f"comma-separated groups among {','.join(GROUPS)} (default all)"
    )
    parser.add_argument("--no-cold", action="store_true", help="skip the cold-cache figures")
    parser.add_argument(
        "--reference",
        metavar="PROGRAM",
        help=f"another layerfs command (e.g. an older checkout's) to run as the system {REFERENCE}",
    )
    args = parser.parse_args(argv)
    if args.repeat is None:
        args.repeat = 3 if args.quick else 5
    return args


def _chosen(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """(systems, measure groups) the command line asks for, each checked."""
    wanted = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in SYSTEMS]
    if unknown or not wanted:
        raise BenchError(f"unknown system '{unknown[0] if unknown else args.only}' (choose among {', '.join(SYSTEMS)})")
    if args.baseline not in SYSTEMS:
        raise BenchError(f"unknown baseline '{args.baseline}' (choose among {', '.join(SYSTEMS)})")
    groups = [g.strip() for g in args.measures.split(",") if g.strip()]
    bad = [g for g in groups if g not in GROUPS]
    if bad or not groups:
        raise BenchError(f"unknown measure '{bad[0] if bad else args.measures}' (choose among {', '.join(GROUPS)})")
    if args.repeat < 1:
        raise BenchError("--repeat must be at least 1")
    return wanted, groups


def _available(wanted: list[str], reference: str | None = None) -> tuple[list[str], dict[str, str]]:
    """(the wanted systems this machine has, in a fixed order; why each other one is skipped)."""
    systems, skipped = [], {}
    for system in SYSTEMS + ((REFERENCE,) if reference else ()):
        if system not in wanted and system != REFERENCE:
            continue
        if system == REFERENCE:
            reason = None if reference and shutil.which(reference) else f"{reference} is not a command"
        else:
            reason = unavailable(system)
        if reason:
            skipped[system] = reason
            print(f"skip: {system}: {reason}", flush=True)
        else:
            systems.append(system)
    return systems, skipped


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        wanted, groups = _chosen(args)
        sizes = Sizes.quick() if args.quick else Sizes()
        signal.signal(signal.SIGTERM, raise_terminated)
        systems, skipped = _available(wanted, args.reference)
        cold = not args.no_cold and can_drop_caches()
        if not args.no_cold and not cold:
            print("skip: cold-cache figures: dropping the page cache needs root", flush=True)
        workdir = args.workdir.resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        layout = prepare_layout(workdir, sizes)
        shutil.rmtree(workdir / "runs", ignore_errors=True)
        started = time.time()
        with MountSet(str(workdir / "runs")) as mounts:
            bench = Bench(layout, sizes, mounts, groups=frozenset(groups), reference=args.reference)
            run_measures(bench, systems, args.repeat, cold)
            run_references(bench, args.repeat, cold)
        for system, reason in bench.failed.items():
            print(f"failed: {system}: {reason}", flush=True)
        print(
            f"union_bench: {time.strftime('%Y-%m-%d %H:%M', time.localtime(started))}, "
            f"{args.repeat} run{'s' * (args.repeat > 1)} per figure, {os.cpu_count()} CPUs, "
            f"kernel {platform.release()}, load {load_average()}, layerfs at {layerfs_version()}",
            flush=True,
        )
        print(report(bench, systems, args.baseline), end="", flush=True)
        if args.json:
            save_json(
                args.json,
                {
                    "date": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
                    "machine": machine(),
                    "repeat": args.repeat,
                    "sizes": asdict(sizes),
                    "baseline": args.baseline,
                    "systems": systems,
                    "skipped": skipped,
                    "failed": bench.failed,
                    "measures": {m.key: m.label for m in measures(sizes)},
                    "figures": [
                        dict(f.as_dict(), ratio=ratio(bench, f.measure, f.system, args.baseline))
                        for f in bench.figures.values()
                    ],
                },
            )
        return 1 if bench.failed else 0
    except BenchError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; every mount was undone", file=sys.stderr)
        return 130
    except Terminated:
        print(f"{PROG}: terminated; every mount was undone", file=sys.stderr)
        return 143


if __name__ == "__main__":
    sys.exit(main())
