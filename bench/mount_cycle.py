"""How long a mount takes: layerfs against fuse-overlayfs (and the kernel's OverlayFS), bare and
under podman.

Two measures, interleaved (run 1 of every system, then run 2, ...), each a median of --repeat
runs with min and max and a ratio to fuse-overlayfs:

- bare mount+umount: the mount program on five small layers with a fresh upper, until the
  mount is in /proc/self/mountinfo, then its unmount until it is gone (and the CPU time of the
  commands, which a loaded machine stretches less than the wall clock);
- its two halves, from the same runs: the mount program until it returns ("bare: the mount
  command"), and the unmount after the mount is seen ("bare: the unmount"), which includes
  umount(8)'s wait for the daemon's answer to FUSE_INIT (it stats the mount point first);
- python3 -I -S -c pass: the start and exit of the interpreter layerfs's launcher runs, the floor
  of any mount command in Python, as a ratio to fuse-overlayfs's whole bare cycle;
- podman mount+umount: `podman mount C` then `podman umount C` of one created container, in a
  containers-storage of its own whose overlay mount_program is the system (podman's own
  start-up is in both figures, as a user waits for it).

    .venv/bin/python bench/mount_cycle.py [--repeat 7] [--only layerfs,fuse-overlayfs,kernel] [--json FILE]

Run as root (podman's rootful storage, the kernel's overlay). Nothing under tests/ asserts a
time; tests/bench/test_mount_cycle_smoke.py checks that a short run prints the table.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import (
    BenchError,
    Figure,
    MountSet,
    format_ratio,
    format_seconds,
    load_average,
    run,
    timed,
    unmount,
    wait_mounted,
)
from tabulate import tabulate

PROG = "mount_cycle"
SYSTEMS = ("kernel", "fuse-overlayfs", "layerfs")
BASELINE = "fuse-overlayfs"
LAYERS = 5
REFERENCE = "layerfs-ref"  # --reference PROGRAM: another layerfs (an older checkout's), in the same run
PODMAN_SYSTEMS = ("fuse-overlayfs", "layerfs", REFERENCE)  # the kernel needs no mount program


FLOOR = "python3 -I -S -c pass, vs the bare cycle"
COMMAND = "bare: the mount command"
UNMOUNT = "bare: the unmount (and the daemon's start)"


def program_python() -> str:
    """The Python that layerfs's launcher runs (this venv's)."""
    local = Path(sys.executable).parent / "python3"
    return str(local) if local.exists() else sys.executable


def start_python() -> None:
    run([program_python(), "-I", "-S", "-c", "pass"], "python3 -I -S -c pass")


def layerfs_program() -> str:
    local = Path(sys.executable).parent / "layerfs"
    return str(local) if local.exists() else (shutil.which("layerfs") or "layerfs")


def unavailable(system: str) -> str | None:
    if os.geteuid() != 0:
        return "needs root (the kernel's overlay, podman's rootful storage)"
    if system == "fuse-overlayfs" and not shutil.which("fuse-overlayfs"):
        return "fuse-overlayfs is not installed"
    if system != "kernel" and not os.path.exists("/dev/fuse"):
        return "/dev/fuse does not exist"
    return None


def build_layers(base: Path) -> list[str]:
    lowers = []
    for i in range(LAYERS):
        layer = base / "layers" / f"l{i}"
        (layer / "etc").mkdir(parents=True)
        for n in range(20):
            (layer / "etc" / f"f{i}-{n}").write_text(f"{i} {n}\n")
        lowers.append(str(layer))
    return lowers


def program_of(system: str, reference: str | None) -> str:
    if system == REFERENCE and reference:
        return reference
    if system == "fuse-overlayfs":
        return shutil.which("fuse-overlayfs") or "fuse-overlayfs"
    return layerfs_program()


def mount_command(
    system: str, lowers: list[str], upper: Path, work: Path, target: Path, reference: str | None = None
) -> list[str]:
    options = f"lowerdir={':'.join(lowers)},upperdir={upper},workdir={work}"
    if system == "kernel":
        return ["mount", "-t", "overlay", "overlay", "-o", options, str(target)]
    if system == "fuse-overlayfs":
        return ["fuse-overlayfs", "-o", options, str(target)]
    return [program_of(system, reference), "-o", options, str(target)]


class Podman:
    """A containers-storage of its own with `program` as overlay mount_program, one container."""

    def __init__(self, base: Path, program: str, rootfs_tar: Path) -> None:
        self.base = base
        conf = base / "storage.conf"
        conf.write_text(
            f'[storage]\ndriver = "overlay"\ngraphroot = "{base / "root"}"\nrunroot = "{base / "run"}"\n'
            f'[storage.options.overlay]\nmount_program = "{program}"\n'
        )
        (base / "cni").mkdir(exist_ok=True)
        self.env = {**os.environ, "CONTAINERS_STORAGE_CONF": str(conf), "TMPDIR": str(base)}
        self.flags = [
            "--root", str(base / "root"), "--runroot", str(base / "run"),
            "--storage-opt", f"overlay.mount_program={program}", "--tmpdir", str(base / "libpod"),
            "--events-backend", "none", "--cgroup-manager", "cgroupfs", "--network-config-dir", str(base / "cni"),
        ]  # fmt: skip
        self.podman("import", str(rootfs_tar), "localhost/cycle:1")
        self.container = self.podman("create", "--network", "none", "localhost/cycle:1", "/bin/sh").strip()

    def podman(self, *argv: str) -> str:
        result = subprocess.run(["podman", *self.flags, *argv], capture_output=True, text=True, env=self.env)
        if result.returncode != 0:
            lines = [line for line in result.stderr.splitlines() if line.strip()]
            raise BenchError(f"podman {argv[0]} failed: {lines[-1] if lines else result.returncode}")
        return result.stdout

    def cycle(self) -> None:
        merged = self.podman("mount", self.container).strip()
        if not os.path.ismount(merged):
            raise BenchError(f"podman mount did not mount {merged}")
        self.podman("umount", self.container)

    def close(self) -> None:
        for argv in (["rm", "--all", "--force"], ["rmi", "--all", "--force"]):
            subprocess.run(["podman", *self.flags, *argv], capture_output=True, env=self.env)


def rootfs_tar(base: Path) -> Path:
    """A one-binary root filesystem (static busybox if there is one) as a tar for podman import."""
    root = base / "rootfs"
    (root / "bin").mkdir(parents=True)
    busybox = shutil.which("busybox")
    if busybox:
        shutil.copy2(busybox, root / "bin" / "busybox")
        (root / "bin" / "sh").symlink_to("busybox")
    else:
        (root / "bin" / "sh").write_text("#!/bin/false\n")
    tar = base / "rootfs.tar"
    run(["tar", "-C", str(root), "-cf", str(tar), "."], "making the root filesystem tar")
    return tar


def _children_cpu() -> float:
    """CPU seconds of the commands run and waited for so far (the daemons they leave running
    are not counted): on a loaded machine this moves less than the wall clock."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(systems: list[str], repeat: int, base: Path, reference: str | None = None) -> dict[tuple[str, str], Figure]:
    figures: dict[tuple[str, str], Figure] = {}

    def record(what: str, system: str, seconds: float) -> None:
        figures.setdefault((what, system), Figure(what, system)).samples.append(seconds)

    lowers = build_layers(base)
    podmans: dict[str, Podman] = {}
    with MountSet(str(base)):
        try:
            tar = rootfs_tar(base)
            for system in systems:
                if system in PODMAN_SYSTEMS and shutil.which("podman"):
                    program = program_of(system, reference)
                    podmans[system] = Podman(Path(tempfile.mkdtemp(prefix="mc-", dir=base)), program, tar)
            for i in range(repeat):
                for system in systems:
                    scratch = base / "runs" / f"{system}-{i}"
                    upper, work, target = scratch / "upper", scratch / "work", scratch / "mnt"
                    for d in (upper, work, target):
                        d.mkdir(parents=True)
                    command = mount_command(system, lowers, upper, work, target, reference)

                    def cycle(command: list[str] = command, target: Path = target, system: str = system) -> None:
                        start = time.perf_counter()
                        run(command, f"mounting {system}")
                        record(COMMAND, system, time.perf_counter() - start)
                        wait_mounted(str(target))
                        start = time.perf_counter()
                        unmount(str(target))
                        record(UNMOUNT, system, time.perf_counter() - start)
                        if os.path.ismount(target):
                            raise BenchError(f"{system}: {target} is still mounted")

                    if system == "layerfs":  # the floor of any command in Python: the interpreter's start
                        record(FLOOR, system, timed(start_python))
                    cpu_before = _children_cpu()
                    record("bare mount+umount", system, timed(cycle))
                    record("bare mount+umount, CPU", system, _children_cpu() - cpu_before)
                    shutil.rmtree(scratch, ignore_errors=True)
                    if system in podmans:
                        cpu_before = _children_cpu()
                        record("podman mount+umount", system, timed(podmans[system].cycle))
                        record("podman mount+umount, CPU", system, _children_cpu() - cpu_before)
        finally:
            for p in podmans.values():
                p.close()
    return figures


def report(figures: dict[tuple[str, str], Figure], systems: list[str]) -> str:
    rows = []
    measures = (
        "bare mount+umount",
        COMMAND,
        UNMOUNT,
        "bare mount+umount, CPU",
        FLOOR,
        "podman mount+umount",
        "podman mount+umount, CPU",
    )
    for what in measures:
        # The floor is compared with fuse-overlayfs's whole bare cycle: what the aim allows.
        base = figures.get(("bare mount+umount" if what == FLOOR else what, BASELINE))
        for system in systems:
            fig = figures.get((what, system))
            if fig is None:
                continue
            ratio = fig.median / base.median if base and base.median > 0 else None
            rows.append(
                [
                    what,
                    system,
                    format_seconds(fig.median),
                    format_seconds(fig.low),
                    format_seconds(fig.high),
                    len(fig.samples),
                    format_ratio(ratio),
                ]
            )
    headers = ["measure", "system", "median", "min", "max", "runs", f"× {BASELINE}"]
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, help="runs per figure (default 7; 2 with --quick)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 2 runs per figure (make bench QUICK=1)")
    parser.add_argument("--only", default=",".join(SYSTEMS), help=f"comma-separated among {','.join(SYSTEMS)}")
    parser.add_argument(
        "--reference", metavar="PROGRAM", help=f"another layerfs command (e.g. an older checkout's) as {REFERENCE}"
    )
    args = parser.parse_args(argv)
    if args.repeat is None:
        args.repeat = 2 if args.quick else 7
    base: Path | None = None
    try:
        wanted = [s for s in args.only.split(",") if s]
        bad = [s for s in wanted if s not in SYSTEMS]
        if bad or not wanted:
            raise BenchError(f"unknown system '{bad[0] if bad else args.only}' (choose among {', '.join(SYSTEMS)})")
        if args.repeat < 1:
            raise BenchError("--repeat must be at least 1")
        systems = []
        for system in SYSTEMS:
            if system in wanted:
                reason = unavailable(system)
                if reason:
                    print(f"skip: {system}: {reason}", flush=True)
                else:
                    systems.append(system)
        if args.reference:
            if not shutil.which(args.reference):
                raise BenchError(f"--reference {args.reference}: not a command")
            systems.append(REFERENCE)
        if not shutil.which("podman"):
            print("skip: podman mount+umount: podman is not installed", flush=True)
        # Short paths: podman refuses a runroot of 50 characters or more.
        base = Path(tempfile.mkdtemp(prefix="lmc-", dir="/var/tmp"))
        started = time.strftime("%Y-%m-%d %H:%M")
        figures = measure(systems, args.repeat, base, args.reference)
        print(
            f"{PROG}: {started}, {args.repeat} run{'s' * (args.repeat > 1)} per figure, {os.cpu_count()} CPUs, "
            f"kernel {platform.release()}, load {load_average()}",
            flush=True,
        )
        print(report(figures, systems), end="", flush=True)
        return 0
    except BenchError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        if base is not None:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
