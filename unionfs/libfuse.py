"""Which libfuse the FUSE adapter loads, found without `ldconfig`.

mfusepy picks its library from FUSE_LIBRARY_PATH, else by searching for FUSE_LIBRARY_NAME with
ctypes.util.find_library, which runs `ldconfig -p` (a process, at every mount). libfuse 3
passes rename flags (RENAME_NOREPLACE), so it is preferred over libfuse 2, and named by its
soname, which the dynamic loader finds by itself. No FUSE import here: the mount command asks
these questions before (or without) loading mfusepy.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ctypes

SONAME = "libfuse3.so.3"


def user_choice() -> bool:
    """Whether the user named a library other than libfuse 3 (FUSE_LIBRARY_PATH or _NAME)."""
    path = os.environ.get("FUSE_LIBRARY_PATH")
    if path:
        return path != SONAME
    return os.environ.get("FUSE_LIBRARY_NAME", "fuse3") not in ("", "fuse3")


def load() -> ctypes.CDLL:
    """libfuse 3 by its soname; OSError where the dynamic loader cannot find it."""
    import ctypes  # here: `layerfs umount` and mountinfo's readers need no ctypes

    return ctypes.CDLL(SONAME)


def handle() -> int:
    """libfuse 3 opened by its soname, as `load` opens it, with `_ctypes` only: the dlopen handle.
    OSError where the loader cannot find it (with ctypes.CDLL's message).

    For the mount command, which only asks whether the library is there and what it has: ctypes
    itself (its classes, `struct`, `_endian`) costs ~4 ms of CPU at every mount, `_ctypes` ~1 ms;
    the daemon, which calls into libfuse, loads it with ctypes (`load`)."""
    import _ctypes

    return int(_ctypes.dlopen(SONAME, os.RTLD_NOW | os.RTLD_LOCAL))  # ctypes.CDLL's flags


def has_symbol(name: str) -> bool:
    """Does libfuse 3 (`handle`) define `name`? (hasattr(load(), name), without ctypes.)"""
    import _ctypes

    try:
        _ctypes.dlsym(handle(), name)
    except OSError:
        return False
    return True


def prefer_libfuse3() -> None:
    """Point mfusepy at libfuse 3 before it is imported, unless the user chose a library."""
    if user_choice() or os.environ.get("FUSE_LIBRARY_PATH"):
        return
    try:
        load()
    except OSError:
        os.environ["FUSE_LIBRARY_NAME"] = "fuse3"  # not where the loader looks: let mfusepy search
    else:
        os.environ["FUSE_LIBRARY_PATH"] = SONAME
