"""The low-level FUSE adapter's pieces: the ctypes structs against libfuse's headers, the inode
table, and the adapter's replies (driven in-process, with a recording stand-in for libfuse)."""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from unionfs import lowlevel as ll
from unionfs.inode_table import ROOT_ID, InodeTable
from unionfs.union import Union

from .test_dirent import LIB, parse_dirents, parse_plus

HEADER = Path("/usr/include/fuse3/fuse_lowlevel.h")

C_LAYOUT = r"""
#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/statvfs.h>
#define F(t, m) printf(#t "." #m " %zu\n", offsetof(struct t, m))
#define S(t) printf(#t " %zu\n", sizeof(struct t))
int main(void) {
    S(stat); F(stat, st_mode); F(stat, st_nlink); F(stat, st_size); F(stat, st_blocks); F(stat, st_mtim);
    S(statvfs); F(statvfs, f_files); F(statvfs, f_namemax);
    S(fuse_file_info); F(fuse_file_info, fh); F(fuse_file_info, poll_events);
    S(fuse_entry_param); F(fuse_entry_param, attr); F(fuse_entry_param, entry_timeout);
    S(fuse_conn_info); F(fuse_conn_info, want);
    S(fuse_ctx); S(fuse_forget_data);
    S(fuse_buf); F(fuse_buf, flags); F(fuse_buf, mem); F(fuse_buf, fd); F(fuse_buf, pos);
    S(fuse_bufvec); F(fuse_bufvec, off); F(fuse_bufvec, buf);
    printf("FUSE_BUF_IS_FD %d\nFUSE_BUF_FD_SEEK %d\nFUSE_CAP_SPLICE_WRITE %d\n",
           FUSE_BUF_IS_FD, FUSE_BUF_FD_SEEK, FUSE_CAP_SPLICE_WRITE);
    printf("FUSE_CAP_NO_OPENDIR_SUPPORT %d\n", FUSE_CAP_NO_OPENDIR_SUPPORT);
    S(fuse_lowlevel_ops); F(fuse_lowlevel_ops, lookup); F(fuse_lowlevel_ops, create);
    F(fuse_lowlevel_ops, forget_multi); F(fuse_lowlevel_ops, readdirplus); F(fuse_lowlevel_ops, lseek);
    struct fuse_file_info fi = {0};
    fi.keep_cache = 1; fi.cache_readdir = 1; fi.direct_io = 1;
    printf("bits %u\n", *(unsigned *)((char *)&fi + sizeof(int)));
    return 0;
}
"""


def _ours() -> dict[str, int]:
    fi = ll.FileInfo()
    fi.keep_cache = fi.cache_readdir = fi.direct_io = 1
    return {
        "stat": ctypes.sizeof(ll.CStat),
        "stat.st_mode": ll.CStat.st_mode.offset,
        "stat.st_nlink": ll.CStat.st_nlink.offset,
        "stat.st_size": ll.CStat.st_size.offset,
        "stat.st_blocks": ll.CStat.st_blocks.offset,
        "stat.st_mtim": ll.CStat.st_mtim.offset,
        "statvfs": ctypes.sizeof(ll.CStatvfs),
        "statvfs.f_files": ll.CStatvfs.f_files.offset,
        "statvfs.f_namemax": ll.CStatvfs.f_namemax.offset,
        "fuse_file_info": ctypes.sizeof(ll.FileInfo),
        "fuse_file_info.fh": ll.FileInfo.fh.offset,
        "fuse_file_info.poll_events": ll.FileInfo.poll_events.offset,
        "fuse_entry_param": ctypes.sizeof(ll.EntryParam),
        "fuse_entry_param.attr": ll.EntryParam.attr.offset,
        "fuse_entry_param.entry_timeout": ll.EntryParam.entry_timeout.offset,
        "fuse_conn_info": ctypes.sizeof(ll.ConnInfo),
        "fuse_conn_info.want": ll.ConnInfo.want.offset,
        "fuse_ctx": ctypes.sizeof(ll.Ctx),
        "fuse_forget_data": ctypes.sizeof(ll.ForgetData),
        "fuse_buf": ctypes.sizeof(ll.FuseBuf),
        "fuse_buf.flags": ll.FuseBuf.flags.offset,
        "fuse_buf.mem": ll.FuseBuf.mem.offset,
        "fuse_buf.fd": ll.FuseBuf.fd.offset,
        "fuse_buf.pos": ll.FuseBuf.pos.offset,
        "fuse_bufvec": ctypes.sizeof(ll.BufVec),
        "fuse_bufvec.off": ll.BufVec.off.offset,
        "fuse_bufvec.buf": ll.BufVec.buf.offset,
        "FUSE_BUF_IS_FD": ll.BUF_IS_FD,
        "FUSE_BUF_FD_SEEK": ll.BUF_FD_SEEK,
        "FUSE_CAP_SPLICE_WRITE": ll.CAP_SPLICE_WRITE,
        "FUSE_CAP_NO_OPENDIR_SUPPORT": ll.CAP_NO_OPENDIR_SUPPORT,
        "fuse_lowlevel_ops": ctypes.sizeof(ll.LowLevelOps),
        "fuse_lowlevel_ops.lookup": ll.LowLevelOps.lookup.offset,
        "fuse_lowlevel_ops.create": ll.LowLevelOps.create.offset,
        "fuse_lowlevel_ops.forget_multi": ll.LowLevelOps.forget_multi.offset,
        "fuse_lowlevel_ops.readdirplus": ll.LowLevelOps.readdirplus.offset,
        "fuse_lowlevel_ops.lseek": ll.LowLevelOps.lseek.offset,
        "bits": int.from_bytes(bytes(fi)[4:8], "little"),
    }


def test_the_structs_match_libfuses_headers(tmp_path):
    """The binding's layouts are ABI: compare each size and offset with what the C compiler
    makes of libfuse's own headers (scripts/setup-system.sh installs libfuse3-dev)."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None or not HEADER.exists():
        pytest.skip("needs a C compiler and libfuse3-dev")
    (tmp_path / "layout.c").write_text(C_LAYOUT)
    subprocess.run([cc, "-I/usr/include/fuse3", "-o", str(tmp_path / "layout"), str(tmp_path / "layout.c")], check=True)
    out = subprocess.run([str(tmp_path / "layout")], capture_output=True, text=True, check=True).stdout
    theirs = {key: int(value) for key, value in (line.split() for line in out.splitlines())}
    assert _ours() == theirs


def test_the_options_libfuse_must_not_see_are_the_adapters_work():
    from unionfs.ll_ops import caching_of, session_options

    options = {
        "subtype": "layerfs",
        "fsname": "lowerdir=/l",
        "allow_other": True,
        "kernel_cache": True,
        "entry_timeout": 30.0,
        "attr_timeout": 40.0,
        "negative_timeout": 50.0,
        "use_ino": True,
        "umask": "022",
        "uid": "7",
        "nothreads": True,
        "debug": True,
    }
    assert session_options(options) == ["subtype=layerfs", "fsname=lowerdir=/l", "allow_other"]
    c = caching_of(options)
    assert (c.entry, c.attr, c.negative, c.keep_pages, c.umask, c.uid, c.gid) == (30.0, 40.0, 50.0, True, 0o22, 7, None)
    assert ll.option_argv(session_options(options), True) == [
        b"layerfs",
        b"-o",
        b"subtype=layerfs,fsname=lowerdir=/l,allow_other",
        b"-d",
    ]


# -- the inode table -------------------------------------------------------------------------
def test_one_node_per_key_counted_per_lookup_and_forgotten_at_zero():
    t = InodeTable()
    a = t.bind("/a", 100)
    assert t.bind("/a", 100) == a and t.nodes[a].nlookup == 2
    b = t.bind("/b", 100)  # another name of the same object: the same node
    assert b == a and t.nodes[a].paths == ["/a", "/b"]
    c = t.bind("/c", 200)
    assert c not in (a, ROOT_ID) and t.path(c) == "/c"
    t.forget(a, 2)
    assert a in t.nodes
    t.forget(a, 1)
    assert a not in t.nodes and t.node_at("/a") is None and t.node_at("/b") is None
    assert t.bind("/a", 100) != a  # node ids are never reused
    t.forget(ROOT_ID, 5)
    assert t.path(ROOT_ID) == "/"


def test_a_removed_name_gives_its_number_to_a_new_node():
    t = InodeTable()
    a = t.bind("/a", 100)
    t.removed("/a")
    with pytest.raises(FileNotFoundError):
        t.path(a)  # unlinked, maybe still open
    assert t.bind("/new", 100) != a  # the inode number reused by another file
    t.forget(a, 1)
    assert a not in t.nodes


def test_renames_move_every_name_below():
    t = InodeTable()
    d = t.bind("/d", 1)
    f = t.bind("/d/sub/f", 2)
    g = t.bind("/g", 3)
    t.bind("/dx", 4)
    t.renamed("/d", "/e")
    assert (t.path(d), t.path(f), t.path(g)) == ("/e", "/e/sub/f", "/g")
    assert t.node_at("/dx") is not None and t.node_at("/d/sub/f") is None
    t.renamed("/g", "/e/sub/f")  # over an existing name: that node loses it
    assert t.path(g) == "/e/sub/f"
    with pytest.raises(FileNotFoundError):
        t.path(f)
    t.exchanged("/e", "/dx")
    assert t.path(d) == "/dx" and t.path(g) == "/dx/sub/f" and t.node_at("/e") is not None
    assert t.child(d, "x") == "/dx/x" and t.child(ROOT_ID, "x") == "/x"


def test_a_name_that_shows_another_identity_keeps_its_node():
    """A copy-up gives a lower hard link its own number: the kernel's inode for that name stays."""
    t = InodeTable()
    n = t.bind("/one", ("path", "/one"))
    assert t.bind("/one", 555) == n and t.nodes[n].key == 555
    t.link(n, "/three", 555)
    assert t.bind("/three", 555) == n and sorted(t.nodes[n].paths) == ["/one", "/three"]


# -- the adapter, in-process ------------------------------------------------------------------
class Recorder:
    """Stands in for libfuse: records each reply instead of sending it."""

    def __init__(self) -> None:
        self.replies: list[tuple[str, Any]] = []

    def reply_entry(self, req: int, e: Any) -> int:
        ent = e._obj
        self.replies.append(("entry", (ent.ino, ent.attr.st_ino, ent.attr.st_nlink)))
        return 0

    def reply_err(self, req: int, err: int) -> int:
        self.replies.append(("err", err))
        return 0

    def reply_none(self, req: int) -> None:
        self.replies.append(("none", None))

    def reply_attr(self, req: int, attr: Any, timeout: float) -> int:
        self.replies.append(("attr", attr._obj.st_ino))
        return 0

    def reply_open(self, req: int, fi: Any) -> int:
        info = fi.contents
        self.replies.append(("open", (info.fh, info.keep_cache, info.cache_readdir)))
        return 0

    def reply_buf(self, req: int, buf: Any, size: int) -> int:
        self.data = bytes(buf[:size])
        self.replies.append(("buf", size))
        if isinstance(buf, bytes):
            self.data = buf[:size]
        return 0

    def reply_data(self, req: int, bufv: Any, flags: int) -> int:
        """As libfuse does with a descriptor's buffer: read `size` bytes at `pos` (spliced)."""
        vec = bufv._obj
        buf = vec.buf[0]
        assert (vec.count, vec.idx, vec.off, buf.flags) == (1, 0, 0, ll.BUF_IS_FD | ll.BUF_FD_SEEK)
        self.data = os.pread(buf.fd, buf.size, buf.pos)
        self.replies.append(("data", len(self.data)))
        return 0

    def direntries_plus(self) -> list[tuple[str, int]]:
        """(name, node id) of each record of the last READDIRPLUS reply."""
        return [(name.decode(), nodeid) for nodeid, _, _, _, name in parse_plus(self.data)]

    def reply_create(self, req: int, e: Any, fi: Any) -> int:
        return self.reply_entry(req, e)

    def reply_readlink(self, req: int, link: bytes) -> int:
        self.replies.append(("readlink", link))
        return 0

    def reply_write(self, req: int, count: int) -> int:
        self.replies.append(("write", count))
        return 0

    reply_statfs = reply_xattr = reply_write

    def req_ctx(self, req: int) -> Any:
        return ctypes.pointer(ll.Ctx(0, 0, 1, 0o22))

    def last(self) -> tuple[str, Any]:
        return self.replies[-1]


def _adapter(tmp_path: Path, writable: bool = True) -> tuple[Any, Recorder, Path, Path]:
    from unionfs.ll_ops import Caching, LowLevelOps

    lower, upper, work = tmp_path / "lower", tmp_path / "upper", tmp_path / "work"
    for d in (lower, upper, work):
        d.mkdir(parents=True)
    (lower / "one").write_text("one\n")
    os.link(lower / "one", lower / "two")
    (lower / "d").mkdir()
    for i in range(5):
        (lower / "d" / f"f{i}").write_text("f\n")
    options = f"lowerdir={lower},upperdir={upper},workdir={work}" if writable else f"lowerdir={lower}"
    rec = Recorder()
    ops = LowLevelOps(Union.from_options(options), Caching(), lib=rec)  # type: ignore[arg-type]
    return ops, rec, lower, upper


def _lookup(ops: Any, rec: Recorder, parent: int, name: str) -> tuple[int, int, int]:
    ops.lookup(1, parent, os.fsencode(name))
    kind, value = rec.last()
    assert kind == "entry"
    return value


def test_hard_links_made_through_the_union_share_one_node(tmp_path):
    ops, rec, _, upper = _adapter(tmp_path)
    (upper / "h1").write_text("h\n")
    os.link(upper / "h1", upper / "h2")
    n1, ino1, nlink = _lookup(ops, rec, ROOT_ID, "h1")
    n2, ino2, _ = _lookup(ops, rec, ROOT_ID, "h2")
    assert n1 == n2 and ino1 == ino2 and nlink == 2
    ops.link(1, n1, ROOT_ID, b"h3")
    assert rec.last() == ("entry", (n1, ino1, 3))
    assert ops.table.nodes[n1].nlookup == 3
    ops.unlink(1, ROOT_ID, b"h1")
    assert rec.last() == ("err", 0) and sorted(ops.table.nodes[n1].paths) == ["/h2", "/h3"]
    ops.getattr(1, n1, None)
    assert rec.last() == ("attr", ino1)
    ops._forget(1, n1, 3)
    assert n1 not in ops.table.nodes and rec.last() == ("none", None)


def test_lower_hard_links_get_a_node_per_name_until_a_copy_up_would_break_them(tmp_path):
    ops, rec, _, _ = _adapter(tmp_path)
    one, ino_one, _ = _lookup(ops, rec, ROOT_ID, "one")
    two, ino_two, _ = _lookup(ops, rec, ROOT_ID, "two")
    assert one != two and ino_one == ino_two  # one number, two objects-to-be (ovl_hash_bylower)
    ro, rec_ro, _, _ = _adapter(tmp_path / "ro", writable=False)
    assert _lookup(ro, rec_ro, ROOT_ID, "one")[0] == _lookup(ro, rec_ro, ROOT_ID, "two")[0]


def test_missing_names_are_cached_as_absent(tmp_path):
    ops, rec, _, _ = _adapter(tmp_path)
    assert _lookup(ops, rec, ROOT_ID, "nothing") == (0, 0, 0)
    one, _, _ = _lookup(ops, rec, ROOT_ID, "one")
    call = ops.callbacks()["lookup"]
    call(1, one, b"x")
    assert rec.last() == ("err", errno.ENOTDIR)  # not absent: an error, never kept
    ops.caching = type(ops.caching)(negative=0.0)  # no negative entries: the lookup fails
    call(1, ROOT_ID, b"nothing")
    assert rec.last() == ("err", errno.ENOENT)
    d = ops.table.bind("/d", ("path", "/d"))
    ops.table.nodes[d].paths = []  # a directory node without a name any more (removed meanwhile)
    call(1, d, b"f0")
    assert rec.last() == ("err", errno.ENOENT)


def test_directories_are_opened_for_a_cached_listing_and_listed_with_nodes(tmp_path):
    ops, rec, _, _ = _adapter(tmp_path)
    d, _, _ = _lookup(ops, rec, ROOT_ID, "d")
    fi = ll.FileInfo()
    ops.opendir(1, d, ctypes.pointer(fi))
    kind, (fh, keep, cache) = rec.last()
    assert kind == "open" and (keep, cache) == (1, 1)
    rec.replies.clear()
    ops.readdirplus(1, d, 160 * 4 + 100, 0, ctypes.pointer(fi))  # room for 4 of 7 entries
    entries = rec.direntries_plus()
    assert [name for name, _ in entries] == [".", "..", "f0", "f1"] and rec.last() == ("buf", 160 * 4)
    assert [nid for _, nid in entries[:2]] == [0, 0]  # no node (and no lookup) for . and ..
    f0 = entries[2][1]
    assert ops.table.path(f0) == "/d/f0" and ops.table.nodes[f0].nlookup == 1
    assert ops.table.node_at("/d/f2") is None  # did not fit: not worked out, not counted
    rec.replies.clear()
    ops.readdirplus(1, d, 160 * 10, 4, ctypes.pointer(fi))
    assert [name for name, _ in rec.direntries_plus()] == ["f2", "f3", "f4"]
    assert _lookup(ops, rec, d, "f0")[0] == f0 and ops.table.nodes[f0].nlookup == 2


def test_a_listing_without_attributes_gives_names_and_offsets_only(tmp_path):
    """READDIR: d_ino unknown, d_type 0 (as libfuse's high-level API gave them), each entry's
    offset the next one's index; a page holds what fits, the next starts at its offset, and
    offset 0 lists again (rewinddir)."""
    ops, rec, lower, _ = _adapter(tmp_path)
    d, _, _ = _lookup(ops, rec, ROOT_ID, "d")
    fi = ll.FileInfo()
    ops.opendir(1, d, ctypes.pointer(fi))
    ops.readdir(1, d, 32 * 3 + 31, 0, ctypes.pointer(fi))  # room for 3 records of 32 bytes
    first = parse_dirents(rec.data)
    assert first == [(0xFFFFFFFF, 1, 0, b"."), (0xFFFFFFFF, 2, 0, b".."), (0xFFFFFFFF, 3, 0, b"f0")]
    ops.readdir(1, d, 4096, 3, ctypes.pointer(fi))
    assert [(off, name) for _, off, _, name in parse_dirents(rec.data)] == [
        (4, b"f1"),
        (5, b"f2"),
        (6, b"f3"),
        (7, b"f4"),
    ]
    ops.readdir(1, d, 4096, 7, ctypes.pointer(fi))
    assert rec.data == b""  # the end
    taken = ops.dirs.get(fi.fh).names
    ops.readdir(1, d, 4096, 0, ctypes.pointer(fi))
    assert ops.dirs.get(fi.fh).names is not taken  # taken again
    stat = ll.CStat()
    stat.st_ino = 0xFFFFFFFF
    records = [(os.fsencode(n), ctypes.byref(stat)) for n in [".", "..", "f0", "f1", "f2", "f3", "f4"]]
    buf = ctypes.create_string_buffer(4096)
    used, base = 0, ctypes.addressof(buf)
    for i, (name, arg) in enumerate(records):
        used += LIB.add_direntry(None, base + used, 4096 - used, name, arg, i + 1)
    assert rec.data == buf.raw[:used]  # what the handler sent when it called libfuse per entry


def test_a_listing_with_attributes_gives_what_a_lookup_gives(tmp_path):
    """READDIRPLUS: each entry's record is what libfuse makes of the LOOKUP reply for the same
    name (node, attributes, timeouts), and counts a lookup; ".", ".." and a lower hard link
    (a copy-up may part its names) come without a node, with their type."""
    from unionfs.ll_ops import Replies

    ops, rec, lower, _ = _adapter(tmp_path)
    (lower / "d" / "sub").mkdir()
    (lower / "d" / "ln").symlink_to("f0")
    d, _, _ = _lookup(ops, rec, ROOT_ID, "d")
    fi = ll.FileInfo()
    ops.opendir(1, d, ctypes.pointer(fi))
    ops.readdirplus(1, d, 4096, 0, ctypes.pointer(fi))
    listed = parse_plus(rec.data)
    assert [name for *_, name in listed] == [b".", b"..", b"f0", b"f1", b"f2", b"f3", b"f4", b"ln", b"sub"]
    page = rec.data
    ops.readdirplus(1, d, 4096, len(listed), ctypes.pointer(fi))
    assert rec.last() == ("buf", 0)  # the end
    got: list[bytes] = []
    rec.reply_entry = lambda req, e: got.append(bytes(e._obj)) or 0  # type: ignore[method-assign]
    ops.r = Replies(rec, ops._flush)
    for nodeid, entry_out, off, kind, name in listed[2:]:
        ops.lookup(1, d, name)
        e = ll.EntryParam.from_buffer_copy(got[-1])
        assert e.ino == nodeid and ops.table.nodes[nodeid].nlookup == 2
        buf = ctypes.create_string_buffer(512)
        used = LIB.add_direntry_plus(None, buf, 512, name, ctypes.byref(e), off)
        assert entry_out + page[page.index(entry_out) + 128 :][: used - 128] == buf.raw[:used]
        assert kind == {b"ln": 0o12, b"sub": 0o4}.get(name, 0o10)
    assert [(nodeid, kind) for nodeid, _, _, kind, _ in listed[:2]] == [(0, 0), (0, 0)]
    ops.opendir(1, ROOT_ID, ctypes.pointer(fi))
    ops.readdirplus(1, ROOT_ID, 4096, 0, ctypes.pointer(fi))
    links = {name: (nodeid, kind) for nodeid, _, _, kind, name in parse_plus(rec.data)}
    assert links[b"one"] == links[b"two"] == (0, 0o10)  # no node: a LOOKUP will say which


def _unopened(tmp_path: Path) -> tuple[Any, Recorder, Any, Path]:
    """An adapter where the kernel opens directories itself: READDIRs come with fh 0."""
    ops, rec, _, upper = _adapter(tmp_path)
    ops.no_opendir = True
    return ops, rec, ctypes.pointer(ll.FileInfo()), upper


def _read_all(ops: Any, rec: Recorder, ino: int, fi: Any, offset: int = 0, room: int = 4096) -> list[tuple[int, bytes]]:
    """(offset, name) of every entry from `offset` on, a READDIR of `room` bytes at a time."""
    out: list[tuple[int, bytes]] = []
    while True:
        ops.readdir(1, ino, room, offset, fi)
        page = [(off, name) for _, off, _, name in parse_dirents(rec.data)]
        if not page:
            return out
        out += page
        offset = page[-1][0]


def test_where_the_kernel_opens_directories_opendir_is_declined_and_offsets_find_the_listing(tmp_path):
    """ENOSYS to OPENDIR (the kernel then opens and releases directories itself); READDIR comes
    with fh 0 and each page of a read is served from the listing its first page was, by the
    offsets: a reader that removes what it has read (rm -rf) skips nothing; offset 0
    (rewinddir) lists again, with the changes."""
    from unionfs.dir_cookies import SLOTS, decode

    ops, rec, fi, upper = _unopened(tmp_path)
    d, _, _ = _lookup(ops, rec, ROOT_ID, "d")
    ops.opendir(1, d, fi)
    assert rec.last() == ("err", errno.ENOSYS) and not ops.dirs.items
    ops.readdir(1, d, 32 * 4 + 31, 0, fi)  # room for 4 records of 32 bytes
    first = [(off, name) for _, off, _, name in parse_dirents(rec.data)]
    assert [name for _, name in first] == [b".", b"..", b"f0", b"f1"]
    slot = decode(first[0][0])[0]
    assert [decode(off) for off, _ in first] == [(slot, i) for i in (1, 2, 3, 4)]
    assert [b - a for (a, _), (b, _) in zip(first, first[1:], strict=False)] == [SLOTS] * 3
    for name in (b"f0", b"f1"):
        ops.callbacks()["unlink"](1, d, name)
    ops.create(1, d, b"new", 0o644, fi)
    ops.release(1, rec.last()[1][0], fi)
    fi.contents.fh = 0
    rest = _read_all(ops, rec, d, fi, first[-1][0], 32 * 2 + 31)  # two entries a page
    assert [name for _, name in rest] == [b"f2", b"f3", b"f4"]  # nothing skipped, nothing twice
    assert [decode(off) for off, _ in rest] == [(slot, i) for i in (5, 6, 7)]
    again = _read_all(ops, rec, d, fi)
    assert [name for _, name in again] == [b".", b"..", b"f2", b"f3", b"f4", b"new"]
    assert decode(again[0][0])[0] != slot  # a new listing; the first one is still there
    ops.readdirplus(1, d, 4096, first[-1][0], fi)  # READDIRPLUS goes by the same offsets
    plus_rest = [(off, name) for _, _, off, _, name in parse_plus(rec.data)]
    assert plus_rest == rest


def test_two_readers_of_one_unopened_directory_read_it_whole(tmp_path):
    ops, rec, fi, _ = _unopened(tmp_path)
    d, _, _ = _lookup(ops, rec, ROOT_ID, "d")
    offsets = [0, 0]
    seen: list[list[bytes]] = [[], []]
    ops.readdir(1, d, 32 * 2, 0, fi)
    seen[0] += [name for _, _, _, name in parse_dirents(rec.data)]
    offsets[0] = parse_dirents(rec.data)[-1][1]
    ops.callbacks()["unlink"](1, d, b"f3")  # as libfuse calls it: bracketed as a change
    for _ in range(5):  # in turns, a page each
        for who in (1, 0):
            ops.readdir(1, d, 32 * 2, offsets[who], fi)
            page = parse_dirents(rec.data)
            if page:
                seen[who] += [name for _, _, _, name in page]
                offsets[who] = page[-1][1]
    assert seen[0] == [b".", b"..", b"f0", b"f1", b"f2", b"f3", b"f4"]  # its listing: from before
    assert seen[1] == [b".", b"..", b"f0", b"f1", b"f2", b"f4"]


def test_the_adapter_reckons_entry_sizes_as_libfuse_does():
    """readdirplus works out only the entries that fit: its size of an entry must be libfuse's
    (fuse_add_direntry_plus with no buffer returns the size and writes nothing)."""
    from unionfs.ll_ops import DIRENTPLUS_HEAD

    lib = ll.Library()
    for name in (b".", b"ab", b"x" * 9, b"\xc3\xa9t\xc3\xa9", b"y" * 255):
        assert lib.add_direntry_plus(None, None, 0, name, None, 1) == DIRENTPLUS_HEAD + ((len(name) + 7) & ~7)


def test_a_packed_stat_is_the_struct_with_its_fields_set():
    """pack_stat writes struct stat's fields in one go: the same bytes as setting them."""
    out = ll.CStat()
    values = {"st_ino": 2**40 + 3, "st_mode": 0o100644, "st_nlink": 2, "st_uid": 1000, "st_gid": 100}
    values.update(st_rdev=0x801, st_size=2**33 + 5, st_blksize=4096, st_blocks=17)
    for key, value in values.items():
        setattr(out, key, value)
    for field, (sec, nsec) in zip(
        ("st_atim", "st_mtim", "st_ctim"), ((1, 2), (3, 999_999_999), (2**33, 0)), strict=True
    ):
        getattr(out, field).tv_sec, getattr(out, field).tv_nsec = sec, nsec
    entry = ll.EntryParam()
    offset = ll.EntryParam.attr.offset
    fields = [*values.values(), 1, 2, 3, 999_999_999, 2**33, 0]
    ll.pack_stat(entry, offset, *fields)
    assert bytes(entry.attr) == bytes(out)


def test_a_packed_entry_is_the_struct_with_its_fields_set():
    """pack_entry writes a whole fuse_entry_param (node, attributes, timeouts) in one go."""
    out = ll.EntryParam()
    out.ino, out.attr_timeout, out.entry_timeout = 77, 1.5, 86400.0
    a = out.attr
    a.st_ino, a.st_mode, a.st_nlink, a.st_uid, a.st_gid = 2**40 + 3, 0o100644, 2, 1000, 100
    a.st_rdev, a.st_size, a.st_blksize, a.st_blocks = 0x801, 2**33 + 5, 4096, 17
    for field, (sec, nsec) in zip(
        ("st_atim", "st_mtim", "st_ctim"), ((1, 2), (3, 999_999_999), (2**33, 0)), strict=True
    ):
        getattr(a, field).tv_sec, getattr(a, field).tv_nsec = sec, nsec
    entry = ll.EntryParam()
    entry.generation = 9  # overwritten: node ids are never reused
    ll.pack_entry(entry, 77, 2**40 + 3, 0o100644, 2, 1000, 100, 0x801, 2**33 + 5, 4096, 17,
                  1, 2, 3, 999_999_999, 2**33, 0, 1.5, 86400.0)  # fmt: skip
    assert bytes(entry) == bytes(out)


def test_an_entry_or_stat_packed_from_a_core_stat_is_the_same_struct():
    """pack_entry_of/pack_stat_of unpack the core's Stat themselves (its field order, not
    struct stat's): the bytes are those of pack_entry/pack_stat with the fields in place."""
    from unionfs.inode import Stat

    st = Stat(
        st_mode=0o100644, st_ino=2**40 + 3, st_dev=99, st_nlink=2, st_uid=1000, st_gid=100,
        st_size=2**33 + 5, st_atime_ns=1_000_000_002, st_mtime_ns=3_999_999_999,
        st_ctime_ns=2**33 * 1_000_000_000, st_rdev=0x801, st_blocks=17, st_blksize=4096,
    )  # fmt: skip
    fields = (2**40 + 3, 0o100644, 2, 1000, 100, 0x801, 2**33 + 5, 4096, 17, 1, 2, 3, 999_999_999, 2**33, 0)
    want, got = ll.EntryParam(), ll.EntryParam()
    ll.pack_entry(want, 77, *fields, 1.5, 86400.0)
    ll.pack_entry_of(got, 77, st, 1.5, 86400.0)
    assert bytes(got) == bytes(want)
    want_st, got_st = ll.CStat(), ll.CStat()
    ll.pack_stat(want_st, 0, *fields)
    ll.pack_stat_of(got_st, 0, st)
    assert bytes(got_st) == bytes(want_st) and got_st.st_mtim.tv_nsec == 999_999_999
    before = Stat(*st[:7], -1, -999_999_999, -1_500_000_000, *st[10:])  # before 1970: floor, as divmod
    ll.pack_stat_of(got_st, 0, before)
    times = [(t.tv_sec, t.tv_nsec) for t in (got_st.st_atim, got_st.st_mtim, got_st.st_ctim)]
    assert times == [(-1, 999_999_999), (-1, 1), (-2, 500_000_000)]


def test_a_name_that_is_not_utf8_is_looked_up_by_its_bytes(tmp_path):
    ops, rec, lower, _ = _adapter(tmp_path)
    (Path(os.fsdecode(bytes(lower) + b"/caf\xe9"))).write_text("x\n")
    nid, ino, _ = _lookup(ops, rec, ROOT_ID, os.fsdecode(b"caf\xe9"))
    assert ops.table.path(nid) == os.fsdecode(b"/caf\xe9") and ino == os.lstat(bytes(lower) + b"/caf\xe9").st_ino


def _entry_attr(tmp_path: Path, caching: Any) -> tuple[int, int, int, int]:
    from unionfs.ll_ops import Replies

    ops, rec, lower, _ = _adapter(tmp_path)
    ops.caching = caching
    got: list[Any] = []
    rec.reply_entry = lambda req, e: got.append(ll.CStat.from_buffer_copy(e._obj.attr)) or 0  # type: ignore[method-assign]
    ops.r = Replies(rec, ops._flush)
    ops.lookup(1, ROOT_ID, b"one")
    st = os.lstat(lower / "one")
    a = got[-1]
    assert (a.st_ino, a.st_nlink, a.st_size, a.st_mtim.tv_nsec) == (st.st_ino, 2, st.st_size, st.st_mtime_ns % 10**9)
    return a.st_mode, a.st_uid, a.st_gid, st.st_mode


def test_entries_show_the_display_options_or_the_layers_owner_and_mode(tmp_path):
    from unionfs.ll_ops import Caching

    mode, uid, gid, real_mode = _entry_attr(tmp_path / "a", Caching())
    assert (mode, uid, gid) == (real_mode, os.getuid(), os.getgid())
    mode, uid, gid, _ = _entry_attr(tmp_path / "b", Caching(uid=7, gid=8, umask=0o27))
    assert (mode, uid, gid) == (0o100750, 7, 8)
    mode, uid, gid, _ = _entry_attr(tmp_path / "c", Caching(gid=9))
    assert (mode, uid, gid) == (real_mode, os.getuid(), 9)


def test_a_copy_up_invalidates_the_parents_attributes_before_the_reply(tmp_path):
    ops, rec, _, _ = _adapter(tmp_path)
    d, _, _ = _lookup(ops, rec, ROOT_ID, "d")
    f0, _, _ = _lookup(ops, rec, d, "f0")

    class Session:
        def inval_inode(self, nid: int) -> int:
            rec.replies.append(("inval", nid))
            return 0

    ops.session = Session()
    rec.replies.clear()
    fi = ll.FileInfo()
    fi.flags = os.O_WRONLY
    ops.callbacks()["open"](1, f0, ctypes.pointer(fi))  # copies /d up: its link count and ctime change
    assert ("inval", d) in rec.replies and rec.last()[0] == "open"
    assert rec.replies.index(("inval", d)) < len(rec.replies) - 1


def _open(ops: Any, ino: int, flags: int = os.O_RDONLY) -> Any:
    fi = ll.FileInfo()
    fi.flags = flags
    ops.callbacks()["open"](1, ino, ctypes.pointer(fi))
    return fi


def test_reads_are_answered_from_the_layer_files_descriptor(tmp_path):
    """READ hands libfuse the layer file's descriptor and the offset (fuse_reply_data: it
    splices the pages to the kernel); one bigger than libfuse's pipe is read here. Either way
    the data is the file's, also after a writer copied the file up under an open reader."""
    ops, rec, _, upper = _adapter(tmp_path)
    calls = ops.callbacks()
    d, _, _ = _lookup(ops, rec, ROOT_ID, "d")
    f1, _, _ = _lookup(ops, rec, d, "f1")
    reader = _open(ops, f1)
    calls["read"](1, f1, 4096, 0, ctypes.pointer(reader))
    assert rec.last() == ("data", 2) and rec.data == b"f\n"
    calls["read"](1, f1, 10, 1, ctypes.pointer(reader))
    assert rec.last() == ("data", 1) and rec.data == b"\n"
    writer = _open(ops, f1, os.O_WRONLY)  # copies /d/f1 up: the reader follows
    calls["write"](1, f1, ctypes.cast(ctypes.c_char_p(b"up"), ctypes.c_void_p).value, 2, 0, ctypes.pointer(writer))
    assert (upper / "d" / "f1").read_bytes() == b"up"
    calls["read"](1, f1, 4096, 0, ctypes.pointer(reader))
    assert rec.last() == ("data", 2) and rec.data == b"up"
    ops._splice_max = 1  # too big for the pipe: read here, the same bytes
    calls["read"](1, f1, 4096, 0, ctypes.pointer(reader))
    assert rec.last() == ("buf", 2) and rec.data == b"up"
    calls["release"](1, f1, ctypes.pointer(reader))
    calls["read"](1, f1, 4096, 0, ctypes.pointer(reader))  # a handle no longer open
    assert rec.last() == ("err", errno.EBADF)


def test_init_asks_for_spliced_replies_and_repeats_max_read():
    """FUSE_CAP_SPLICE_WRITE (libfuse 3.14 leaves it off) and the max_read= option (libfuse
    refuses FUSE_INIT unless init repeats it): set in both inits, the core's and the
    bootstrap's (which answers FUSE_INIT for a root mount; the core's then gets None)."""
    from unionfs import bootstrap

    for capable, wanted in ((ll.CAP_SPLICE_WRITE | 1, ll.CAP_SPLICE_WRITE | 1), (1, 1)):
        conn = ll.ConnInfo()
        conn.capable, conn.want = capable, 1
        ll.init_conn(ctypes.pointer(conn), 65536)
        assert (conn.want, conn.max_read) == (wanted, 65536)
    ll.init_conn(None)
    conn = ll.ConnInfo()
    conn.capable = ll.CAP_SPLICE_WRITE
    loader = bootstrap.Loader(Recorder(), None, lambda: None)  # type: ignore[arg-type,return-value]
    loader.max_read = 131072
    loader.handlers["init"](None, ctypes.pointer(conn))
    assert (conn.want, conn.max_read) == (ll.CAP_SPLICE_WRITE, 131072)


def test_directories_are_left_to_the_kernel_to_open_where_it_can(tmp_path):
    """FUSE_CAP_NO_OPENDIR_SUPPORT, where the kernel offers it: wanted, and OPENDIR declined,
    by the core where it answered FUSE_INIT, and by the bootstrap (which answers FUSE_INIT
    for a root mount) without loading the core; the core it loads then declines too."""
    from unionfs import bootstrap

    for capable in (0, ll.CAP_NO_OPENDIR_SUPPORT):
        ops, rec, _, _ = _adapter(tmp_path / str(capable))
        conn = ll.ConnInfo()
        conn.capable = capable | ll.CAP_SPLICE_WRITE
        ops.callbacks()["init"](None, ctypes.pointer(conn))
        assert conn.want == conn.capable and ops.no_opendir == bool(capable)
        fi = ll.FileInfo()
        ops.callbacks()["opendir"](1, ROOT_ID, ctypes.pointer(fi))
        assert rec.last() == (("err", errno.ENOSYS) if capable else ("open", (fi.fh, 1, 1)))
        ops.callbacks()["init"](None, None)  # the bootstrap answered FUSE_INIT: as agreed there
        assert ops.no_opendir == bool(capable)
    core, core_rec, _, _ = _adapter(tmp_path / "boot")
    made: list[Any] = []
    rec = Recorder()
    loader = bootstrap.Loader(rec, None, lambda: made.append(core) or core)  # type: ignore[arg-type]
    conn = ll.ConnInfo()
    conn.capable = ll.CAP_NO_OPENDIR_SUPPORT
    loader.handlers["init"](None, ctypes.pointer(conn))
    fi = ll.FileInfo()
    loader.handlers["opendir"](1, ROOT_ID, ctypes.pointer(fi))
    assert rec.last() == ("err", errno.ENOSYS) and made == []  # the core is not loaded for it
    loader.handlers["readdir"](1, ROOT_ID, 4096, 0, ctypes.pointer(fi))  # a listing needs it
    assert made == [core] and core.no_opendir
    assert [name for _, _, _, name in parse_dirents(core_rec.data)] == [b".", b"..", b"d", b"one", b"two"]


def test_a_read_that_fits_the_pipe_is_spliced(tmp_path):
    """libfuse splices a reply that fits its pipe with the header and three pages of slack;
    without CAP_SYS_RESOURCE a pipe stops at pipe-max-size. The root mounts' readahead (the
    READs' size) fits the default 1 MiB."""
    from unionfs.mount import READ_AHEAD_KB

    page = os.sysconf("SC_PAGE_SIZE")
    (tmp_path / "max").write_text("1048576\n")
    assert ll.splice_limit(str(tmp_path / "max")) == 1048576 - 3 * page - 16
    assert READ_AHEAD_KB * 1024 <= ll.splice_limit(str(tmp_path / "max"))
    assert ll.splice_limit(str(tmp_path / "missing")) == 0
    (tmp_path / "max").write_text("4096\n")
    assert ll.splice_limit(str(tmp_path / "max")) == 0


def _create(ops: Any, parent: int, name: str) -> Any:
    fi = ll.FileInfo()
    fi.flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    calls = ops.callbacks()
    calls["create"](1, parent, name.encode(), 0o100644, ctypes.pointer(fi))
    calls["release"](1, 0, ctypes.pointer(fi))
    return fi


def test_files_created_one_after_another_need_no_walk_from_the_root(tmp_path):
    """As the kernel asks for each new file (GETATTR of the directory, LOOKUP of the name,
    CREATE), the directory stays resolved across the CREATE: no request walks from the root."""
    ops, rec, _, upper = _adapter(tmp_path)
    d, _, _ = _lookup(ops, rec, ROOT_ID, "d")  # only below: the first create copies it up
    walks: list[str] = []
    resolver = ops.union.sb.resolver
    walk = resolver.lookup
    resolver.lookup = lambda path: walks.append(path) or walk(path)
    calls = ops.callbacks()
    for i in range(3):
        walks.clear()
        calls["getattr"](1, d, None)
        assert rec.last()[0] == "attr"
        calls["lookup"](1, d, f"n{i}".encode())
        assert rec.last() == ("entry", (0, 0, 0))  # absent
        _create(ops, d, f"n{i}")
        kind, (nid, ino, nlink) = [r for r in rec.replies if r[0] == "entry"][-1]
        assert ops.table.path(nid) == f"/d/n{i}" and ino == os.lstat(upper / "d" / f"n{i}").st_ino
        calls["getxattr"](1, nid, b"security.capability", 0)  # before the first write
        assert rec.last() == ("err", errno.ENODATA)
        calls["getxattr"](1, nid, b"user.layerfs.origin", 0)
        assert rec.last() == ("write", len(ops.union.sb.upper.describe()))  # the size: served by the upper
    assert walks == []  # the last round
    assert sorted(os.listdir(upper / "d")) == ["n0", "n1", "n2"]
    ops.getattr(1, d, None)  # from the kept node, the upper directory read again
    assert rec.last() == ("attr", ops.union.getattr("/d").st_ino)
    assert ops.union.getattr_of(ops._dirs_resolved[d]) == ops.union.getattr("/d")


def test_a_directory_is_not_kept_resolved_across_another_change(tmp_path):
    ops, rec, _, _ = _adapter(tmp_path)
    d, _, _ = _lookup(ops, rec, ROOT_ID, "d")
    _create(ops, d, "first")  # copies /d up
    _lookup(ops, rec, ROOT_ID, "d")
    ops.lookup(1, d, b"x")  # resolves /d again (in the upper now)
    assert d in ops._dirs_resolved
    create_in = ops.union.create_in

    def meanwhile(*args: Any) -> Any:  # another worker's change runs during this create
        ops._end_change(ops._begin_change())
        return create_in(*args)

    ops.union.create_in = meanwhile
    _create(ops, d, "second")
    assert d not in ops._dirs_resolved
    ops.union.create_in = create_in
    ops.lookup(1, d, b"x")
    _create(ops, d, "third")
    assert d in ops._dirs_resolved


def test_a_resolved_directory_is_listed_without_a_walk(tmp_path):
    ops, rec, _, _ = _adapter(tmp_path)
    d, _, _ = _lookup(ops, rec, ROOT_ID, "d")  # resolved, and kept
    walks: list[str] = []
    resolver = ops.union.sb.resolver
    walk = resolver.lookup
    resolver.lookup = lambda path: walks.append(path) or walk(path)
    fi = ll.FileInfo()
    ops.opendir(1, d, ctypes.pointer(fi))
    ops.readdirplus(1, d, 160 * 10, 0, ctypes.pointer(fi))
    assert [name for name, _ in rec.direntries_plus()] == [".", "..", "f0", "f1", "f2", "f3", "f4"]
    assert walks == []


def test_a_node_whose_directory_is_resolved_gets_its_attributes_without_a_walk(tmp_path):
    """GETATTR of a name under a kept directory resolves the one name: the same attributes as
    a walk, fresh from the upper; after a change the directory is no longer kept, and the
    attributes come from a walk again."""
    ops, rec, lower, upper = _adapter(tmp_path)
    (upper / "d").mkdir()
    (upper / "d" / "new").write_text("12345")
    d, _, _ = _lookup(ops, rec, ROOT_ID, "d")  # merged, resolved and kept
    names = {n: _lookup(ops, rec, d, n)[0] for n in ("f0", "new")}
    assert d in ops._dirs_resolved
    walks: list[str] = []
    resolver = ops.union.sb.resolver
    walk = resolver.lookup
    resolver.lookup = lambda path: walks.append(path) or walk(path)
    for name, nid in names.items():
        ops.getattr(1, nid, None)
        assert rec.last() == ("attr", ops.union.getattr(f"/d/{name}").st_ino)
    assert walks == [f"/d/{n}" for n in names]  # only the comparisons above walked
    got: list[bytes] = []
    rec.reply_attr = lambda req, attr, timeout: got.append(bytes(attr._obj)) or 0  # type: ignore[method-assign]
    from unionfs.ll_ops import Replies

    ops.r = Replies(rec, ops._flush, ops._local)
    (upper / "d" / "new").write_text("grown by a writer through the union")
    ops.getattr(1, names["new"], None)
    assert ll.CStat.from_buffer_copy(got[-1]).st_size == len("grown by a writer through the union")
    walks.clear()
    ops._end_change(ops._begin_change())  # another request changed the union: nothing is kept
    ops.getattr(1, names["f0"], None)
    assert walks == ["/d/f0"]
    assert ll.CStat.from_buffer_copy(got[-1]).st_ino == os.lstat(lower / "d" / "f0").st_ino


def test_flush_is_declined_once_for_the_whole_mount(tmp_path):
    """Every WRITE reached the layer file before its reply: FLUSH has nothing to do, and
    ENOSYS makes the kernel stop sending it (one request less per close)."""
    ops, rec, _, _ = _adapter(tmp_path)
    fi = _create(ops, ROOT_ID, "f")
    ops.callbacks()["flush"](1, 0, ctypes.pointer(fi))
    assert rec.last() == ("err", errno.ENOSYS)


#: a struct vfs_cap_data, revision 2: CAP_NET_RAW permitted, nothing inheritable
_CAPS = (0x02000000).to_bytes(4, "little") + (1 << 13).to_bytes(4, "little") + bytes(12)


def test_a_file_open_for_writing_says_its_capability_without_a_path(tmp_path, monkeypatch):
    """The kernel asks for security.capability before every write(2): a node with a handle
    open for writing is answered from the file itself, renamed or not; else by its path."""
    ops, rec, _, upper = _adapter(tmp_path)
    calls = ops.callbacks()
    fi = ll.FileInfo()
    fi.flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    calls["create"](1, ROOT_ID, b"f", 0o100644, ctypes.pointer(fi))
    nid = ops.table.node_at("/f")
    assert nid is not None and ops._writers == {nid: ops.files.get(fi.fh)}
    paths: list[int] = []
    path_of = ops.table.path
    monkeypatch.setattr(ops.table, "path", lambda n: paths.append(n) or path_of(n))
    calls["getxattr"](1, nid, b"security.capability", 0)
    assert rec.last() == ("err", errno.ENODATA) and paths == []
    if os.geteuid() == 0:  # a capability needs root to set
        os.setxattr(upper / "f", "security.capability", _CAPS)
        calls["rename"](1, ROOT_ID, b"f", ROOT_ID, b"g", 0)  # the handle follows the file
        paths.clear()
        calls["getxattr"](1, nid, b"security.capability", 0)
        assert rec.last() == ("write", len(_CAPS)) and paths == []
    calls["release"](1, nid, ctypes.pointer(fi))
    assert ops._writers == {}
    calls["getxattr"](1, nid, b"security.capability", 0)  # by its path now
    assert paths == [nid]
    assert rec.last() == (("write", len(_CAPS)) if os.geteuid() == 0 else ("err", errno.ENODATA))
    read = ll.FileInfo()
    read.flags = os.O_RDONLY
    calls["open"](1, nid, ctypes.pointer(read))  # a reader does not answer for the file
    assert ops._writers == {}
    write = ll.FileInfo()
    write.flags = os.O_RDWR
    calls["open"](1, nid, ctypes.pointer(write))
    assert ops._writers == {nid: ops.files.get(write.fh)}
    calls["release"](1, nid, ctypes.pointer(write))
    again = ll.FileInfo()
    again.flags = os.O_RDONLY | os.O_CREAT  # open(2) of the existing name, for reading
    calls["create"](1, ROOT_ID, ops.table.path(nid)[1:].encode(), 0o100644, ctypes.pointer(again))
    assert rec.last()[0] == "entry" and ops._writers == {}


def test_without_xattrs_a_writer_does_not_answer_for_the_capability(tmp_path):
    from unionfs.ll_ops import Caching, LowLevelOps

    lower, upper, work = tmp_path / "lower", tmp_path / "upper", tmp_path / "work"
    for d in (lower, upper, work):
        d.mkdir()
    rec = Recorder()
    union = Union.from_options(f"lowerdir={lower},upperdir={upper},workdir={work},noxattrs=1")
    ops = LowLevelOps(union, Caching(), lib=rec)  # type: ignore[arg-type]
    fi = ll.FileInfo()
    fi.flags = os.O_WRONLY | os.O_CREAT
    ops.callbacks()["create"](1, ROOT_ID, b"f", 0o100644, ctypes.pointer(fi))
    ops.callbacks()["getxattr"](1, ops.table.node_at("/f"), b"security.capability", 0)
    assert rec.last() == ("err", errno.ENOTSUP)
