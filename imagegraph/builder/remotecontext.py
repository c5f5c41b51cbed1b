"""The build context on the daemon's side (moby builder/remotecontext: archive.go, lazycontext.go,
filehash.go, detect.go, and the tarsum its cache keys come from).

The context arrives as one tar (plain or compressed). It is unpacked into a private folder
while a tarsum v1 is computed for every entry: the sha256 of the entry's header fields
(name, mode, uid, gid, size, type, link, devices, xattrs; never mtime or owner names) and its
bytes. COPY and ADD put these sums into the step's `created_by` (`file:<sum>`,
`dir:<sha256 of the sums>`), which is what makes a changed file miss the cache and an
untouched one hit it. The Dockerfile is read from the context and parsed, then it and
`.dockerignore` are removed if `.dockerignore` excludes them. A `COPY --from` source is a
lazy context: its files are hashed from disk when asked, with the same header rules.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import stat
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from .dockerignore import PatternError, go_clean, matches_or_parent_matches, read_ignore_file
from .fsview import FSView, HostDir, ScopeError, resolve
from .parser import ParseError, Result, parse

DEFAULT_DOCKERFILE = "Dockerfile"
_XATTR_PREFIX = "SCHILY.xattr."
_CHUNK = 1 << 20


class ContextError(Exception):
    """A context or Dockerfile the daemon refuses; str() is moby's text."""


# ---- tarsum -----------------------------------------------------------------------------------


@dataclass
class Header:
    """The tar header fields a tarsum v1 covers."""

    name: str
    mode: int
    uid: int
    gid: int
    size: int
    typeflag: str
    linkname: str = ""
    devmajor: int = 0
    devminor: int = 0
    xattrs: dict[str, bytes] = field(default_factory=dict)

    def sum_start(self) -> hashlib._Hash:
        """tarsum.WriteV1Header: the header's fields (no mtime, no owner names) as the hash's start."""
        h = hashlib.sha256()
        for key, value in (
            ("name", self.name),
            ("mode", str(self.mode)),
            ("uid", str(self.uid)),
            ("gid", str(self.gid)),
            ("size", str(self.size)),
            ("typeflag", self.typeflag),
            ("linkname", self.linkname),
            ("uname", ""),
            ("gname", ""),
            ("devmajor", str(self.devmajor)),
            ("devminor", str(self.devminor)),
        ):
            h.update((key + value).encode("utf-8", "surrogateescape"))
        for k in sorted(self.xattrs):
            h.update(k.encode("utf-8", "surrogateescape") + self.xattrs[k])
        return h


def file_header(path: str, name: str) -> Header:
    """archive.FileInfoHeader (no owner-name lookups) and the security.capability xattr, from disk."""
    st = os.lstat(path)
    m = st.st_mode
    typeflag, size, link = "0", 0, ""
    if stat.S_ISREG(m):
        size = st.st_size
    elif stat.S_ISDIR(m):
        typeflag = "5"
        name = name.rstrip("/") + "/"
    elif stat.S_ISLNK(m):
        typeflag, link = "2", os.readlink(path)
    elif stat.S_ISCHR(m):
        typeflag = "3"
    elif stat.S_ISBLK(m):
        typeflag = "4"
    elif stat.S_ISFIFO(m):
        typeflag = "6"
    major = minor = 0
    if stat.S_ISCHR(m) or stat.S_ISBLK(m):
        major, minor = os.major(st.st_rdev), os.minor(st.st_rdev)
    xattrs: dict[str, bytes] = {}
    try:
        xattrs["security.capability"] = os.getxattr(path, "security.capability", follow_symlinks=False)
    except OSError:
        pass
    return Header(name, stat.S_IMODE(m), st.st_uid, st.st_gid, size, typeflag, link, major, minor, xattrs)


def _tar_header(m: tarfile.TarInfo) -> Header:
    """The header as Go's tar reader returns it (tarfile strips a directory's trailing slash)."""
    typeflag = m.type.decode("latin-1")
    if typeflag in ("\0", "7"):
        typeflag = "0"
    name = m.name + "/" if m.isdir() and not m.name.endswith("/") else m.name
    xattrs = {
        k[len(_XATTR_PREFIX) :]: v.encode("utf-8", "surrogateescape")
        for k, v in m.pax_headers.items()
        if k.startswith(_XATTR_PREFIX)
    }
    return Header(name, m.mode, m.uid, m.gid, m.size, typeflag, m.linkname, m.devmajor, m.devminor, xattrs)


def _sum_name(name: str) -> str:
    """tarsum's key for an entry: path.Join(".", path.Join("/", name))."""
    return go_clean("/" + name).lstrip("/") or "."


# ---- sources --------------------------------------------------------------------------------


class Source:
    """builder.Source: a root filesystem, and the cache hash of each of its files."""

    def __init__(self, fs: FSView) -> None:
        self.fs = fs

    def hash(self, path: str) -> str:
        raise NotImplementedError

    def rel(self, path: str) -> str:
        """The path's place once its symlinks are followed, relative to the root ("." for it)."""
        try:
            return resolve(self.fs, path).lstrip("/") or "."
        except ScopeError as exc:
            raise ContextError(f"forbidden path outside the build context: {path} ({exc.strerror})") from None

    def close(self) -> None:
        """Nothing to remove for a source that is not a copy."""


class ArchiveContext(Source):
    """A context unpacked from its tar, with the tarsum of every entry as the tar had it."""

    def __init__(self, root: str, sums: dict[str, str]) -> None:
        super().__init__(HostDir(root))
        self.root = root
        self.sums = sums

    def hash(self, path: str) -> str:
        return self.sums.get(self.rel(path), path)

    def full_path(self, path: str) -> str:
        return HostDir(self.root).host_path(self.rel(path))

    def remove(self, path: str) -> None:
        full = self.full_path(path)
        if full == self.root:
            return
        try:
            if os.path.isdir(full) and not os.path.islink(full):
                shutil.rmtree(full)
            else:
                os.unlink(full)
        except FileNotFoundError:
            pass

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


class LazySource(Source):
    """A root hashed file by file when asked (moby lazySource): `COPY --from` sources."""

    def __init__(self, fs: FSView) -> None:
        super().__init__(fs)
        self.sums: dict[str, str] = {}

    def hash(self, path: str) -> str:
        rel = self.rel(path)
        if rel in self.sums:
            return self.sums[rel]
        try:
            real = self.fs.host_path(rel)
            header = file_header(real, rel)
        except FileNotFoundError:
            return rel  # a dangling link: moby's backwards-compatible path-as-hash
        h = header.sum_start()
        if header.typeflag == "0" and header.size:
            with open(real, "rb") as f:
                while chunk := f.read(_CHUNK):
                    h.update(chunk)
        self.sums[rel] = h.hexdigest()
        return self.sums[rel]


# ---- unpacking a context ---------------------------------------------------------------------


def from_archive(stream: IO[bytes], tmp_parent: str | os.PathLike[str] | None = None) -> ArchiveContext:
    """FromArchive: unpack the (maybe compressed) tar into a new folder, summing every entry."""
    root = tempfile.mkdtemp(prefix="docker-builder", dir=tmp_parent)
    try:
        sums = _untar(stream, root)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    os.chmod(root, 0o755)
    return ArchiveContext(root, sums)


def _untar(stream: IO[bytes], root: str) -> dict[str, str]:
    sums: dict[str, str] = {}
    dirs: list[tuple[str, tarfile.TarInfo]] = []
    as_root = os.geteuid() == 0
    try:
        tar = tarfile.open(fileobj=stream, mode="r|*")
    except tarfile.ReadError as exc:
        raise ContextError(f"unexpected EOF or bad build context archive: {exc}") from None
    with tar:
        try:
            for m in tar:
                h = _tar_header(m).sum_start()
                rel = _safe_name(m.name)
                path = os.path.join(root, rel) if rel else root
                if m.isreg():
                    src = tar.extractfile(m)
                    _write_file(path, root, rel, src, h)
                else:
                    _make_entry(m, path, root, rel, dirs)
                sums.setdefault(_sum_name(m.name), h.hexdigest())
                if not m.isdir() and rel:
                    _set_meta(path, m, as_root)
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise ContextError(f"failed to unpack the build context: {exc}") from None
    for path, m in reversed(dirs):
        _set_meta(path, m, as_root)
    return sums


def _safe_name(name: str) -> str:
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ContextError(f"invalid build context: {name!r} is outside the context")
    return "/".join(parts)


def _parent_dir(root: str, rel: str) -> None:
    """Missing parents are made 0755; a parent that is a link or a file is refused."""
    cur = root
    for part in rel.split("/")[:-1]:
        cur = os.path.join(cur, part)
        try:
            st = os.lstat(cur)
        except FileNotFoundError:
            os.mkdir(cur, 0o755)
            continue
        if not stat.S_ISDIR(st.st_mode):
            raise ContextError(f"invalid build context: {rel!r} would be written through {part!r}")


def _no_link_on_the_way(root: str, rel: str) -> bool:
    """True if no parent of `rel` is a symlink: the kernel would follow one out of the context
    (a hard link to `a/shadow` after `a -> /etc` would take the host's /etc/shadow)."""
    cur = root
    for part in rel.split("/")[:-1]:
        cur = os.path.join(cur, part)
        try:
            if not stat.S_ISDIR(os.lstat(cur).st_mode):
                return False
        except FileNotFoundError:
            return False
    return True


def _clear(path: str) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def _write_file(path: str, root: str, rel: str, src: IO[bytes] | None, h: hashlib._Hash) -> None:
    if not rel:
        raise ContextError("invalid build context: a file where the context's root should be")
    _parent_dir(root, rel)
    _clear(path)
    with open(path, "xb") as out:
        while src is not None and (chunk := src.read(_CHUNK)):
            h.update(chunk)
            out.write(chunk)


def _make_entry(m: tarfile.TarInfo, path: str, root: str, rel: str, dirs: list[tuple[str, tarfile.TarInfo]]) -> None:
    if m.isdir():
        if rel:
            _parent_dir(root, rel)
            if not os.path.isdir(path) or os.path.islink(path):
                _clear(path)
                os.mkdir(path, 0o755)
        dirs.append((path, m))
        return
    if not rel:
        raise ContextError("invalid build context: an entry where the context's root should be")
    _parent_dir(root, rel)
    _clear(path)
    if m.issym():
        os.symlink(m.linkname, path)
    elif m.islnk():
        target = _safe_name(m.linkname)
        if not target or not _no_link_on_the_way(root, target):
            raise ContextError(f"invalid build context: hard link {m.name!r} to {m.linkname!r} leaves the context")
        os.link(os.path.join(root, target), path, follow_symlinks=False)
    elif m.isfifo():
        os.mkfifo(path, 0o600)
    elif m.ischr() or m.isblk():
        kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
        try:
            os.mknod(path, kind | 0o600, os.makedev(m.devmajor, m.devminor))
        except PermissionError:
            open(path, "xb").close()  # not root: an empty file stands in for the device


def _set_meta(path: str, m: tarfile.TarInfo, as_root: bool) -> None:
    if as_root:
        os.chown(path, m.uid, m.gid, follow_symlinks=False)
    if not m.issym():
        os.chmod(path, m.mode & 0o7777)
    try:
        os.utime(path, (m.mtime, m.mtime), follow_symlinks=False)
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP):
            raise


# ---- the Dockerfile -----------------------------------------------------------------------------


def detect(
    stream: IO[bytes], dockerfile: str, tmp_parent: str | os.PathLike[str] | None = None
) -> tuple[ArchiveContext, Result]:
    """remotecontext.Detect for a tar body: the unpacked context and the parsed Dockerfile."""
    ctx = from_archive(stream, tmp_parent)
    try:
        return ctx, dockerfile_from_context(ctx, dockerfile or DEFAULT_DOCKERFILE)
    except BaseException:
        ctx.close()
        raise


def dockerfile_from_context(ctx: ArchiveContext, name: str) -> Result:
    """withDockerfileFromContext: read and parse it, then drop what .dockerignore excludes."""
    path = ctx.full_path(name)
    if not os.path.isfile(path):
        if name == DEFAULT_DOCKERFILE and os.path.isfile(ctx.full_path(name.lower())):
            return dockerfile_from_context(ctx, name.lower())
        raise ContextError(f"Cannot locate specified Dockerfile: {name}")
    data = Path(path).read_bytes()
    if not data:
        raise ContextError(f"the Dockerfile ({name}) cannot be empty")
    try:
        result = parse(data)
    except ParseError as exc:
        raise ContextError(f"failed to parse {name}: dockerfile parse error on line {exc.line}: {exc}") from None
    remove_build_files(ctx, name)
    return result


def remove_build_files(ctx: ArchiveContext, dockerfile: str) -> None:
    ignore = ctx.full_path(".dockerignore")
    try:
        data = Path(ignore).read_bytes()
    except FileNotFoundError:
        return
    except IsADirectoryError:
        raise ContextError("error reading .dockerignore: read .dockerignore: is a directory") from None
    patterns = read_ignore_file(data)
    for name in (".dockerignore", dockerfile):
        try:
            if matches_or_parent_matches(name, patterns):
                ctx.remove(name)
        except PatternError as exc:
            raise ContextError(f"error reading .dockerignore: {exc}") from None


__all__ = [
    "ArchiveContext",
    "LazySource",
    "Source",
    "Header",
    "ContextError",
    "detect",
    "from_archive",
    "file_header",
    "DEFAULT_DOCKERFILE",
]
