"""Layer tars written as Go writes them, and applied safely."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imagegraph import archive
from imagegraph.archive import ArchiveError, apply_layer_tar, encode_header, write_layer_tar

from ..support import require_root, require_tool, skip_or_fail

EMPTY = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"
needs_root = pytest.mark.root("mknod, trusted.* xattrs")


def tar_bytes(src: Path) -> bytes:
    b = io.BytesIO()
    write_layer_tar(src, b)
    return b.getvalue()


def touch_all(root: Path, t: int = 1600000000) -> None:
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for n in filenames + dirnames:
            os.utime(os.path.join(dirpath, n), (t, t), follow_symlinks=False)
    os.utime(root, (t, t))


def test_empty_layer_is_1024_zero_bytes(tmp_path: Path) -> None:
    data = tar_bytes(tmp_path)
    assert data == b"\0" * 1024
    assert write_layer_tar(tmp_path).diff_id == EMPTY
    assert "sha256:" + hashlib.sha256(data).hexdigest() == EMPTY


def test_headers_equal_gnu_tar_ustar(tmp_path: Path) -> None:
    """For plain entries Go writes USTAR headers; GNU tar's ustar headers are byte-identical."""
    d = tmp_path / "d"
    (d / "sub").mkdir(parents=True)
    (d / "sub" / "f").write_text("abc\n")
    os.chmod(d / "sub" / "f", 0o640)
    touch_all(d)
    gnu = tmp_path / "g.tar"
    subprocess.run(
        ["tar", "--format=ustar", "--numeric-owner", "--owner=0", "--group=0", "--sort=name", "-cf", str(gnu), "sub"],
        cwd=d,
        check=True,
    )
    ours = tar_bytes(d)
    g = gnu.read_bytes()
    assert len(ours) == 3 * 512 + 1024  # dir header, file header, one data block, end
    assert ours[:1536] == g[:1536]
    assert ours[1536:] == b"\0" * 1024  # no padding to 10240 as GNU tar and Python's tarfile do
    assert len(g) == 10240


def test_walk_order_types_and_listing(tmp_path: Path) -> None:
    d = tmp_path / "d"
    (d / "b").mkdir(parents=True)
    (d / "a").write_text("x")
    os.link(d / "a", d / "b" / "hard")
    os.symlink("../a", d / "b" / "link")
    os.mkfifo(d / "fifo")
    touch_all(d)
    listing = subprocess.run(["tar", "-tvf", "-"], input=tar_bytes(d), capture_output=True, check=True).stdout.decode()
    names = [
        line.split()[-1] if " -> " not in line and " link to " not in line else line for line in listing.splitlines()
    ]
    assert [n.split()[5] if len(n.split()) > 6 else n for n in names][0] == "a"
    lines = listing.splitlines()
    assert lines[0].startswith("-rw") and lines[0].endswith(" a")
    assert lines[1].startswith("drwx") and lines[1].endswith(" b/")
    assert lines[2].startswith("h") and lines[2].endswith("b/hard link to a")
    assert lines[3].startswith("l") and lines[3].endswith("b/link -> ../a")
    assert lines[4].startswith("p") and lines[4].endswith(" fifo")
    assert "1970-01-01" not in listing and "2020-09-13" in listing
    # moby sets no user or group names
    with tarfile.open(fileobj=io.BytesIO(tar_bytes(d))) as tf:
        for m in tf:
            assert m.uname == "" and m.gname == ""


def test_long_names_use_ustar_prefix_or_pax(tmp_path: Path) -> None:
    d = tmp_path / "d"
    mid = d / ("a" * 90) / ("b" * 30)
    mid.mkdir(parents=True)
    (mid / "f").write_text("1")
    deep = d / ("c" * 120) / ("e" * 150)
    deep.mkdir(parents=True)
    touch_all(d)
    data = tar_bytes(d)
    # a name of 121 bytes fits as prefix + name: no PAX header for it
    assert b"PaxHeaders.0/" + b"a" * 10 not in data
    hdr_off = data.index(b"b" * 30 + b"/\0")
    assert data[hdr_off - 0 : hdr_off + 31] == b"b" * 30 + b"/"
    # a 272-byte directory name cannot be split: a PAX "path" record, in a header file whose
    # own name ("<dir>/PaxHeaders.0") Go cuts to 100 bytes
    long_dir = ("c" * 120 + "/" + "e" * 150 + "/").encode()
    assert b"path=" + long_dir + b"\n" in data
    x = data.index(b"path=" + long_dir) - 512 - 4
    assert data[x + 156 : x + 157] == b"x" and data[x : x + 100] == b"c" * 100
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        names = tf.getnames()
    assert ("c" * 120) + "/" + ("e" * 150) in names
    assert ("a" * 90) + "/" + ("b" * 30) + "/f" in names


def test_xattrs_become_pax_schily_records_and_private_ones_are_dropped(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    f = d / "f"
    f.write_text("x")
    try:
        os.setxattr(f, "user.colour", b"blue")
        os.setxattr(f, "user.overlay.origin", b"private")
    except OSError as exc:
        skip_or_fail(f"{tmp_path} takes no user.* xattrs: {exc.strerror}")
    assert os.getxattr(f, "user.overlay.origin") == b"private"  # so the tar has one to drop
    data = tar_bytes(d)
    assert data[156:157] == b"x"
    assert data[:100].rstrip(b"\0") == b"PaxHeaders.0/f"
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        (m,) = tf.getmembers()
    assert m.pax_headers.get("SCHILY.xattr.user.colour") == "blue"
    assert not any("overlay" in k for k in m.pax_headers)


def test_pax_record_length_counts_itself() -> None:
    assert archive._pax_record(b"path", b"x" * 93) == b"103 path=" + b"x" * 93 + b"\n"
    # the length field grows from 2 to 3 digits: Go's final adjustment
    assert archive._pax_record(b"a", b"y" * 94) == b"101 a=" + b"y" * 94 + b"\n"
    assert archive._pax_record(b"a", b"b") == b"6 a=b\n"


def test_header_checksum_is_valid() -> None:
    h = encode_header(archive.TarEntry(name="f", typeflag=b"0", mode=0o644, size=3, mtime=1))
    assert len(h) == 512
    stored = int(h[148:154], 8)
    assert h[154:156] == b"\0 "
    assert stored == sum(h[:148]) + 8 * 32 + sum(h[156:])


_NAMES = st.text(st.characters(min_codepoint=1, max_codepoint=0x2FF), max_size=110)
_SMALL = st.sampled_from([0, 1, 0o644, 0o7777, (1 << 21) - 1, 1 << 21, 1 << 30])
_LARGE = st.sampled_from([0, 1, 1796022679, (1 << 33) - 1, 1 << 33, 1 << 40])


@settings(max_examples=400, deadline=None)
@given(
    name=_NAMES,
    link=_NAMES,
    typeflag=st.sampled_from([b"0", b"1", b"2", b"3", b"5", b"6"]),
    mode=_SMALL,
    uid=_SMALL,
    gid=_SMALL,
    size=_LARGE,
    mtime=_LARGE,
    dev=_SMALL,
)
def test_the_one_step_header_is_the_field_by_field_one(name, link, typeflag, mode, uid, gid, size, mtime, dev) -> None:
    """encode_header's short path (ASCII names, numbers that fit) gives Go's bytes, as the long one."""
    e = archive.TarEntry(name or "x", typeflag, mode, uid, gid, size, mtime, link, dev, dev)
    raw_name, raw_link = os.fsencode(e.name), os.fsencode(e.linkname)
    assert encode_header(e) == archive._encode_header(e, raw_name, raw_link)


def test_the_one_step_header_covers_ordinary_files() -> None:
    e = archive.TarEntry("d012/f01234", archive.TYPE_REG, 0o644, 0, 0, 3000, 1796022679)
    assert archive._plain_ustar(e, b"d012/f01234", b"") == archive._encode_header(e, b"d012/f01234", b"")


_TARINFO_FIELDS = (
    "name", "mode", "uid", "gid", "size", "mtime", "chksum", "type", "linkname", "uname", "gname",
    "devmajor", "devminor", "offset", "offset_data", "sparse", "pax_headers",
)  # fmt: skip


def _parsed(cls: type[tarfile.TarInfo], buf: bytes) -> tuple[object, ...] | str:
    """What a header parser makes of a header: its fields, or the error's type."""
    try:
        info = cls.frombuf(buf, "utf-8", "surrogateescape")
    except Exception as exc:  # every refusal tarfile has
        return type(exc).__name__
    return tuple(getattr(info, f) for f in _TARINFO_FIELDS) + (getattr(info, "_sparse_structs", None),)


def _headers() -> st.SearchStrategy[bytes]:
    """Headers Go's writer writes (ours), with some bytes overwritten (a checksum fixed or not)."""
    entries = st.builds(
        archive.TarEntry,
        name=_NAMES.map(lambda n: n or "x"),
        typeflag=st.sampled_from([b"0", b"1", b"2", b"3", b"4", b"5", b"6", b"7", b"x", b"g", b"L", b"S", b"\0"]),
        mode=_SMALL,
        uid=_SMALL,
        gid=_SMALL,
        size=_LARGE,
        mtime=_LARGE,
        linkname=_NAMES,
    )
    edits = st.lists(st.tuples(st.integers(0, 511), st.binary(min_size=1, max_size=12)), max_size=3)

    def build(e: archive.TarEntry, changes: list[tuple[int, bytes]], fix_checksum: bool) -> bytes:
        block = bytearray(encode_header(e)[-512:])  # the entry's own block (after any PAX one)
        for at, data in changes:
            block[at : at + len(data)] = data
            del block[512:]
        if fix_checksum:
            block[148:156] = b"%06o\0 " % (sum(block[:148]) + 256 + sum(block[156:]))
        return bytes(block)

    return st.builds(build, entries, edits, st.booleans())


@settings(max_examples=300, deadline=None)
@given(buf=_headers())
def test_the_quick_header_parser_reads_as_tarfile_reads(buf: bytes) -> None:
    """BoundedTarInfo.frombuf gives tarfile's own result for any header: the quick parser for
    the usual one, tarfile's for the rest (and tarfile's refusals)."""
    assert _parsed(archive.BoundedTarInfo, buf) == _parsed(tarfile.TarInfo, buf)


def test_the_quick_header_parser_takes_the_usual_header() -> None:
    e = archive.TarEntry("d012/f01234", archive.TYPE_REG, 0o644, 0, 0, 3000, 1796022679)
    assert archive._plain_frombuf(archive.BoundedTarInfo, encode_header(e), "utf-8", "surrogateescape") is not None
    long = archive.TarEntry("d" * 50 + "/" + "x" * 80 + "/", archive.TYPE_DIR, 0o755)  # a ustar prefix
    parsed = archive._plain_frombuf(archive.BoundedTarInfo, encode_header(long), "utf-8", "surrogateescape")
    assert parsed is not None and parsed.name == long.name.rstrip("/")


@needs_root
def test_overlay_whiteouts_and_opaque_dirs_are_written_as_oci_files(tmp_path: Path) -> None:
    d = tmp_path / "d"
    (d / "opq").mkdir(parents=True)
    (d / "opq" / "kept").write_text("k")
    os.setxattr(d / "opq", "trusted.overlay.opaque", b"y")
    os.mknod(d / "gone", stat.S_IFCHR | 0o644, os.makedev(0, 0))
    os.mknod(d / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    touch_all(d)
    with tarfile.open(fileobj=io.BytesIO(tar_bytes(d))) as tf:
        members = {m.name: m for m in tf}
    assert list(members) == [".wh.gone", "null", "opq", "opq/.wh..wh..opq", "opq/kept"]
    wh = members[".wh.gone"]
    assert wh.isreg() and wh.size == 0 and wh.mode == 0o600
    assert members["null"].ischr() and (members["null"].devmajor, members["null"].devminor) == (1, 3)
    opq = members["opq/.wh..wh..opq"]
    assert opq.isreg() and opq.mtime == 0 and opq.mode == 0o755
    assert not any("overlay" in k for k in members["opq"].pax_headers)


def test_aufs_whiteout_files_are_kept_and_aufs_metadata_dropped(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    (d / ".wh.gone").write_text("")
    (d / ".wh..wh.plnk").mkdir()
    (d / "x").mkdir()
    (d / "x" / ".wh..wh..opq").write_text("")
    with tarfile.open(fileobj=io.BytesIO(tar_bytes(d))) as tf:
        assert tf.getnames() == [".wh.gone", "x", "x/.wh..wh..opq"]


def test_sockets_are_left_out(tmp_path: Path) -> None:
    import socket

    d = tmp_path / "d"
    d.mkdir()
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(d / "sock"))
    try:
        assert tar_bytes(d) == b"\0" * 1024
    finally:
        s.close()


# ---- applying ----------------------------------------------------------------------------


@needs_root
def test_apply_round_trip_gives_the_same_diff_id(tmp_path: Path) -> None:
    d = tmp_path / "d"
    (d / "etc").mkdir(parents=True)
    (d / "etc" / "hosts").write_text("127.0.0.1 localhost\n")
    os.link(d / "etc" / "hosts", d / "etc" / "hosts2")
    os.symlink("/proc/mounts", d / "etc" / "mtab")
    os.chmod(d / "etc", 0o750)
    os.chown(d / "etc" / "hosts", 1234, 5678)
    os.setxattr(d / "etc" / "hosts", "user.k", b"v")
    os.mknod(d / "wh", stat.S_IFCHR | 0o600, os.makedev(0, 0))
    (d / "opq").mkdir()
    os.setxattr(d / "opq", "trusted.overlay.opaque", b"y")
    touch_all(d)
    src = tar_bytes(d)
    res = apply_layer_tar(io.BytesIO(src), tmp_path / "out", "overlay")
    assert res.diff_id == "sha256:" + hashlib.sha256(src).hexdigest()
    assert res.size == len("127.0.0.1 localhost\n")
    out = tmp_path / "out"
    assert write_layer_tar(out).diff_id == res.diff_id
    st = os.lstat(out / "wh")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert os.getxattr(out / "opq", "trusted.overlay.opaque") == b"y"
    assert os.stat(out / "etc" / "hosts").st_ino == os.stat(out / "etc" / "hosts2").st_ino
    assert (os.stat(out / "etc" / "hosts").st_uid, os.stat(out / "etc" / "hosts").st_gid) == (1234, 5678)
    assert os.readlink(out / "etc" / "mtab") == "/proc/mounts"
    assert stat.S_IMODE(os.stat(out / "etc").st_mode) == 0o750
    assert int(os.stat(out / "etc").st_mtime) == 1600000000
    # The headers digest says so without reading data: the same for both trees, from the write too.
    assert archive.headers_digest(out) == archive.headers_digest(d) == write_layer_tar(d).headers
    os.utime(out / "etc" / "hosts", (1, 1))
    assert archive.headers_digest(out) != archive.headers_digest(d)
    # ... and a size known from the headers alone.
    assert archive.layer_tar_size(d) == len(src)


def test_apply_aufs_encoding_keeps_whiteout_files(tmp_path: Path) -> None:
    d = tmp_path / "d"
    (d / "x").mkdir(parents=True)
    (d / ".wh.gone").write_text("")
    (d / "x" / ".wh..wh..opq").write_text("")
    apply_layer_tar(io.BytesIO(tar_bytes(d)), tmp_path / "out", "aufs")
    assert (tmp_path / "out" / ".wh.gone").is_file()
    assert (tmp_path / "out" / "x" / ".wh..wh..opq").is_file()


@needs_root
def test_apply_overlay_encoding_converts_oci_whiteouts(tmp_path: Path) -> None:
    d = tmp_path / "d"
    (d / "x").mkdir(parents=True)
    (d / ".wh.gone").write_text("")
    (d / "x" / ".wh..wh..opq").write_text("")
    apply_layer_tar(io.BytesIO(tar_bytes(d)), tmp_path / "out", "overlay")
    out = tmp_path / "out"
    assert sorted(os.listdir(out)) == ["gone", "x"]
    assert os.lstat(out / "gone").st_rdev == 0 and stat.S_ISCHR(os.lstat(out / "gone").st_mode)
    assert os.getxattr(out / "x", "trusted.overlay.opaque") == b"y"
    assert os.listdir(out / "x") == []


def _evil_tar(entries: list[tuple[str, bytes, str]]) -> bytes:
    """entries: (name, typeflag, linkname); regular files get 1 byte."""
    b = io.BytesIO()
    with tarfile.open(fileobj=b, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, kind, link in entries:
            ti = tarfile.TarInfo(name)
            ti.type = kind
            ti.linkname = link
            if kind == tarfile.REGTYPE:
                ti.size = 1
                tf.addfile(ti, io.BytesIO(b"x"))
            else:
                tf.addfile(ti)
    return b.getvalue()


@pytest.mark.parametrize(
    "entries,needle",
    [
        ([("ok", tarfile.REGTYPE, ""), ("../escape", tarfile.REGTYPE, "")], "outside"),
        ([("a/../../escape", tarfile.REGTYPE, "")], "outside"),
        ([("/etc/passwd", tarfile.REGTYPE, "")], "absolute path"),
        ([("lnk", tarfile.SYMTYPE, "/tmp"), ("lnk/owned", tarfile.REGTYPE, "")], "through the symlink"),
        (
            [
                ("lnk", tarfile.SYMTYPE, "../../.."),
            ],
            "invalid symlink",
        ),
        ([("hl", tarfile.LNKTYPE, "../../etc/passwd")], "outside"),
        ([("hl", tarfile.LNKTYPE, "etc/passwd")], "invalid hardlink"),
    ],
)
def test_apply_refuses_escapes_and_leaves_nothing(tmp_path: Path, entries, needle: str) -> None:
    dest = tmp_path / "layer"
    with pytest.raises(ArchiveError) as exc:
        apply_layer_tar(io.BytesIO(_evil_tar(entries)), dest, "aufs")
    assert needle in str(exc.value)
    assert "\n" not in str(exc.value)
    assert not dest.exists()
    assert os.listdir(tmp_path) == []  # no temporary directory left behind
    assert not Path("/tmp/owned").exists()


def test_apply_rejects_garbage(tmp_path: Path) -> None:
    with pytest.raises(ArchiveError):
        apply_layer_tar(io.BytesIO(b"this is not a tar" * 100), tmp_path / "x", "aufs")
    assert not (tmp_path / "x").exists()


def test_apply_creates_missing_parents_and_sums_sizes(tmp_path: Path) -> None:
    data = _evil_tar([("a/b/c", tarfile.REGTYPE, ""), ("d", tarfile.REGTYPE, "")])
    res = apply_layer_tar(io.BytesIO(data), tmp_path / "out", "aufs")
    assert (tmp_path / "out" / "a" / "b" / "c").read_text() == "x"
    assert stat.S_IMODE(os.stat(tmp_path / "out" / "a").st_mode) == 0o755
    assert res.size == 2
    # Python's tarfile pads to 10240: the DiffID is over every byte, padding included
    assert res.diff_id == "sha256:" + hashlib.sha256(data).hexdigest()


def test_a_later_entry_replaces_an_earlier_one_of_the_same_name(tmp_path: Path) -> None:
    """As tar -x and moby's applier: what holds the name goes (a folder with what it holds),
    except a folder for a folder, which keeps its contents."""
    b = io.BytesIO()
    with tarfile.open(fileobj=b, mode="w", format=tarfile.PAX_FORMAT) as tf:

        def add(name: str, kind: bytes, data: bytes = b"", link: str = "") -> None:
            ti = tarfile.TarInfo(name)
            ti.type, ti.linkname, ti.size, ti.mode = kind, link, len(data), 0o640
            tf.addfile(ti, io.BytesIO(data) if data else None)

        add("f", tarfile.REGTYPE, b"first")
        add("f", tarfile.REGTYPE, b"second")
        add("d", tarfile.DIRTYPE)
        add("d/kept", tarfile.REGTYPE, b"k")
        add("d", tarfile.DIRTYPE)  # a folder for a folder: d/kept stays
        add("x", tarfile.DIRTYPE)
        add("x/gone", tarfile.REGTYPE, b"g")
        add("x", tarfile.REGTYPE, b"now a file")  # the folder and what it holds go
        add("s", tarfile.SYMTYPE, link="f")
        add("s", tarfile.REGTYPE, b"no longer a link")
        add("h", tarfile.REGTYPE, b"old")
        add("h", tarfile.LNKTYPE, link="f")
        add("y", tarfile.REGTYPE, b"y")
        add("y", tarfile.DIRTYPE)
    out = tmp_path / "out"
    apply_layer_tar(io.BytesIO(b.getvalue()), out, "aufs")
    assert (out / "f").read_bytes() == b"second"
    assert (out / "d" / "kept").read_bytes() == b"k"
    assert (out / "x").read_bytes() == b"now a file"
    assert not (out / "s").is_symlink() and (out / "s").read_bytes() == b"no longer a link"
    assert os.stat(out / "h").st_ino == os.stat(out / "f").st_ino
    assert (out / "y").is_dir()
    assert stat.S_IMODE(os.stat(out / "x").st_mode) == 0o640


@pytest.mark.parametrize("cut", [512 + 100, 512 + 300, 512 + 511])
def test_a_small_file_cut_short_is_a_broken_tar(tmp_path: Path, cut: int) -> None:
    """Data (512 + 300: the header and 300 of its 400 bytes) or padding (the rest) missing."""
    b = io.BytesIO()
    with tarfile.open(fileobj=b, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        ti = tarfile.TarInfo("f")
        ti.size = 400
        tf.addfile(ti, io.BytesIO(b"z" * 400))
    dest = tmp_path / "out"
    with pytest.raises(ArchiveError, match="unexpected end of data"):
        apply_layer_tar(io.BytesIO(b.getvalue()[:cut]), dest, "aufs")
    assert not dest.exists()


def test_an_ordinary_user_stores_the_kernels_marks_where_the_kernel_lets_them() -> None:
    """Since Linux 5.8 anyone may make the 0/0 whiteout device: a user's store then uses the
    kernel's encoding (0/0 and user.overlay.opaque), as the kernel's userxattr mode does; where
    mknod is refused it falls back to `.wh.` files."""
    require_root("switches to uid 1000 in a child")
    require_tool("setpriv")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: become uid 1000, probe, report
        try:
            os.close(read)
            os.setgroups([])
            os.setgid(1000)
            os.setuid(1000)
            os.write(write, archive.default_encoding.__wrapped__().encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as f:
        found = f.read()
    os.waitpid(pid, 0)
    import tempfile

    with tempfile.TemporaryDirectory() as probe:  # in /tmp: uid 1000 can reach it
        os.chown(probe, 1000, 1000)
        can = subprocess.run(
            ["setpriv", "--reuid=1000", "--regid=1000", "--clear-groups", "mknod", f"{probe}/wh", "c", "0", "0"],
            capture_output=True,
        )
    assert found == ("overlay" if can.returncode == 0 else "aufs"), can.stderr
