"""A container's files through its union, without mounting: `docker export` and `docker cp`
(moby daemon/archive.go, export.go).

dockerd mounts the container to read or write its files. Here the union is opened with
layerfs's core (`unionfs.Union`, no FUSE): read-only (`observe`) to export or copy out, and
writable to copy in, which then makes copy-ups and whiteouts in the top layer exactly as a
write through the mount would. When the container is mounted already (`imagegraph mount`),
writes go through the mount point instead, so the live mount never sees its layers change
under it.
"""

from __future__ import annotations

import base64
import os
import posixpath
import stat
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import BinaryIO

from unionfs.options import parse_options, validate
from unionfs.union import Union

from ..archive import (
    BLOCK,
    TYPE_BLOCK,
    TYPE_CHAR,
    TYPE_DIR,
    TYPE_FIFO,
    TYPE_LINK,
    TYPE_REG,
    TYPE_SYMLINK,
    TarEntry,
    _pad,
    encode_header,
)
from ..container import Container, ContainerStore
from ..digest import go_json
from ..service import InvalidParameter, NotFound

CHUNK = 1 << 20
MAX_LINKS = 40  # symlinks followed while resolving one path (Linux's limit)

# Go's os.FileMode type bits, as the X-Docker-Container-Path-Stat header carries them.
GO_MODE_DIR = 1 << 31
GO_MODE_SYMLINK = 1 << 27
GO_MODE_DEVICE = 1 << 26
GO_MODE_NAMED_PIPE = 1 << 25
GO_MODE_SOCKET = 1 << 24
GO_MODE_SETUID = 1 << 23
GO_MODE_SETGID = 1 << 22
GO_MODE_CHAR_DEVICE = 1 << 21
GO_MODE_STICKY = 1 << 20


def union_options(store: ContainerStore, c: Container) -> str:
    """The container's union as layerfs options: the image's layers, the init layer, the top layer."""
    m = store.mount_layer(c)
    top = store.layout.layer_dir(m.mount_id)
    init = store.layout.layer_dir(m.init_id) / "diff"
    parts = []
    lowers = [str(p) for p in store.layers.lower_dirs(m.parent)]
    if lowers:
        parts.append("lowerdir=" + ":".join(_escape(p) for p in lowers))
    parts += [f"upperdir={_escape(str(top / 'diff'))}", f"workdir={_escape(str(top / 'work'))}"]
    parts.append(f"initdir={_escape(str(init))}")
    return ",".join(parts)


def _escape(path: str) -> str:
    return path.replace("\\", "\\\\").replace(",", "\\,").replace(":", "\\:")


def open_union(store: ContainerStore, c: Container, write: bool = False) -> Union:
    """Read: the layers observed. Write: the mount point if the container is mounted, else the layers."""
    if write:
        mounted = store.mountpoint(c)
        if mounted is not None:
            return Union.from_options(f"dirs={_escape(str(mounted))}")
        return Union.from_spec(validate(parse_options(union_options(store, c))))
    return Union.observe(validate(parse_options(union_options(store, c))))


def go_mode(mode: int) -> int:
    """A unix st_mode as Go's os.FileMode."""
    out = mode & 0o777
    kind = stat.S_IFMT(mode)
    if kind == stat.S_IFDIR:
        out |= GO_MODE_DIR
    elif kind == stat.S_IFLNK:
        out |= GO_MODE_SYMLINK
    elif kind == stat.S_IFBLK:
        out |= GO_MODE_DEVICE
    elif kind == stat.S_IFCHR:
        out |= GO_MODE_DEVICE | GO_MODE_CHAR_DEVICE
    elif kind == stat.S_IFIFO:
        out |= GO_MODE_NAMED_PIPE
    elif kind == stat.S_IFSOCK:
        out |= GO_MODE_SOCKET
    if mode & stat.S_ISUID:
        out |= GO_MODE_SETUID
    if mode & stat.S_ISGID:
        out |= GO_MODE_SETGID
    if mode & stat.S_ISVTX:
        out |= GO_MODE_STICKY
    return out


def go_time(ns: int) -> str:
    """time.Time as Go marshals it (RFC3339Nano, UTC here)."""
    t = datetime.fromtimestamp(ns // 1_000_000_000, UTC)
    frac = f"{ns % 1_000_000_000:09d}".rstrip("0")
    return t.strftime("%Y-%m-%dT%H:%M:%S") + (f".{frac}" if frac else "") + "Z"


@dataclass(frozen=True)
class PathStat:
    """container.PathStat: what `docker cp` learns about a path before copying."""

    name: str
    size: int
    mode: int  # Go's os.FileMode
    mtime: str
    link_target: str

    def header(self) -> str:
        data = {"name": self.name, "size": self.size, "mode": self.mode, "mtime": self.mtime}
        data["linkTarget"] = self.link_target
        return base64.b64encode(go_json(data)).decode()


def not_found(path: str, c: Container) -> NotFound:
    return NotFound(f"Could not find the file {path} in container {c.name}")


def resolve(u: Union, path: str, follow_last: bool) -> str:
    """The union path `path` means inside the container (symlinks resolved within its root)."""
    if not path.startswith("/"):
        path = "/" + path
    parts = [p for p in path.split("/") if p not in ("", ".")]
    resolved: list[str] = []
    links = 0
    while parts:
        name = parts.pop(0)
        if name == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = "/" + "/".join([*resolved, name])
        last = not parts
        try:
            st = u.getattr(candidate)
        except FileNotFoundError:
            resolved.append(name)
            continue
        except OSError:
            resolved.append(name)
            continue
        if stat.S_ISLNK(st.st_mode) and (not last or follow_last):
            links += 1
            if links > MAX_LINKS:
                raise InvalidParameter(f"too many levels of symbolic links: {path}")
            target = u.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            continue
        resolved.append(name)
    return "/" + "/".join(resolved)


def stat_path(u: Union, c: Container, path: str) -> tuple[str, PathStat]:
    """(the resolved union path, its PathStat), as moby's statPath: the last component is not
    followed unless the path ends in `/` or `/.`."""
    follow = path.endswith(("/", "/."))
    resolved = resolve(u, path, follow_last=follow)
    try:
        st = u.getattr(resolved)
    except FileNotFoundError:
        raise not_found(path, c) from None
    link_target = ""
    if stat.S_ISLNK(st.st_mode):
        link_target = resolve(u, resolved, follow_last=True)
    name = posixpath.basename(resolved.rstrip("/")) or "/"
    return resolved, PathStat(name, st.st_size, go_mode(st.st_mode), go_time(st.st_mtime_ns), link_target)


def _entry(u: Union, upath: str, name: str, seen: dict[tuple[int, int], str]) -> tuple[TarEntry, str | None]:
    """The tar header for one union path, and the real file its bytes come from."""
    st = u.getattr(upath)
    mode = st.st_mode
    e = TarEntry(name=name, typeflag=TYPE_REG, mode=stat.S_IMODE(mode), uid=st.st_uid, gid=st.st_gid)
    e.mtime = st.st_mtime_ns // 1_000_000_000
    source = None
    if stat.S_ISDIR(mode):
        e.typeflag, e.name = TYPE_DIR, name.rstrip("/") + "/"
    elif stat.S_ISLNK(mode):
        e.typeflag, e.linkname = TYPE_SYMLINK, u.readlink(upath)
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        e.typeflag = TYPE_CHAR if stat.S_ISCHR(mode) else TYPE_BLOCK
        e.devmajor, e.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    elif stat.S_ISFIFO(mode):
        e.typeflag = TYPE_FIFO
    elif stat.S_ISREG(mode):
        node = u.lookup(upath)
        source = node.top.real
        real = node.top.st
        key = (real.st_dev, real.st_ino)
        if real.st_nlink > 1 and key in seen:
            e.typeflag, e.linkname = TYPE_LINK, seen[key]
            source = None
        else:
            if real.st_nlink > 1:
                seen[key] = name
            e.size = st.st_size
    return e, source


def _walk(u: Union, upath: str, name: str) -> Iterator[tuple[str, str]]:
    """(union path, tar name) pairs, pre-order, names sorted bytewise (Go's Walk), no recursion."""
    stack = [(upath, name)]
    while stack:
        path, tname = stack.pop()
        yield path, tname
        try:
            st = u.getattr(path)
        except FileNotFoundError:
            continue
        if stat.S_ISDIR(st.st_mode):
            children = sorted(u.listdir(path), key=os.fsencode, reverse=True)
            for child in children:
                cpath = path.rstrip("/") + "/" + child
                stack.append((cpath, f"{tname.rstrip('/')}/{child}" if tname else child))


def tar_stream(u: Union, upath: str, rebase: str | None) -> Iterator[bytes]:
    """A tar of `upath` and what is under it; entry names start at `rebase` (docker cp's base
    name), or are relative to `upath` with no root entry (export)."""
    seen: dict[tuple[int, int], str] = {}
    for path, name in _walk(u, upath, rebase or ""):
        if not name:
            continue  # export: no entry for the root itself
        try:
            e, source = _entry(u, path, name, seen)
        except FileNotFoundError:
            continue  # gone meanwhile
        yield encode_header(e)
        if source is not None and e.size:
            written = 0
            with open(source, "rb") as f:
                while written < e.size:
                    chunk = f.read(min(CHUNK, e.size - written))
                    if not chunk:
                        chunk = b"\0" * (e.size - written)  # the file shrank: pad, as the header promised
                    written += len(chunk)
                    yield chunk
            yield _pad(e.size)
    yield b"\0" * (2 * BLOCK)


def export_stream(u: Union) -> Iterator[bytes]:
    """`docker export`: the merged root filesystem as one tar (names relative to /, no root entry)."""
    return tar_stream(u, "/", None)


# ---- copying in ----------------------------------------------------------------------------------


def _safe_join(base: str, name: str) -> str | None:
    """A tar member's place under `base` (a union path); None for names that climb out."""
    clean = posixpath.normpath("/" + name).lstrip("/")
    if clean in ("", "."):
        return base
    if clean.startswith(".."):
        return None
    return posixpath.join(base, clean)


def extract(u: Union, dest: str, body: BinaryIO, no_overwrite_dir_non_dir: bool, keep_owner: bool) -> int:
    """Unpack a tar into the union below `dest`; returns the number of entries written.

    Each write goes through the union, so a file of a lower layer is copied up and a replaced
    directory's lower contents are whited out, as through a mount."""
    try:
        tar = tarfile.open(fileobj=body, mode="r|*")
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise InvalidParameter(f"archive/tar: {exc}") from None
    count = 0
    dir_times: list[tuple[str, int]] = []
    with tar:
        try:
            for m in tar:
                target = _safe_join(dest, m.name)
                if target is None or target == dest and not m.isdir():
                    continue
                _extract_one(u, tar, m, target, dest, no_overwrite_dir_non_dir, keep_owner)
                if m.isdir():
                    dir_times.append((target, int(m.mtime)))
                count += 1
        except tarfile.TarError as exc:
            raise InvalidParameter(f"archive/tar: {exc}") from None
    for path, mtime in reversed(dir_times):
        try:
            u.utimens(path, (mtime * 1_000_000_000, mtime * 1_000_000_000))
        except OSError:
            pass
    return count


def _extract_one(
    u: Union, tar: tarfile.TarFile, m: tarfile.TarInfo, target: str, dest: str, no_overwrite: bool, keep_owner: bool
) -> None:
    try:
        existing = u.getattr(target)
    except FileNotFoundError:
        existing = None
    if existing is not None:
        is_dir = stat.S_ISDIR(existing.st_mode)
        if no_overwrite and is_dir != m.isdir():
            kind = "directory" if is_dir else "non-directory"
            raise InvalidParameter(
                f"cannot overwrite {kind} {target!r} with {'directory' if m.isdir() else 'non-directory'}"
            )
        if not (is_dir and m.isdir()):
            if is_dir:
                _remove_tree(u, target)
            else:
                u.unlink(target)
    mode = m.mode & 0o7777
    if m.isdir():
        if existing is None or not stat.S_ISDIR(existing.st_mode):
            u.mkdir(target, mode)
        else:
            u.chmod(target, mode)
    elif m.isreg():
        src = tar.extractfile(m)
        handle = u.create(target, mode)
        try:
            offset = 0
            while src is not None:
                chunk = src.read(CHUNK)
                if not chunk:
                    break
                u.write(handle, chunk, offset)
                offset += len(chunk)
        finally:
            u.release(handle)
        u.chmod(target, mode)
    elif m.issym():
        u.symlink(m.linkname, target)
    elif m.islnk():
        source = _safe_join(dest, m.linkname)
        if source is None:
            raise InvalidParameter(f"invalid hardlink {m.name!r} -> {m.linkname!r}")
        u.link(source, target)
    elif m.ischr() or m.isblk():
        fmt = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
        u.mknod(target, fmt | mode, os.makedev(m.devmajor, m.devminor))
    elif m.isfifo():
        u.mkfifo(target, mode)
    else:
        return
    if keep_owner and os.geteuid() == 0 and not m.issym():
        try:
            u.chown(target, m.uid, m.gid)
        except OSError:
            pass
    if not m.isdir() and not m.issym():
        try:
            u.utimens(target, (int(m.mtime) * 1_000_000_000, int(m.mtime) * 1_000_000_000))
        except OSError:
            pass


def _remove_tree(u: Union, top: str) -> None:
    """rm -rf through the union (whiteouts where lower layers have the names), without recursion."""
    stack = [(top, False)]
    while stack:
        path, visited = stack.pop()
        st = u.getattr(path)
        if stat.S_ISDIR(st.st_mode):
            if visited:
                u.rmdir(path)
                continue
            stack.append((path, True))
            for child in u.listdir(path):
                stack.append((path.rstrip("/") + "/" + child, False))
        else:
            u.unlink(path)
