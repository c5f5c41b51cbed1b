"""`Union.lookup_child`: a name resolved under a directory resolved before gives what a lookup
of the whole path gives (whiteouts, opaque directories, redirects, upper and lower parts), and
`identity_of` what `getattr_identity` says, `getattr_of` what `getattr` says; `create_in` makes
what `create` makes."""

from __future__ import annotations

import errno

import pytest

from unionfs.namei import Node

from ..support import require_root
from .layers import make_union, random_dir
from .test_listing import LOWERS, UPPER


@pytest.fixture(params=["aufs", "overlay"])
def dialect(request):
    if request.param == "overlay":
        require_root("the overlay encoding's char-device whiteouts")
    return request.param


def _same(a: Node, b: Node) -> None:
    assert (a.path, a.entries, a.lowers, a.lower_path) == (b.path, b.entries, b.lowers, b.lower_path)
    assert (a.parent_upper, a.upper_whiteout, a.parent_merged) == (b.parent_upper, b.upper_whiteout, b.parent_merged)


def test_every_name_below_every_directory_as_a_whole_lookup_says(tmp_path, dialect):
    u = make_union(tmp_path, dialect, LOWERS, UPPER)
    u.mkdir("/only1/made")  # copies /only1 up: an upper dir merged with its lower
    if dialect == "overlay":
        u.rename("/d/sub", "/moved")  # a redirect to the lower /d/sub
    checked = 0
    todo = [u.lookup("/")]
    while todo:
        parent = todo.pop()
        # the names listed, and names hidden or absent (whiteouts, the opaque dir's lower name)
        for name in u.listdir(parent.path) + ["gone", "hidden", "b", "nothing"]:
            path = parent.path.rstrip("/") + "/" + name
            child = u.lookup_child(parent, name)
            _same(child, u.sb.resolver.lookup(path))
            if child.exists:
                assert u.identity_of(child) == u.getattr_identity(path)
                assert u.getattr_of(child) == u.getattr(path)
                origin = "user.layerfs.origin"
                assert u.getxattr_of(child, origin) == u.getxattr(path, origin)
                checked += 1
                if child.is_dir:
                    todo.append(child)
            else:
                with pytest.raises(FileNotFoundError):
                    u.identity_of(child)
    assert checked >= 15


def test_below_a_file_or_a_missing_name(tmp_path, dialect):
    u = make_union(tmp_path, dialect, LOWERS, UPPER)
    with pytest.raises(NotADirectoryError):
        u.lookup_child(u.lookup("/up_only"), "x")
    missing = u.lookup_child(u.lookup("/"), "nothing")
    with pytest.raises(OSError) as caught:
        u.lookup_child(missing, "x")
    assert caught.value.errno == errno.ENOENT


def test_a_lower_hard_link_is_not_a_lasting_identity(tmp_path):
    import os

    u = make_union(tmp_path, "aufs", [{"one": "1"}], {})
    lower = u.branches[-1].path
    os.link(os.path.join(lower, "one"), os.path.join(lower, "two"))
    assert u.getattr_identity("/one")[1] is False  # a copy-up would give it its own number
    assert u.getattr_identity("/two")[0].st_ino == u.getattr_identity("/one")[0].st_ino
    u.write_file("/up", b"u")
    assert u.getattr_identity("/up")[1] is True


def test_getattr_of_reads_the_upper_again(tmp_path, dialect):
    u = make_union(tmp_path, dialect, LOWERS, UPPER)
    d = u.lookup("/d")
    before = u.getattr_of(d)
    u.write_file("/d/new", b"n")  # the directory's times change; how it resolves does not
    assert u.getattr_of(d) == u.getattr("/d") != before
    with pytest.raises(FileNotFoundError):
        u.getattr_of(u.lookup_child(d, "nothing"))


def test_create_in_every_kind_of_directory_makes_what_create_makes(tmp_path, dialect):
    import os

    mine = make_union(tmp_path / "mine", dialect, LOWERS, UPPER)
    theirs = make_union(tmp_path / "theirs", dialect, LOWERS, UPPER)
    # the root, an upper dir merged with lowers, an upper-only dir, lower-only dirs (copied up
    # by the create), an opaque dir; a fresh name, a name over a whiteout, a name hidden below
    for parent_path, name in [
        ("/", "fresh"),
        ("/d", "fresh"),
        ("/d", "gone"),
        ("/d", "b"),
        ("/d/newdir", "fresh"),
        ("/only1", "fresh"),
        ("/d/sub", "fresh"),
        ("/op", "hidden"),
    ]:
        path = parent_path.rstrip("/") + "/" + name
        handle, node = mine.create_in(mine.lookup(parent_path), name, 0o640)
        _same(node, mine.sb.resolver.lookup(path))
        assert mine.identity_of(node) == mine.getattr_identity(path)  # the times to the nanosecond
        handle.write(b"data", 0)
        handle.close()
        theirs.write_file(path, b"data", 0o640)
        assert mine.read_file(path) == b"data"
        assert mine.identity_of(node)[0].st_mode == theirs.getattr(path).st_mode
        assert sorted(mine.listdir(parent_path)) == sorted(theirs.listdir(parent_path))
        for which in (mine, theirs):
            assert os.path.exists(which.lookup(path).top.real)
    with pytest.raises(FileExistsError):
        mine.create_in(mine.lookup("/d"), "a", 0o644, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    handle, node = mine.create_in(mine.lookup("/d"), "a", 0o644, os.O_WRONLY | os.O_TRUNC)  # an existing file
    handle.close()
    assert node.in_upper and mine.read_file("/d/a") == b""


def test_many_layers_resolve_through_the_name_index_as_layer_by_layer(tmp_path, dialect, monkeypatch):
    """Under more than a few layers a lookup consults an index of the names each layer has
    or whites out, instead of every layer's listing: it must decide exactly as the walk down
    every layer does (whiteouts, opaque directories, a file over a directory)."""
    import random

    from unionfs import namei

    rng = random.Random(16)
    kinds = ["absent", "absent", "file", "dir", "dir", "whiteout", "opaque"]
    lowers = [{"d": random_dir(rng, layer, "abcdefgh", kinds, common=True), f"only{layer}": "o"} for layer in range(9)]
    u = make_union(tmp_path, dialect, lowers, {})
    paths = ["/d"] + [f"/d/{n}" for n in "abcdefgh"] + [f"/only{i}" for i in range(9)]
    paths += [f"/d/{n}/{m}{i}" for n in "abcdefgh" for m in "abcdefgh" for i in range(9)]
    paths += [f"/d/{n}/common" for n in "abcdefgh"]

    def same(x):  # an Entry by what it is, not its stat's atime (the first walk reads each directory)
        if isinstance(x, namei.Entry):
            return (x.branch, x.real, x.st.st_ino, x.st.st_mode)
        return tuple(same(i) for i in x) if isinstance(x, tuple) else x

    def resolve(indexed_above: int) -> list:
        monkeypatch.setattr(namei, "_INDEXED", indexed_above)
        resolver = namei.Resolver(u.sb.branches, u.sb.resolver.dialect, wh_files=u.sb.resolver.wh_files)
        out: list[tuple] = []
        for path in paths:
            try:
                node = resolver.lookup(path)
                out.append((path, same(node.entries), same(node.lowers), node.lower_path))
            except OSError as exc:
                out.append((path, exc.errno))
        return out

    every_layer, indexed = resolve(1000), resolve(0)
    assert indexed == every_layer
    assert sum(1 for r in every_layer if len(r) == 4 and r[1]) >= 20  # a good share exists


def test_the_lower_cache_keeps_directories_and_the_last_few_other_names(tmp_path, dialect):
    """The read-only layers' view of a directory is kept (every lookup below it starts there);
    a file's, an absent or a whited-out name's only among the last `RECENT` ones (an OPEN
    walks its path just after its LOOKUP; a fresh lookup of every file would otherwise grow
    the daemon by a kilobyte), and resolved again, with the same answer, once gone; a full
    cache of directories starts again and answers the same."""
    from unionfs import namei

    u = make_union(tmp_path, dialect, LOWERS, UPPER)
    resolver = u.sb.resolver
    resolver.RECENT = 2
    first = {p: resolver.lower(p) for p in ("/d", "/d/sub", "/d/b", "/d/gone", "/d/nothing", "/only1", "/only0")}
    assert {"/", "/d", "/d/sub", "/only1"} <= set(resolver._lowers)
    assert not {"/d/b", "/d/gone", "/d/nothing", "/only0"} & set(resolver._lowers)
    assert list(resolver._recent) == ["/d/nothing", "/only0"]  # the last two, oldest first
    assert resolver.lower("/d") is first["/d"] and resolver.lower("/only0") is first["/only0"]  # kept
    again = resolver.lower("/d/b")
    assert again is not first["/d/b"] and again == first["/d/b"]  # a file: nothing reads it
    assert first["/d/b"].entries and not first["/d/nothing"].entries

    def same(result: namei.LowerResult) -> tuple:  # not the stats' atimes (a listing reads a directory)
        return tuple((e.branch, e.real, e.st.st_ino, e.st.st_mode) for e in result.entries), result.whiteout

    small = namei.Resolver(u.sb.branches, resolver.dialect, wh_files=resolver.wh_files, cache_size=2)
    for path, result in first.items():
        assert same(small.lower(path)) == same(result)
        assert len(small._lowers) <= 2
