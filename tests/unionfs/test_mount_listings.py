"""Listings on a live mount where the kernel opens directories itself (no OPENDIR reaches the
daemon, ll_ops.opendir): a read in pages, seekdir, rewinddir and two readers at once behave
as on the kernel's OverlayFS, and a walk sends the daemon nothing once the kernel has it all."""

from __future__ import annotations

import ctypes
import os
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from .mount_helpers import LAYERFS, force_unmount, is_mounted, mounted, run
from .test_mount_fs import _Dir, _libc

pytestmark = pytest.mark.mount

NAMES = 2500  # per layer: 5,000 in the merged directory, ~20 getdents and ~300 READDIRs
LONG = "n" * 90  # long names: few to a page


def _name(layer: str, i: int) -> str:
    return f"{layer}-{i:05}-{LONG}"


def _fill(root: Path) -> None:
    """`lower` and `upper` with three directories: `merged` (names in both), `low` (lower
    only) and `up` (upper only), NAMES names per layer in each."""
    for layer, dirs in (("lower", ("merged", "low")), ("upper", ("merged", "up"))):
        for d in dirs:
            (root / layer / d).mkdir(parents=True)
            for i in range(NAMES):
                (root / layer / d / _name(layer, i)).touch()
    for d in ("work", "mnt"):
        (root / d).mkdir()


@contextmanager
def _both(tmp_path: Path) -> Iterator[dict[str, Path]]:
    """The same layers mounted by the kernel's OverlayFS and by layerfs: {system: mount}."""
    roots = {"kernel": tmp_path / "kernel", "layerfs": tmp_path / "layerfs"}
    _fill(roots["kernel"])
    subprocess.run(["cp", "-a", str(roots["kernel"]), str(roots["layerfs"])], check=True)
    options = {s: f"lowerdir={r / 'lower'},upperdir={r / 'upper'},workdir={r / 'work'}" for s, r in roots.items()}
    done = run(["mount", "-t", "overlay", "overlay", "-o", options["kernel"], str(roots["kernel"] / "mnt")])
    assert done.returncode == 0, done.stderr
    try:
        with mounted(options["layerfs"], roots["layerfs"] / "mnt") as mnt:
            yield {"kernel": roots["kernel"] / "mnt", "layerfs": mnt}
    finally:
        force_unmount(roots["kernel"] / "mnt")


def _originals(d: str) -> set[str]:
    layers = {"merged": ("lower", "upper"), "low": ("lower",), "up": ("upper",)}[d]
    return {_name(layer, i) for layer in layers for i in range(NAMES)}


@pytest.mark.kernel_overlay
@pytest.mark.parametrize("d", ["merged", "low", "up"])
def test_removing_what_was_listed_while_listing_skips_nothing_as_on_the_kernel(tmp_path, d):
    """rm -rf's way: each name is unlinked as soon as it is read, between the pages of one
    read of the directory (each page a READDIR of its own); every name is seen once, and the
    directory is empty afterwards, on both."""
    outcome: dict[str, tuple[Counter[str], list[str]]] = {}
    with _both(tmp_path) as mounts:
        for system, mnt in mounts.items():
            seen: Counter[str] = Counter()
            with os.scandir(mnt / d) as entries:
                for entry in entries:
                    seen[entry.name] += 1
                    os.unlink(entry.path)
            outcome[system] = (seen, os.listdir(mnt / d))
            os.rmdir(mnt / d)
    for system, (seen, left) in outcome.items():
        assert set(seen) == _originals(d) and set(seen.values()) == {1}, system
        assert left == [], system


@pytest.mark.kernel_overlay
def test_two_readers_at_once_each_read_the_whole_directory_as_on_the_kernel(tmp_path):
    """Two open directories of one directory, read a page's worth in turns, with a name made
    and one removed through the mount between: each reader sees every name that was there
    throughout once, and the new name at most once (as on the kernel)."""
    with _both(tmp_path) as mounts:
        for system, mnt in mounts.items():
            readers = [os.scandir(mnt / "merged"), os.scandir(mnt / "merged")]
            seen: list[Counter[str]] = [Counter(), Counter()]
            try:
                live = [0, 1]
                turn = 0
                while live:
                    who = live[turn % len(live)]
                    for _ in range(150):
                        entry = next(readers[who], None)
                        if entry is None:
                            live.remove(who)
                            break
                        seen[who][entry.name] += 1
                    turn += 1
                    if turn == 3:
                        (mnt / "merged" / "made-meanwhile").touch()
                        os.unlink(mnt / "merged" / _name("lower", NAMES - 1))
            finally:
                for r in readers:
                    r.close()
            kept = _originals("merged") - {_name("lower", NAMES - 1)}
            for counts in seen:
                assert kept <= set(counts) <= kept | {"made-meanwhile", _name("lower", NAMES - 1)}, system
                assert set(counts.values()) == {1}, system
            assert "made-meanwhile" in os.listdir(mnt / "merged")  # the next listing has it


def _read(d: _Dir, count: int | None = None) -> list[tuple[str, int]]:
    """(name, d_off) of the next `count` entries of `d` (all that are left: None)."""
    out: list[tuple[str, int]] = []
    while count is None or len(out) < count:
        ent = _libc.readdir(d.handle)
        if not ent:
            break
        out.append((os.fsdecode(ent.contents.d_name), ent.contents.d_off))
    return out


@pytest.mark.kernel_overlay
def test_telldir_seekdir_and_rewinddir_as_on_the_kernel(tmp_path):
    """seekdir back to where telldir was reads the same names again; rewinddir reads the
    directory again, with a name made through the mount meanwhile; every offset fits the
    `long` of a 32-bit telldir, on both."""
    _libc.rewinddir.argtypes = [ctypes.c_void_p]
    with _both(tmp_path) as mounts:
        for system, mnt in mounts.items():
            d = _Dir(mnt / "merged")
            try:
                head = _read(d, 1234)
                where = d.tell()
                middle = _read(d, 2000)
                d.seek(where)
                assert _read(d, 2000) == middle, system
                rest = _read(d)
                names = [n for n, _ in head + middle + rest]
                assert sorted(names) == sorted({".", ".."} | _originals("merged")), system
                assert all(0 <= off < 1 << 31 for _, off in head + middle + rest), system
                (mnt / "merged" / "made-meanwhile").touch()
                _libc.rewinddir(d.handle)
                again = [n for n, _ in _read(d)]
                assert sorted(again) == sorted([*names, "made-meanwhile"]), system
            finally:
                d.close()


# -- what reaches the daemon ------------------------------------------------------------------
def _requests(text: str) -> Counter[str]:
    return Counter(re.findall(r"^unique: \d+, opcode: (\w+)", text, re.M))


def test_a_walk_opens_no_directory_through_the_daemon(tmp_path):
    """libfuse's request log (a foreground mount: the core answers FUSE_INIT; the bootstrap's
    part is tests/unionfs/test_lowlevel.py's): one OPENDIR, declined, for the whole mount, no
    RELEASEDIR; a walk the kernel has everything for reaches the daemon with no request."""
    lower, mnt, log = tmp_path / "lower", tmp_path / "mnt", tmp_path / "debug.log"
    for d in range(6):
        (lower / "walk" / f"d{d}").mkdir(parents=True)
        for f in range(20):
            (lower / "walk" / f"d{d}" / f"f{f}").touch()
    mnt.mkdir()
    with open(log, "w") as err:
        proc = subprocess.Popen(
            [LAYERFS, "mount", "-o", f"lowerdir={lower},debug", str(mnt)], stderr=err, stdout=subprocess.DEVNULL
        )
    walks: list[Counter[str]] = []  # the requests of each walk
    try:
        deadline = time.monotonic() + 20
        while not is_mounted(mnt):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.05)
        mark = len(log.read_text())
        # Walks until one reaches the daemon with no request (the third, unless the machine
        # dropped the kernel's caches meanwhile: another program's drop_caches evicts them).
        while len(walks) < 3 or (walks[-1].total() > 0 and len(walks) < 8):
            done = subprocess.run([sys.executable, "-c", WALK, str(mnt / "walk")], capture_output=True, text=True)
            assert done.returncode == 0 and done.stdout.split() == ["126"], done.stderr
            time.sleep(0.2)  # the log's last lines (libfuse writes each request as it comes)
            text = log.read_text()
            walks.append(_requests(text[mark:]))
            mark = len(text)
    finally:
        force_unmount(mnt)
        proc.wait(timeout=20)
    text = log.read_text()
    total = _requests(text)
    assert total["OPENDIR"] == 1 and total["RELEASEDIR"] == 0, total
    assert "opcode: OPENDIR (27), nodeid: 2" in text and "error: -38" in text  # /walk, declined
    assert walks[0]["READDIRPLUS"] + walks[0]["READDIR"] >= 7  # the first walk: each directory
    assert walks[-1].total() == 0, walks  # a walk the kernel answered alone


@pytest.mark.root("a mount by the command itself (bootstrap.py), and the readahead in sysfs")
def test_an_open_directory_alone_loads_no_core(tmp_path):
    """On a root mount the bootstrap answers the first requests; it declines OPENDIR itself,
    so opening a directory (cd, an O_DIRECTORY open) does not load the core. The core's first
    request is what sets the readahead (`after_init`), which shows whether it was loaded."""
    from unionfs.mount import READ_AHEAD_KB

    lower, mnt = tmp_path / "lower", tmp_path / "mnt"
    (lower / "d").mkdir(parents=True)
    (lower / "d" / "f").touch()
    mnt.mkdir()
    with mounted(f"lowerdir={lower}", mnt):
        st = os.stat(mnt)
        bdi = Path(f"/sys/class/bdi/{os.major(st.st_dev)}:{os.minor(st.st_dev)}/read_ahead_kb")
        os.close(os.open(mnt, os.O_RDONLY | os.O_DIRECTORY))
        os.close(os.open(mnt, os.O_RDONLY | os.O_DIRECTORY))
        assert bdi.read_text().strip() != str(READ_AHEAD_KB)  # the core is not loaded
        assert os.listdir(mnt) == ["d"] and os.listdir(mnt / "d") == ["f"]  # a listing loads it
        assert bdi.read_text().strip() == str(READ_AHEAD_KB)


WALK = """
import os, sys
count, stack = 0, [sys.argv[1]]
while stack:
    with os.scandir(stack.pop()) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                stack.append(entry.path)
            entry.stat(follow_symlinks=False)
            count += 1
print(count)
"""
