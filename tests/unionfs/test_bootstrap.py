"""The daemon's start (unionfs/bootstrap.py): the root answered without the core must be the
root the core answers, byte for byte, in every configuration; the core is loaded only by a
request that needs it; and the daemon's first imports stay small."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from unionfs import bootstrap, mountopts
from unionfs import lowlevel as ll
from unionfs.ll_ops import LowLevelOps, caching_of
from unionfs.mount import Plan, prepare_work_dir
from unionfs.options import spec_of
from unionfs.union import Union

from .mount_helpers import LAYERFS, force_unmount, is_mounted, run
from .test_lowlevel import Recorder


class Replies(Recorder):
    """Stands in for libfuse (test_lowlevel's recorder), keeping each attribute and statfs
    reply's bytes."""

    def reply_attr(self, req: int, attr: Any, timeout: float) -> int:
        self.replies.append(("attr", (bytes(attr._obj), timeout)))
        return 0

    def reply_statfs(self, req: int, sv: Any) -> int:
        self.replies.append(("statfs", bytes(sv._obj)))
        return 0

    def reply_entry(self, req: int, e: Any) -> int:
        self.replies.append(("entry", e._obj.ino))
        return 0

    def session_exit(self, se: int) -> None:
        self.replies.append(("exit", se))


def _layers(root: Path, other_fs: Path | None = None) -> dict[str, Path]:
    dirs = {name: root / name for name in ("l1", "l2", "init", "upper", "work", "aufs_rw")}
    if other_fs is not None:
        dirs["far"] = other_fs
    for d in dirs.values():
        d.mkdir(exist_ok=True)
    (dirs["l1"] / "one").write_text("one\n")
    (dirs["l2"] / "sub").mkdir()
    (dirs["upper"] / "made").mkdir()  # the upper root with nlink 3
    os.chmod(dirs["upper"], 0o1751)  # a sticky bit, which umask= drops
    os.chown(dirs["upper"], 1234, 2345) if os.geteuid() == 0 else None
    return dirs


def _configurations(d: dict[str, Path]) -> list[tuple[str, str, dict[str, Any]]]:
    """(name, options, libfuse options as mount.plan gives them)."""
    o = f"lowerdir={d['l1']}:{d['l2']},upperdir={d['upper']},workdir={d['work']}"
    plain: dict[str, Any] = {"attr_timeout": 86400.0}
    out = [
        ("overlay", o, plain),
        ("one lower, read-only", f"lowerdir={d['l1']}", plain),
        ("two lowers, read-only", f"lowerdir={d['l1']}:{d['l2']}", plain),
        ("ro flag", o + ",ro", plain),
        ("upper only", f"lowerdir={d['l2']},upperdir={d['upper']},workdir={d['work']},static_nlink", plain),
        ("initdir", o + f",initdir={d['init']}", plain),
        ("whiteout=aufs", o + ",whiteout=aufs", plain),
        ("static_nlink", o + ",static_nlink", plain),
        ("ino32_t", o + ",ino32_t", plain),
        ("fast_ino", o + ",fast_ino=1", plain),
        ("display uid gid umask", o, {"attr_timeout": 5.0, "uid": "7", "gid": "8", "umask": "027"}),
        ("timeout=", o + ",timeout=3", {"attr_timeout": 3.0}),
        ("uidmapping", o + ",uidmapping=0:100000:65536,gidmapping=0:200000:65536", plain),
        ("uidmapping, outside the range", o + ",uidmapping=0:100000:1,gidmapping=5:6:7", plain),
        ("squash_to_root", o + ",squash_to_root", plain),
        ("squash_to_uid and display uid", o + ",squash_to_uid=9", {"attr_timeout": 1.0, "uid": "3"}),
        ("aufs", f"br={d['aufs_rw']}=rw:{d['l1']}=ro", plain),
        ("aufs, opaque root", f"br={d['upper']}=rw:{d['l1']}=ro+wh", plain),
        ("aufs, read-only", f"dirs={d['l1']}=ro:{d['l2']}=ro", plain),
    ]
    if "far" in d:  # layers on two filesystems: xino's high bits, or a per-mount number
        far = f"lowerdir={d['far']}:{d['l1']},upperdir={d['upper']},workdir={d['work']}"
        out += [
            ("two filesystems", far, plain),
            ("two filesystems, xino=off", far + ",xino=off", plain),
            ("read-only, the top on another filesystem", f"lowerdir={d['far']}:{d['l1']}", plain),
        ]
    return out


def _but_ctime(reply: tuple[str, Any]) -> tuple[Any, ...]:
    assert reply[0] == "attr"
    st = ll.CStat.from_buffer_copy(reply[1][0])
    fields = ("st_ino", "st_mode", "st_nlink", "st_uid", "st_gid", "st_size", "st_blocks", "st_rdev")
    return (*(getattr(st, f) for f in fields), st.st_mtim.tv_sec, st.st_mtim.tv_nsec, reply[1][1])


def _statfs(reply: tuple[str, Any]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """A STATFS reply's fields: the fixed ones, and the free counts (which a shared disk moves)."""
    assert reply[0] == "statfs"
    sv = ll.CStatvfs.from_buffer_copy(reply[1])
    return (sv.f_bsize, sv.f_frsize, sv.f_blocks, sv.f_files, sv.f_namemax), (
        sv.f_bfree,
        sv.f_bavail,
        sv.f_ffree,
        sv.f_favail,
    )


def _same_statfs(early: tuple[str, Any], core: tuple[str, Any]) -> bool:
    (fixed, free), (fixed2, free2) = _statfs(early), _statfs(core)
    total = max(fixed[2], fixed[3], 1)
    return fixed == fixed2 and all(abs(a - b) <= total // 100 for a, b in zip(free, free2, strict=True))


def _parsed(options: str, cwd: Path) -> mountopts.Parsed:
    """As the command leaves the union for its daemon: checked, its work directory cleared."""
    parsed = mountopts.validate(mountopts.parse([options], str(cwd)))
    prepare_work_dir(Plan(parsed, str(cwd), {}))
    return parsed


def _core(parsed: mountopts.Parsed, fuse_options: dict[str, Any], rec: Replies) -> LowLevelOps:
    union = Union.from_spec(spec_of(parsed))
    return LowLevelOps(union, caching_of(fuse_options), lib=rec)  # type: ignore[arg-type]


def _loader(parsed: mountopts.Parsed, fuse_options: dict[str, Any], rec: Replies, loads: list[int]) -> bootstrap.Loader:
    def make_ops() -> LowLevelOps:
        loads.append(1)
        return _core(parsed, fuse_options, rec)

    return bootstrap.Loader(rec, bootstrap.RootView(parsed, fuse_options), make_ops)  # type: ignore[arg-type]


def _mark_opaque_roots(d: dict[str, Path]) -> None:
    """An opaque upper root (both encodings) and a lower whose root is opaque."""
    (d["upper"] / ".wh..wh..opq").write_text("")
    (d["l1"] / ".wh..wh..opq").write_text("")
    for path in (d["upper"], d["l1"]):
        for name in ("trusted.overlay.opaque", "user.overlay.opaque"):
            try:
                os.setxattr(path, name, b"y")
            except OSError:
                pass  # trusted.* needs root: the user.* mark is enough


def _other_filesystem() -> Path | None:
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        import tempfile

        return Path(tempfile.mkdtemp(prefix="layerfs-boot-", dir=shm))
    return None


@pytest.fixture
def layers(tmp_path):
    far = _other_filesystem()
    try:
        d = _layers(tmp_path, far)
        if far is not None and os.stat(far).st_dev == os.stat(tmp_path).st_dev:
            del d["far"]
        _mark_opaque_roots(d)
        yield d
    finally:
        if far is not None:
            subprocess.run(["rm", "-rf", str(far)])


def test_the_root_answered_early_is_the_cores_root_in_every_configuration(layers, tmp_path):
    """GETATTR and STATFS of the root: the bootstrap's reply bytes against the core adapter's
    (ll_ops, through the same struct), each in a fresh daemon, as a mount starts."""
    for name, options, fuse_options in _configurations(layers):
        parsed = _parsed(options, tmp_path)
        early, loads = Replies(), list[int]()
        loader = _loader(parsed, fuse_options, early, loads)
        loader.handlers["init"](None, None)
        loader.handlers["getattr"](1, ll.ROOT_ID, None)
        loader.handlers["statfs"](2, ll.ROOT_ID)
        core_rec = Replies()
        core = _core(parsed, fuse_options, core_rec)
        core.getattr(1, ll.ROOT_ID, None)
        core.statfs(2, ll.ROOT_ID)
        assert early.replies[-2] == core_rec.replies[-2], name
        assert early.replies[-2][0] == "attr", name
        assert _same_statfs(early.last(), core_rec.last()), name
        assert loads == [], name  # the core was never needed


@pytest.mark.parametrize(
    ("extra", "asked", "stored"),
    [("", (11, 12), (11, 12)), (",uidmapping=0:100000:65536,gidmapping=0:200000:65536", (100011, 200012), (11, 12))],
)
def test_a_chown_of_the_root_is_the_cores_chown(layers, tmp_path, extra, asked, stored):
    """podman chowns the mount point right after mounting: answered early, the upper's root
    gets the owners the core would give it (mapped back), and the reply shows them as the core does."""
    if os.geteuid() != 0:
        pytest.skip("chown needs root")
    options = f"lowerdir={layers['l1']},upperdir={layers['upper']},workdir={layers['work']}" + extra
    parsed = _parsed(options, tmp_path)
    attr = ll.CStat()
    attr.st_uid, attr.st_gid = asked
    early, loads = Replies(), list[int]()
    loader = _loader(parsed, {}, early, loads)
    loader.handlers["setattr"](1, ll.ROOT_ID, ctypes.pointer(attr), ll.SET_ATTR_UID | ll.SET_ATTR_GID, None)
    assert loads == []
    st = os.lstat(layers["upper"])
    assert (st.st_uid, st.st_gid) == stored
    os.chown(layers["upper"], 0, 0)
    core_rec = Replies()
    core = _core(parsed, {}, core_rec)
    core.setattr(1, ll.ROOT_ID, ctypes.pointer(attr), ll.SET_ATTR_UID | ll.SET_ATTR_GID, None)
    st = os.lstat(layers["upper"])
    assert (st.st_uid, st.st_gid) == stored
    assert _but_ctime(early.last()) == _but_ctime(core_rec.last())  # each chown sets its own ctime
    assert _but_ctime(early.last())[3:5] == asked
    # a chmod, or a union without an upper, is the core's
    attr.st_mode = 0o40700
    loader.handlers["setattr"](2, ll.ROOT_ID, ctypes.pointer(attr), ll.SET_ATTR_MODE, None)
    assert loads == [1] and early.last()[0] == "attr"


def test_the_core_is_loaded_once_by_the_first_request_that_needs_it(layers, tmp_path):
    options = f"lowerdir={layers['l1']},upperdir={layers['upper']},workdir={layers['work']}"
    parsed = _parsed(options, tmp_path)
    rec, loads = Replies(), list[int]()
    loader = _loader(parsed, {}, rec, loads)
    handlers = loader.handlers
    handlers["init"](None, None)
    handlers["getattr"](1, ll.ROOT_ID, None)
    handlers["forget"](2, 5, 1)
    handlers["statfs"](3, ll.ROOT_ID)
    assert loads == [] and loader.core is None
    handlers["lookup"](4, ll.ROOT_ID, b"one")
    assert loads == [1] and rec.last()[0] == "entry"
    node = rec.last()[1]
    handlers["lookup"](5, ll.ROOT_ID, b"one")
    handlers["getattr"](6, node, None)
    assert loads == [1] and rec.last()[0] == "attr"
    # every slot now goes to the core's adapter, and the trampolines follow
    assert loader.core is not None
    core_callbacks = loader.core.callbacks()
    assert set(core_callbacks) == set(bootstrap.SLOTS)
    assert all(handlers[name].__qualname__ == core_callbacks[name].__qualname__ for name in bootstrap.SLOTS)
    trampolines = loader.callbacks()
    trampolines["getattr"](7, ll.ROOT_ID, None)
    assert rec.last()[0] == "attr"


def test_a_union_that_cannot_be_opened_ends_the_session(tmp_path):
    rec = Replies()

    def fails() -> LowLevelOps:
        raise OSError(5, "Input/output error")

    parsed = _parsed(f"lowerdir={tmp_path}", tmp_path)
    loader = bootstrap.Loader(rec, bootstrap.RootView(parsed, {}), fails)  # type: ignore[arg-type]

    class Session:
        se = 42

    loader.session = Session()  # type: ignore[assignment]
    loader.handlers["lookup"](1, ll.ROOT_ID, b"x")
    assert rec.replies == [("exit", 42), ("err", 5)]
    loader.handlers["readdir"](2, ll.ROOT_ID, 4096, 0, None)  # tried once only
    assert rec.last() == ("err", 5) and len(rec.replies) == 3


# What the daemon imports before it answers FUSE_INIT (early.serve_mounted, bootstrap).
NOT_BEFORE_INIT = {
    "dataclasses", "inspect", "typing", "platform", "enum", "threading", "functools", "unionfs.options", "unionfs.union"
}  # fmt: skip


def test_the_daemon_answers_fuse_init_before_importing_the_core():
    command = "import unionfs.cli, unionfs.cli_mount, unionfs.mount, unionfs.bootstrap"
    result = subprocess.run([sys.executable, "-I", "-X", "importtime", "-c", command], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    assert {"unionfs.bootstrap", "unionfs.lowlevel", "ctypes"} <= imported
    assert not imported & NOT_BEFORE_INIT


@pytest.mark.mount
def test_a_mount_answers_the_root_early_then_serves_the_union(tmp_path):
    """As root (the command mounts, the daemon starts serving at once): stat, statfs and
    chown of the mount point, then files through the core, loaded on the way."""
    if os.geteuid() != 0:
        pytest.skip("the early answers serve mounts the command made itself (root)")
    d = {n: tmp_path / n for n in ("lower", "upper", "work", "mnt")}
    for p in d.values():
        p.mkdir()
    (d["lower"] / "file").write_text("from the lower\n")
    options = f"lowerdir={d['lower']},upperdir={d['upper']},workdir={d['work']}"
    result = run([LAYERFS, "-o", options, str(d["mnt"])])
    assert result.returncode == 0, result.stderr
    try:
        upper = os.lstat(d["upper"])
        st = os.stat(d["mnt"])
        assert (st.st_ino, st.st_mode, st.st_nlink, st.st_uid) == (upper.st_ino, upper.st_mode, 1, upper.st_uid)
        assert os.statvfs(d["mnt"]).f_blocks == os.statvfs(d["upper"]).f_blocks
        os.chown(d["mnt"], 3, 4)
        assert (os.lstat(d["upper"]).st_uid, os.lstat(d["upper"]).st_gid) == (3, 4)
        assert (d["mnt"] / "file").read_text() == "from the lower\n"
        (d["mnt"] / "new").write_text("new\n")
        assert (d["upper"] / "new").read_text() == "new\n"
        assert os.stat(d["mnt"]).st_uid == 3
    finally:
        assert run(["umount", str(d["mnt"])]).returncode == 0
        force_unmount(d["mnt"])
    assert not is_mounted(d["mnt"])
