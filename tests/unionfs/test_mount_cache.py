"""Kernel caching on a live mount: long timeouts stay right.

The kernel keeps names, attributes, pages and listings for a day. Every name of a hard link
is its own kernel inode (libfuse's path nodes), so a change through one name must reach the
others at once; so must the attributes of directories a copy-up brought into the upper; and
a cold listing comes with each entry's attributes (READDIRPLUS), so a walk sends no LOOKUPs.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import time
from pathlib import Path

import pytest

from unionfs.mount import MountRequest, plan

from .mount_helpers import LAYERFS, force_unmount, is_mounted, one_layer_union

pytestmark = pytest.mark.mount


@pytest.fixture(params=["overlay", "aufs"])
def union(request):
    """A mounted union over one lower layer; yields (mnt, upper, lower)."""

    def fill(lower: Path) -> None:
        (lower / "a" / "b").mkdir(parents=True)
        (lower / "a" / "b" / "f").write_text("lower f\n")
        (lower / "one").write_text("lower one\n")
        os.link(lower / "one", lower / "two")  # a hard link inside a lower layer

    with one_layer_union(request.param, fill, prefix="layerfs-cache-") as (_, mnt, upper, lower):
        yield mnt, upper, lower


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_timeouts_are_long_when_the_daemon_can_invalidate(tmp_path):
    (tmp_path / "l").mkdir()
    (tmp_path / "m").mkdir()
    options = plan(MountRequest((f"lowerdir={tmp_path / 'l'}",), str(tmp_path / "m"), str(tmp_path))).fuse_options
    assert options["attr_timeout"] >= 3600 and options["entry_timeout"] >= 3600
    assert options["negative_timeout"] >= 3600 and options["kernel_cache"] is True


def test_a_change_through_one_name_shows_through_the_other_at_once(union):
    mnt, upper, _ = union
    (mnt / "h1").write_text("first\n")
    os.link(mnt / "h1", mnt / "h2")
    # the kernel now holds both names' attributes and h2's pages
    assert (mnt / "h2").read_text() == "first\n" and _mode(mnt / "h2") == 0o644
    assert os.lstat(mnt / "h1").st_nlink == 2

    os.chmod(mnt / "h1", 0o600)
    assert _mode(mnt / "h2") == 0o600
    with open(mnt / "h1", "a") as f:
        f.write("second line\n")
    assert (mnt / "h2").read_text() == "first\nsecond line\n"
    assert os.lstat(mnt / "h2").st_size == len("first\nsecond line\n")
    os.truncate(mnt / "h2", 3)
    assert (mnt / "h1").read_text() == "fir" and os.lstat(mnt / "h1").st_size == 3
    os.utime(mnt / "h1", ns=(1_000_000_000, 2_000_000_000))
    assert os.lstat(mnt / "h2").st_mtime_ns == 2_000_000_000
    os.chown(mnt / "h2", 1234, 5678)
    assert (os.lstat(mnt / "h1").st_uid, os.lstat(mnt / "h1").st_gid) == (1234, 5678)
    os.setxattr(mnt / "h1", "user.k", b"v")
    assert os.getxattr(mnt / "h2", "user.k") == b"v"
    ctime = os.lstat(mnt / "h2").st_ctime_ns
    os.removexattr(mnt / "h1", "user.k")
    assert os.lstat(mnt / "h2").st_ctime_ns >= ctime
    assert os.lstat(mnt / "h2").st_ctime_ns == os.lstat(upper / "h2").st_ctime_ns


def test_link_counts_follow_link_unlink_and_rename(union):
    mnt, _, _ = union
    (mnt / "x").write_text("x\n")
    assert os.lstat(mnt / "x").st_nlink == 1
    os.link(mnt / "x", mnt / "y")
    assert os.lstat(mnt / "y").st_nlink == 2
    os.link(mnt / "y", mnt / "z")  # x's cached count must move too
    assert [os.lstat(mnt / n).st_nlink for n in "xyz"] == [3, 3, 3]
    os.unlink(mnt / "z")
    assert [os.lstat(mnt / n).st_nlink for n in "xy"] == [2, 2]
    (mnt / "other").write_text("o\n")
    os.rename(mnt / "other", mnt / "y")  # replaces one name of x's file
    assert os.lstat(mnt / "x").st_nlink == 1 and (mnt / "y").read_text() == "o\n"
    os.link(mnt / "x", mnt / "w")
    os.mkdir(mnt / "dir")
    os.rename(mnt / "w", mnt / "dir" / "w")  # the name moves; a change through it still reaches x
    os.chmod(mnt / "dir" / "w", 0o640)
    assert _mode(mnt / "x") == 0o640


def test_directories_a_copy_up_brings_up_show_the_uppers_attributes(union):
    mnt, upper, lower = union
    # a directory in one lower layer only shows its own link count ...
    assert os.lstat(mnt / "a").st_nlink == 3 and os.lstat(mnt / "a" / "b").st_nlink == 2
    with open(mnt / "a" / "b" / "f", "a") as f:  # copies up a, a/b and a/b/f
        f.write("more\n")
    assert (upper / "a" / "b" / "f").exists()
    # ... and, merged with the upper now, one, as the kernel's overlay says
    assert os.lstat(mnt / "a").st_nlink == 1 and os.lstat(mnt / "a" / "b").st_nlink == 1
    assert os.lstat(mnt / "a" / "b").st_ctime_ns == os.lstat(upper / "a" / "b").st_ctime_ns


def test_a_failing_call_that_copied_up_still_refreshes_the_parents(union):
    mnt, upper, _ = union
    assert os.lstat(mnt / "a").st_nlink == 3
    with pytest.raises(OSError):  # copies up first, then the upper says ENODATA, as the kernel's
        os.setxattr(mnt / "a" / "b" / "f", "user.missing", b"v", os.XATTR_REPLACE)
    assert (upper / "a" / "b" / "f").exists()
    assert os.lstat(mnt / "a").st_nlink == 1


def test_a_lower_hard_link_is_broken_by_a_copy_up(union):
    mnt, _, lower = union
    assert os.lstat(mnt / "one").st_nlink == 2 and (mnt / "two").read_text() == "lower one\n"
    ino = os.lstat(mnt / "one").st_ino
    with open(mnt / "one", "a") as f:
        f.write("changed\n")
    # as on the kernel's overlay without index=on: the copy is its own file with its own
    # (upper) inode number; the other name still shows the lower file and its number
    assert (mnt / "one").read_text() == "lower one\nchanged\n"
    assert (mnt / "two").read_text() == "lower one\n" and (lower / "one").read_text() == "lower one\n"
    assert os.lstat(mnt / "one").st_nlink == 1 and os.lstat(mnt / "one").st_ino != ino
    assert os.lstat(mnt / "two").st_nlink == 2 and os.lstat(mnt / "two").st_ino == ino == os.lstat(lower / "two").st_ino


def test_cached_listings_follow_every_change(union):
    mnt, _, _ = union
    d = mnt / "a"
    assert sorted(os.listdir(d)) == ["b"]
    (d / "new").write_text("n\n")
    assert sorted(os.listdir(d)) == ["b", "new"]
    os.rename(d / "new", mnt / "moved")
    assert sorted(os.listdir(d)) == ["b"] and "moved" in os.listdir(mnt)
    os.rename(mnt / "moved", d / "back")
    assert sorted(os.listdir(d)) == ["b", "back"]
    os.unlink(d / "back")
    os.mkdir(d / "c")
    assert sorted(os.listdir(d)) == ["b", "c"]
    os.rmdir(d / "c")
    assert sorted(os.listdir(d)) == ["b"]
    os.unlink(d / "b" / "f")
    os.rmdir(d / "b")  # a lower directory: a whiteout hides it
    assert os.listdir(d) == [] and not (d / "b").exists()
    os.mkdir(d / "b")
    assert os.listdir(d / "b") == []  # opaque now: the lower f stays hidden


def test_a_cold_walk_gets_attributes_with_the_listing(tmp_path):
    """libfuse's debug log: READDIRPLUS answers the listing, no LOOKUP follows per entry,
    neither after the first walk nor after a second one."""
    lower, mnt = tmp_path / "lower", tmp_path / "mnt"
    (lower / "d").mkdir(parents=True)
    for i in range(50):
        (lower / "d" / f"f{i:02}").write_text("x" * i)
    mnt.mkdir()
    log = tmp_path / "debug.log"
    with open(log, "w") as err:
        proc = subprocess.Popen(
            [LAYERFS, "mount", "-o", f"lowerdir={lower},debug", str(mnt)], stderr=err, stdout=subprocess.DEVNULL
        )
    try:
        deadline = time.monotonic() + 20
        while not is_mounted(mnt):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.05)
        with os.scandir(mnt / "d") as it:
            sizes = {e.name: e.stat(follow_symlinks=False).st_size for e in it}
        assert sizes == {f"f{i:02}": i for i in range(50)}
        assert os.lstat(mnt / "d" / "f07").st_size == 7
        with os.scandir(mnt / "d") as it:  # again: listed without attributes, the kernel has them
            again = {e.name: e.stat(follow_symlinks=False).st_size for e in it}
        assert again == sizes
    finally:
        force_unmount(mnt)
        proc.wait(timeout=20)
    text = log.read_text()
    assert "READDIRPLUS" in text
    # libfuse's log of requests: one LOOKUP for d (and none per entry), with either adapter
    assert len([line for line in text.splitlines() if "opcode: LOOKUP" in line]) <= 2
    assert "layerfs: node 2 = /d" in text or "LOOKUP /d" in text  # which path a node id is


@pytest.mark.root("the readahead is a sysfs setting")
def test_root_mounts_read_ahead_about_a_mebibyte(union):
    from unionfs.mount import READ_AHEAD_KB

    mnt, _, _ = union
    st = os.stat(mnt)  # answered before the union is opened (bootstrap.py): no readahead yet
    # The first request that needs the union sets it, before the file is opened (the kernel
    # takes a file's readahead from its device when it opens it).
    assert (mnt / "one").read_text() == "lower one\n"
    bdi = Path(f"/sys/class/bdi/{os.major(st.st_dev)}:{os.minor(st.st_dev)}/read_ahead_kb")
    assert READ_AHEAD_KB == 1008 and bdi.read_text().strip() == "1008"


def _mount_logged(lower: Path, mnt: Path, log: Path, extra: str = "") -> subprocess.Popen:
    """A foreground mount with libfuse's request log (`debug`) going to `log`."""
    with open(log, "w") as err:
        proc = subprocess.Popen(
            [LAYERFS, "mount", "-o", f"lowerdir={lower}{extra},debug", str(mnt)], stderr=err, stdout=subprocess.DEVNULL
        )
    deadline = time.monotonic() + 20
    while not is_mounted(mnt):
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
        time.sleep(0.05)
    return proc


@pytest.mark.parametrize("max_read", [0, 65536])
def test_reads_are_spliced_from_the_layer_file(tmp_path, max_read):
    """libfuse's debug log marks each reply it spliced into /dev/fuse: every READ of a file
    of 3 MiB is one (the readahead keeps READs within libfuse's pipe), and the data is the
    file's. With max_read= (which libfuse refuses FUSE_INIT without, unless init repeats it)
    no reply is bigger."""
    lower, mnt = tmp_path / "lower", tmp_path / "mnt"
    lower.mkdir()
    mnt.mkdir()
    data = os.urandom(3 << 20)
    (lower / "big").write_bytes(data)
    log = tmp_path / "debug.log"
    proc = _mount_logged(lower, mnt, log, f",max_read={max_read}" if max_read else "")
    try:
        assert (mnt / "big").read_bytes() == data
    finally:
        force_unmount(mnt)
        proc.wait(timeout=20)
    text = log.read_text()
    reads = re.findall(r"unique: (\d+), opcode: READ ", text)
    replies = dict(re.findall(r"unique: (\d+), success, outsize: (\d+ \(splice\)|16)$", text, re.M))
    # Every READ with data was spliced; a READ at the end of the file (a readahead the kernel
    # may or may not send) has no data to splice: its reply is the bare header (16 bytes).
    assert reads and all(replies.get(u, "").endswith("(splice)") or replies.get(u) == "16" for u in reads), text[-4000:]
    sizes = [int(replies[u].split()[0]) for u in reads if replies[u] != "16"]
    assert sum(size - 16 for size in sizes) == len(data)  # each byte once, by splice
    if max_read:
        assert max(sizes) == max_read + 16  # + fuse_out_header


def _listings(log: Path) -> int:
    return len([line for line in log.read_text().splitlines() if "opcode: READDIR" in line])


@pytest.mark.root("an upper layer owned by root")
def test_the_kernel_keeps_listings_until_a_change_through_the_mount(tmp_path):
    """FOPEN_CACHE_DIR: a directory listed again is served by the kernel (no READDIR reaches
    the daemon); a file created, renamed or removed through the mount shows at once."""
    lower, upper, work, mnt = (tmp_path / n for n in ("lower", "upper", "work", "mnt"))
    for d in (lower / "d", upper, work, mnt):
        d.mkdir(parents=True)
    (lower / "d" / "old").write_text("o\n")
    log = tmp_path / "debug.log"
    proc = _mount_logged(lower, mnt, log, f",upperdir={upper},workdir={work}")
    try:
        assert os.listdir(mnt / "d") == ["old"]
        first = _listings(log)
        assert first >= 1
        assert os.listdir(mnt / "d") == ["old"] and os.listdir(mnt / "d") == ["old"]
        assert _listings(log) == first  # served from the kernel's cache
        (mnt / "d" / "new").write_text("n\n")
        assert sorted(os.listdir(mnt / "d")) == ["new", "old"]
        os.rename(mnt / "d" / "old", mnt / "d" / "renamed")
        assert sorted(os.listdir(mnt / "d")) == ["new", "renamed"]
        os.unlink(mnt / "d" / "new")
        assert os.listdir(mnt / "d") == ["renamed"]
        assert _listings(log) > first
    finally:
        force_unmount(mnt)
        proc.wait(timeout=20)
