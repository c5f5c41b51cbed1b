"""kill -9 at moments spread over every store-changing command (import, commit, pull, load,
save, rmi, prune), then the next command: the store check finds no missing layer, no dangling
tag, no orphan folder and no temporary file. And commands run at once on one store."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from imagegraph.service import Services
from imagegraph.storecheck import check_store

from .conftest import REPO, command, run_process
from .hostile import save_archive
from .lying_registry import LyingRegistry

FRACTIONS = (0.15, 0.35, 0.55, 0.75, 0.95)


@pytest.fixture(scope="module")
def payload(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A root filesystem that takes a while to import: 600 small files and 8 MiB of data."""
    root = tmp_path_factory.mktemp("payload") / "rootfs"
    for d in range(12):
        sub = root / "usr" / f"d{d}"
        sub.mkdir(parents=True)
        for i in range(50):
            (sub / f"f{i}").write_text(f"{d}-{i}\n" * 20)
    (root / "big").write_bytes(os.urandom(8 << 20))
    (root / "bin").mkdir()
    (root / "bin" / "sh").write_text("#!fake\n")
    return root


@pytest.fixture(scope="module")
def payload_tar(payload: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from imagegraph.archive import write_layer_tar

    out = tmp_path_factory.mktemp("payload-tar") / "layer.tar"
    with open(out, "wb") as f:
        write_layer_tar(payload, f)
    return out


@pytest.fixture(scope="module")
def registry(payload_tar: Path) -> Iterator[LyingRegistry]:
    reg = LyingRegistry()
    reg.image("crash/img", "1", [payload_tar.read_bytes()], compress=False)
    yield reg
    reg.close()


def _kill_after(argv: list[str], delay: float, stdin: Path | None = None) -> None:
    with open(stdin, "rb") if stdin else open(os.devnull, "rb") as inp:
        p = subprocess.Popen(command(*argv), stdin=inp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
        time.sleep(delay)
        p.kill()
        p.wait()


def _after_a_crash(store: Path, *extra: str) -> None:
    """The next command works, and leaves the store consistent and free of leftovers."""
    r = run_process("--root", str(store), "images", "-a")
    assert r.rc == 0 and r.err == "", r.err
    problems = check_store(store)
    assert problems == [], problems


def _crash_series(store: Path, argv: list[str], prepare: Callable[[], None], stdin: Path | None = None) -> None:
    prepare()
    start = time.monotonic()
    res = subprocess.run(command(*argv), stdin=open(stdin, "rb") if stdin else None, capture_output=True, cwd=REPO)
    took = time.monotonic() - start
    assert res.returncode == 0, res.stderr.decode()
    _after_a_crash(store)
    for fraction in FRACTIONS:
        prepare()
        _kill_after(argv, took * fraction, stdin)
        _after_a_crash(store)


def _ig(store: Path, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(command("--root", str(store), *argv), capture_output=True, cwd=REPO, text=True)


def _rmi_quietly(store: Path, *refs: str) -> None:
    _ig(store, "rmi", "-f", *refs)


def test_kill_during_import(seeded: Path, payload: Path) -> None:
    _crash_series(
        seeded, ["--root", str(seeded), "import", str(payload), "big:1"], lambda: _rmi_quietly(seeded, "big:1")
    )


def test_kill_during_import_from_stdin(seeded: Path, payload_tar: Path) -> None:
    _crash_series(
        seeded, ["--root", str(seeded), "import", "-", "big:2"], lambda: _rmi_quietly(seeded, "big:2"), payload_tar
    )


def test_kill_during_commit(seeded: Path, payload: Path) -> None:
    svc = Services.open(seeded)
    c = svc.get_container("c1")
    top = svc.layout.layer_dir(svc.layers.get_mount(c.id).mount_id) / "diff"
    subprocess.run(["cp", "-a", f"{payload}/.", str(top)], check=True)
    _crash_series(seeded, ["--root", str(seeded), "commit", "c1", "big:c"], lambda: _rmi_quietly(seeded, "big:c"))


def test_kill_during_pull(seeded: Path, registry: LyingRegistry) -> None:
    name = f"{registry.domain}/crash/img:1"
    _crash_series(seeded, ["--root", str(seeded), "pull", "-q", name], lambda: _rmi_quietly(seeded, name))


def test_kill_during_load(seeded: Path, payload_tar: Path, tmp_path: Path) -> None:
    archive = tmp_path / "image.tar"
    archive.write_bytes(save_archive([payload_tar.read_bytes()], "loaded:1"))
    _crash_series(
        seeded, ["--root", str(seeded), "load", "-q", "-i", str(archive)], lambda: _rmi_quietly(seeded, "loaded:1")
    )


def test_kill_during_save(seeded: Path, payload: Path, tmp_path: Path) -> None:
    assert _ig(seeded, "import", str(payload), "big:1").returncode == 0
    out = tmp_path / "out"
    out.mkdir()
    target = out / "img.tar"
    _crash_series(seeded, ["--root", str(seeded), "save", "-o", str(target), "big:1"], lambda: None)
    assert _ig(seeded, "save", "-o", str(target), "big:1").returncode == 0  # the next save to the folder
    assert os.listdir(out) == ["img.tar"]


def test_kill_during_rmi(seeded: Path, payload_tar: Path, tmp_path: Path) -> None:
    archive = tmp_path / "image.tar"
    archive.write_bytes(save_archive([payload_tar.read_bytes()], "gone:1"))

    def prepare() -> None:
        r = _ig(seeded, "load", "-q", "-i", str(archive))
        assert r.returncode == 0, r.stderr

    _crash_series(seeded, ["--root", str(seeded), "rmi", "gone:1"], prepare)


def test_kill_during_prune(seeded: Path, payload: Path) -> None:
    def prepare() -> None:
        for i in range(2):
            (payload / "variant").write_text(str(time.time_ns()) + str(i))
            r = _ig(seeded, "import", str(payload))  # untagged: dangling
            assert r.returncode == 0, r.stderr

    try:
        _crash_series(seeded, ["--root", str(seeded), "image", "prune", "-f", "-a"], prepare)
    finally:
        (payload / "variant").unlink(missing_ok=True)


def test_commands_at_once_on_one_store(seeded: Path, payload: Path, payload_tar: Path, tmp_path: Path) -> None:
    """Imports, a load, a commit, an rmi, a prune, listings and a save, all started together:
    each ends with success or one line, and the store is consistent after."""
    archive = tmp_path / "image.tar"
    archive.write_bytes(save_archive([payload_tar.read_bytes()], "together:load"))
    assert _ig(seeded, "tag", "base:1", "doomed:1").returncode == 0
    root = ["--root", str(seeded)]
    jobs = [
        root + ["import", str(payload), "together:a"],
        root + ["import", "-", "together:b"],
        root + ["load", "-q", "-i", str(archive)],
        root + ["commit", "c1", "together:c"],
        root + ["rmi", "doomed:1"],
        root + ["image", "prune", "-f"],
        root + ["images"],
        root + ["ps", "-a"],
        root + ["save", "-o", str(tmp_path / "saved.tar"), "base:1"],
        root + ["create", "--name", "c2", "base:1"],
    ]
    procs = []
    for argv in jobs:
        stdin = open(payload_tar, "rb") if "-" in argv else subprocess.DEVNULL
        procs.append(
            (
                argv,
                subprocess.Popen(command(*argv), stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO),
            )
        )
    for argv, p in procs:
        out, err = p.communicate(timeout=600)
        text = err.decode()
        assert p.returncode == 0, (argv, text)
        assert "Traceback" not in text
    assert check_store(seeded) == []
    listed = _ig(seeded, "images", "--format", "json").stdout
    for tag in ("together", "base"):
        assert tag in listed
    assert "doomed" not in listed
