"""unionfs.record: the mount's value classes behave as frozen dataclasses would."""

from __future__ import annotations

from unionfs.idmap import IdMap, IdRange
from unionfs.mountinfo import MountInfo


def test_equal_by_fields_and_by_type_only() -> None:
    assert IdRange(0, 100000, 65536) == IdRange(0, 100000, 65536)
    assert IdRange(0, 100000, 65536) != IdRange(0, 100000, 1)
    assert len({IdRange(1, 2, 3), IdRange(1, 2, 3), IdRange(3, 2, 1)}) == 2
    assert IdMap() != IdRange(0, 0, 0) and IdMap() != (0, 0, 0)
    assert hash(IdMap((IdRange(1, 2, 3),))) == hash(IdMap((IdRange(1, 2, 3),)))


def test_repr_names_every_field() -> None:
    assert repr(IdRange(1, 2, 3)) == "IdRange(stored=1, shown=2, count=3)"
    assert repr(IdMap(squash=0)) == "IdMap(ranges=(), squash=0, overflow=65534)"


def test_replace_copies_with_changes() -> None:
    info = MountInfo("/mnt", "fuse.layerfs", "layerfs", "rw")
    moved = info.replace(mountpoint="/elsewhere")
    assert moved == MountInfo("/elsewhere", "fuse.layerfs", "layerfs", "rw")
    assert info.mountpoint == "/mnt" and type(moved) is MountInfo
