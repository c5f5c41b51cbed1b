"""`listing.stat_entries` gives, for every entry of a directory, what `Union.getattr` gives."""

from __future__ import annotations

import pytest

from unionfs.listing import stat_entries

from ..support import require_root
from .layers import OPAQUE, WHITEOUT, Symlink, make_union, random_dir

DIALECTS = ["aufs", "overlay"]


@pytest.fixture(params=DIALECTS)
def dialect(request):
    if request.param == "overlay":
        require_root("the overlay encoding's char-device whiteouts")
    return request.param


LOWERS = [
    {
        "d": {"a": "a0", "gone": WHITEOUT, "sub": {"x": "x0"}, "f_over_dir": "file"},
        "only0": "0",
        "link": Symlink("only0"),
        "op": {OPAQUE: None, "kept": "k"},
    },
    {
        "d": {"gone": "g1", "b": "b1", "sub": {"y": "y1"}, "f_over_dir": {"z": "z"}, "a": "a1"},
        "only1": {"n": "n"},
        "op": {"hidden": "h"},
    },
]
UPPER = {"d": {"u": "u", "a": "upper a", "newdir": {"q": "q"}, "sub": {"w": "w"}, "b": WHITEOUT}, "up_only": "up"}


def _every_dir(u, path="/"):
    yield path
    for name in u.listdir(path):
        child = path.rstrip("/") + "/" + name
        if u.lookup(child).is_dir:
            yield from _every_dir(u, child)


def test_every_entry_as_getattr_says(tmp_path, dialect):
    u = make_union(tmp_path, dialect, LOWERS, UPPER)
    u.mkdir("/only1/made")  # copies /only1 up: an upper dir merged with its lower
    u.rename("/only0", "/renamed")
    if dialect == "overlay":
        u.rename("/d/sub", "/moved")  # a redirect to the lower /d/sub
        assert u.listdir("/moved") == ["w", "x", "y"]
    checked = 0
    for path in _every_dir(u):
        names = u.listdir(path)
        stats = stat_entries(u, path, [".", ".."] + names)
        assert sorted(stats) == sorted(names)
        node = u.lookup(path)  # resolved before: the same, and readdir_of as readdir
        assert stat_entries(u, path, names, node) == stats and u.readdir_of(node) == u.readdir(path)
        for name in names:
            child = path.rstrip("/") + "/" + name
            assert stats[name] == u.getattr(child), child
            checked += 1
    assert checked >= 15
    # a merged directory counts one link, as the kernel's overlay says; a lone one its own
    assert stat_entries(u, "/", ["d"])["d"].st_nlink == 1
    assert stat_entries(u, "/d", ["newdir"])["newdir"].st_nlink == 2


def test_names_not_there_are_left_out(tmp_path, dialect):
    u = make_union(tmp_path, dialect, LOWERS, UPPER)
    assert set(stat_entries(u, "/d", ["a", "b", "gone", "nothing"])) == {"a"}
    assert set(stat_entries(u, "/op", ["kept", "hidden"])) == {"kept"}


def test_a_file_is_not_listed(tmp_path, dialect):
    u = make_union(tmp_path, dialect, LOWERS, UPPER)
    with pytest.raises(NotADirectoryError):
        stat_entries(u, "/up_only", ["x"])


@pytest.mark.parametrize("layers", [3, 9])
def test_many_random_layers_as_getattr_says(tmp_path, dialect, layers):
    """Lower entries are read from the layers' listings, not looked up one by one: under few
    and many layers (where lookups use an index of names), with files, directories, whiteouts
    and opaque directories at random, each entry is what getattr and the resolver say."""
    import random

    from unionfs.listing import _layer_listings, _lower_non_dir

    rng = random.Random(layers)
    kinds = ["absent", "absent", "file", "file", "dir", "whiteout", "opaque", "link"]
    lowers = [{"d": random_dir(rng, layer, "abcdefghijkl", kinds)} for layer in range(layers)]
    upper = {"d": {"a": "upper", "b": WHITEOUT, "c": {"u": "u"}}}
    u = make_union(tmp_path, dialect, lowers, upper)
    resolver = u.sb.resolver
    for path in ("/d", "/d/c"):
        names = u.listdir(path)
        stats = stat_entries(u, path, names)
        assert {name: u.getattr(f"{path}/{name}") for name in names} == stats
    listings = _layer_listings(resolver, resolver.lower("/d", 0).entries)
    checked = 0
    for name in "abcdefghijkl":
        fast = _lower_non_dir(listings, name)
        whole = resolver.lower(f"/d/{name}", 0).entries
        if fast is None:
            assert whole and whole[0].is_dir
        else:
            assert fast == whole
            checked += 1
    assert checked >= 4
