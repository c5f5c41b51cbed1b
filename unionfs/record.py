"""Value classes for the mount's first moments, without dataclasses.

The mount command and the daemon's early answers (`bootstrap`) use a few small records
(`MountInfo`, `IdRange`, `IdMap`) before the core is imported; `dataclasses` costs milliseconds
of every mount to import and to build each class. A subclass names its fields in `__slots__`
and sets them in `__init__`; equality, hashing, repr and `replace` come from here, as a
frozen dataclass would give them.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Self


class Record:
    """Equality, hash, repr and `replace()` from the subclass's `__slots__` (its fields)."""

    __slots__ = ()

    def _names(self) -> tuple[str, ...]:
        names: tuple[str, ...] = type(self).__slots__
        return names

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self._names())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Record) and type(other) is type(self) and self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._names())
        return f"{type(self).__name__}({fields})"

    def replace(self, **changes: Any) -> Self:
        """A copy with some fields changed (dataclasses.replace's job)."""
        return type(self)(**{**{name: getattr(self, name) for name in self._names()}, **changes})
