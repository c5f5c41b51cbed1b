"""`Union.lookup_child`: a name resolved under a directory resolved before gives what a lookup
of the whole path gives (whiteouts, opaque directories, redirects, upper and lower parts), and
`identity_of` what `getattr_identity` says."""

from __future__ import annotations

import errno

import pytest

from unionfs.namei import Node

from ..support import require_root
from .layers import make_union
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
