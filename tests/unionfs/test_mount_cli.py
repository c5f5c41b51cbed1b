"""Mounting for real: every command form, both dialects, options, unmounting, bad mounts."""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .mount_helpers import LAYERFS, force_unmount, is_mounted, make_seed, mount_info, mounted, run

pytestmark = pytest.mark.mount

SEED_TREE = """./mnt
├── apple
├── carrots
└── tomato

1 directory, 3 files
"""


@pytest.fixture
def seed(tmp_path):
    make_seed(tmp_path)
    yield tmp_path
    force_unmount(tmp_path / "mnt")


def _layerfs_on_path() -> None:
    found = shutil.which("layerfs")
    assert found and os.path.realpath(found) == os.path.realpath(LAYERFS), (
        "mount.fuse finds layerfs through PATH: run `make install` (links it into /usr/local/bin)"
    )


def test_the_seeds_command_through_mount_fuse(seed):
    _layerfs_on_path()
    result = run(["mount", "-t", "fuse.layerfs", "-o", "dirs=./fruits:./vegetables", "none", "./mnt"], cwd=seed)
    assert result.returncode == 0, result.stderr
    try:
        assert mount_info(seed / "mnt").fstype == "fuse.layerfs"
        tree = run(["tree", "./mnt"], cwd=seed)
        assert tree.stdout == SEED_TREE
        assert (seed / "mnt" / "tomato").read_text() == "tomato from fruits\n"
    finally:
        assert run(["umount", "./mnt"], cwd=seed).returncode == 0
    assert not is_mounted(seed / "mnt")


def _options(root: Path, dialect: str) -> list[str]:
    if dialect == "aufs":
        return ["dirs=./fruits:./vegetables"]
    (root / "work").mkdir(exist_ok=True)
    return ["lowerdir=./vegetables,upperdir=./fruits", "workdir=./work"]  # two -o, as -o may repeat


def _forms(options: list[str]) -> dict[str, list[str]]:
    joined = ",".join(options)
    repeated = [a for o in options for a in ("-o", o)]
    return {
        "layerfs mount -o … MNT": [LAYERFS, "mount", *repeated, "./mnt"],
        "layerfs -o … MNT (containers-storage)": [LAYERFS, "-o", joined, "./mnt"],
        "layerfs -o … SOURCE MNT": [LAYERFS, *repeated, "none", "./mnt"],
        "layerfs SOURCE MNT -o … (mount.fuse)": [LAYERFS, "none", "./mnt", "-o", "rw,dev,suid," + joined],
        "mount -t fuse.layerfs": ["mount", "-t", "fuse.layerfs", "-o", joined, "none", "./mnt"],
    }


@pytest.mark.parametrize("dialect", ["aufs", "overlay"])
@pytest.mark.parametrize("form", list(_forms(["x"]).keys()))
def test_every_command_form_mounts_the_same_union(seed, dialect, form):
    _layerfs_on_path()
    argv = _forms(_options(seed, dialect))[form]
    with mounted(None, "mnt", cwd=seed, argv=argv) as mnt:
        assert sorted(os.listdir(mnt)) == ["apple", "carrots", "tomato"]
        assert (mnt / "tomato").read_text() == "tomato from fruits\n"
        with open(mnt / "carrots", "a") as f:
            f.write("peeled\n")
        os.unlink(mnt / "apple")
    # Unmounted: every change is in the upper (fruits), the lower is untouched.
    assert (seed / "fruits" / "carrots").read_text() == "carrots\npeeled\n"
    assert (seed / "vegetables" / "carrots").read_text() == "carrots\n"
    assert not (seed / "fruits" / "apple").exists()


def test_foreground_mount_stays_until_unmounted(seed):
    proc = subprocess.Popen(
        [LAYERFS, "mount", "-f", "-o", "dirs=./fruits:./vegetables", "./mnt"],
        cwd=seed,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while not is_mounted(seed / "mnt"):
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert proc.poll() is None  # still serving in the foreground
        assert (seed / "mnt" / "carrots").read_text() == "carrots\n"
        assert run(["fusermount3", "-u", str(seed / "mnt")]).returncode == 0
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=10)


def _daemon_pids(mountpoint: Path) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    cmdline = f.read().split(b"\0")
            except OSError:
                continue
            # The program, or the script after its interpreter (and `-I`: scripts/write-launcher.sh).
            if any(b"layerfs" in part for part in cmdline[:3]) and str(mountpoint).encode() in b" ".join(cmdline):
                pids.append(int(entry))
    return pids


@pytest.mark.parametrize("how", ["umount", "fusermount3 -u", "layerfs umount"])
def test_unmount_ends_the_daemon_and_keeps_every_write(seed, how):
    result = run([LAYERFS, "mount", "-o", "dirs=./fruits:./vegetables", str(seed / "mnt")], cwd=seed)
    assert result.returncode == 0, result.stderr
    daemons = _daemon_pids(seed / "mnt")
    assert daemons, "no daemon serves the mount"
    payload = os.urandom(1 << 20)
    with open(seed / "mnt" / "big", "wb") as f:
        f.write(payload)
    argv = {"umount": ["umount"], "fusermount3 -u": ["fusermount3", "-u"], "layerfs umount": [LAYERFS, "umount"]}[how]
    done = run(argv + [str(seed / "mnt")])
    assert done.returncode == 0, done.stderr
    assert not is_mounted(seed / "mnt")
    deadline = time.monotonic() + 10
    while any(os.path.exists(f"/proc/{pid}") and not _is_zombie(pid) for pid in daemons):
        assert time.monotonic() < deadline, "the daemon did not exit after the unmount"
        time.sleep(0.05)
    assert (seed / "fruits" / "big").read_bytes() == payload


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


@pytest.mark.parametrize(
    "argv, message",
    [
        (["mount", "-o", "dirs=./fruits:./nowhere", "./mnt"], "./nowhere: no such directory"),
        (["mount", "-o", "dirs=./fruits:./vegetables,bogus", "./mnt"], "unknown option 'bogus'"),
        (["mount", "-o", "lowerdir=./vegetables,upperdir=./fruits", "./mnt"], "missing 'workdir'"),
        (["mount", "-o", "dirs=./fruits:./vegetables", "./missing"], "mount point ./missing does not exist"),
        (["mount", "-o", "dirs=./fruits:./vegetables", "./fruits"], "mount point ./fruits is not empty"),
        (["mount", "-o", "dirs=./fruits:./vegetables", "./fruits/apple"], "is not a directory"),
        (["mount", "-o", "dirs=./fruits:./vegetables"], "give a MOUNTPOINT"),
        (["mount", "--frobnicate", "./mnt"], "unknown argument '--frobnicate'"),
        (["umount", "./mnt"], "./mnt is not mounted"),
    ],
)
def test_a_bad_mount_prints_one_line_and_mounts_nothing(seed, argv, message):
    result = run([LAYERFS, *argv], cwd=seed)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("layerfs: ") and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert str(seed) not in open("/proc/self/mountinfo").read()  # nothing mounted here


def test_mount_point_inside_a_branch_is_refused(seed):
    (seed / "vegetables" / "sub").mkdir()
    result = run([LAYERFS, "mount", "-o", "dirs=./fruits:./vegetables", "./vegetables/sub"], cwd=seed)
    assert result.returncode == 1 and "inside the branch" in result.stderr
    assert not is_mounted(seed / "vegetables" / "sub")


def test_without_fuse_the_mount_fails_in_one_line(seed):
    env = dict(os.environ, FUSE_LIBRARY_PATH="/nonexistent/libfuse3.so")
    result = run([LAYERFS, "mount", "-o", "dirs=./fruits:./vegetables", "./mnt"], cwd=seed, env=env)
    assert result.returncode == 1
    assert result.stderr.startswith("layerfs: FUSE is not available") and result.stderr.count("\n") == 1
    assert not is_mounted(seed / "mnt")


def test_escaped_colon_and_comma_in_branch_paths(tmp_path):
    (tmp_path / "up:per").mkdir()
    (tmp_path / "low,er").mkdir()
    (tmp_path / "low,er" / "f").write_text("lower\n")
    (tmp_path / "mnt").mkdir()
    with mounted(r"dirs=./up\:per:./low\,er", "mnt", cwd=tmp_path) as mnt:
        assert (mnt / "f").read_text() == "lower\n"
        (mnt / "g").write_text("new\n")
        explained = run([LAYERFS, "explain", str(mnt / "f")])
        assert explained.returncode == 0, explained.stderr
        assert f"{tmp_path}/low,er" in explained.stdout and "serves /f" in explained.stdout
    assert (tmp_path / "up:per" / "g").read_text() == "new\n"


def test_fstab_line(seed, tmp_path):
    fstab = tmp_path / "fstab"
    fstab.write_text(f"none {seed / 'mnt'} fuse.layerfs dirs={seed / 'fruits'}:{seed / 'vegetables'},noauto 0 0\n")
    result = run(["mount", "-T", str(fstab), str(seed / "mnt")])
    assert result.returncode == 0, result.stderr
    try:
        assert sorted(os.listdir(seed / "mnt")) == ["apple", "carrots", "tomato"]
    finally:
        assert run(["umount", str(seed / "mnt")]).returncode == 0


def test_ro_and_mount_flags_are_honoured(seed):
    with mounted("dirs=./fruits:./vegetables,ro,nosuid,nodev,noexec,noatime", "mnt", cwd=seed) as mnt:
        flags = mount_info(mnt).options.split(",")
        assert {"ro", "nosuid", "nodev", "noexec", "noatime"} <= set(flags)
        with pytest.raises(OSError) as err:
            (mnt / "new").write_text("x")
        assert err.value.errno == 30  # EROFS
    with mounted("dirs=./fruits:./vegetables,rw,dev,suid", "mnt", cwd=seed) as mnt:
        flags = mount_info(mnt).options.split(",")
        assert "rw" in flags and "nosuid" not in flags and "nodev" not in flags


def test_root_mounts_with_allow_other_and_default_permissions(seed):
    with mounted("dirs=./fruits:./vegetables", "mnt", cwd=seed) as mnt:
        superopts = mount_info(mnt).super_options.split(",")
        assert "allow_other" in superopts and "default_permissions" in superopts


def test_provenance_on_a_live_mount(seed):
    with mounted("dirs=./fruits:./vegetables", "mnt", cwd=seed) as mnt:
        got = run(["getfattr", "--only-values", "-n", "user.layerfs.origin", str(mnt / "carrots")])
        assert got.returncode == 0 and got.stdout == "./vegetables (lower)"
        got = run(["getfattr", "--only-values", "-n", "user.layerfs.origin", str(mnt / "tomato")])
        assert got.stdout == "./fruits (upper)"
        listed = run(["getfattr", "-d", "-m", "-", str(mnt / "carrots")])
        assert "layerfs" not in listed.stdout  # private names are not listed
        tree = run([LAYERFS, "tree", "--origin", str(mnt)])
        assert tree.returncode == 0, tree.stderr
        assert f"[{seed}/vegetables]  carrots" in tree.stdout
        assert f"[{seed}/fruits]  tomato" in tree.stdout
        os.unlink(mnt / "tomato")
        explained = run([LAYERFS, "explain", str(mnt / "tomato")])
        assert explained.returncode == 0, explained.stderr
        assert "whiteout (.wh.tomato)" in explained.stdout and "hidden by the whiteout" in explained.stdout
        # Looking did not disturb the daemon's work directory or the union.
        assert (seed / "fruits" / ".wh..wh.work").is_dir()
        assert sorted(os.listdir(mnt)) == ["apple", "carrots"]


def test_explain_outside_a_layerfs_mount_is_one_line(seed):
    result = run([LAYERFS, "explain", str(seed / "fruits" / "apple")])
    assert result.returncode == 1 and "is not on a layerfs mount" in result.stderr
    assert result.stderr.count("\n") == 1


def test_trace_file_records_copy_up_and_whiteout(seed):
    trace = seed / "trace.jsonl"
    with mounted("dirs=./fruits:./vegetables,trace=./trace.jsonl", "mnt", cwd=seed) as mnt:
        with open(mnt / "carrots", "a") as f:
            f.write("more\n")
        os.unlink(mnt / "carrots")
    events = [json.loads(line) for line in trace.read_text().splitlines()]
    kinds = [(e["event"], e["path"]) for e in events]
    assert ("copy_up", "/carrots") in kinds and ("whiteout", "/carrots") in kinds
    copy = next(e for e in events if e["event"] == "copy_up")
    assert copy["bytes"] == len("carrots\n")
    printed = run([LAYERFS, "trace", str(trace)])
    assert "copy-up   /carrots" in printed.stdout


def test_a_stack_too_long_for_the_mount_source_is_still_explained(tmp_path):
    """containers-storage stacks can pass a page of layer paths: they go to a state file."""
    layers = []
    for i in range(60):
        layer = tmp_path / f"layer-{i:02d}-{'d' * 64}"
        layer.mkdir()
        (layer / f"only-in-{i}").write_text(f"{i}\n")
        layers.append(str(layer))
    (tmp_path / "upper").mkdir()
    (tmp_path / "work").mkdir()
    (tmp_path / "mnt").mkdir()
    options = f"lowerdir={':'.join(layers)},upperdir={tmp_path / 'upper'},workdir={tmp_path / 'work'}"
    assert len(options) > 4096
    with mounted(options, tmp_path / "mnt") as mnt:
        assert len(os.listdir(mnt)) == 60
        source = mount_info(mnt).source
        assert source.startswith("layerfs-state=/run/layerfs/")
        explained = run([LAYERFS, "explain", str(mnt / "only-in-59")])
        assert explained.returncode == 0, explained.stderr
        assert f"{layers[59]}  lower  serves /only-in-59" in explained.stdout


@pytest.mark.root("mount(2) from the command is root's path")
@pytest.mark.parametrize("options", ["dirs=./fruits:./vegetables", "dirs=./fruits:./vegetables,ro,nosuid,noexec"])
def test_roots_own_mount_looks_as_libfuses(seed, options):
    """As root the command mounts itself and the daemon serves /dev/fd/N; mountinfo must read
    exactly as when libfuse mounts, which it does when the user names a library file."""
    found = glob.glob("/usr/lib/*/libfuse3.so.3") + glob.glob("/lib/*/libfuse3.so.3")
    assert found, "libfuse 3 is not installed"
    tables = []
    for env in ({}, {"FUSE_LIBRARY_PATH": found[0]}):
        result = run([LAYERFS, "-o", options, "./mnt"], cwd=seed, env={**os.environ, **env})
        assert result.returncode == 0, result.stderr
        try:
            info = mount_info(seed / "mnt")
            tables.append((info.fstype, info.source, info.options, info.super_options))
            assert (seed / "mnt" / "carrots").read_text() == "carrots\n"
        finally:
            force_unmount(seed / "mnt")
    assert tables[0] == tables[1]


@pytest.mark.root("mount(2) from the command is root's path")
def test_a_signalled_daemon_takes_its_mount_away(seed):
    """libfuse unmounts what it mounted when its loop ends on a signal; the daemon of root's own
    mount must too, or the mount point would answer ENOTCONN until someone unmounts it."""
    result = run([LAYERFS, "-o", "dirs=./fruits:./vegetables", str(seed / "mnt")], cwd=seed)
    assert result.returncode == 0, result.stderr
    try:
        assert (seed / "mnt" / "apple").read_text() == "apple\n"
        daemons = _daemon_pids(seed / "mnt")
        assert daemons
        for pid in daemons:
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        while is_mounted(seed / "mnt"):
            assert time.monotonic() < deadline, "the mount outlived its daemon"
            time.sleep(0.05)
        assert os.listdir(seed / "mnt") == []
    finally:
        force_unmount(seed / "mnt")


def test_an_umount_right_after_the_mount_succeeds(seed):
    """podman mounts and unmounts at once: nothing of the daemon's start (the readahead is set
    from the first request) may hold the mount point busy."""
    for _ in range(5):
        result = run([LAYERFS, "-o", "dirs=./fruits:./vegetables", "./mnt"], cwd=seed)
        assert result.returncode == 0, result.stderr
        done = run(["umount", str(seed / "mnt")] if os.geteuid() == 0 else ["fusermount3", "-u", str(seed / "mnt")])
        assert done.returncode == 0, done.stderr
        assert not is_mounted(seed / "mnt")


# What the command itself must never import (mount.py: only the daemon loads the core, the
# dataclasses and mfusepy). `enum` and `re` are left out: the non-root path's shutil loads them.
NOT_ON_THE_COMMANDS_PATH = {"dataclasses", "inspect", "typing", "unionfs.options", "unionfs.union", "mfusepy"}


def _the_mount_commands_imports(seed: Path) -> set[str]:
    """What the command imports (`-X importtime`) in mounting the seed, which it must mount."""
    command = "import sys; from unionfs.cli import main; sys.exit(main())"
    result = run(
        [sys.executable, "-X", "importtime", "-c", command, "-o", "dirs=./fruits:./vegetables", "./mnt"], cwd=seed
    )
    try:
        assert result.returncode == 0, result.stderr
        assert (seed / "mnt" / "carrots").read_text() == "carrots\n"
    finally:
        force_unmount(seed / "mnt")
    return {line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}


def test_the_mount_command_leaves_the_core_to_the_daemon(seed):
    """containers-storage runs the command for every mount: it parses and checks the options,
    mounts and forks; the union is opened in the daemon (its imports are its own)."""
    imported = _the_mount_commands_imports(seed)
    assert {"unionfs.mountopts", "unionfs.mount"} <= imported  # the command's own log
    assert not imported & NOT_ON_THE_COMMANDS_PATH


def test_a_work_dir_the_union_cannot_use_is_one_line_and_no_mount(seed):
    """Found when the union is opened (its work/ is a file): still before the mount, one line."""
    for name in ("upper", "work", "lower"):
        (seed / name).mkdir()
    (seed / "work" / "work").write_text("not a directory\n")
    options = "lowerdir=./lower,upperdir=./upper,workdir=./work"
    result = run([LAYERFS, "-o", options, "./mnt"], cwd=seed)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("layerfs: cannot open the union: "), result.stderr
    assert lines[0].endswith(str(seed / "work" / "work")), result.stderr
    assert not is_mounted(seed / "mnt")


@pytest.mark.root("mount(2) from the command is root's path")
def test_roots_mount_command_leaves_ctypes_to_the_daemon(seed):
    """As root the daemon is forked before the checks and loads ctypes and libfuse's binding
    while the command checks and mounts: the command itself asks libfuse and mount(2) through
    `_ctypes` only (ctypes' own import is ~4 ms of every mount)."""
    imported = _the_mount_commands_imports(seed)
    assert "_ctypes" in imported
    assert not imported & {"ctypes", "unionfs.lowlevel", "unionfs.bootstrap"}


@pytest.mark.root("the daemon forked before the checks is root's path")
@pytest.mark.parametrize(
    "options",
    [
        "dirs=./nowhere",  # refused by the checks
        "lowerdir=./vegetables,upperdir=./u,workdir=./w",  # refused by the work dir's check
        "dirs=./fruits:./vegetables,context=system_u:object_r:tmp_t:s0",  # refused: no SELinux here
    ],
)
def test_a_refused_mount_leaves_no_daemon_behind(seed, options):
    """The daemon forked before the checks is handed nothing and exits."""
    (seed / "u").mkdir()
    (seed / "w").mkdir()
    (seed / "w" / "work").write_text("not a directory\n")
    if os.path.exists("/sys/fs/selinux") and "context=" in options:
        pytest.skip("SELinux is on here: the context is not refused")
    result = run([LAYERFS, "-o", options, str(seed / "mnt")], cwd=seed)
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not is_mounted(seed / "mnt")
    deadline = time.monotonic() + 20
    while _daemon_pids(seed / "mnt"):
        assert time.monotonic() < deadline, "a daemon outlived the refused mount"
        time.sleep(0.05)
