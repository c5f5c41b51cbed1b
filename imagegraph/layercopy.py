"""A directory copied straight into a new layer directory, its layer tar hashed on the way.

Why: `import DIR` and `commit` used to write the layer tar to a spool and extract the spool
into the store, which reads and writes every byte twice and builds and parses every header in
Python. Here each entry's header is built once (it feeds the DiffID's hash and the headers
digest), each file's bytes are read once, hashed and written from the same buffer (the hash
runs on a second thread while the write runs, both outside the GIL), and the entry is created
in the store the way `archive.apply_layer_tar` would create it from the tar.

The DiffID stays the sha256 of the exact tar `archive.write_layer_tar` writes: headers, data,
padding and the two end blocks are hashed in order. A file with large holes (the tar would
hold a sparse member) is not copied here: `NotCopyable`, and the caller takes the tar path.

The copy proves itself as it goes (`CopyResult.proven`): each plain entry (a regular file, a
directory or a symlink, no xattrs, no whiteout, no hard link) is read back with one `fstat` or
`lstat` once its owner, mode and time are set, and must show the numbers its header holds; the
xattrs a filesystem gives new entries unasked (a default ACL, a security label) show on the root
and on the folders, which are read back for them. Then the copy's headers are the source's, and
the store need not walk the copy again to check it. Any other entry leaves the proof to that
walk (`archive.headers_digest`), as before. Only the calls the read-back shows are needed run: a
file is created with its mode (the umask and the new file's owner are what they usually are),
then `fchown` and `fchmod` only if it differs.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tarfile
from dataclasses import dataclass, field
from typing import Any

from . import archive, fstree

_BIG = 1 << 20  # files from this size are copied in chunks, hashed on a second thread
_ZEROS = bytes(2 * archive.BLOCK)


class NotCopyable(Exception):
    """The tree holds what only the tar path writes faithfully (a sparse file)."""


@dataclass(frozen=True)
class CopyResult:
    diff_id: str  # sha256 of the layer tar of the source tree, as write_layer_tar writes it
    headers: str  # headers_digest of the source tree, from the same pass
    size: int  # sum of the regular files' sizes (moby's DiffSize)
    tar_size: int
    proven: bool = False  # every entry was read back and matches its header: the copy gives the tar back


@dataclass
class _Hashes:
    tar: Any = field(default_factory=hashlib.sha256)
    heads: Any = field(default_factory=hashlib.sha256)
    count: int = 0

    def add(self, data: bytes | memoryview) -> None:
        self.tar.update(data)
        self.count += len(data)


def _tarinfo(e: archive.TarEntry) -> tarfile.TarInfo:
    """The header the extractor would have parsed back from `e`'s encoding."""
    m = tarfile.TarInfo(e.name)
    m.type, m.mode, m.uid, m.gid, m.size, m.mtime = e.typeflag, e.mode, e.uid, e.gid, e.size, e.mtime
    m.linkname, m.devmajor, m.devminor = e.linkname, e.devmajor, e.devminor
    m.pax_headers = {"SCHILY.xattr." + k: v.decode("utf-8", "surrogateescape") for k, v in e.xattrs.items()}
    return m


_PLAIN_TYPES = (archive.TYPE_REG, archive.TYPE_DIR, archive.TYPE_SYMLINK)


def _mismatch(st: os.stat_result, e: archive.TarEntry) -> bool:
    """Whether `st` (the copy) shows other numbers than `e`'s header holds."""
    return (
        stat.S_IMODE(st.st_mode) != e.mode
        or st.st_uid != e.uid
        or st.st_gid != e.gid
        or int(st.st_mtime) != e.mtime
        or (e.typeflag == archive.TYPE_REG and st.st_size != e.size)
    )


def _public_xattrs(names: list[str]) -> bool:
    return any(not n.startswith(archive.PRIVATE_XATTR_PREFIXES) for n in names)


class _Copier(archive.Applier):
    """The extractor's rules (whiteouts, hard links, directories last), fed from a walk."""

    def __init__(self, root_fd: int, encoding: str) -> None:
        super().__init__(None, root_fd, encoding)  # type: ignore[arg-type]  # no tar: entries come from the walk
        self.hashes = _Hashes()
        self.proven = True  # every entry so far read back as its header says
        self.check_dirs: dict[str, archive.TarEntry] = {}  # read back once their modes and times are set

    def copy(self, src_dir: str | os.PathLike[str]) -> None:
        # What the filesystem gives a new entry unasked (a default ACL, a security label) shows
        # on the root and on each folder read back: then no file is read back for xattrs.
        if _public_xattrs(os.listxattr(self.root_fd)):
            self.proven = False
        for e in archive.layer_entries(src_dir):
            header = archive.encode_header(e)
            self.hashes.heads.update(header)
            # The walk names each entry by the components it listed: no "", ".", ".." or "/" in
            # them, so the name is already clean (clean_name is for names a tar claims).
            rel = e.name[:-1] if e.typeflag == archive.TYPE_DIR else e.name
            whiteout = rel.rpartition("/")[2].startswith(archive.WHITEOUT_PREFIX)
            if whiteout and e.size:
                raise NotCopyable(f"{rel}: a whiteout with data")
            plain = e.typeflag in _PLAIN_TYPES and not whiteout and not e.xattrs
            try:
                if e.source is not None and e.typeflag == archive.TYPE_REG and not whiteout:
                    self.file(e, rel, header)
                else:
                    self.hashes.add(header)
                    self.entry(_tarinfo(e), rel, 0)
                    if not plain:
                        self.proven = False
                    elif e.typeflag == archive.TYPE_DIR:
                        self.check_dirs[rel] = e
                    else:
                        self.read_back(rel, e)
            except fstree.TreeError as exc:
                raise archive.ArchiveError(f"cannot copy {archive._q(rel)}: {exc}") from None
            except archive.ArchiveError:
                raise
            except OSError as exc:
                raise archive.ArchiveError(f"write /{rel}: {archive.os_error_text(exc)}") from None
        self.hashes.add(_ZEROS)
        self.finish_dirs()
        try:
            for rel, e in self.check_dirs.items():
                if self.proven:
                    self.read_back(rel, e)
        except OSError:
            self.proven = False  # a folder this user cannot read back: the check walk decides

    def read_back(self, rel: str, e: archive.TarEntry) -> None:
        """A directory or symlink as the copy holds it: the proof fails where it differs."""
        head, _, base = rel.rpartition("/")
        dfd = self.cursor.goto(head, create=False)
        st = os.lstat(base, dir_fd=dfd)
        if _mismatch(st, e) or _public_xattrs(os.listxattr(fstree.xattr_path(dfd, base), follow_symlinks=False)):
            self.proven = False

    def regular(self, dfd: int, base: str, rel: str, m: tarfile.TarInfo, data_end: int) -> None:
        """A whiteout file in the aufs encoding (empty: one with data takes the tar path)."""
        os.close(os.open(base, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dfd))

    def file(self, e: archive.TarEntry, rel: str, header: bytes) -> None:
        """A regular file with data: read once, hashed and written from the same buffer."""
        assert e.source is not None
        src = e.source()
        try:
            if e.size >= archive.HOLE_MIN and archive.data_regions(src, e.size) is not None:
                raise NotCopyable(f"{rel}: a sparse file")
            self.size += e.size
            head, _, base = rel.rpartition("/")
            dfd = self.cursor.goto(head)
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            mode = e.mode & 0o777  # the special bits by fchmod only: open may drop them
            try:
                out = os.open(base, flags, mode, dir_fd=dfd)
            except FileExistsError:  # an aufs tree's `.wh.x` before `x` made `x` a whiteout device
                fstree.remove_at(dfd, base)
                out = os.open(base, flags, mode, dir_fd=dfd)
            try:
                self.data(src, out, e, header)
                self.finish_file(out, dfd, base, e)
            finally:
                os.close(out)
        finally:
            os.close(src)
        self.seen.add(rel)

    def finish_file(self, out: int, dfd: int, base: str, e: archive.TarEntry) -> None:
        """Owner, mode, xattrs and time as the header says, each set only if the file differs."""
        os.utime(out, (e.mtime, e.mtime))  # chown and chmod below leave the mtime alone
        if not _mismatch(os.fstat(out), e) and not e.xattrs:
            return  # xattrs a new file gets unasked (a default ACL, a label) show on its folder too
        st = os.fstat(out)
        if self.as_root and (st.st_uid != e.uid or st.st_gid != e.gid):
            os.fchown(out, e.uid, e.gid)
        os.fchmod(out, e.mode & 0o7777)  # after chown, which clears set-id bits
        for k, v in e.xattrs.items():
            if not k.startswith(archive.PRIVATE_XATTR_PREFIXES):
                archive.set_xattr(fstree.xattr_path(dfd, base), k, v)
        if e.xattrs or _mismatch(os.fstat(out), e):
            self.proven = False  # the check walk decides (a store that cannot set the owner)

    def data(self, src: int, out: int, e: archive.TarEntry, header: bytes) -> None:
        """`e.size` bytes of `src` (fewer is an error, more are left out, as the tar writer does),
        hashed with their header and padding."""
        left = e.size
        pad = _ZEROS[: -left % archive.BLOCK]
        if left < _BIG:
            data = os.read(src, left) if left else b""
            while len(data) < left:
                more = os.read(src, left - len(data))
                if not more:
                    raise archive.ArchiveError(f"{e.name}: file shrank while it was archived")
                data += more
            self.hashes.add(b"".join((header, data, pad)))
            if data:
                archive.write_all(out, data)
            return
        self.hashes.add(header)
        short = f"{e.name}: file shrank while it was archived"
        self.copier.copy(lambda view: os.readv(src, [view]), out, e.size, self.hashes.tar, short)
        self.hashes.count += e.size
        self.hashes.add(pad)


def _copy_into(root_fd: int, src_dir: str | os.PathLike[str], encoding: str) -> _Copier:
    copier = _Copier(root_fd, encoding)
    try:
        copier.copy(src_dir)
    finally:
        copier.close()
    return copier


def copy_layer_dir(src_dir: str | os.PathLike[str], dest: str | os.PathLike[str], encoding: str) -> CopyResult:
    """Make `dest` (new) what `apply_layer_tar(<the layer tar of src_dir>)` would make, whole or not at all."""
    copier = archive.build_dir(os.fspath(dest), lambda root_fd: _copy_into(root_fd, src_dir, encoding))
    h = copier.hashes
    return CopyResult(
        "sha256:" + h.tar.hexdigest(), "sha256:" + h.heads.hexdigest(), copier.size, h.count, copier.proven
    )
