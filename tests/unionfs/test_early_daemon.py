"""What the mount command hands its early daemon (mount.EarlyDaemon), and what it asks of libfuse
and the kernel without ctypes (`_ctypes` only: libfuse.handle, mount._mount_syscall)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from unionfs import libfuse, mountopts
from unionfs.mount import MountRequest, Plan, _mount_syscall, plan


def _same(a: Plan, b: Plan) -> bool:
    def layers(p: Plan) -> list[tuple[str, str, str, bool]]:
        return [(x.path, x.role, x.label, x.whiteouts) for x in p.union.branches]

    ua, ub = a.union, b.union
    return (
        layers(a) == layers(b)
        and (ua.dialect, ua.workdir, ua.encoding, ua.readonly, ua.flags, ua.values)
        == (ub.dialect, ub.workdir, ub.encoding, ub.readonly, ub.flags, ub.values)
        and (a.mountpoint, a.fuse_options, a.trace, a.foreground, a.source)
        == (b.mountpoint, b.fuse_options, b.trace, b.foreground, b.source)
    )


def test_a_plan_reaches_the_daemon_whole():
    """Every field, a read-only aufs branch without whiteouts, and a name that is not UTF-8."""
    odd = os.fsdecode(b"/layers/caf\xe9")
    union = mountopts.Parsed(
        mountopts.AUFS,
        [
            mountopts.Layer("/layers/rw", mountopts.UPPER, "./rw"),
            mountopts.Layer(odd, mountopts.LOWER, "caf", whiteouts=False),
        ],
        "/layers/rw/.wh..wh.work",
        mountopts.AUFS,
        False,
        frozenset({"nonempty", "static_nlink"}),
        {"xino": "off", "uid": "7"},
    )
    options = {"subtype": "layerfs", "fsname": "br=…", "allow_other": True, "entry_timeout": 86400.0, "uid": "7"}
    sent = Plan(union, "/mnt/x", options, "/tmp/trace", False, "br=/layers/rw=rw")
    received = Plan.from_bytes(sent.to_bytes())
    assert _same(sent, received)
    assert received.union.branches[1].path == odd and not received.union.branches[1].whiteouts


def test_a_planned_mount_reaches_the_daemon_whole(tmp_path: Path):
    for name in ("upper", "work", "lower", "mnt"):
        (tmp_path / name).mkdir()
    request = MountRequest(("lowerdir=./lower,upperdir=./upper,workdir=./work,ro",), "./mnt", str(tmp_path))
    try:
        sent = plan(request)
    except Exception as exc:  # no FUSE here: the plan itself refuses
        pytest.skip(str(exc))
    assert _same(sent, Plan.from_bytes(sent.to_bytes()))


def test_libfuse_is_asked_as_ctypes_would_ask_it():
    try:
        lib = libfuse.load()
    except OSError as exc:
        with pytest.raises(OSError) as raised:
            libfuse.handle()
        assert str(raised.value) == str(exc)
        return
    assert libfuse.handle() == lib._handle
    for name in ("fuse_invalidate_path", "fuse_session_new", "no_such_function_here"):
        assert libfuse.has_symbol(name) == hasattr(lib, name)


def test_mount_syscall_gives_the_errno():
    missing = b"/nonexistent/layerfs-test-target"
    expected = errno.ENOENT if os.geteuid() == 0 else errno.EPERM
    assert _mount_syscall(b"none", missing, b"tmpfs", 0, b"") == expected


def test_the_daemon_rests_only_once_its_mount_is_gone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """After the session ends: a mount point that is not ours any more (it stats, or is gone)
    means a short sleep before the daemon cleans up (rest_while_unmounted says why); one that
    answers ENOTCONN (the mount is still there, its connection closed) means no sleep, and the
    unmount below."""
    import time

    from unionfs.early import UNMOUNT_REST_SECONDS, rest_while_unmounted

    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    assert rest_while_unmounted(str(tmp_path))
    assert rest_while_unmounted(str(tmp_path / "removed"))  # podman may remove it: gone too
    assert slept == [UNMOUNT_REST_SECONDS] * 2

    def dead_mount(path: str) -> os.stat_result:
        raise OSError(errno.ENOTCONN, os.strerror(errno.ENOTCONN), path)

    monkeypatch.setattr(os, "stat", dead_mount)
    assert not rest_while_unmounted(str(tmp_path))
    assert slept == [UNMOUNT_REST_SECONDS] * 2


def _imports(command: str) -> set[str]:
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-I", "-X", "importtime", "-c", command], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return {line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}


def test_a_mount_forks_its_daemon_before_importing_the_checks():
    """The command knows it mounts from its argv (cli_mount) and forks then (early.py): what it
    has imported by that point is what the daemon starts from; the checks come after."""
    before_the_fork = _imports("import unionfs.cli, unionfs.cli_mount, unionfs.early")
    assert {"unionfs.early", "unionfs.libfuse", "unionfs.plan"} <= before_the_fork
    assert not before_the_fork & {"unionfs.mount", "unionfs.mountopts", "unionfs.params", "unionfs.workdir"}


def test_the_early_daemon_imports_neither_checks_nor_option_table():
    """What the daemon imports itself before FUSE_INIT (early._early_daemon): the binding and
    `bootstrap`; its plan comes in `plan`'s values, so not `mount`, `mountopts` (the parser),
    `params` (the option table) or the work dir."""
    daemon = _imports("import unionfs.early, unionfs.bootstrap, unionfs.lowlevel")
    assert {"unionfs.plan", "unionfs.lowlevel", "unionfs.bootstrap"} <= daemon
    assert not daemon & {"unionfs.mount", "unionfs.mountopts", "unionfs.params", "unionfs.workdir"}
