"""COPY and ADD (moby builder/dockerfile/copy.go, copy_unix.go, internals.go performCopy).

The sources are looked up in the build context (or, with `--from`, in a stage's or an
image's files), wildcards matched with Go's filepath.Match, and each source's checksum taken:
`file:<tarsum>` for a file, `dir:<sha256 of its entries' tarsums>` for a directory,
`multi:<…>` for several. That checksum is in the step's `created_by`
(`/bin/sh -c #(nop) COPY file:<sum> in /dst `), so the cache misses exactly when a copied
file changed. The files are then written into a new container's top layer through the union
core, as moby's archiver untars them into the mounted layer: modes, times and (for `--from`)
owners kept, owners 0:0 otherwise, or `--chown`'s user and group looked up in the image's
/etc/passwd and /etc/group. ADD unpacks a local tar (plain, gzip, bzip2 or xz) instead of
copying it; a URL or git source needs the network and is refused.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from unionfs.union import Union

from . import compression
from . import instructions as ins
from .dispatchers import BUILDKIT_ONLY
from .dockerignore import PatternError, contains_wildcards, go_clean, go_match
from .fsview import FSView, HostDir, StatLike, UnionView, resolve, walk
from .imagecontext import ImageSourceError, rootfs
from .internals import ROOT, BuildError, DispatchState, with_cmd_comment_string
from .remotecontext import ContextError, Header, LazySource, Source
from .shell_lex import Lex, ShellError

if TYPE_CHECKING:
    from .evaluator import Builder

_CHUNK = 1 << 20
PATH_MAX = 4096  # the kernel's limit on a path: a longer archive name cannot be written
#: How deep COPY and ADD write. Each write goes through the union core, which walks the path
#: from the root: a hostile 2,000-deep archive would take hours, so it gets one line instead.
MAX_PATH_DEPTH = 128


class TooDeep(Exception):
    """A source or archive entry nested deeper than MAX_PATH_DEPTH (or longer than PATH_MAX)."""


def check_depth(name: str) -> None:
    if len(name.encode("utf-8", "surrogateescape")) >= PATH_MAX:
        raise TooDeep(f"{name[:60]!r}…: file name too long")
    if name.count("/") > MAX_PATH_DEPTH:
        raise TooDeep(f"{name[:60]!r}…: nested deeper than {MAX_PATH_DEPTH} directories")


_NOT_IN_CLASSIC = ("exclude", "parents", "checksum", "keep-git-dir", "unpack")


@dataclass
class CopyInfo:
    """One source: where it is, its checksum, and for a heredoc its text."""

    source: Source | None
    path: str
    hash: str
    data: str | None = None
    no_decompress: bool = False


@dataclass
class CopyInstruction:
    cmd_name: str
    infos: list[CopyInfo]
    dest: str
    chown: str = ""
    chmod: int | None = None
    chmod_text: str = ""
    decompress: bool = False
    preserve_ownership: bool = False
    image_fs: FSView | None = field(default=None, repr=False)


def is_url(s: str) -> bool:
    return s.startswith(("http://", "https://"))


def is_git_url(s: str) -> bool:
    return s.startswith(("git://", "github.com/", "git@")) or (is_url(s) and s.split("#", 1)[0].endswith(".git"))


def hash_string_slice(prefix: str, items: list[str]) -> str:
    return prefix + ":" + hashlib.sha256(",".join(items).encode()).hexdigest()


# ---- COPY and ADD ------------------------------------------------------------------------------


def dispatch_copy(b: Builder, state: DispatchState, c: ins.CopyCommand | ins.AddCommand, envs: dict[str, str]) -> None:
    name = "ADD" if isinstance(c, ins.AddCommand) else "COPY"
    for flag in c.flags_used:
        if flag in _NOT_IN_CLASSIC:
            raise BuildError(BUILDKIT_ONLY.format(flag))
    chmod = None
    if c.chmod:
        try:
            chmod = int(c.chmod, 8)
            if not 0 <= chmod <= 0o7777:
                raise ValueError
        except ValueError:
            raise BuildError(f"invalid chmod parameter: {c.chmod}") from None
    source: Source | None = b.source
    from_ = c.from_ if isinstance(c, ins.CopyCommand) else ""
    image_fs: FSView | None = None
    if from_:
        image_fs = image_mount(b, from_)
        source = LazySource(image_fs)
    infos = copy_infos(b, c, name, source, from_ != "", envs)
    dest = c.files.dest
    if len(infos) > 1 and not dest.endswith("/"):
        raise BuildError(
            f"When using {name} with more than one source file, the destination must be a directory and end with a /"
        )
    inst = CopyInstruction(
        cmd_name=name,
        infos=infos,
        dest=dest,
        chown=c.chown,
        chmod=chmod,
        chmod_text=c.chmod,
        decompress=name == "ADD",
        preserve_ownership=bool(from_) and not c.chown,
        image_fs=image_fs,
    )
    perform_copy(b, state, inst)


def image_mount(b: Builder, ref: str) -> FSView:
    """`--from`: a stage (by name or index, local only) or an image (pulled if need be)."""
    try:
        stage = b.stages.get(ref)
    except BuildError as exc:
        raise BuildError(f"invalid from flag value {ref}: {exc}") from None
    local_only = stage is not None
    name = (stage.get("Image") or "") if stage is not None else ref
    try:
        img = b.sources.get(name, local_only)
    except ImageSourceError as exc:
        raise BuildError(f"invalid from flag value {ref}: {exc}") from None
    b.svc.layout.root.joinpath("empty-rootfs").mkdir(exist_ok=True)
    return UnionView(rootfs(b.svc, img))


def copy_infos(
    b: Builder,
    c: ins.CopyCommand | ins.AddCommand,
    name: str,
    source: Source | None,
    from_image: bool,
    envs: dict[str, str],
) -> list[CopyInfo]:
    """getCopyInfosForSourcePaths, and the heredoc sources."""
    infos: list[CopyInfo] = []
    try:
        for orig in c.files.sources:
            if is_url(orig) or is_git_url(orig):
                if name == "COPY":
                    raise BuildError("source can't be a URL for COPY")
                raise BuildError(f"{orig}: a URL or git source needs the network, and layerlab builds offline")
            if source is None:
                raise BuildError("missing build context")
            infos += calc_copy_info(source, orig, True, from_image)
        for content in c.files.contents:
            data = content.data
            if content.expand:
                try:
                    data = Lex("\\", skip_process_quotes=True).process_word(data, envs)
                except ShellError as exc:
                    raise BuildError(str(exc)) from None
            infos.append(CopyInfo(None, content.path, "file:" + heredoc_hash(content.path, data), data=data))
    except (BuildError, ContextError) as exc:
        raise BuildError(f"{name} failed: {exc}") from None
    except OSError as exc:
        raise BuildError(f"{name} failed: {exc.strerror or exc}") from None
    if not infos:
        raise BuildError(f"{name} failed: no source files were specified")
    return infos


def heredoc_hash(name: str, data: str) -> str:
    raw = data.encode("utf-8", "surrogateescape")
    h = Header(name, 0o644, 0, 0, len(raw), "0").sum_start()
    h.update(raw)
    return h.hexdigest()


def calc_copy_info(source: Source, orig: str, wildcards: bool, from_image: bool) -> list[CopyInfo]:
    """calcCopyInfo: one path (or every match of a wildcard) with its checksum."""
    path = orig.lstrip("/")
    path = path.removeprefix("./")
    if wildcards and contains_wildcards(path):
        return copy_with_wildcards(source, path, from_image)
    rel = source.rel(path)
    try:
        st = source.fs.lstat(rel)
        if stat.S_ISLNK(st.st_mode):  # a dangling link in the scope
            raise FileNotFoundError(errno.ENOENT, "file does not exist")
    except OSError:
        missing = f"stat {path}: file does not exist"
        if not from_image:
            raise BuildError(f"file not found in build context or excluded by .dockerignore: {missing}") from None
        raise BuildError(missing) from None
    if not stat.S_ISDIR(st.st_mode):
        return [CopyInfo(source, path, "file:" + source.hash(path))]
    subfiles = []
    for p, _ in walk(source.fs, "/" + rel if rel != "." else "/"):
        r = p.strip("/") or "."
        if r == ".":
            continue
        subfiles.append(source.hash(r))
    return [CopyInfo(source, path, hash_string_slice("dir", sorted(subfiles)))]


def copy_with_wildcards(source: Source, pattern: str, from_image: bool) -> list[CopyInfo]:
    out: list[CopyInfo] = []
    for p, _ in walk(source.fs, "/"):
        rel = p.strip("/")
        if not rel:
            continue
        try:
            if not go_match(pattern, rel):
                continue
        except PatternError:
            return out
        out += calc_copy_info(source, rel, False, from_image)
    return out


def source_hash(infos: list[CopyInfo]) -> str:
    """getSourceHashFromInfos: one source's checksum, or `multi:` over all of them."""
    if len(infos) == 1:
        return infos[0].hash
    return hash_string_slice("multi", [i.hash for i in infos])


def normalize_dest(workdir: str, requested: str) -> str:
    """A relative destination is under WORKDIR; a trailing slash is kept."""
    if requested.startswith("/"):
        return requested
    dest = go_clean("/" + (workdir or "") + "/" + requested)
    return dest + "/" if requested.endswith("/") and dest != "/" else dest


def perform_copy(b: Builder, state: DispatchState, inst: CopyInstruction) -> None:
    chown = f"--chown={inst.chown} " if inst.chown else ""
    chmod = f"--chmod={inst.chmod_text} " if inst.chmod_text else ""
    comment = f"{inst.cmd_name} {chown}{chmod}{source_hash(inst.infos)} in {inst.dest} "
    config = with_cmd_comment_string(state.run_config, comment)
    if b.internals.probe_cache(state, config):
        return
    container = b.internals.create(state, config, announce=False)
    try:
        u = b.internals.union(container)
        dest_path = normalize_dest(state.run_config.get("WorkingDir") or "", inst.dest)
        owner: tuple[int, int] | None = (0, 0)
        if inst.chown:
            owner = chown_identity(u, inst.chown)
        if inst.preserve_ownership:
            owner = None
        writer = Writer(u, owner, inst.chmod)
        for info in inst.infos:
            try:
                copy_one(writer, dest_path, info, inst.decompress)
            except (OSError, ContextError, tarfile.TarError, EOFError, TooDeep) as exc:
                raise BuildError(f"failed to copy files: {exc}") from None
        b.internals.commit_container(state, container, config, record_container=False)
    finally:
        b.internals.forget(container)


# ---- --chown ------------------------------------------------------------------------------------


def chown_identity(u: Union, chown: str) -> tuple[int, int]:
    """parseChownFlag: `user[:group]`, names looked up in the image's /etc/passwd and /etc/group."""
    parts = chown.split(":")
    if len(parts) > 2:
        raise BuildError(
            "unable to convert uid/gid chown string to host mapping: invalid chown string format: " + chown
        )
    user, group = (parts[0], parts[0]) if len(parts) == 1 else (parts[0], parts[1])
    view = UnionView(u)
    try:
        uid = _lookup(u, view, "/etc/passwd", user, 2)
        if uid is None:
            raise BuildError(f"can't find uid for user {user}: no such user: {user}")
        gid = _lookup(u, view, "/etc/group", group, 2)
        if gid is None:
            raise BuildError(f"can't find gid for group {group}: no such group: {group}")
    except BuildError as exc:
        raise BuildError(f"unable to convert uid/gid chown string to host mapping: {exc}") from None
    return uid, gid


def _lookup(u: Union, view: UnionView, path: str, name: str, field_index: int) -> int | None:
    try:
        return int(name, 10)
    except ValueError:
        pass
    what = "uid for user" if path == "/etc/passwd" else "gid for group"
    try:
        text = u.read_file(resolve(view, path)).decode("utf-8", "replace")
    except OSError:
        raise BuildError(f"can't find {what} {name}: open {path}: no such file or directory") from None
    for line in text.splitlines():
        fields = line.strip().split(":")
        if len(fields) > field_index and fields[0] == name:
            try:
                return int(fields[field_index])
            except ValueError:
                return 0
    return None


# ---- writing into the container's top layer ---------------------------------------------------


class Writer:
    """The container's root filesystem, written through the union (moby's archiver on the mount).

    Run by a user other than root, files keep that user as owner: ownership cannot be given away.
    """

    def __init__(self, u: Union, owner: tuple[int, int] | None, chmod: int | None) -> None:
        self.u = u
        self.view = UnionView(u)
        self.owner = owner  # None: keep the source's owners (COPY --from)
        self.chmod = chmod

    def lstat_or_none(self, path: str) -> StatLike | None:
        try:
            return self.u.getattr(path)
        except OSError:
            return None

    def is_dir(self, path: str) -> bool:
        st = self.lstat_or_none(path)
        return st is not None and stat.S_ISDIR(st.st_mode)

    def resolve(self, path: str) -> str:
        """`path` with its links followed in scope. A directory the union finds as written has
        no link on the way (the union core never follows one), so one lookup answers: a deep
        path costs one walk, not one per component."""
        clean = "/" + "/".join(p for p in path.split("/") if p)
        if ".." not in clean.split("/") and self.is_dir(clean):
            return clean
        return resolve(self.view, path)

    def mkdir_all(self, path: str, owner: tuple[int, int] | None) -> None:
        """MkdirAll (0755); new directories get `owner` (MkdirAllAndChown WithOnlyNew)."""
        if self.is_dir(path):
            return
        cur = ""
        for part in [p for p in path.split("/") if p]:
            nxt = cur.rstrip("/") + "/" + part
            st = self.lstat_or_none(nxt)
            if (st is not None and stat.S_ISLNK(st.st_mode)) or part == "..":
                nxt = self.resolve(nxt)
                st = self.lstat_or_none(nxt)
            cur = nxt
            if st is None:
                self.u.mkdir(cur, 0o755, ROOT)
                if owner is not None:
                    self.chown(cur, *owner)
            elif not stat.S_ISDIR(st.st_mode):
                raise NotADirectoryError(errno.ENOTDIR, f"mkdir {cur}: not a directory")

    def remove_all(self, path: str) -> None:
        """os.RemoveAll through the union (whiteouts where a lower layer has the name)."""
        st = self.lstat_or_none(path)
        if st is None:
            return
        if not stat.S_ISDIR(st.st_mode):
            self.u.unlink(path)
            return
        dirs = [path]
        order = []
        while dirs:
            d = dirs.pop()
            order.append(d)
            for n in self.u.listdir(d):
                child = d.rstrip("/") + "/" + n
                cst = self.u.getattr(child)
                if stat.S_ISDIR(cst.st_mode):
                    dirs.append(child)
                else:
                    self.u.unlink(child)
        for d in reversed(order):
            self.u.rmdir(d)

    def write_entry(self, path: str, st: os.stat_result, host: str, link: str | None = None) -> None:
        """One object, as Untar creates it: a file's bytes, a directory, a link, a node; then
        its owner, mode and times (a directory's times are set by the caller, after its content)."""
        existing = self.lstat_or_none(path)
        is_dir = stat.S_ISDIR(st.st_mode)
        if existing is not None and not (stat.S_ISDIR(existing.st_mode) and is_dir):
            self.remove_all(path)
            existing = None
        m = st.st_mode
        if link is not None:
            self.u.link(link, path)
            return
        if is_dir:
            if existing is None:
                self.u.mkdir(path, 0o755, ROOT)
        elif stat.S_ISREG(m):
            self._write_file(path, host)
        elif stat.S_ISLNK(m):
            self.u.symlink(os.readlink(host), path, ROOT)
        elif stat.S_ISFIFO(m):
            self.u.mkfifo(path, 0o600, ROOT)
        elif stat.S_ISCHR(m) or stat.S_ISBLK(m):
            try:
                self.u.mknod(path, stat.S_IFMT(m) | 0o600, st.st_rdev, ROOT)
            except PermissionError:
                return  # not root: devices cannot be made
        else:
            return
        self.set_meta(path, st)

    def _write_file(self, path: str, host: str) -> None:
        h = self.u.create(path, 0o600, cred=ROOT)
        try:
            offset = 0
            with open(host, "rb") as f:
                while chunk := f.read(_CHUNK):
                    self.u.write(h, chunk, offset)
                    offset += len(chunk)
        finally:
            self.u.release(h)

    def chown(self, path: str, uid: int, gid: int) -> None:
        try:
            self.u.chown(path, uid, gid)
        except PermissionError:
            if os.geteuid() == 0:
                raise

    def set_meta(self, path: str, st: os.stat_result, times: bool = True) -> None:
        is_link = stat.S_ISLNK(st.st_mode)
        self.chown(path, st.st_uid, st.st_gid)
        if not is_link:
            mode = stat.S_IMODE(st.st_mode) if self.chmod is None else self.chmod
            self.u.chmod(path, mode)
        if times and not stat.S_ISDIR(st.st_mode):
            self.set_times(path, st)

    def set_times(self, path: str, st: os.stat_result) -> None:
        mtime = (st.st_mtime_ns // 1_000_000_000) * 1_000_000_000
        self.u.utimens(path, (mtime, mtime))

    def fix_owner(self, path: str) -> None:
        if self.owner is not None:
            self.chown(path, *self.owner)


def copy_one(w: Writer, dest: str, info: CopyInfo, decompress: bool) -> None:
    """performCopyForInfo: a directory's content, an unpacked archive, or one file."""
    dest_path = w.resolve(dest)
    if info.data is not None:
        _copy_text(w, dest, dest_path, info)
        return
    assert info.source is not None
    fs = info.source.fs
    rel = info.source.rel(info.path)
    src = "/" if rel == "." else "/" + rel
    try:
        st = os.stat(fs.host_path(src))
    except OSError as exc:
        raise FileNotFoundError(errno.ENOENT, f"source path not found: stat {info.path}: {exc.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        copy_directory(w, fs, src, dest_path)
        return
    if decompress and not info.no_decompress:
        with open_archive(fs.host_path(src)) as tar:
            if tar is not None:
                untar(w, tar, dest_path)
                return
    if w.is_dir(dest_path) or dest.endswith("/"):
        dest_path = w.resolve(dest_path.rstrip("/") + "/" + os.path.basename(info.path.rstrip("/")))
    copy_file(w, fs.host_path(src), st, dest_path)


def _copy_text(w: Writer, dest: str, dest_path: str, info: CopyInfo) -> None:
    """A heredoc source: a 0644 file with the text (buildkit's inline file)."""
    if w.is_dir(dest_path) or dest.endswith("/"):
        dest_path = w.resolve(dest_path.rstrip("/") + "/" + info.path)
    w.mkdir_all(os.path.dirname(dest_path), w.owner)
    w.remove_all(dest_path)
    h = w.u.create(dest_path, 0o644, cred=ROOT)
    try:
        w.u.write(h, (info.data or "").encode("utf-8", "surrogateescape"), 0)
    finally:
        w.u.release(h)
    w.u.chmod(dest_path, 0o644 if w.chmod is None else w.chmod)
    w.fix_owner(dest_path)


def copy_file(w: Writer, host: str, st: os.stat_result, dest_path: str) -> None:
    """copyFile: parents made, the file written with the source's mode and mtime, then chowned."""
    w.mkdir_all(os.path.dirname(dest_path) or "/", w.owner)
    w.write_entry(dest_path, st, host)
    w.fix_owner(dest_path)


def copy_directory(w: Writer, fs: FSView, src: str, dest_path: str) -> None:
    """copyDirectory: the destination made (root-owned if new), the tree below the source copied
    into it as TarUntar would, then chowned (the destination only if it is new)."""
    existed = w.is_dir(dest_path)
    w.mkdir_all(dest_path, (0, 0))
    dirs: list[tuple[str, os.stat_result]] = []
    seen: dict[tuple[int, int], str] = {}
    base = src.rstrip("/")
    for path, _ in walk(fs, src):
        if path == src:
            continue
        rel = path[len(base) :].lstrip("/")
        target = dest_path.rstrip("/") + "/" + rel
        check_depth(target)
        host = fs.host_path(path)
        st = os.lstat(host)
        link = None
        if not stat.S_ISDIR(st.st_mode) and st.st_nlink > 1:
            key = (st.st_dev, st.st_ino)
            link = seen.get(key)
            seen.setdefault(key, target)
        if stat.S_ISSOCK(st.st_mode):
            continue
        w.write_entry(target, st, host, link)
        if link is None:
            _copy_capability(w, host, target)
        if stat.S_ISDIR(st.st_mode):
            dirs.append((target, st))
        w.fix_owner(target)
    for target, st in reversed(dirs):
        w.set_times(target, st)
    if not existed:
        w.fix_owner(dest_path)


def _copy_capability(w: Writer, host: str, target: str) -> None:
    try:
        cap = os.getxattr(host, "security.capability", follow_symlinks=False)
    except OSError:
        return
    try:
        w.u.setxattr(target, "security.capability", cap)
    except OSError:
        pass


# ---- ADD's archives --------------------------------------------------------------------------------


@contextmanager
def open_archive(path: str) -> Iterator[tarfile.TarFile | None]:
    """IsArchivePath: a tar, plain or gzip, bzip2 or xz compressed, whose first header reads
    back; None for anything else (then ADD copies the file as is). The tar is read as a stream:
    iterating it starts again at that first member."""
    with open(path, "rb") as raw:
        stream = compression.decompressed(raw)
        try:
            tar = tarfile.open(fileobj=stream, mode="r|")
            first = tar.next()
        except (tarfile.TarError, *compression.ERRORS):
            yield None
            return
        with tar:
            yield tar if first is not None else None


def untar(w: Writer, tar: tarfile.TarFile, dest_path: str) -> None:
    """chrootarchive.Untar into the destination (made if missing): owners from the archive,
    names that would leave the destination refused."""
    w.mkdir_all(dest_path, (0, 0))
    base = dest_path.rstrip("/")
    dirs: list[tuple[str, int]] = []
    for m in tar:
        check_depth(base + "/" + m.name.strip("/"))
        parts = [p for p in m.name.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise tarfile.TarError(f"invalid archive entry {m.name!r}: outside the destination")
        if not parts:
            continue
        target = base + "/" + "/".join(parts)
        parent = w.resolve(os.path.dirname(target))
        if not (parent + "/").startswith(base + "/") and parent != base:
            raise tarfile.TarError(f"invalid archive entry {m.name!r}: through a link outside the destination")
        w.mkdir_all(parent, (0, 0))
        target = parent.rstrip("/") + "/" + parts[-1]
        _untar_entry(w, tar, m, target, base, dirs)
    for target, mtime in reversed(dirs):
        w.u.utimens(target, (mtime * 1_000_000_000, mtime * 1_000_000_000))


def _untar_entry(
    w: Writer, tar: tarfile.TarFile, m: tarfile.TarInfo, target: str, base: str, dirs: list[tuple[str, int]]
) -> None:
    existing = w.lstat_or_none(target)
    if existing is not None and not (stat.S_ISDIR(existing.st_mode) and m.isdir()):
        w.remove_all(target)
    if m.isdir():
        if existing is None or not stat.S_ISDIR(existing.st_mode):
            w.u.mkdir(target, 0o755, ROOT)
        dirs.append((target, int(m.mtime)))
    elif m.isreg():
        src = tar.extractfile(m)
        h = w.u.create(target, 0o600, cred=ROOT)
        try:
            offset = 0
            while src is not None and (chunk := src.read(_CHUNK)):
                w.u.write(h, chunk, offset)
                offset += len(chunk)
        finally:
            w.u.release(h)
    elif m.issym():
        w.u.symlink(m.linkname, target, ROOT)
    elif m.islnk():
        parts = [p for p in m.linkname.split("/") if p not in ("", ".")]
        source = w.resolve(os.path.dirname(base + "/" + "/".join(parts))).rstrip("/") + "/" + parts[-1] if parts else ""
        if ".." in parts or not source.startswith(base + "/"):
            raise tarfile.TarError(f"invalid hardlink {m.linkname!r}: outside the destination")
        w.u.link(source, target)
        return
    elif m.isfifo():
        w.u.mkfifo(target, 0o600, ROOT)
    elif m.ischr() or m.isblk():
        kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
        try:
            w.u.mknod(target, kind | 0o600, os.makedev(m.devmajor, m.devminor), ROOT)
        except PermissionError:
            return
    else:
        return
    w.chown(target, m.uid, m.gid)
    if not m.issym():
        w.u.chmod(target, m.mode & 0o7777)
    for k, v in m.pax_headers.items():
        if k.startswith("SCHILY.xattr."):
            try:
                w.u.setxattr(target, k[len("SCHILY.xattr.") :], v.encode("utf-8", "surrogateescape"))
            except OSError:
                pass  # BestEffortXattrs
    if not m.isdir():
        w.u.utimens(target, (int(m.mtime) * 1_000_000_000, int(m.mtime) * 1_000_000_000))


# ---- WORKDIR ------------------------------------------------------------------------------------------


def make_workdir(u: Union, workdir: str) -> None:
    """ContainerCreateWorkdir: the working directory made (0755, root's) if it is missing."""
    w = Writer(u, (0, 0), None)
    try:
        w.mkdir_all(workdir, (0, 0))
    except NotADirectoryError:
        raise BuildError(f"Cannot mkdir: {workdir} is not a directory") from None


__all__ = ["dispatch_copy", "make_workdir", "source_hash", "normalize_dest", "HostDir"]
