"""Owners through the mount: fuse-overlayfs's `uidmapping=`/`gidmapping=` and `squash_to_*`.

The layers keep the owners they were written with (for containers-storage: the container's
own ids, 0 for root). Through the mount they show mapped: a range of stored ids appears as a
range of ids on the host side, as a user namespace would show them, without a chown of the
layers. A caller's id is mapped back when it becomes an owner on disk (create, chown).

The syntax is fuse-overlayfs's: colon-separated triples ``STORED:SHOWN:COUNT``, as many as
needed (containers-storage writes ``uidmapping=:0:100000:65536``, with a leading colon that
is skipped, as fuse-overlayfs's strtok does). An id outside every range shows as the
kernel's overflow id (65534), as in a user namespace; a caller outside every range creates
files owned by the overflow id too.

`squash_to_uid=`/`squash_to_gid=` show every owner as that id, `squash_to_root` as 0 (the
explicit ids win): for reading only, as in fuse-overlayfs.
"""

from __future__ import annotations

from .record import Record

OVERFLOW_ID = 65534  # /proc/sys/kernel/overflowuid and overflowgid by default

# Plain value classes, not dataclasses: the mount daemon shows the root's owners with these
# before it imports the core (bootstrap.py), and dataclasses costs milliseconds to import.


class IdMapError(ValueError):
    """A mapping that cannot be parsed; the message is one line."""


class IdRange(Record):
    """COUNT ids from STORED on disk appear as COUNT ids from SHOWN through the mount."""

    __slots__ = ("stored", "shown", "count")

    def __init__(self, stored: int, shown: int, count: int) -> None:
        self.stored = stored
        self.shown = shown
        self.count = count


class IdMap(Record):
    """One direction of ids (uids or gids): ranges, or a squash, or the identity."""

    __slots__ = ("ranges", "squash", "overflow")

    def __init__(
        self, ranges: tuple[IdRange, ...] = (), squash: int | None = None, overflow: int = OVERFLOW_ID
    ) -> None:
        self.ranges = ranges
        self.squash = squash
        self.overflow = overflow

    @property
    def identity(self) -> bool:
        return not self.ranges and self.squash is None

    def shown(self, stored: int) -> int:
        """The owner a stat through the mount reports for an id stored on disk."""
        if self.squash is not None:
            return self.squash
        if not self.ranges:
            return stored
        for r in self.ranges:
            if r.stored <= stored < r.stored + r.count:
                return r.shown + (stored - r.stored)
        return self.overflow

    def stored(self, shown: int) -> int:
        """The id written to disk for a caller's (or chown's) id; -1 stays 'unchanged'."""
        if shown == -1 or not self.ranges:
            return shown
        for r in self.ranges:
            if r.shown <= shown < r.shown + r.count:
                return r.stored + (shown - r.shown)
        return self.overflow


def maps_of(flags: frozenset[str] | set[str], values: dict[str, str]) -> tuple[IdMap, IdMap]:
    """(uid map, gid map) from options `mountopts.parse` has checked: `uidmapping=`,
    `gidmapping=`, `squash_to_uid=`, `squash_to_gid=`, `squash_to_root` (the explicit ids win)."""
    uid_ranges = parse_ranges(values["uidmapping"], "uidmapping") if "uidmapping" in values else ()
    gid_ranges = parse_ranges(values["gidmapping"], "gidmapping") if "gidmapping" in values else ()
    squash_uid = _int(values.get("squash_to_uid"))
    squash_gid = _int(values.get("squash_to_gid"))
    if "squash_to_root" in flags:
        squash_uid = 0 if squash_uid is None else squash_uid
        squash_gid = 0 if squash_gid is None else squash_gid
    return _idmap(uid_ranges, squash_uid, "uid"), _idmap(gid_ranges, squash_gid, "gid")


def _int(value: str | None) -> int | None:
    return None if value is None else int(value, 10)


def _idmap(ranges: tuple[IdRange, ...], squash: int | None, kind: str) -> IdMap:
    if not ranges and squash is None:
        return IdMap()
    return IdMap(ranges, squash, read_overflow(kind))


def parse_ranges(text: str, what: str) -> tuple[IdRange, ...]:
    """``0:100000:65536[:STORED:SHOWN:COUNT…]`` (empty fields skipped) into ranges."""
    fields = [f for f in text.split(":") if f]
    if not fields or len(fields) % 3:
        raise IdMapError(f"{what}={text}: give STORED:SHOWN:COUNT triples")
    try:
        numbers = [int(f, 10) for f in fields]
    except ValueError:
        raise IdMapError(f"{what}={text}: ids must be decimal numbers") from None
    if any(n < 0 or n > 0xFFFFFFFF for n in numbers):
        raise IdMapError(f"{what}={text}: ids must be between 0 and 4294967295")
    ranges = tuple(IdRange(*numbers[i : i + 3]) for i in range(0, len(numbers), 3))
    if any(r.count == 0 for r in ranges):
        raise IdMapError(f"{what}={text}: a range of 0 ids")
    return ranges


def read_overflow(kind: str) -> int:
    """The kernel's overflow uid or gid (what a user namespace shows for an unmapped id)."""
    try:
        with open(f"/proc/sys/kernel/overflow{kind}") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return OVERFLOW_ID
