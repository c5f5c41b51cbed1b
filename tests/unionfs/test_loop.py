"""The request loop (unionfs/loop.py): which request runs where, the pool's rules, and that a
slow copy-up holds no lookup (and that `-s`, one thread, does)."""

from __future__ import annotations

import ctypes
import errno
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from unionfs import copy_up, loop
from unionfs import lowlevel as ll

QUICK = {
    "init", "lookup", "forget", "forget_multi", "getattr", "readlink", "statfs", "opendir", "readdir", "readdirplus",
    "releasedir", "getxattr", "listxattr", "flush", "release", "read", "write",
}  # fmt: skip


def test_every_slot_the_adapter_fills_is_classed(tmp_path):
    """A slot answered in place must be quick (no union lock, no I/O that grows with a file; a
    READ's or WRITE's is bounded by max_read/max_write):
    a slot added to the adapter must be put in one class or the other here."""
    from unionfs.ll_ops import LowLevelOps
    from unionfs.union import Union

    (tmp_path / "l").mkdir()
    filled = set(LowLevelOps(Union.from_options(f"lowerdir={tmp_path / 'l'}")).callbacks())
    assert filled - set(loop.KIND) == QUICK
    assert set(loop.KIND) <= filled | {"destroy"}


def test_what_a_pooled_request_borrows_matches_the_prototypes():
    """Each argument copied for the pool is what libfuse passes there: a pointer to the struct,
    or data with its size."""
    for name, borrowed in loop.BORROWED.items():
        argtypes = ll.PROTOTYPES[name]._argtypes_
        for index, what in borrowed:
            if isinstance(what, int):
                assert (argtypes[index], argtypes[what]) == (ctypes.c_void_p, ctypes.c_size_t), name
            else:
                assert argtypes[index] == ctypes.POINTER(what), name


class _Session:
    def __init__(self, gate: Any) -> None:
        self.gate = gate
        self.pool: loop.Pool | None = loop.Pool(most=2)


def test_a_request_goes_where_its_slot_and_the_lock_say():
    seen: list[tuple[Any, ...]] = []
    gate = threading.Lock()
    session = _Session(gate)

    def recorder(name: str) -> Any:
        def call(req: int, *args: Any) -> None:
            if name == "setxattr":  # the value lives as long as the call
                args = (args[0], args[1], ctypes.string_at(args[2], args[3]), *args[3:])
            seen.append((name, threading.current_thread() is threading.main_thread(), gate.locked(), *args))

        return call

    calls = loop.dispatching(session, {n: recorder(n) for n in ("lookup", "open", "mkdir", "setxattr", "setattr")})  # type: ignore[arg-type]
    fi = ll.FileInfo(flags=os.O_RDONLY)
    calls["lookup"](1, 1, b"x")
    calls["open"](2, 5, ctypes.pointer(fi))  # read-only, the lock free: in place, holding it
    calls["mkdir"](3, 1, b"d", 0o755)
    assert [s[:3] for s in seen] == [("lookup", True, False), ("open", True, True), ("mkdir", True, True)]
    assert not gate.locked()

    seen.clear()
    data = ctypes.create_string_buffer(b"payload")
    attr = ll.CStat(st_size=7)
    with gate:  # taken (a copy-up): what takes it goes to the pool, with its own copies
        calls["open"](4, 5, ctypes.pointer(fi))
        calls["mkdir"](5, 1, b"e", 0o700)
        fi.flags = os.O_WRONLY
        calls["open"](6, 5, ctypes.pointer(fi))  # may copy up: the pool, lock or not
        calls["setxattr"](7, 5, b"user.x", ctypes.addressof(data), 7, 0)
        calls["setattr"](8, 5, ctypes.pointer(attr), 8, None)
        fi.flags, data.value, attr.st_size = -1, b"changed", 0  # libfuse reuses its buffers
        calls["lookup"](9, 1, b"y")
    session.pool.drain()  # type: ignore[union-attr]
    assert [s[:3] for s in seen if s[1]] == [("lookup", True, True)]  # the only one in place
    pooled = [s for s in seen if not s[1]]
    assert sorted(s[0] for s in pooled) == ["mkdir", "open", "open", "setattr", "setxattr"]
    flags = sorted(s[4].contents.flags for s in pooled if s[0] == "open")
    assert flags == [os.O_RDONLY, os.O_WRONLY]
    value = next(s for s in pooled if s[0] == "setxattr")
    assert value[5] == b"payload" and value[6] == 7
    setattr_ = next(s for s in pooled if s[0] == "setattr")
    assert setattr_[4].contents.st_size == 7 and setattr_[6] is None

    seen.clear()
    session.pool = None  # -s, or the loop has ended: everything in place
    with gate:
        calls["setattr"](10, 5, ctypes.pointer(attr), 8, None)
    assert seen[0][:2] == ("setattr", True)


def test_the_pool_runs_everything_handed_over_before_it_drains():
    seen: list[int] = []
    masks: list[set[int]] = []
    go = threading.Event()

    def work(i: int) -> None:
        go.wait(30)
        masks.append(_signal_mask())
        seen.append(i)

    pool = loop.Pool(most=3)
    for i in range(8):
        pool.submit(work, (i,))
    assert pool.started == 3  # one more while all were busy, up to `most`
    go.set()
    pool.drain()
    assert sorted(seen) == list(range(8))
    assert all({signal.SIGINT, signal.SIGTERM} <= mask for mask in masks)  # blocked, as in libfuse's workers
    assert pool.started == 0
    pool.submit(work, (8,))  # a drained pool starts again
    pool.drain()
    assert seen[-1] == 8


def test_destroy_waits_for_the_pool():
    order: list[str] = []
    session = _Session(threading.Lock())
    calls = loop.dispatching(session, {"destroy": lambda _: order.append("destroy")})  # type: ignore[arg-type]
    session.pool.submit(lambda: (time.sleep(0.2), order.append("pooled")), ())  # type: ignore[union-attr]
    calls["destroy"](None)
    assert order == ["pooled", "destroy"]


def _signal_mask() -> set[int]:
    return set(signal.pthread_sigmask(signal.SIG_BLOCK, []))


# -- through a mount: a copy-up in flight --------------------------------------------------------
@contextmanager
def _served(root: Path, threads: bool) -> Iterator[Path]:
    """The union of `root`'s lower/upper/work served in this process at root/mnt, by the
    default loop or (`threads` False) by libfuse's single-threaded one (`-s`)."""
    from unionfs.ll_ops import LowLevelOps, caching_of, run_lowlevel
    from unionfs.union import Union

    lower, upper, work, mnt = (root / n for n in ("lower", "upper", "work", "mnt"))
    union = Union.from_options(f"lowerdir={lower},upperdir={upper},workdir={work}")
    options: dict[str, Any] = {} if threads else {"nothreads": True}
    ready = threading.Event()
    ops = LowLevelOps(union, caching_of(options), on_ready=ready.set)
    server = threading.Thread(target=run_lowlevel, args=(ops, str(mnt), options), daemon=True)
    server.start()
    try:
        assert ready.wait(30), "the session did not start"
        yield mnt
    finally:
        for command in (["umount", str(mnt)], ["fusermount3", "-u", "-z", str(mnt)], ["umount", "-l", str(mnt)]):
            if not server.is_alive():
                break
            subprocess.run(command, capture_output=True)
            server.join(10)


@pytest.fixture
def slow_copy_up(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[threading.Event, threading.Event]]:
    """A copy-up's data waits for `release` (set at the end whatever happens); `started` says
    that one is waiting."""
    started, release = threading.Event(), threading.Event()
    real = copy_up.copy_data

    def slow(*args: Any, **kwargs: Any) -> int:
        started.set()
        release.wait(60)
        return real(*args, **kwargs)

    monkeypatch.setattr(copy_up, "copy_data", slow)
    try:
        yield started, release
    finally:
        release.set()


def _layers(root: Path) -> None:
    for name in ("lower", "upper", "work", "mnt"):
        (root / name).mkdir()
    (root / "lower" / "big").write_bytes(b"x" * (1 << 20))
    for name in ("one", "two", "three"):
        (root / "lower" / name).write_text(name)
    (root / "lower" / "sub").mkdir()
    (root / "lower" / "sub" / "two").write_text("two")


def _in_thread(work: Any) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(work())
        except OSError as exc:
            out.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def _append(path: Path) -> int:
    with open(path, "ab") as f:  # copies the file up
        return f.write(b"!")


@contextmanager
def _copy_up_held(root: Path, threads: bool, started: threading.Event) -> Iterator[tuple[Path, Any, list[Any]]]:
    """root's union served (see `_served`), with an append to `big` in flight: its copy-up
    held by the `slow_copy_up` hook. Yields the mount, the writer thread and its result."""
    _layers(root)
    with _served(root, threads) as mnt:
        writer, written = _in_thread(lambda: _append(mnt / "big"))
        assert started.wait(30), "no copy-up began"
        yield mnt, writer, written


@pytest.mark.mount
def test_a_lookup_is_answered_while_a_copy_up_is_in_flight(tmp_path, slow_copy_up):
    """The default loop: a copy-up (held by a hook) runs on the pool; a lookup of another name
    is answered meanwhile, and so is one after a create that waits for the copy-up's lock (a
    GATED request whose lock is taken goes to the pool, it does not wait on the receiving
    thread). The timeouts are about a hang, not speed."""
    release = slow_copy_up[1]
    with _copy_up_held(tmp_path, True, slow_copy_up[0]) as (mnt, writer, written):
        looker, looked = _in_thread(lambda: os.stat(mnt / "one").st_size)
        looker.join(30)
        assert looked == [3], "a lookup waited for a copy-up"
        assert os.stat(mnt / "sub").st_nlink  # known to the kernel: no lookup in / below
        # The kernel holds /'s lock across a CREATE in it: the next lookup is in another directory.
        creator, created = _in_thread(lambda: os.open(mnt / "new", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        looker, looked = _in_thread(lambda: os.stat(mnt / "sub" / "two").st_size)
        looker.join(30)
        assert looked == [3], "a lookup waited behind a create that waits for the union's lock"
        assert not written, "the copy-up ended before it was released"
        release.set()
        writer.join(30)
        creator.join(30)
        assert written == [1] and isinstance(created[0], int)
        os.close(created[0])
        assert (tmp_path / "upper" / "big").stat().st_size == (1 << 20) + 1
        assert (tmp_path / "upper" / "new").exists()


@pytest.mark.mount
def test_one_thread_holds_a_lookup_behind_a_copy_up(tmp_path, slow_copy_up):
    """`-s` (threaded=0): every request on one thread, so a lookup cannot be answered while the
    copy-up waits; this is what the test above would see without the pool. No speed is measured:
    the lookup cannot be answered before the release, and is once it comes."""
    release = slow_copy_up[1]
    with _copy_up_held(tmp_path, False, slow_copy_up[0]) as (mnt, writer, written):
        looker, looked = _in_thread(lambda: os.stat(mnt / "one").st_size)
        looker.join(1)
        assert looker.is_alive() and not looked
        release.set()
        looker.join(30)
        writer.join(30)
        assert looked == [3] and written == [1]


@pytest.mark.mount
def test_the_loop_serves_a_session_to_its_end(tmp_path):
    """Many requests of every kind, from several threads at once, then an unmount: every reply
    arrives, the loop returns, and what was written is in the upper."""
    _layers(tmp_path)
    errors: list[BaseException] = []
    with _served(tmp_path, threads=True) as mnt:

        def work(i: int) -> None:
            try:
                d = mnt / f"d{i}"
                d.mkdir()
                for j in range(20):
                    (d / f"f{j}").write_text(f"{i}.{j}")
                    assert (mnt / "one").read_text() == "one"
                os.rename(d / "f0", d / "g0")
                os.unlink(d / "f1")
                assert sorted(os.listdir(d))[:2] == ["f10", "f11"]
                os.chmod(mnt / "three", 0o600)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors
        with pytest.raises(OSError) as exc_info:
            os.rmdir(mnt / "d0")
        assert exc_info.value.errno == errno.ENOTEMPTY
    assert (tmp_path / "upper" / "d5" / "g0").read_text() == "5.0"
    assert not (tmp_path / "upper" / "d5" / "f1").exists()
