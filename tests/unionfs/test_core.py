"""The union core's rules, in both dialects, on real directories (no FUSE)."""

from __future__ import annotations

import errno
import os
import stat
import threading
from typing import Any

import pytest

from unionfs.fsutil import RENAME_NOREPLACE
from unionfs.trace import TraceList
from unionfs.union import Cred, Union

from ..support import require_root
from .layers import OPAQUE, WHITEOUT, Symlink, is_opaque, is_whiteout, make_union, upper_names

DIALECTS = ["aufs", "overlay"]
needs_root = pytest.mark.root("char devices and trusted xattrs")


@pytest.fixture(params=DIALECTS)
def dialect(request):
    if request.param == "overlay":
        require_root("the overlay encoding's char-device whiteouts")
    return request.param


def names(u: Union, path: str = "/") -> list[str]:
    return u.listdir(path)


# -- the seed's examples --------------------------------------------------------------------


def test_seed_fruits_and_vegetables(tmp_path, monkeypatch):
    (tmp_path / "fruits").mkdir()
    (tmp_path / "vegetables").mkdir()
    (tmp_path / "fruits" / "apple").write_text("apple\n")
    (tmp_path / "fruits" / "tomato").write_text("tomato from fruits\n")
    (tmp_path / "vegetables" / "carrots").write_text("carrots\n")
    (tmp_path / "vegetables" / "tomato").write_text("tomato from vegetables\n")
    monkeypatch.chdir(tmp_path)
    u = Union.from_options("dirs=./fruits:./vegetables")
    assert names(u) == ["apple", "carrots", "tomato"]
    assert u.read_file("/tomato") == b"tomato from fruits\n"
    assert u.origin("/tomato") == "./fruits (upper)"
    assert u.origin("/carrots") == "./vegetables (lower)"
    # aufs: the first branch without a mode is rw, the others ro.
    assert [b.role.value for b in u.branches] == ["upper", "lower"]


def test_seed_three_layer_rootfs(tmp_path):
    layers: list[dict[str, Any]] = [
        {"lib": {}, "etc": {}},
        {"media": {}, "opt": {}, "home": {}},
        {"var": {}, "boot": {}, "proc": {}},
    ]
    u = make_union(tmp_path, "aufs", layers, writable=False)
    assert names(u) == sorted(["lib", "etc", "media", "opt", "home", "var", "boot", "proc"])
    assert u.lookup("/var").top.branch.label.endswith("l2")
    assert u.lookup("/lib").top.branch.label.endswith("l0")
    assert u.readonly


# -- lookup ---------------------------------------------------------------------------------


def test_whiteout_stops_lookup(tmp_path, dialect):
    u = make_union(tmp_path, dialect, [{"a": WHITEOUT}, {"a": "bottom"}])
    assert not u.exists("/a")
    assert names(u) == []


def test_whiteout_in_upper_hides_lower(tmp_path, dialect):
    u = make_union(tmp_path, dialect, [{"a": "x", "b": "y"}], upper={"a": WHITEOUT})
    assert names(u) == ["b"]
    with pytest.raises(FileNotFoundError):
        u.getattr("/a")


def test_file_hides_directory_below(tmp_path, dialect):
    u = make_union(tmp_path, dialect, [{"d": "a file"}, {"d": {"inner": "x"}}])
    assert stat.S_ISREG(u.getattr("/d").st_mode)
    with pytest.raises(NotADirectoryError):
        u.getattr("/d/inner")


def test_directories_merge(tmp_path, dialect):
    u = make_union(tmp_path, dialect, [{"d": {"a": "1"}}, {"d": {"b": "2", "a": "old"}}])
    assert names(u, "/d") == ["a", "b"]
    assert u.read_file("/d/a") == b"1"
    assert u.lookup("/d").merged
    assert u.getattr("/d").st_nlink == 1  # as the kernel reports merged directories


def test_opaque_directory_hides_lower_children(tmp_path, dialect):
    u = make_union(tmp_path, dialect, [{"d": {OPAQUE: True, "new": "1"}}, {"d": {"old": "2"}}])
    assert names(u, "/d") == ["new"]
    assert not u.exists("/d/old")


def test_directory_above_ignores_file_below(tmp_path, dialect):
    u = make_union(tmp_path, dialect, [{"d": {"a": "1"}}, {"d": "a file"}])
    assert stat.S_ISDIR(u.getattr("/d").st_mode)
    assert names(u, "/d") == ["a"]


@pytest.mark.parametrize("encoding", ["aufs", "overlay"])
@needs_root
def test_both_encodings_are_read_in_both_dialects(tmp_path, dialect, encoding):
    """The aufs dialect reads both; the overlay dialect reads `.wh.` marks with whiteout=aufs
    (layers unpacked from OCI tars), and the kernel's marks always."""
    from .layers import build_layer

    top, bottom = tmp_path / "top", tmp_path / "bottom"
    build_layer(top, {"gone": WHITEOUT, "d": {OPAQUE: True}}, encoding)
    build_layer(bottom, {"gone": "x", "kept": "y", "d": {"hidden": "z"}}, encoding)
    if dialect == "aufs":
        u = Union.from_options(f"br={top}=ro+wh:{bottom}=ro")
    else:
        u = Union.from_options(f"lowerdir={top}:{bottom},whiteout=aufs")
    assert names(u) == ["d", "kept"]
    assert names(u, "/d") == []


def test_wh_names_are_ordinary_files_in_the_kernels_encoding(tmp_path):
    """The kernel's OverlayFS treats `.wh.x` and `.wh..wh..opq` in a layer as files like any
    other, and so does the overlay dialect unless told `whiteout=aufs`."""
    from .layers import build_layer

    top, bottom = tmp_path / "top", tmp_path / "bottom"
    build_layer(top, {".wh.gone": "", "d": {".wh..wh..opq": ""}}, "overlay")
    build_layer(bottom, {"gone": "x", "kept": "y", "d": {"hidden": "z"}}, "overlay")
    u = Union.from_options(f"lowerdir={top}:{bottom}")
    assert names(u) == [".wh.gone", "d", "gone", "kept"]
    assert names(u, "/d") == [".wh..wh..opq", "hidden"]
    assert u.origin("/.wh.gone").startswith(str(top))
    aufs = Union.from_options(f"lowerdir={top}:{bottom},whiteout=aufs")
    assert names(aufs) == ["d", "kept"]
    assert names(aufs, "/d") == []


def test_whiteout_applies_only_to_lower_layers(tmp_path):
    # OCI: a file beside its own whiteout in the same layer stays visible.
    u = make_union(tmp_path, "aufs", [{"a": "same layer", ".wh.a": ""}, {"a": "lower"}])
    assert u.read_file("/a") == b"same layer"


@pytest.mark.parametrize("options", ["aufs", "overlay,whiteout=aufs"])
def test_reserved_names(tmp_path, options):
    """Where `.wh.` names are marks, none can be looked up or made: aufs says EPERM, the
    overlay dialect with whiteout=aufs EINVAL (fuse-overlayfs's answer)."""
    if options == "aufs":
        u = make_union(tmp_path, "aufs", [{"f": "x"}])
    else:
        (tmp_path / "l0").mkdir()
        (tmp_path / "l0" / "f").write_text("x")
        for d in ("upper", "work"):
            (tmp_path / d).mkdir()
        u = Union.from_options(
            f"lowerdir={tmp_path}/l0,upperdir={tmp_path}/upper,workdir={tmp_path}/work,whiteout=aufs"
        )
    code = errno.EPERM if options == "aufs" else errno.EINVAL
    for op in (lambda: u.getattr("/.wh.f"), lambda: u.write_file("/.wh.x", b""), lambda: u.mkdir("/.wh.d")):
        with pytest.raises(OSError) as info:
            op()
        assert info.value.errno == code


def test_wh_names_can_be_made_and_removed_in_the_kernels_encoding(tmp_path):
    """As on the kernel's OverlayFS: `.wh.x` is a name like any other, and making or removing
    it never touches the whiteout of `x`."""
    u = make_union(tmp_path, "overlay", [{"x": "lower x"}])
    u.unlink("/x")
    u.write_file("/.wh.x", b"a file, not a whiteout")
    assert names(u) == [".wh.x"]
    assert u.read_file("/.wh.x") == b"a file, not a whiteout"
    u.mkdir("/.wh..wh..opq")
    u.write_file("/x", b"new x")  # over the char-device whiteout; .wh.x stays
    assert names(u) == [".wh..wh..opq", ".wh.x", "x"]
    u.unlink("/.wh.x")
    assert names(u) == [".wh..wh..opq", "x"]
    assert u.read_file("/x") == b"new x"


def test_reserved_names_never_listed(tmp_path):
    u = make_union(tmp_path, "aufs", [{"a": "1", ".wh..wh.plnk": {}, ".wh.b": ""}], upper={})
    assert names(u) == ["a"]


# -- copy-up --------------------------------------------------------------------------------


@needs_root
def test_copy_up_preserves_attributes(tmp_path, dialect):
    make_union(tmp_path, dialect, [{"d": {"f": "content"}}])
    lower = tmp_path / "l0"
    os.chmod(lower / "d", 0o750)
    os.chown(lower / "d" / "f", 1234, 5678)
    os.chmod(lower / "d" / "f", 0o640)
    os.utime(lower / "d" / "f", ns=(1_000_000_000, 2_000_000_000))
    os.setxattr(lower / "d" / "f", "user.colour", b"red")
    os.setxattr(lower / "d" / "f", "trusted.overlay.origin", b"private")
    union = _reopen(tmp_path, dialect)
    handle = union.open("/d/f", os.O_WRONLY | os.O_APPEND)
    handle.write(b"+", 0)
    handle.close()
    up = tmp_path / "upper" / "d" / "f"
    st = os.lstat(up)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1234, 5678, 0o640)
    assert stat.S_IMODE(os.lstat(tmp_path / "upper" / "d").st_mode) == 0o750
    assert os.getxattr(up, "user.colour") == b"red"
    # The lower's own private origin is not copied: the copy gets a new one, naming the lower file.
    assert os.getxattr(up, "trusted.overlay.origin") != b"private"
    assert os.getxattr(up, "trusted.overlay.origin")[:2] == b"\x00\xfb"
    assert up.read_bytes() == b"content+"
    assert (lower / "d" / "f").read_bytes() == b"content"


def _reopen(tmp_path, dialect) -> Union:
    lower, upper = tmp_path / "l0", tmp_path / "upper"
    if dialect == "aufs":
        return Union.from_options(f"br={upper}=rw:{lower}=ro+wh")
    return Union.from_options(f"lowerdir={lower},upperdir={upper},workdir={tmp_path / 'work'}")


def test_copy_up_on_write_keeps_lower_untouched(tmp_path, dialect):
    trace = TraceList()
    u = make_union(tmp_path, dialect, [{"f": "hello"}], tracer=trace)
    h = u.open("/f", os.O_RDWR)
    h.write(b"J", 0)
    h.close()
    assert u.read_file("/f") == b"Jello"
    assert (tmp_path / "l0" / "f").read_text() == "hello"
    assert (tmp_path / "upper" / "f").read_text() == "Jello"
    assert trace.events[0]["event"] == "copy_up" and trace.events[0]["bytes"] == 5


def test_listeners_hear_every_event_after_the_tracer(tmp_path, dialect):
    """The FUSE adapter listens for copy-ups (to fix the kernel's caches) beside the trace file."""
    trace, heard = TraceList(), []
    u = make_union(tmp_path, dialect, [{"d": {"f": "x"}}], tracer=trace)
    u.listen(lambda event: heard.append(("first", event["event"], event["path"])))
    u.listen(lambda event: heard.append(("second", event["event"], event["path"])))
    u.chmod("/d/f", 0o600)
    u.unlink("/d/f")
    assert [(e["event"], e["path"]) for e in trace.events] == [
        ("copy_up", "/d"),
        ("copy_up", "/d/f"),
        ("whiteout", "/d/f"),
    ]
    assert heard == [
        (who, kind, path)
        for kind, path in [(e["event"], e["path"]) for e in trace.events]
        for who in ("first", "second")
    ]


def test_read_only_open_does_not_copy_up(tmp_path, dialect):
    u = make_union(tmp_path, dialect, [{"f": "hello"}])
    u.read_file("/f")
    assert "f" not in upper_names(tmp_path)


@pytest.mark.parametrize("op", ["chmod", "chown", "utimens", "truncate", "setxattr", "link"])
def test_metadata_changes_copy_up(tmp_path, dialect, op):
    u = make_union(tmp_path, dialect, [{"f": "hello"}])
    {
        "chmod": lambda: u.chmod("/f", 0o600),
        "chown": lambda: u.chown("/f", os.getuid(), os.getgid()),
        "utimens": lambda: u.utimens("/f", (0, 0)),
        "truncate": lambda: u.truncate("/f", 2),
        "setxattr": lambda: u.setxattr("/f", "user.k", b"v"),
        "link": lambda: u.link("/f", "/g"),
    }[op]()
    assert "f" in upper_names(tmp_path)
    if op == "truncate":
        assert u.read_file("/f") == b"he"
    if op == "link":
        assert os.lstat(tmp_path / "upper" / "f").st_ino == os.lstat(tmp_path / "upper" / "g").st_ino


def test_copy_up_copies_parents_first(tmp_path, dialect):
    u = make_union(tmp_path, dialect, [{"a": {"b": {"c": "deep"}}}])
    os.chmod(tmp_path / "l0" / "a" / "b", 0o711)
    u = _reopen(tmp_path, dialect)
    u.chmod("/a/b/c", 0o600)
    assert stat.S_IMODE(os.lstat(tmp_path / "upper" / "a" / "b").st_mode) == 0o711
    assert names(u, "/a/b") == ["c"]


def test_copy_up_keeps_holes(tmp_path, dialect):
    u = make_union(tmp_path, dialect, [{}])
    sparse = tmp_path / "l0" / "sparse"
    with open(sparse, "wb") as f:
        f.seek(64 << 20)
        f.write(b"end")
    h = u.open("/sparse", os.O_WRONLY | os.O_APPEND)
    h.write(b"!", 0)
    h.close()
    up = os.lstat(tmp_path / "upper" / "sparse")
    assert up.st_size == (64 << 20) + 4
    assert up.st_blocks * 512 < 1 << 20  # holes were not filled


def test_copy_up_of_symlink(tmp_path, dialect):
    u = make_union(tmp_path, dialect, [{"l": Symlink("target/path")}])
    u.chown("/l", os.getuid(), os.getgid())
    assert os.readlink(tmp_path / "upper" / "l") == "target/path"


def test_o_trunc_copies_no_data(tmp_path, dialect):
    trace = TraceList()
    u = make_union(tmp_path, dialect, [{"f": "x" * 10000}], tracer=trace)
    u.open("/f", os.O_WRONLY | os.O_TRUNC).close()
    assert u.read_file("/f") == b""
    assert trace.events[0]["bytes"] == 0


def test_read_handle_follows_copy_up(tmp_path, dialect):
    u = make_union(tmp_path, dialect, [{"f": "old data"}])
    reader = u.open("/f")
    assert reader.read(3, 0) == b"old"
    writer = u.open("/f", os.O_WRONLY)
    writer.write(b"NEW", 0)
    writer.close()
    assert reader.read(8, 0) == b"NEW data"
    reader.close()


def test_concurrent_writers_copy_up_once(tmp_path, dialect):
    trace = TraceList()
    u = make_union(tmp_path, dialect, [{"f": "0" * 100000}], tracer=trace)
    barrier = threading.Barrier(8)

    def writer(i: int) -> None:
        barrier.wait()
        h = u.open("/f", os.O_WRONLY)
        h.write(str(i).encode(), i)
        h.close()

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [e["event"] for e in trace.events] == ["copy_up"]
    assert u.read_file("/f")[:8] == b"01234567"


def test_work_dir_leftovers_are_cleared(tmp_path, dialect):
    u = make_union(tmp_path, dialect, [{"f": "x"}])
    tmp = u.sb.tmpdir
    assert tmp is not None
    with open(os.path.join(tmp, "#dead.1"), "w") as f:
        f.write("half a copy-up")
    os.mkdir(os.path.join(tmp, "#dead.2"))
    _reopen(tmp_path, dialect)
    assert os.listdir(tmp) == []


# -- removal --------------------------------------------------------------------------------


def test_unlink_upper_only_needs_no_whiteout(tmp_path, dialect):
    u = make_union(tmp_path, dialect, [{}], upper={"new": "x"})
    u.unlink("/new")
    assert upper_names(tmp_path) == set()


def test_unlink_lower_writes_whiteout(tmp_path, dialect):
    trace = TraceList()
    u = make_union(tmp_path, dialect, [{"f": "x"}], tracer=trace)
    u.unlink("/f")
    assert is_whiteout(tmp_path, dialect, "/f")
    assert (tmp_path / "l0" / "f").exists()
    assert not u.exists("/f")
    assert trace.events[-1]["event"] == "whiteout"


def test_unlink_copied_up_file_writes_whiteout(tmp_path, dialect):
    u = make_union(tmp_path, dialect, [{"f": "x"}])
    u.chmod("/f", 0o600)
    u.unlink("/f")
    assert is_whiteout(tmp_path, dialect, "/f")
    assert names(u) == []


def test_unlink_errors(tmp_path, dialect):
    u = make_union(tmp_path, dialect, [{"d": {}}])
    with pytest.raises(IsADirectoryError):
        u.unlink("/d")
    with pytest.raises(FileNotFoundError):
        u.unlink("/missing")


def test_rmdir_needs_empty_merged_dir(tmp_path, dialect):
    u = make_union(tmp_path, dialect, [{"d": {"x": "1"}}])
    with pytest.raises(OSError) as info:
        u.rmdir("/d")
    assert info.value.errno == errno.ENOTEMPTY
    u.unlink("/d/x")
    u.rmdir("/d")
    assert is_whiteout(tmp_path, dialect, "/d")
    assert names(u) == []
    with pytest.raises(NotADirectoryError):
        make_union(tmp_path / "2", dialect, [{"f": "x"}]).rmdir("/f")


def test_rm_rf_then_mkdir_makes_opaque_dir(tmp_path, dialect):
    trace = TraceList()
    u = make_union(tmp_path, dialect, [{"d": {"old": "1"}}], tracer=trace)
    u.unlink("/d/old")
    u.rmdir("/d")
    u.mkdir("/d")
    assert is_opaque(tmp_path, dialect, "/d")
    assert names(u, "/d") == []
    assert not is_whiteout(tmp_path, dialect, "/d")
    assert "opaque" in [e["event"] for e in trace.events]


def test_create_over_whiteout(tmp_path, dialect):
    u = make_union(tmp_path, dialect, [{"f": "old"}])
    u.unlink("/f")
    u.write_file("/f", b"new")
    assert u.read_file("/f") == b"new"
    assert not is_whiteout(tmp_path, dialect, "/f")


def test_mkdir_without_whiteout(tmp_path, dialect):
    u = make_union(tmp_path, dialect, [{}])
    u.mkdir("/fresh", 0o751)
    # The root is merged: the kernel marks a new directory there opaque (an optimization of
    # ovl_create_upper), aufs only over a whiteout.
    assert is_opaque(tmp_path, dialect, "/fresh") == (dialect == "overlay")
    assert stat.S_IMODE(u.getattr("/fresh").st_mode) == 0o751
    u.mkdir("/fresh/inner")  # a parent only in the upper: nothing to hide, no mark
    assert not is_opaque(tmp_path, dialect, "/fresh/inner")


def test_mkdir_existing_is_eexist(tmp_path, dialect):
    u = make_union(tmp_path, dialect, [{"d": {}}])
    with pytest.raises(FileExistsError):
        u.mkdir("/d")


# -- rename ---------------------------------------------------------------------------------


def test_rename_lower_file_leaves_whiteout(tmp_path, dialect):
    u = make_union(tmp_path, dialect, [{"a": "content"}])
    u.rename("/a", "/b")
    assert names(u) == ["b"]
    assert u.read_file("/b") == b"content"
    assert is_whiteout(tmp_path, dialect, "/a")


def test_rename_over_existing_file(tmp_path, dialect):
    u = make_union(tmp_path, dialect, [{"a": "A", "b": "B"}])
    u.rename("/a", "/b")
    assert names(u) == ["b"] and u.read_file("/b") == b"A"


def test_rename_noreplace(tmp_path, dialect):
    u = make_union(tmp_path, dialect, [{"a": "A", "b": "B"}])
    with pytest.raises(FileExistsError):
        u.rename("/a", "/b", RENAME_NOREPLACE)
    u.rename("/a", "/c", RENAME_NOREPLACE)
    assert names(u) == ["b", "c"]


def test_rename_upper_dir_is_plain(tmp_path, dialect):
    u = make_union(tmp_path, dialect, [{}], upper={"d": {"f": "x"}})
    u.rename("/d", "/e")
    assert names(u, "/e") == ["f"]
    assert upper_names(tmp_path) == {"e"}


def test_rename_lower_dir_by_dialect(tmp_path, dialect):
    u = make_union(tmp_path, dialect, [{"d": {"f": "x"}, "other": {}}])
    if dialect == "aufs":
        with pytest.raises(OSError) as info:
            u.rename("/d", "/e")
        assert info.value.errno == errno.EXDEV
        return
    u.rename("/d", "/other/e")
    assert names(u) == ["other"]
    assert names(u, "/other/e") == ["f"]
    assert u.read_file("/other/e/f") == b"x"
    assert os.getxattr(tmp_path / "upper" / "other" / "e", "trusted.overlay.redirect") == b"/d"
    assert is_whiteout(tmp_path, dialect, "/d")


@pytest.mark.root("trusted.overlay.redirect")
def test_rename_lower_dir_same_parent_relative_redirect(tmp_path):
    u = make_union(tmp_path, "overlay", [{"d": {"f": "x"}}])
    u.rename("/d", "/e")
    assert os.getxattr(tmp_path / "upper" / "e", "trusted.overlay.redirect") == b"d"
    u.rename("/e", "/g")  # a relative redirect that still holds is kept
    assert os.getxattr(tmp_path / "upper" / "g", "trusted.overlay.redirect") == b"d"
    assert names(u, "/g") == ["f"]


def test_aufs_rename_of_empty_lower_dir_is_allowed(tmp_path):
    u = make_union(tmp_path, "aufs", [{"d": {}}])
    u.rename("/d", "/e")
    assert names(u) == ["e"]
    assert is_whiteout(tmp_path, "aufs", "/d")
    assert is_opaque(tmp_path, "aufs", "/e")


def test_rename_dir_into_itself_is_einval(tmp_path, dialect):
    u = make_union(tmp_path, dialect, [{}], upper={"d": {"s": {}}})
    with pytest.raises(OSError) as info:
        u.rename("/d", "/d/s/x")
    assert info.value.errno == errno.EINVAL


def test_rename_onto_nonempty_dir(tmp_path, dialect):
    u = make_union(tmp_path, dialect, [{"full": {"x": "1"}}], upper={"d": {}})
    with pytest.raises(OSError) as info:
        u.rename("/d", "/full")
    assert info.value.errno == errno.ENOTEMPTY


# -- links, nodes, attributes ------------------------------------------------------------------


def test_symlink_and_readlink(tmp_path, dialect):
    u = make_union(tmp_path, dialect, [{}])
    u.symlink("../elsewhere", "/l")
    assert u.readlink("/l") == "../elsewhere"
    with pytest.raises(OSError) as info:
        u.readlink("/")
    assert info.value.errno == errno.EINVAL


def test_link_of_directory_is_eperm(tmp_path, dialect):
    u = make_union(tmp_path, dialect, [{"d": {}}])
    with pytest.raises(PermissionError):
        u.link("/d", "/e")


def test_mkfifo(tmp_path, dialect):
    u = make_union(tmp_path, dialect, [{}])
    u.mkfifo("/p", 0o640)
    assert stat.S_ISFIFO(u.getattr("/p").st_mode)


@needs_root
def test_new_files_belong_to_the_caller(tmp_path, dialect):
    u = make_union(tmp_path, dialect, [{}])
    u.write_file("/f", b"x", cred=Cred(4321, 8765))
    u.mkdir("/d", cred=Cred(4321, 8765))
    for name in ("f", "d"):
        st = os.lstat(tmp_path / "upper" / name)
        assert (st.st_uid, st.st_gid) == (4321, 8765)


@needs_root
def test_new_setid_objects_keep_their_mode_whoever_owns_them(tmp_path, dialect):
    """chown(2) drops a file's S_ISUID and S_ISGID, even to the same ids: a new object
    given to its caller keeps the mode asked for, as on the kernel's overlay."""
    u = make_union(tmp_path, dialect, [{}])
    for i, cred in enumerate((Cred(0, 0), Cred(4321, 8765), None)):
        u.create(f"/suid{i}", 0o4755, cred=cred).close()
        u.create(f"/sgid{i}", 0o2755, cred=cred).close()
        u.mknod(f"/node{i}", stat.S_IFREG | 0o6750, cred=cred)
        for name, mode in ((f"suid{i}", 0o4755), (f"sgid{i}", 0o2755), (f"node{i}", 0o6750)):
            st = os.lstat(tmp_path / "upper" / name)
            assert stat.S_IMODE(st.st_mode) == mode, name
            assert (st.st_uid, st.st_gid) == ((cred.uid, cred.gid) if cred else (0, 0)), name


def test_a_new_file_costs_an_open_and_an_fstat(tmp_path, dialect, monkeypatch):
    """No chown where the upper filesystem already gave the caller's ids (a daemon serving
    its own user: every create through a mount as that user), no second lookup, and no
    origin looked for on the file just made."""
    u = make_union(tmp_path, dialect, [{"d": {"old": "x"}}], {"d": {}})
    calls: list[str] = []
    for name in ("chown", "fchown", "lchown", "lstat", "stat", "getxattr", "chmod", "fchmod"):
        real = getattr(os, name)
        monkeypatch.setattr(os, name, lambda *a, _n=name, _f=real, **k: calls.append(_n) or _f(*a, **k))
    parent = u.lookup("/d")
    calls.clear()
    u.lookup_child(parent, "other")
    lookup, calls[:] = list(calls), []  # the upper's lstat (and the aufs dialect's .wh. probe)
    handle, node = u.create_in(parent, "new", 0o644, cred=Cred(os.getuid(), os.getgid()))
    handle.close()
    assert calls == lookup  # the name resolved once, absent
    calls.clear()
    st, lasting = u.identity_of(node)
    assert calls == [] and lasting
    assert (st.st_ino, st.st_uid, st.st_gid) == (
        os.lstat(tmp_path / "upper" / "d" / "new").st_ino,
        os.getuid(),
        os.getgid(),
    )
    assert u.identity_of(node) == u.getattr_identity("/d/new")
    if os.geteuid() == 0:  # another caller: one chown, on the descriptor
        calls.clear()
        u.create_in(parent, "theirs", 0o644, cred=Cred(4321, 8765))[0].close()
        assert calls == [*lookup, "fchown"]


@needs_root
def test_a_hard_link_in_a_setgid_directory_keeps_its_group(tmp_path, dialect):
    """A link is a new name, not a new object: the kernel's ovl_link gives it no owner."""
    u = make_union(tmp_path, dialect, [{"f": "x", "sg": {}}])
    os.chown(tmp_path / "l0" / "sg", 0, 4242)
    os.chmod(tmp_path / "l0" / "sg", 0o2775)
    u.link("/f", "/sg/f")
    assert u.getattr("/f").st_gid == u.getattr("/sg/f").st_gid == 0
    u.write_file("/sg/new", b"n")  # a new object there takes the directory's group
    assert u.getattr("/sg/new").st_gid == 4242


def test_private_xattrs_are_hidden_and_user_names_escaped(tmp_path):
    """As the kernel's OverlayFS (6.7+): the union's own overlay.* xattrs never show; a
    caller's trusted.overlay.X is stored as trusted.overlay.overlay.X and copied up."""
    require_root("trusted.* xattrs")
    u = make_union(tmp_path, "overlay", [{"d": {OPAQUE: True}, "f": "x"}])
    os.setxattr(tmp_path / "l0" / "f", "trusted.overlay.origin", b"private")
    os.setxattr(tmp_path / "l0" / "f", "trusted.overlay.overlay.mine", b"escaped")
    assert "trusted.overlay.opaque" not in u.listxattr("/d")
    with pytest.raises(OSError) as info:
        u.getxattr("/d", "trusted.overlay.opaque")
    assert info.value.errno == errno.ENODATA
    assert u.listxattr("/f") == ["trusted.overlay.mine"]
    assert u.getxattr("/f", "trusted.overlay.mine") == b"escaped"
    u.setxattr("/f", "trusted.overlay.opaque", b"y")
    upper = tmp_path / "upper" / "f"
    assert os.getxattr(upper, "trusted.overlay.overlay.opaque") == b"y"
    assert os.getxattr(upper, "trusted.overlay.overlay.mine") == b"escaped"
    assert os.getxattr(upper, "trusted.overlay.origin") != b"private"  # the copy's own origin mark
    assert "trusted.overlay.origin" not in u.listxattr("/f")
    u.setxattr("/d", "trusted.overlay.opaque", b"n")  # the caller's own, not a mark
    assert u.listdir("/d") == []
    with pytest.raises(OSError) as info:
        u.setxattr("/f", "user.layerfs.origin", b"forged")
    assert info.value.errno == errno.EOPNOTSUPP
    assert u.getxattr("/f", "user.layerfs.origin").endswith(b"(upper)")


def test_xattr_round_trip_and_removal(tmp_path, dialect):
    u = make_union(tmp_path, dialect, [{"f": "x"}])
    with pytest.raises(OSError) as info:
        u.removexattr("/f", "user.none")
    assert info.value.errno == errno.ENODATA
    assert "f" not in upper_names(tmp_path)  # no pointless copy-up
    u.setxattr("/f", "user.k", b"v")
    assert u.getxattr("/f", "user.k") == b"v"
    assert "user.k" in u.listxattr("/f")
    u.removexattr("/f", "user.k")
    assert "user.k" not in u.listxattr("/f")


def test_origin_xattr(tmp_path, dialect):
    u = make_union(tmp_path, dialect, [{"f": "x"}])
    assert u.getxattr("/f", "user.layerfs.origin").endswith(b"(lower)")
    u.chmod("/f", 0o600)
    assert u.getxattr("/f", "user.layerfs.origin").endswith(b"(upper)")


def test_statfs_is_the_upper(tmp_path, dialect):
    u = make_union(tmp_path, dialect, [{}])
    assert u.statfs().f_bsize == os.statvfs(tmp_path / "upper").f_bsize


def test_open_flags(tmp_path, dialect):
    u = make_union(tmp_path, dialect, [{"f": "abc", "d": {}}])
    with pytest.raises(FileExistsError):
        u.open("/f", os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    with pytest.raises(IsADirectoryError):
        u.open("/d", os.O_WRONLY)
    with pytest.raises(NotADirectoryError):
        u.open("/f", os.O_RDONLY | os.O_DIRECTORY)
    with pytest.raises(FileNotFoundError):
        u.open("/missing")
    u.open("/d", os.O_RDONLY | os.O_DIRECTORY).close()
    h = u.open("/f", os.O_WRONLY | os.O_APPEND)
    h.write(b"d", 0)
    h.close()
    assert u.read_file("/f") == b"abcd"


# -- read-only unions and errors -------------------------------------------------------------


def test_read_only_union_refuses_writes(tmp_path, dialect):
    u = make_union(tmp_path, dialect, [{"f": "x"}], writable=False)
    for op in (
        lambda: u.unlink("/f"),
        lambda: u.mkdir("/d"),
        lambda: u.open("/f", os.O_WRONLY),
        lambda: u.chmod("/f", 0o600),
        lambda: u.write_file("/new", b""),
    ):
        with pytest.raises(OSError) as info:
            op()
        assert info.value.errno == errno.EROFS


def test_explain_names_every_branch(tmp_path, dialect):
    u = make_union(tmp_path, dialect, [{"a": WHITEOUT}, {"a": "x"}], upper={})
    lines = u.explain("/a")
    assert len(lines) == 3
    assert "absent" in lines[0][1]
    assert "whiteout" in lines[1][1]
    assert "hidden by the whiteout" in lines[2][1]


def test_copy_up_skips_read_handles_already_released(tmp_path, dialect):
    """A released read handle may linger in the (weak) registry until collected: the copy-up
    must not touch its closed descriptor (it used to fail the writer's open with EBADF)."""
    u = make_union(tmp_path, dialect, [{"f": "data"}])
    reader = u.open("/f")
    reader.close()
    writer = u.open("/f", os.O_WRONLY | os.O_APPEND)  # copies up, moving read handles
    writer.write(b"+", 0)
    writer.close()
    assert u.read_file("/f") == b"data+"
    assert reader.fd == -1
