"""The build context on the client's side (docker/cli cli/command/image/build: context.go,
context_detect.go, dockerignore.go; moby/go-archive's TarWithOptions).

What `docker build CONTEXT` sends: a directory becomes one tar, made as the CLI makes it
(every file owned by 0:0, `.dockerignore`'s excludes left out and never read by the daemon,
exceptions with `!` walked into, the Dockerfile and `.dockerignore` always sent so the daemon
can read them); `-` reads a tar (plain or compressed) or a bare Dockerfile from stdin; `-f -`
takes the Dockerfile from stdin and adds it to the tar under a random `.dockerfile.<id>` name.
Contexts from a URL or a git repository need the network and are refused with one line.
"""

from __future__ import annotations

import functools
import io
import os
import secrets
import stat
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, BinaryIO

from .. import archive
from . import compression
from .dockerignore import PatternError, PatternMatcher, matches, read_ignore_file

DEFAULT_DOCKERFILE = "Dockerfile"
_CHUNK = 1 << 20


class ContextError(Exception):
    """The CLI's own refusal (printed without the daemon prefix)."""


@dataclass
class ClientContext:
    """What the client sends: the context tar (spooled), and the Dockerfile's name inside it."""

    body: IO[bytes]
    dockerfile: str
    size: int


def is_git_url(s: str) -> bool:
    """urlutil.IsGitURL."""
    if s.startswith(("git://", "github.com/", "git@")):
        return True
    return is_url(s) and (s.split("#", 1)[0].endswith(".git"))


def is_url(s: str) -> bool:
    return s.startswith(("http://", "https://"))


def detect_context_type(spec: str) -> str:
    if spec == "-":
        return "stdin"
    if os.path.exists(spec):
        return "local"
    if is_git_url(spec):
        return "git"
    if is_url(spec):
        return "remote"
    raise ContextError(f'unable to prepare context: path "{spec}" not found')


def prepare(spec: str, dockerfile: str, stdin: BinaryIO | None) -> ClientContext:
    """runBuild's first half: the context tar and the Dockerfile's name in it (`stdin` is
    read only for `-` or `-f -`)."""
    kind = detect_context_type(spec)
    if stdin is None and "-" in (spec, dockerfile):
        raise ContextError("invalid argument: stdin is not available")
    dockerfile_ctx: bytes | None = None
    if dockerfile == "-":
        if kind == "stdin":
            raise ContextError("invalid argument: can't use stdin for both build context and dockerfile")
        assert stdin is not None
        dockerfile_ctx = stdin.read()
    if kind in ("git", "remote"):
        raise ContextError(
            f"unable to prepare context: {spec}: a {'git repository' if kind == 'git' else 'URL'} as the "
            "build context needs the network, and layerlab builds offline"
        )
    if kind == "stdin":
        assert stdin is not None
        try:
            body, rel = context_from_reader(stdin, dockerfile)
        except ContextError as exc:
            raise ContextError(f"unable to prepare context from STDIN: {exc}") from None
    else:
        context_dir, rel = context_from_local_dir(spec, dockerfile)
        if rel.startswith("../"):
            with open(dockerfile, "rb") as f:
                dockerfile_ctx = f.read()
        body = tar_context_dir(context_dir, rel, dockerfile_ctx is not None)
    if dockerfile_ctx is not None:
        body, rel = add_dockerfile_to_context(dockerfile_ctx, body)
    size = body.seek(0, io.SEEK_END)
    body.seek(0)
    return ClientContext(body, rel, size)


def _spool() -> IO[bytes]:
    import tempfile

    return tempfile.TemporaryFile()


# ---- a directory -----------------------------------------------------------------------------


def context_from_local_dir(local_dir: str, dockerfile: str) -> tuple[str, str]:
    """GetContextFromLocalDir: the context's real path and the Dockerfile relative to it."""
    try:
        abs_dir = os.path.realpath(os.path.abspath(local_dir))
        st = os.lstat(abs_dir)
    except OSError as exc:
        raise ContextError(f"unable to prepare context: unable to stat context directory {abs_dir!r}: {exc}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise ContextError(f"unable to prepare context: context must be a directory: {abs_dir}")
    if dockerfile and dockerfile != "-":
        dockerfile = os.path.abspath(dockerfile)
    if dockerfile == "-":
        return abs_dir, "-"
    target = dockerfile
    if not target:
        target = os.path.join(abs_dir, DEFAULT_DOCKERFILE)
        if not os.path.lexists(target) and os.path.lexists(os.path.join(abs_dir, "dockerfile")):
            target = os.path.join(abs_dir, "dockerfile")
    real = os.path.realpath(target)
    if not os.path.lexists(real):
        raise ContextError(f'unable to prepare context: cannot locate Dockerfile: "{real}"')
    return abs_dir, os.path.relpath(real, abs_dir)


def read_dockerignore(context_dir: str) -> list[str]:
    try:
        with open(os.path.join(context_dir, ".dockerignore"), "rb") as f:
            return read_ignore_file(f.read())
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise ContextError(f"error reading .dockerignore: {exc}") from None


def trim_build_files_from_excludes(excludes: list[str], dockerfile: str, from_stdin: bool) -> list[str]:
    """The Dockerfile and .dockerignore are always sent: the daemon needs them, then drops them."""
    if matches(".dockerignore", excludes):
        excludes = [*excludes, "!.dockerignore"]
    if matches(dockerfile, excludes) and not from_stdin:
        excludes = [*excludes, "!" + dockerfile]
    return excludes


def tar_context_dir(context_dir: str, dockerfile: str, dockerfile_from_stdin: bool) -> IO[bytes]:
    """The directory as the CLI tars it: excludes applied, owners 0:0, unreadable files refused."""
    try:
        excludes = trim_build_files_from_excludes(read_dockerignore(context_dir), dockerfile, dockerfile_from_stdin)
        pm = PatternMatcher(excludes)
    except PatternError as exc:
        raise ContextError(f"error reading .dockerignore: {exc}") from None
    out = _spool()
    for chunk in _context_tar(context_dir, pm):
        out.write(chunk)
    out.seek(0)
    return out


def _walk_preorder(root: str) -> Iterator[tuple[str, str, os.stat_result]]:
    """Pre-order walk without recursion: a directory, then its sorted entries, depth first."""
    stack: list[tuple[str, str]] = []

    def children(real: str, rel: str) -> list[tuple[str, str]]:
        try:
            names = sorted(os.listdir(real), key=os.fsencode)
        except PermissionError:
            raise ContextError(f"checking context: can't stat '{real}'") from None
        return [(os.path.join(real, n), f"{rel}/{n}" if rel else n) for n in reversed(names)]

    stack.extend(children(root, ""))
    while stack:
        p, r = stack.pop()
        st = os.lstat(p)
        yield p, r, st
        if stat.S_ISDIR(st.st_mode):
            stack.extend(children(p, r))


def _context_tar(root: str, pm: PatternMatcher) -> Iterator[bytes]:
    """go-archive Tarballer.Do with ExcludePatterns and ChownOpts{0, 0}."""
    parents: list[tuple[str, list[bool]]] = []
    seen_inodes: dict[tuple[int, int], str] = {}
    skip_below: str | None = None
    for path, rel, st in _walk_preorder(root):
        if skip_below is not None and rel.startswith(skip_below):
            continue
        skip_below = None
        while parents and not rel.startswith(parents[-1][0] + "/"):
            parents.pop()
        skip, info = pm.matches_using_parent_results(rel, parents[-1][1] if parents else None)
        if stat.S_ISDIR(st.st_mode):
            parents.append((rel, info))
        if skip:
            if not stat.S_ISDIR(st.st_mode):
                continue
            if not pm.exclusions or not any(
                p.exclusion and (p.cleaned + "/").startswith(rel + "/") for p in pm.patterns
            ):
                skip_below = rel + "/"
                continue
            continue  # the directory itself is left out, but an exception may take back what is below
        entry = _entry(path, rel, st, seen_inodes)
        if entry is None:
            continue
        yield archive.encode_header(entry)
        if entry.source and entry.size:
            yield from _file_chunks(path, entry.size)
            yield b"\0" * (-entry.size % archive.BLOCK)
    yield b"\0" * (2 * archive.BLOCK)


def _entry(path: str, rel: str, st: os.stat_result, seen: dict[tuple[int, int], str]) -> archive.TarEntry | None:
    m = st.st_mode
    if stat.S_ISSOCK(m):
        return None
    e = archive.TarEntry(name=rel, typeflag=archive.TYPE_REG, mode=stat.S_IMODE(m), mtime=int(st.st_mtime))
    if stat.S_ISREG(m):
        if not os.access(path, os.R_OK):
            raise ContextError(f"checking context: no permission to read from '{path}'")
        e.size, e.source = st.st_size, functools.partial(os.open, path, os.O_RDONLY | os.O_CLOEXEC)
    elif stat.S_ISDIR(m):
        e.typeflag, e.name = archive.TYPE_DIR, rel + "/"
    elif stat.S_ISLNK(m):
        e.typeflag, e.linkname = archive.TYPE_SYMLINK, os.readlink(path)
    elif stat.S_ISCHR(m) or stat.S_ISBLK(m):
        e.typeflag = archive.TYPE_CHAR if stat.S_ISCHR(m) else archive.TYPE_BLOCK
        e.devmajor, e.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    elif stat.S_ISFIFO(m):
        e.typeflag = archive.TYPE_FIFO
    try:
        e.xattrs = {"security.capability": os.getxattr(path, "security.capability", follow_symlinks=False)}
    except OSError:
        pass
    if not stat.S_ISDIR(m) and st.st_nlink > 1:
        key = (st.st_dev, st.st_ino)
        if key in seen:
            e.typeflag, e.linkname, e.size, e.source = archive.TYPE_LINK, seen[key], 0, None
        else:
            seen[key] = rel
    return e


def _file_chunks(path: str, size: int) -> Iterator[bytes]:
    left = size
    with open(path, "rb") as f:
        while left:
            chunk = f.read(min(_CHUNK, left))
            if not chunk:
                raise ContextError(f"{path}: file shrank while the context was sent")
            left -= len(chunk)
            yield chunk


# ---- stdin ---------------------------------------------------------------------------------------


def is_archive(header: bytes) -> bool:
    """A compressed stream, or a tar whose first header reads back."""
    if compression.detect(header):
        return True
    try:
        with tarfile.open(fileobj=io.BytesIO(header), mode="r:") as t:
            return t.next() is not None
    except (tarfile.TarError, EOFError, OSError):
        return False


def context_from_reader(stream: BinaryIO, dockerfile: str) -> tuple[IO[bytes], str]:
    """GetContextFromReader: a tar (as is) or a Dockerfile (made the only file of a context)."""
    body = _spool()
    while chunk := stream.read(_CHUNK):
        body.write(chunk)
    body.seek(0)
    head = body.read(1024)
    body.seek(0)
    if is_archive(head):
        return _decompressed(body), dockerfile
    if dockerfile == "-":
        raise ContextError("build context is not an archive")
    if dockerfile:
        raise ContextError("ambiguous Dockerfile source: both stdin and flag correspond to Dockerfiles")
    data = body.read()
    out = _spool()
    e = archive.TarEntry(
        name=DEFAULT_DOCKERFILE,
        typeflag=archive.TYPE_REG,
        mode=0o644,
        uid=os.getuid(),
        gid=os.getgid(),
        size=len(data),
        mtime=int(time.time()),
    )
    out.write(archive.encode_header(e) + data + b"\0" * (-len(data) % archive.BLOCK) + b"\0" * (2 * archive.BLOCK))
    out.seek(0)
    return out, DEFAULT_DOCKERFILE


def _decompressed(body: IO[bytes]) -> IO[bytes]:
    """The tar itself: what is sent is plain (the daemon would decompress it the same way)."""
    stream = compression.decompressed(body)
    if stream is body:
        return body
    out = _spool()
    while chunk := stream.read(_CHUNK):
        out.write(chunk)
    out.seek(0)
    return out


def add_dockerfile_to_context(dockerfile: bytes, body: IO[bytes]) -> tuple[IO[bytes], str]:
    """AddDockerfileToBuildContext: the Dockerfile as `.dockerfile.<random>`, and that name
    added to `.dockerignore` so the daemon drops it from the context once it is read."""
    name = ".dockerfile." + secrets.token_hex(10)
    now = int(time.time())
    out = _spool()
    ignore_data: bytes | None = None
    with tarfile.open(fileobj=body, mode="r|*") as tar:
        for m in tar:
            if m.name in (name, ".dockerignore") and m.isreg():
                src = tar.extractfile(m)
                ignore_data = src.read() if src is not None and m.name == ".dockerignore" else ignore_data
                continue
            _copy_entry(m, tar, out)
    ignore = (ignore_data if ignore_data is not None else b".dockerignore") + b"\n" + name.encode() + b"\n"
    for entry_name, data in ((name, dockerfile), (".dockerignore", ignore)):
        e = archive.TarEntry(name=entry_name, typeflag=archive.TYPE_REG, mode=0o600, size=len(data), mtime=now)
        out.write(archive.encode_header(e) + data + b"\0" * (-len(data) % archive.BLOCK))
    out.write(b"\0" * (2 * archive.BLOCK))
    out.seek(0)
    return out, name


def _copy_entry(m: tarfile.TarInfo, tar: tarfile.TarFile, out: IO[bytes]) -> None:
    """One entry of the CLI's tar written again as it was (its data streamed)."""
    kinds = {
        tarfile.REGTYPE: archive.TYPE_REG,
        tarfile.AREGTYPE: archive.TYPE_REG,
        tarfile.DIRTYPE: archive.TYPE_DIR,
        tarfile.SYMTYPE: archive.TYPE_SYMLINK,
        tarfile.LNKTYPE: archive.TYPE_LINK,
        tarfile.CHRTYPE: archive.TYPE_CHAR,
        tarfile.BLKTYPE: archive.TYPE_BLOCK,
        tarfile.FIFOTYPE: archive.TYPE_FIFO,
    }
    e = archive.TarEntry(
        name=m.name + "/" if m.isdir() else m.name,
        typeflag=kinds.get(m.type, archive.TYPE_REG),
        mode=m.mode,
        uid=m.uid,
        gid=m.gid,
        size=m.size if m.isreg() else 0,
        mtime=int(m.mtime),
        linkname=m.linkname,
        devmajor=m.devmajor,
        devminor=m.devminor,
    )
    out.write(archive.encode_header(e))
    src = tar.extractfile(m) if m.isreg() else None
    if src is not None:
        while chunk := src.read(_CHUNK):
            out.write(chunk)
        out.write(b"\0" * (-m.size % archive.BLOCK))


__all__ = ["prepare", "ClientContext", "ContextError", "detect_context_type", "tar_context_dir", "is_archive"]
