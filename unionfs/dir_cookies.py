"""Directory offsets (d_off) that name a listing and a place in it, for a mount without opens.

Why: where the kernel offers it (FUSE_CAP_NO_OPENDIR_SUPPORT), the adapter answers OPENDIR
with ENOSYS once, and the kernel opens and releases every directory of the mount itself: a
warm walk then sends no request at all, where it sent two per directory. READDIR then comes
without a handle (fh 0), so the listing a reader is in the middle of cannot hang on one.
It hangs on the offsets instead. An offset is an opaque cookie to the kernel and to
telldir(3)/seekdir(3); ours holds the listing's slot in a small table and the index of the
next entry in it:

    cookie = index << SLOT_BITS | slot            (index >= 1: a cookie is never 0)

Offset 0 (a new read, or a rewinddir) takes a new listing of the directory; every later page
of that read is served from the same listing, whatever changed in the directory meanwhile, so
a reader that removes what it has read (`rm -rf` reads a page, unlinks it, reads on) skips
no name. Two readers of one directory each have their own. A cookie stays below 2**31 (what
a 32-bit telldir holds) up to 2**23 - 1 entries in a directory.

The table is bounded (LRU, by count and by names held). A cookie whose listing is gone (its
slot was reused, or holds another directory's listing) is served at the same index of a new
listing of the directory, which the rest of that read then follows: the fallback of a
filesystem without snapshots, and rarely needed, as the kernel serves re-reads and seekdirs
within a listing it has cached itself (FOPEN_CACHE_DIR, the default without opens).

No FUSE import here.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

SLOT_BITS = 8
SLOTS = 1 << SLOT_BITS
_SLOT_MASK = SLOTS - 1
#: the listings kept at most, by the number of names they hold together (a new one is kept
#: however big it is: it is the one being read)
MAX_NAMES = 1 << 20


def encode(slot: int, index: int) -> int:
    """The cookie of position `index` (the entry after `index` entries) in listing `slot`."""
    return index << SLOT_BITS | slot


def decode(cookie: int) -> tuple[int, int]:
    """(slot, index) of a cookie `encode` made."""
    return cookie & _SLOT_MASK, cookie >> SLOT_BITS


@dataclass(frozen=True)
class Page:
    """Where a READDIR starts: the listing, the index of its first entry to give, the cookie
    of that index, and what each entry further adds to the cookie."""

    names: list[str]
    index: int
    cookie: int
    step: int = SLOTS


@dataclass
class Listings:
    """Listings of directories by slot, least recently used first (shared by the loop's
    threads). `slots` at most, and no more than `max_names` names together but the newest."""

    slots: int = SLOTS
    max_names: int = MAX_NAMES
    _table: OrderedDict[int, tuple[int, list[str]]] = field(default_factory=OrderedDict)
    _held: int = 0
    _free: list[int] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if not 0 < self.slots <= SLOTS:
            raise ValueError(f"slots must be within 1..{SLOTS}")
        self._free = list(range(self.slots - 1, -1, -1))  # slot 0 first

    def page(self, ino: int, cookie: int, read: Callable[[], list[str]]) -> Page:
        """The listing of directory `ino` that `cookie` points into and where (cookie 0: a new
        listing, from `read`, from its start)."""
        if cookie:
            slot, index = decode(cookie)
            with self._lock:
                kept = self._table.get(slot)
                if kept is not None and kept[0] == ino:
                    self._table.move_to_end(slot)
                    return Page(kept[1], index, cookie)
        else:
            index = 0
        names = read()  # outside the lock: the union's I/O
        slot = self._keep(ino, names)
        return Page(names, index, encode(slot, index))

    def _keep(self, ino: int, names: list[str]) -> int:
        with self._lock:
            table = self._table
            if self._free:
                slot = self._free.pop()
            else:
                slot, (_, dropped) = table.popitem(last=False)
                self._held -= len(dropped)
            table[slot] = (ino, names)
            self._held += len(names)
            while self._held > self.max_names and len(table) > 1:
                freed, (_, dropped) = table.popitem(last=False)
                self._held -= len(dropped)
                self._free.append(freed)
            return slot

    def __len__(self) -> int:
        return len(self._table)
