"""The request loop (unionfs/loop.py): which request runs where, the pool's rules, and that a
slow copy-up holds no lookup (and that `-s`, one thread, does)."""

from __future__ import annotations

import ctypes
import errno
import os
import re
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from unionfs import copy_up, loop
from unionfs import lowlevel as ll

KERNEL_HEADER = Path("/usr/include/linux/fuse.h")


def test_the_opcodes_are_the_kernels():
    if not KERNEL_HEADER.exists():
        pytest.skip("needs linux/fuse.h (linux-libc-dev)")
    theirs = dict(re.findall(r"^\s*FUSE_([A-Z_0-9]+)\s*=\s*(\d+),", KERNEL_HEADER.read_text(), re.M))
    ours = {name: getattr(loop, name) for name in theirs if hasattr(loop, name)}
    assert all(int(theirs[name]) == value for name, value in ours.items())
    assert len(ours) == 45  # every opcode named in the module


def _head(opcode: int, open_flags: int = 0) -> Any:
    head = loop._HEAD()
    head[loop._OPCODE] = opcode
    head[loop._OPEN_FLAGS] = open_flags
    return head


def test_what_may_copy_up_or_wait_for_data_leaves_the_receiving_thread():
    assert loop.kind_of(_head(loop.LOOKUP)) == loop.INLINE
    assert loop.kind_of(_head(loop.GETATTR)) == loop.INLINE
    assert loop.kind_of(_head(loop.CREATE)) == loop.GATED
    assert loop.kind_of(_head(loop.OPEN, os.O_RDONLY)) == loop.GATED  # notes a lower file's handle under the lock
    for flags in (os.O_WRONLY, os.O_RDWR, os.O_RDONLY | os.O_TRUNC, os.O_WRONLY | os.O_APPEND):
        assert loop.kind_of(_head(loop.OPEN, flags)) == loop.POOL  # may copy up
    for op in (loop.READ, loop.WRITE, loop.FSYNC, loop.SETATTR, loop.RENAME, loop.LINK, loop.SETXATTR, 99, 4096):
        assert loop.kind_of(_head(op)) == loop.POOL
    assert loop.kind_of(_head(loop.DESTROY)) == loop.DRAIN


def test_the_inline_requests_without_a_handler_are_the_null_slots():
    """An opcode answered inline because libfuse replies ENOSYS must stay a NULL slot: a handler
    given to it later must be classed anew."""
    null = {name for name, proto in ll.OPS if proto is ctypes.c_void_p}
    slots = {
        loop.ACCESS: "access", loop.GETLK: "getlk", loop.SETLK: "setlk", loop.BMAP: "bmap", loop.IOCTL: "ioctl",
        loop.POLL: "poll", loop.NOTIFY_REPLY: "retrieve_reply", loop.FALLOCATE: "fallocate", loop.LSEEK: "lseek",
        loop.COPY_FILE_RANGE: "copy_file_range",
    }  # fmt: skip
    assert all(loop.KINDS[op] == loop.INLINE for op in slots)
    assert set(slots.values()) <= null


def test_the_pool_answers_everything_handed_over_before_it_drains():
    seen: list[bytes] = []
    masks: list[set[int]] = []
    gate = threading.Event()

    def process(address: int) -> None:
        fbuf = ll.FuseBuf.from_address(address)
        gate.wait(30)
        masks.append(set(_signal_mask()))
        seen.append(ctypes.string_at(fbuf.mem, fbuf.size))

    pool = loop.Pool(process, most=3)
    source = [ctypes.create_string_buffer(f"request {i}".encode()) for i in range(8)]
    for buf in source:
        pool.submit(ctypes.addressof(buf), len(buf.value))
        buf.value = b"overwrite"  # the pool has its own copy
    assert pool.started == 3  # one more while all were busy, up to `most`
    gate.set()
    pool.drain()
    assert sorted(seen) == sorted(f"request {i}".encode() for i in range(8))
    assert all({2, 15} <= mask for mask in masks)  # SIGINT, SIGTERM blocked, as in libfuse's workers
    assert pool.started == 0
    pool.submit(ctypes.addressof(source[0]), 4)  # a pool drained starts again
    pool.drain()
    assert seen[-1] == b"over"


def _signal_mask() -> set[int]:
    import signal

    return {int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, [])}


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


@pytest.mark.mount
def test_a_lookup_is_answered_while_a_copy_up_is_in_flight(tmp_path, slow_copy_up):
    """The default loop: a copy-up (held by a hook) runs on the pool; a lookup of another name
    is answered meanwhile, and so is one after a create that waits for the copy-up's lock (a
    GATED request whose lock is taken goes to the pool, it does not wait on the receiving
    thread). The timeouts are about a hang, not speed."""
    started, release = slow_copy_up
    _layers(tmp_path)
    with _served(tmp_path, threads=True) as mnt:
        writer, written = _in_thread(lambda: _append(mnt / "big"))
        assert started.wait(30), "no copy-up began"
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
    started, release = slow_copy_up
    _layers(tmp_path)
    with _served(tmp_path, threads=False) as mnt:
        writer, written = _in_thread(lambda: _append(mnt / "big"))
        assert started.wait(30), "no copy-up began"
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
