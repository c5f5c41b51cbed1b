"""The session's request loop: one thread receives every request and answers the quick ones
itself; a request that may copy up, wait for the disk or wait for the union's lock goes to a
small pool.

Why not libfuse's multi-threaded loop: it starts up to ten workers, and the kernel hands each
request to the worker idle longest, so a sequential client (`find`, `tar`, a build creating
files) meets a cold thread on every request, and a Python handler runs 3–4 times slower cold
than warm (bench/README.md, "where a LOOKUP's time goes"). Its single-threaded loop (`-s`) keeps
one warm thread, but then one slow request (a copy-up of a big file, with its fsync) holds
every other request of the mount. Here libfuse's single-threaded loop receives and
processes every request (its EINTR, ENODEV-at-unmount and signal handling as they are), and
the callbacks of the slow slots hand their request to the pool instead of answering it: in the
low-level API a request stays valid until it is answered, from whichever thread.

Which slot runs where (`KIND`, decided from what the adapter, ll_ops, does in each):
- not named: answered in place. Lookups, attributes, links read, listings, xattrs read,
  statfs, flush, release, forgets, init, and the slots the adapter leaves NULL (libfuse answers
  ENOSYS itself): none takes the union's lock or does I/O that grows with a file's size. And
  read and write: one request moves at most max_read/max_write (1 MiB) between a layer file
  and the page cache (a READ's spliced by libfuse), so a cold one holds the next request for
  one disk read, or one dirty-page throttle, at most, as fuse-overlayfs's one thread does.
  Handed to the pool, each paid the hand-over: a cold sequential read of 256 MiB took 15–20 %
  longer, and creating small files was no faster (bench/README.md, 2026-11-30 15:40–16:22).
- GATED: takes the union's lock (`Session.gate`: super.Super.lock, held across a copy-up and its
  fsync) but does bounded work: create, mkdir, mknod, symlink, unlink, rmdir, and an open that
  cannot copy up (no O_WRONLY, O_RDWR or O_TRUNC; it may note a lower file's handle under the
  lock). Answered in place when the lock is free, the receiving thread holding it for the
  request (it is reentrant); else handed to the pool.
- POOL: what may copy up (a whole file's data, and its fsync) or waits for the disk: setattr,
  rename, link, setxattr, removexattr, fsync, fsyncdir, and an open for writing.
- DRAIN: destroy, once every request handed to the pool is answered (it closes the handles).
Where the session has no gate yet (the root daemon's first requests, answered before the core
loads: bootstrap.py) no copy-up can be in flight, and everything is answered in place, as with
`-s`; the same without a pool (`-s` itself).

What a pooled request carries: its arguments as ctypes gave them, with copies of what points
into libfuse's receive buffer or stack (a `struct fuse_file_info`, a setattr's `struct stat`,
an xattr's value), which the next request reuses once the callback returns.
The pool's threads block SIGHUP, SIGINT, SIGTERM and SIGQUIT, as libfuse's workers do, so a
signal interrupts the receiving thread's read. When libfuse's loop returns (unmounted, or a
signal), the pool answers what it holds and its threads end before the session is destroyed.

Imports only `_thread` and `ctypes` at module level (`signal` and `queue` when the pool first
starts): the root daemon reaches this before it loads the core.
"""

from __future__ import annotations

import _thread
import ctypes

from . import lowlevel as ll

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

GATED, POOL, OPEN, DRAIN = 1, 2, 3, 4
#: The slots not answered in place (see the module's docstring).
KIND = {
    **dict.fromkeys(("create", "mkdir", "mknod", "symlink", "unlink", "rmdir"), GATED),
    **dict.fromkeys(("setattr", "rename", "link", "fsync", "fsyncdir", "setxattr", "removexattr"), POOL),
    "open": OPEN,  # GATED without O_WRONLY, O_RDWR or O_TRUNC, else POOL: it may copy up
    "destroy": DRAIN,
}
OPEN_WRITES = 0o1 | 0o2 | 0o1000  # O_WRONLY | O_RDWR | O_TRUNC (Linux)
#: Per slot: the positions of its arguments that point at a struct libfuse reuses ("fi" a
#: `struct fuse_file_info`, "stat" a `struct stat`) or at data, with the position of its size.
BORROWED: dict[str, tuple[tuple[int, Any], ...]] = {
    "setattr": ((2, ll.CStat), (4, ll.FileInfo)),
    "open": ((2, ll.FileInfo),),
    "fsync": ((3, ll.FileInfo),),
    "fsyncdir": ((3, ll.FileInfo),),
    "create": ((4, ll.FileInfo),),
    "setxattr": ((3, 4),),
}
#: The most pool threads, as libfuse's multi-threaded loop's default (max_threads=10).
MOST_WORKERS = 10


class Pool:
    """Threads that run the requests handed to them. Started as needed (one more whenever every
    thread is busy, up to `most`), as libfuse's multi-threaded loop starts its workers."""

    def __init__(self, most: int = MOST_WORKERS) -> None:
        self.most = most
        self._jobs: Any = None  # a queue.SimpleQueue, made with the first thread
        self._lock = _thread.allocate_lock()
        self.started = 0
        self._busy = 0  # requests handed over and not yet run
        self._ended: list[Any] = []  # one lock per thread, released when it ends

    def submit(self, call: Callable[..., object], args: tuple, keep: object = None) -> None:
        """Run `call(*args)` on a pool thread, holding `keep` (what `args` point into) until then."""
        with self._lock:
            self._busy += 1
            grow = self._busy > self.started and self.started < self.most
            if grow:
                self.started += 1
        if grow:
            self._start()
        self._jobs.put((call, args, keep))

    def _start(self) -> None:
        import signal  # not before a request needs the pool
        from queue import SimpleQueue

        if self._jobs is None:
            self._jobs = SimpleQueue()
        ended = _thread.allocate_lock()
        ended.acquire()
        self._ended.append(ended)
        # Started with the signals blocked, so the thread keeps them blocked (fuse_start_thread).
        blocked = {signal.SIGHUP, signal.SIGINT, signal.SIGTERM, signal.SIGQUIT}
        old = signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
        try:
            _thread.start_new_thread(self._work, (ended,))
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)

    def _work(self, ended: Any) -> None:
        jobs, lock = self._jobs, self._lock
        try:
            while True:
                job = jobs.get()
                if job is None:
                    return
                try:
                    job[0](*job[1])
                finally:
                    with lock:
                        self._busy -= 1
        finally:
            ended.release()

    def drain(self) -> None:
        """Every request handed over has run and every thread has ended when this returns; a
        later `submit` starts threads again."""
        ended, self._ended = self._ended, []
        for _ in ended:
            self._jobs.put(None)  # after every request queued
        for lock in ended:
            lock.acquire()
        with self._lock:
            self.started = 0


def dispatching(session: ll.Session, callbacks: dict[str, Callable[..., None]]) -> dict[str, Callable[..., None]]:
    """`callbacks` with the slots of `KIND` sending their requests where they belong while
    `session.pool` is set (during `run`); the others as they are."""
    out = dict(callbacks)
    for name, kind in KIND.items():
        if name in out:
            out[name] = _dispatcher(session, out[name], kind, BORROWED.get(name, ()))
    return out


def _dispatcher(
    session: ll.Session, call: Callable[..., None], kind: int, borrowed: tuple[tuple[int, Any], ...]
) -> Callable[..., None]:
    if kind == DRAIN:

        def drain_first(*args: Any) -> None:
            pool = session.pool
            if pool is not None:
                pool.drain()
            call(*args)

        return drain_first

    def handed_over(args: tuple) -> None:
        """Hand the request to the pool, with its own copy of what it borrowed."""
        own = list(args)
        keep = []
        for index, what in borrowed:
            value = own[index]
            if isinstance(what, int):  # data, `what` the position of its size
                size = own[what]
                data = bytearray(max(size, 1))
                anchor = ctypes.c_char.from_buffer(data)
                own[index] = ctypes.addressof(anchor)
                ctypes.memmove(own[index], value, size)
                keep += [data, anchor]
            elif value:  # a struct pointer, NULL where libfuse has none
                own[index] = ctypes.pointer(what.from_buffer_copy(value.contents))
        session.pool.submit(call, tuple(own), keep)  # type: ignore[union-attr]

    def dispatch(*args: Any) -> None:
        gate = session.gate
        if session.pool is None or gate is None:
            call(*args)
        elif kind == POOL or (kind == OPEN and args[2].contents.flags & OPEN_WRITES):
            handed_over(args)
        elif gate.acquire(False):
            try:
                call(*args)
            finally:
                gate.release()
        else:
            handed_over(args)

    dispatch.__name__ = getattr(call, "__name__", "dispatch")
    return dispatch


def run(session: ll.Session, most: int = MOST_WORKERS) -> int:
    """Serve `session` until it ends (unmounted, or a signal), the slow requests on a pool."""
    session.pool = Pool(most)
    try:
        return int(session.lib.session_loop(session.se))
    finally:
        pool, session.pool = session.pool, None
        pool.drain()
