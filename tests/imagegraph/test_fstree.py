"""fstree: walks, removal and the write cursor at any depth, with a bounded number of open directories."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from imagegraph import fstree

from ..security.trees import deep_exists, make_deep


def _tree(root: Path) -> None:
    for rel in ("b/z", "b/a/x", "a", "c/d/e/f", "B"):
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(rel)
    (root / "link").symlink_to("b")  # never followed
    (root / "empty").mkdir()


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_walk_is_preorder_and_bytewise_sorted(tmp_path: Path) -> None:
    _tree(tmp_path)
    got = [e.rel for e in fstree.walk(tmp_path)]
    assert got == ["B", "a", "b", "b/a", "b/a/x", "b/z", "c", "c/d", "c/d/e", "c/d/e/f", "empty", "link"]


def test_walk_can_skip_a_directory(tmp_path: Path) -> None:
    _tree(tmp_path)
    got = []
    for e in fstree.walk(tmp_path):
        got.append(e.rel)
        if e.rel == "b":
            e.descend = False
    assert "b/a" not in got and "c/d" in got


@pytest.mark.parametrize("budget", [3, 8, fstree.FD_BUDGET])
def test_walk_5000_deep_with_few_open_directories(deep_tmp: Path, budget: int) -> None:
    make_deep(deep_tmp / "t", 5000)
    (deep_tmp / "t" / "d" / "side").write_text("after the deep chain")  # visited after coming back up
    before = _open_fds()
    most = 0
    rels = []
    for e in fstree.walk(deep_tmp / "t", budget=budget):
        rels.append(e.rel)
        most = max(most, _open_fds() - before)
    assert len(rels) == 5002
    assert rels[-1] == "d/side" and rels[-2] == "d/" * 5000 + "f"
    assert most <= budget + 3
    assert _open_fds() == before


def test_walk_alongside_other_trees(tmp_path: Path) -> None:
    (tmp_path / "top" / "a" / "b").mkdir(parents=True)
    (tmp_path / "low" / "a").mkdir(parents=True)
    (tmp_path / "low" / "a" / "b").write_text("a file, not a dir")
    seen = {}
    for e in fstree.walk(tmp_path / "top", [tmp_path / "low", tmp_path / "missing"]):
        seen[e.rel] = [e.dir_fd(s) is not None for s in range(3)]
    assert seen == {"a": [True, True, False], "a/b": [True, True, False]}


def test_walk_alongside_at_depth_reopens_every_slot(deep_tmp: Path) -> None:
    make_deep(deep_tmp / "top", 300)
    make_deep(deep_tmp / "low", 150, leaf=None)
    (deep_tmp / "top" / "z").write_text("last")
    lowers_seen = 0
    for e in fstree.walk(deep_tmp / "top", [deep_tmp / "low"], budget=4):
        if e.dir_fd(1) is not None:
            lowers_seen += 1
    assert lowers_seen == 151 + 1  # d…d at depths 1..151 have a lower parent; and z at the root


def test_remove_tree_any_depth(deep_tmp: Path) -> None:
    make_deep(deep_tmp / "t", 5000)
    before = _open_fds()
    fstree.remove_tree(deep_tmp / "t", budget=5)
    assert not (deep_tmp / "t").exists()
    assert _open_fds() == before
    fstree.remove_tree(deep_tmp / "t")  # missing: fine
    with pytest.raises(FileNotFoundError):
        fstree.remove_tree(deep_tmp / "t", missing_ok=False)


def test_remove_tree_of_a_file_and_a_symlink(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    (tmp_path / "d").mkdir()
    (tmp_path / "s").symlink_to(tmp_path / "d")
    fstree.remove_tree(tmp_path / "s")
    assert (tmp_path / "d").is_dir() and not (tmp_path / "s").exists()
    fstree.remove_tree(tmp_path / "f")
    assert not (tmp_path / "f").exists()


def test_remove_tree_makes_read_only_directories_writable(tmp_path: Path) -> None:
    """An image's 0555 folder: as root nothing stops the removal; as another user it is chmodded."""
    (tmp_path / "t" / "ro" / "sub").mkdir(parents=True)
    (tmp_path / "t" / "ro" / "sub" / "f").write_text("x")
    os.chmod(tmp_path / "t" / "ro" / "sub", 0o555)
    os.chmod(tmp_path / "t" / "ro", 0o000)
    fstree.remove_tree(tmp_path / "t")
    assert not (tmp_path / "t").exists()


@pytest.mark.root("mounts a tmpfs")
def test_remove_tree_never_enters_a_mount(tmp_path: Path) -> None:
    (tmp_path / "t" / "m").mkdir(parents=True)
    (tmp_path / "t" / "keep").write_text("x")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(tmp_path / "t" / "m")], check=True)
    try:
        (tmp_path / "t" / "m" / "precious").write_text("on another filesystem")
        with pytest.raises(fstree.TreeError, match="is a mount point: unmount it first"):
            fstree.remove_tree(tmp_path / "t")
        assert (tmp_path / "t" / "m" / "precious").exists()
    finally:
        subprocess.run(["umount", str(tmp_path / "t" / "m")], check=True)
    fstree.remove_tree(tmp_path / "t")
    assert not (tmp_path / "t").exists()


def test_cursor_creates_and_moves_between_deep_paths(deep_tmp: Path) -> None:
    root = os.open(deep_tmp, fstree.O_DIR)
    cur = fstree.DirCursor(root, budget=4)
    try:
        deep = ["d"] * 3000
        fd = cur.goto("/".join(deep))
        os.close(os.open("f", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd))
        fd = cur.goto("d/d/x")
        os.close(os.open("g", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd))
        cur.goto("/".join(deep[:2000]))  # back down, then up again through reopened directories
        cur.goto("")
    finally:
        cur.close()
    assert deep_exists(deep_tmp, 3000) and (deep_tmp / "d" / "d" / "x" / "g").exists()


def test_cursor_refuses_symlinks_and_files_on_the_way(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    (tmp_path / "s").symlink_to("/etc")
    root = os.open(tmp_path, fstree.O_DIR)
    cur = fstree.DirCursor(root)
    try:
        with pytest.raises(fstree.TreeError, match='the symlink "s"'):
            cur.goto("s/x")
        with pytest.raises(fstree.TreeError, match='the non-directory "f"'):
            cur.goto("f/x")
    finally:
        cur.close()
    assert not os.path.exists("/etc/x")
