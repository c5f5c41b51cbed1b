"""Bad command lines and bad places: one line naming the user's object, nothing made or lost."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from imagegraph.storecheck import check_store

from .conftest import Run, assert_unchanged, run_in_process, snapshot


def test_empty_root_is_an_error_not_the_default_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for argv in (("images",), ("pull", "x"), ("load", "-i", "x")):
        r = run_in_process("--root", "", *argv)
        r.refused('invalid argument "" for "--root" flag')
        assert r.rc == 125
    assert not (tmp_path / "home").exists()


def test_root_that_is_a_file(tmp_path: Path) -> None:
    f = tmp_path / "afile"
    f.write_text("x")
    for argv in (("images",), ("import", str(tmp_path), "x"), ("pull", "127.0.0.1:1/x"), ("load", "-i", str(f))):
        run_in_process("--root", str(f), *argv).refused(f"store root {f} is not a directory")
    assert f.read_text() == "x"


@pytest.mark.root("mounts a read-only tmpfs")
def test_root_on_a_read_only_filesystem(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(ro)], check=True)
    try:
        root = ro / "store"
        run_in_process("--root", str(root), "import", str(tmp_path), "x").refused("is on a read-only filesystem")
        r = run_in_process("--root", str(root), "images")  # only reads: an empty store
        assert r.rc == 0 and r.err == ""
    finally:
        subprocess.run(["umount", str(ro)], check=True)


@pytest.mark.root("a read-only bind mount of the store")
def test_read_only_store_can_still_be_read(seeded: Path, ig, tmp_path: Path) -> None:
    """A store this process may not change (here: a read-only bind of it) is listed, not cleaned."""
    view = tmp_path / "view"
    view.mkdir()
    subprocess.run(["mount", "--bind", "-o", "ro", str(seeded), str(view)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(view)], check=True)
        r = run_in_process("--root", str(view), "images")
        assert r.rc == 0 and "base" in r.out, r.err
        run_in_process("--root", str(view), "rmi", "base:latest").refused("read-only")
    finally:
        subprocess.run(["umount", str(view)], check=True)


@pytest.mark.parametrize(
    "argv",
    [("images",), ("inspect", "nosuch"), ("ps", "-a"), ("history", "nosuch"), ("diff", "nosuch"), ("graph",)],
)
def test_read_only_commands_make_nothing_under_a_new_root(tmp_path: Path, argv: tuple[str, ...]) -> None:
    root = tmp_path / "new" / "store"
    run_in_process("--root", str(root), *argv)
    assert not (tmp_path / "new").exists()


def test_save_and_push_make_nothing_under_a_new_root(tmp_path: Path) -> None:
    root = tmp_path / "new"
    run_in_process("--root", str(root), "save", "-o", str(tmp_path / "out.tar"), "nosuch").refused("No such image")
    run_in_process("--root", str(root), "push", "127.0.0.1:1/nosuch:1").refused()
    assert not root.exists() and not (tmp_path / "out.tar").exists()


def test_save_to_a_directory_or_nowhere(seeded: Path, ig, tmp_path: Path) -> None:
    before = snapshot(seeded)
    ig("save", "-o", str(tmp_path), "base:1").refused(f'invalid output path: "{tmp_path}" is a directory')
    missing = tmp_path / "no" / "such" / "dir" / "x.tar"
    ig("save", "-o", str(missing), "base:1").refused("does not exist")
    assert_unchanged(seeded, before)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seed-rootfs", "store"]


def test_mount_onto_a_file_or_a_full_directory(seeded: Path, ig, tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    before = snapshot(seeded)
    ig("mount", "c1", str(f)).refused(f"mount point {f} is not a directory")
    full = tmp_path / "full"
    full.mkdir()
    (full / "precious").write_text("y")
    for driver in ("layerfs", "overlay"):
        ig("mount", "--driver", driver, "c1", str(full)).refused(f"mount point {full} is not empty")
    assert (full / "precious").read_text() == "y" and f.read_text() == "x"
    assert_unchanged(seeded, before)


def test_import_of_a_missing_or_unreadable_source(seeded: Path, ig, tmp_path: Path) -> None:
    before = snapshot(seeded)
    ig("import", str(tmp_path / "nope.tar"), "x").refused("no such file or directory")
    ig("import", "/proc/self/mem", "x").refused()
    assert_unchanged(seeded, before)


def _modes(root: Path) -> dict[str, int]:
    return {
        "root": stat.S_IMODE(root.stat().st_mode),
        "driver": stat.S_IMODE((root / "layerfs").stat().st_mode),
        "image": stat.S_IMODE((root / "image").stat().st_mode),
        "containers": stat.S_IMODE((root / "containers").stat().st_mode),
    }


def test_store_folders_are_unreachable_to_other_users(seeded: Path) -> None:
    want = 0o710 if os.geteuid() == 0 else 0o700
    assert _modes(seeded) == {"root": want, "driver": want, "image": 0o700, "containers": want}
    for layer in (seeded / "layerfs").iterdir():
        assert stat.S_IMODE(layer.stat().st_mode) & 0o007 == 0, layer
    assert check_store(seeded) == []


def test_an_older_open_store_is_tightened(seeded: Path, ig) -> None:
    os.chmod(seeded, 0o755)
    os.chmod(seeded / "layerfs", 0o755)
    for layer in (seeded / "layerfs").iterdir():
        os.chmod(layer, 0o755)
    assert ig("images").rc == 0
    test_store_folders_are_unreachable_to_other_users(seeded)


@pytest.mark.root("runs a command as another user")
def test_another_user_cannot_reach_a_setuid_binary_of_an_image(seeded: Path, ig, tmp_path: Path) -> None:
    src = tmp_path / "suid"
    src.mkdir()
    (src / "rootshell").write_text("#!/bin/sh\nid -u\n")
    os.chmod(src / "rootshell", 0o4755)
    assert ig("import", str(src), "suid:1").rc == 0
    found = list((seeded / "layerfs").glob("*/diff/rootshell"))
    assert found and found[0].stat().st_mode & stat.S_ISUID
    res = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "ls", str(found[0])],
        capture_output=True,
        text=True,
    )
    assert res.returncode != 0 and "Permission denied" in res.stderr
    res = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "ls", str(seeded)],
        capture_output=True,
        text=True,
    )
    assert res.returncode != 0


def test_non_root_default_store_in_home_keeps_working() -> None:
    """The store under ~/.local/share for a user: made 0700 and usable (run as nobody when root)."""
    import shutil
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="ig-home-", dir="/tmp"))  # reachable by nobody, unlike pytest's
    try:
        os.chmod(base, 0o755)
        home, src = base / "home", base / "src"
        home.mkdir()
        src.mkdir()
        (src / "f").write_text("x")
        script = (
            "from imagegraph.cli import main; import sys; "
            f"sys.exit(main(['import', {str(src)!r}, 'mine:1']) or main(['images']))"
        )
        env = {"HOME": str(home), "PATH": os.environ["PATH"], "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
        cmd = [sys.executable, "-c", script]
        if os.geteuid() == 0:
            os.chown(home, 65534, 65534)
            cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *cmd]
        res = subprocess.run(cmd, env=env, capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
        assert "mine" in res.stdout
        store = home / ".local" / "share" / "imagegraph"
        assert stat.S_IMODE(store.stat().st_mode) == 0o700
        assert check_store(store) == []
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chown", "-R", "0:0", str(base)], check=True)
        shutil.rmtree(base)


def test_one_line_for_every_usage_error() -> None:
    r: Run = run_in_process("images", "--no-such-flag")
    r.refused()
    assert r.rc == 125


def test_a_quota_is_said_like_a_full_disk(seeded: Path, ig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """EDQUOT (no quota to set up here): the spool write fails as it would over quota."""
    import errno
    import io

    from imagegraph import layerstore

    class OverQuota(io.RawIOBase):
        def __init__(self, fd: int) -> None:
            os.close(fd)

        def writable(self) -> bool:
            return True

        def write(self, b) -> int:
            raise OSError(errno.EDQUOT, "Disk quota exceeded")

    before = snapshot(seeded)
    monkeypatch.setattr(layerstore.os, "fdopen", lambda fd, mode: OverQuota(fd))  # the spool's only
    r = ig("import", "-", "q:1", stdin=b"x" * 4096)
    monkeypatch.undo()
    r.refused("disk quota exceeded")
    assert_unchanged(seeded, before)
