"""The session's request loop: one thread receives every request and answers the quick ones
itself; a request that may wait (on data, or on the union's lock) goes to a small pool.

Why not libfuse's loops. Its multi-threaded loop starts up to ten workers, and the kernel hands
each request to the worker idle longest: a sequential client (`find`, `tar`, a build creating
files) meets a cold thread on every request, and a Python handler runs 3–4 times slower cold
than warm (bench/README.md, "where a LOOKUP's time goes"). Its single-threaded loop (`-s`) keeps
one warm thread, but then one slow request (a copy-up of a big file, with its fsync; a cold
read) holds every other request of the mount. Here the receiving thread stays warm for what is
quick, and nothing slow runs on it.

Which request runs where (`KINDS`, by opcode of `struct fuse_in_header`, decided from what the
adapter, ll_ops, does for each):
- INLINE: answered on the receiving thread. Lookups, attributes, links read, listings,
  xattrs read, statfs, release, forget, interrupt, and the slots the adapter leaves NULL
  (libfuse answers ENOSYS at once). None takes the union's lock or does I/O that grows
  with a file's size.
- GATED: takes the union's lock (`Session.gate`: super.Super.lock, held across a copy-up and
  its fsync), but does bounded work: create, mkdir, mknod, symlink, unlink, rmdir, and an
  OPEN that cannot copy up (no O_WRONLY, O_RDWR or O_TRUNC: it may note a lower file's handle
  under the lock). Answered inline when the lock is free, which the receiving thread then
  holds for the request (it is reentrant); handed to the pool when it is taken.
- POOL: everything else, above all what may copy up or moves data: read, write, fsync,
  setattr, rename, link, setxattr, removexattr, fsyncdir, and any opcode not named here.
Before the adapter gives the gate (the root daemon's first requests, answered before the core
loads: bootstrap.py) no copy-up can be in flight, and everything runs inline, as with `-s`.

libfuse's rules kept (3.14's fuse_loop.c and fuse_loop_mt.c):
- `fuse_session_receive_buf` reads one request into a buffer it allocates once (freed here at
  the end); -EINTR: receive again; 0: the session ended (unmounted: the read gave ENODEV; or a
  signal handler set the exit flag); another error ends the loop (-EAGAIN, from a
  non-blocking descriptor, waits until the device is readable instead).
- `fuse_session_process_buf` runs on several threads at once (the MT loop does the same), on a
  buffer that stays valid until it returns: a request for the pool is copied first.
- Every request received is answered before the loop returns: the pool finishes what is queued
  and its threads end (the session's `destroy` closes the open handles after that); a
  FUSE_DESTROY waits for the pool the same way before it is processed.
- The pool's threads block SIGHUP, SIGINT, SIGTERM and SIGQUIT, as libfuse's workers do, so a
  signal interrupts the receiving thread's read and its handler's exit flag is seen at once.

Imports only `_thread` and `ctypes` at module level (`signal` and `queue` when the pool first
starts): the root daemon reaches this before it loads the core.
"""

from __future__ import annotations

import _thread
import ctypes
import errno

from . import lowlevel as ll

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

# enum fuse_opcode (linux/fuse.h; tests/unionfs/test_loop.py compares them with the header)
LOOKUP, FORGET, GETATTR, SETATTR, READLINK, SYMLINK = 1, 2, 3, 4, 5, 6
MKNOD, MKDIR, UNLINK, RMDIR, RENAME, LINK, OPEN, READ, WRITE, STATFS, RELEASE = 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18
FSYNC, SETXATTR, GETXATTR, LISTXATTR, REMOVEXATTR, FLUSH, INIT = 20, 21, 22, 23, 24, 25, 26
OPENDIR, READDIR, RELEASEDIR, FSYNCDIR, GETLK, SETLK, SETLKW, ACCESS = 27, 28, 29, 30, 31, 32, 33, 34
CREATE, INTERRUPT, BMAP, DESTROY, IOCTL, POLL, NOTIFY_REPLY, BATCH_FORGET = 35, 36, 37, 38, 39, 40, 41, 42
FALLOCATE, READDIRPLUS, RENAME2, LSEEK, COPY_FILE_RANGE = 43, 44, 45, 46, 47

INLINE, GATED, POOL, OPEN_KIND, DRAIN = 0, 1, 2, 3, 4
#: What each opcode is (see the module's docstring); an opcode not named is POOL.
KIND_OF = {
    **dict.fromkeys(
        (LOOKUP, FORGET, BATCH_FORGET, GETATTR, READLINK, STATFS, RELEASE, GETXATTR, LISTXATTR, FLUSH, INIT),
        INLINE,
    ),
    **dict.fromkeys((OPENDIR, READDIR, READDIRPLUS, RELEASEDIR, INTERRUPT), INLINE),
    # NULL slots (lowlevel.OPS): libfuse answers ENOSYS without a callback
    **dict.fromkeys((ACCESS, GETLK, SETLK, BMAP, IOCTL, POLL, NOTIFY_REPLY, FALLOCATE, LSEEK, COPY_FILE_RANGE), INLINE),
    **dict.fromkeys((CREATE, MKDIR, MKNOD, SYMLINK, UNLINK, RMDIR), GATED),
    OPEN: OPEN_KIND,  # GATED without O_WRONLY, O_RDWR, O_TRUNC; else POOL (it may copy up)
    **dict.fromkeys(
        (SETATTR, RENAME, RENAME2, LINK, SETXATTR, REMOVEXATTR, READ, WRITE, FSYNC, FSYNCDIR, SETLKW), POOL
    ),
    DESTROY: DRAIN,
}
KINDS = bytes(KIND_OF.get(op, POOL) for op in range(64))
OPEN_WRITES = 0o1 | 0o2 | 0o1000  # O_WRONLY | O_RDWR | O_TRUNC (Linux)
#: struct fuse_in_header (40 bytes) and the first word after it, as 32-bit words: the opcode
#: is word 1, and an OPEN's fuse_open_in.flags word 10.
_HEAD = ctypes.c_uint32 * 11
_OPCODE, _OPEN_FLAGS = 1, 10
#: The most pool threads, as libfuse's multi-threaded loop's default (max_threads=10).
MOST_WORKERS = 10


def kind_of(head: Any) -> int:
    """INLINE, GATED, POOL or DRAIN for the request whose header words are `head`."""
    op = head[_OPCODE]
    kind = KINDS[op] if op < 64 else POOL
    if kind == OPEN_KIND:
        return POOL if head[_OPEN_FLAGS] & OPEN_WRITES else GATED
    return kind


class Pool:
    """Threads that process the requests handed to them, each on its own copy of the request.
    Started as needed (one more whenever every thread is busy, up to `most`), as libfuse's
    multi-threaded loop starts its workers."""

    def __init__(self, process: Callable[[int], object], most: int = MOST_WORKERS) -> None:
        self._process = process
        self.most = most
        self._jobs: Any = None  # a _queue.SimpleQueue, made with the first thread
        self._lock = _thread.allocate_lock()
        self.started = 0
        self._busy = 0  # requests handed over and not yet processed
        self._ended: list[Any] = []  # one lock per thread, released when it ends

    def submit(self, mem: int, size: int) -> None:
        """Process a copy of the `size` bytes of request at `mem` on a pool thread."""
        data = bytearray(size)
        anchor = ctypes.c_char.from_buffer(data)  # holds `data` still while it is in use
        address = ctypes.addressof(anchor)
        ctypes.memmove(address, mem, size)
        fbuf = ll.FuseBuf(size, 0, address, -1, 0)
        with self._lock:
            self._busy += 1
            grow = self._busy > self.started and self.started < self.most
            if grow:
                self.started += 1
        if grow:
            self._start()
        self._jobs.put((data, anchor, fbuf))

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
        jobs, process, lock = self._jobs, self._process, self._lock
        try:
            while True:
                job = jobs.get()
                if job is None:
                    return
                try:
                    process(ctypes.addressof(job[2]))
                finally:
                    with lock:
                        self._busy -= 1
        finally:
            ended.release()

    def drain(self) -> None:
        """Every request handed over is processed and every thread has ended when this
        returns; a later `submit` starts threads again."""
        ended, self._ended = self._ended, []
        for _ in ended:
            self._jobs.put(None)  # after every request queued
        for lock in ended:
            lock.acquire()
        with self._lock:
            self.started = 0


def run(session: ll.Session, most: int = MOST_WORKERS) -> int:
    """Serve `session` until it ends (unmounted, or a signal); 0, or the receive error."""
    lib, se = session.lib, session.se
    receive, process_buf, exited = lib.session_receive_buf, lib.session_process_buf, lib.session_exited
    buf = ll.FuseBuf()
    address = ctypes.addressof(buf)

    def process(fbuf: int) -> None:
        process_buf(se, fbuf)

    pool = Pool(process, most)
    mem = 0
    head: Any = None
    res = 0
    try:
        while not exited(se):
            res = receive(se, address)
            if res <= 0:
                if res == -errno.EINTR:
                    continue
                if res == -errno.EAGAIN:
                    _wait_readable(lib.session_fd(se))
                    continue
                break
            if buf.mem != mem:  # the buffer libfuse allocated on the first receive
                mem = buf.mem
                head = _HEAD.from_address(mem)
            gate = session.gate
            if gate is None or buf.flags & ll.BUF_IS_FD:  # before the core; or spliced (never asked)
                process_buf(se, address)
                continue
            kind = kind_of(head)
            if kind == INLINE:
                process_buf(se, address)
            elif kind == GATED and gate.acquire(False):
                try:
                    process_buf(se, address)
                finally:
                    gate.release()
            elif kind == DRAIN:
                pool.drain()
                process_buf(se, address)
            else:
                pool.submit(mem, res)
        res = min(res, 0)
    except KeyboardInterrupt:  # Python's SIGINT handler, which libfuse leaves in place: end
        lib.session_exit(se)
        res = 0
    finally:
        pool.drain()
        if mem:
            lib.free(mem)
        lib.session_reset(se)
    return res


def _wait_readable(fd: int) -> None:
    import select

    select.select([fd], [], [])
