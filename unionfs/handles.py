"""Integer handles for the kernel, objects (open files, open directories) for us.

Shared by both FUSE adapters (ll_ops, fuse_ops); no FUSE import.
"""

from __future__ import annotations

import errno
import itertools
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass
class HandleTable:
    """Integer file handles for the kernel, objects for us (shared by the loop's threads)."""

    items: dict[int, Any] = field(default_factory=dict)
    _next: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, item: Any) -> int:
        with self._lock:
            fh = next(self._next)
            self.items[fh] = item
            return fh

    def get(self, fh: int) -> Any:
        try:
            return self.items[fh]
        except KeyError:
            raise OSError(errno.EBADF, os.strerror(errno.EBADF)) from None

    def pop(self, fh: int) -> Any:
        with self._lock:
            return self.items.pop(fh, None)

    def drain(self) -> list[Any]:
        with self._lock:
            items, self.items = list(self.items.values()), {}
            return items
