"""Where the store lives and how it is written: root resolution, Docker's folder layout, the lock, atomic writes.

The layout copies `/var/lib/docker` with the graphdriver named `layerfs`, so a student who
later opens a real Docker host recognises every folder (spec §3.1):

    <root>/image/layerfs/imagedb/content/sha256/<id>            config bytes
    <root>/image/layerfs/imagedb/metadata/sha256/<id>/parent     parent image ID
    <root>/image/layerfs/layerdb/sha256/<chainid>/{diff,size,cache-id,parent}
    <root>/image/layerfs/layerdb/mounts/<container>/{mount-id,init-id,parent}
    <root>/image/layerfs/repositories.json
    <root>/layerfs/<cache-id>/diff                               a layer's files
    <root>/layerfs/<mount-id>-init/diff, <root>/layerfs/<mount-id>/{diff,work,merged}
    <root>/containers/<id>/{config.v2.json,hostname,hosts,resolv.conf}
    <root>/tmp/<scratch>/                                        downloads in flight (dockerd's tmp/)

Every file is written to a temporary name and renamed into place; a directory of metadata
is built under a temporary name and renamed as a whole, so a crash leaves either the old
state or the new one, plus temporary leftovers that readers ignore and `Store.clean()` removes.
"""

from __future__ import annotations

import errno
import fcntl
import os
import secrets
import shutil
import stat
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .fstree import remove_quietly

DRIVER = "layerfs"
TMP_PREFIX = ".tmp-"


def resolve_root(arg: str | None = None, env: Mapping[str, str] | None = None, euid: int | None = None) -> Path:
    """`--root`, else $IMAGEGRAPH_ROOT, else /var/lib/imagegraph for root, ~/.local/share/imagegraph otherwise."""
    env = os.environ if env is None else env
    if arg:
        return Path(arg).absolute()
    if env.get("IMAGEGRAPH_ROOT"):
        return Path(env["IMAGEGRAPH_ROOT"]).absolute()
    euid = os.geteuid() if euid is None else euid
    if euid == 0:
        return Path("/var/lib/imagegraph")
    home = env.get("HOME") or os.path.expanduser("~")
    return Path(home) / ".local" / "share" / "imagegraph"


def hex_of(digest: str) -> str:
    """ "sha256:abc" -> "abc" (file names in the store are bare hex)."""
    return digest.split(":", 1)[1] if ":" in digest else digest


@dataclass(frozen=True)
class Layout:
    """Paths of the store; no I/O."""

    root: Path

    @property
    def image_root(self) -> Path:
        return self.root / "image" / DRIVER

    @property
    def imagedb(self) -> Path:
        return self.image_root / "imagedb"

    def image_content(self, image_id: str) -> Path:
        return self.imagedb / "content" / "sha256" / hex_of(image_id)

    def image_metadata(self, image_id: str) -> Path:
        return self.imagedb / "metadata" / "sha256" / hex_of(image_id)

    @property
    def layerdb(self) -> Path:
        return self.image_root / "layerdb"

    def layer_meta(self, chain_id: str) -> Path:
        return self.layerdb / "sha256" / hex_of(chain_id)

    def mount_meta(self, container_id: str) -> Path:
        return self.layerdb / "mounts" / container_id

    @property
    def repositories_json(self) -> Path:
        return self.image_root / "repositories.json"

    @property
    def driver_root(self) -> Path:
        return self.root / DRIVER

    def layer_dir(self, cache_id: str) -> Path:
        return self.driver_root / cache_id

    @property
    def containers(self) -> Path:
        return self.root / "containers"

    def container_dir(self, container_id: str) -> Path:
        return self.containers / container_id

    @property
    def lock_file(self) -> Path:
        return self.root / ".lock"

    @property
    def tmp(self) -> Path:
        """Scratch space for work done outside the store lock (downloads, compressed uploads)."""
        return self.root / "tmp"

    def dirs(self) -> list[Path]:
        return [
            self.imagedb / "content" / "sha256",
            self.imagedb / "metadata" / "sha256",
            self.layerdb / "sha256",
            self.layerdb / "mounts",
            self.layerdb / "tmp",
            self.driver_root,
            self.containers,
            self.tmp,
        ]


class StoreError(Exception):
    """The store root cannot be used (a file, read-only, not ours); str() is one line."""


def folder_mode(euid: int | None = None) -> int:
    """Docker's /var/lib/docker and its driver folder are 0710 root:root: other users cannot reach
    a layer's setuid binaries or device nodes. A user's own store is 0700."""
    return 0o710 if (os.geteuid() if euid is None else euid) == 0 else 0o700


def _tighten(path: Path, mode: int) -> None:
    """Take away what `mode` does not grant (an older store made 0755); never loosen."""
    try:
        st = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) & ~mode:
        try:
            os.chmod(path, stat.S_IMODE(st.st_mode) & mode)
        except OSError:
            pass  # another user's store, or a read-only one: reading it is all we may do


def prepare_root(layout: Layout, create: bool = True) -> bool:
    """Check the store root and, if `create`, make its folders with Docker's modes and tighten
    those of an older store (the root, the driver folder and every layer folder).

    Returns False (and makes nothing) when the root does not exist and `create` is False: a
    read-only command on a new root must not leave folders behind.
    """
    root = layout.root
    try:
        st = os.stat(root)
    except FileNotFoundError:
        if not create:
            return False
        st = None
    except OSError as exc:
        raise StoreError(f"store root {root}: {_os_text(exc)}") from None
    if st is not None and not stat.S_ISDIR(st.st_mode):
        raise StoreError(f"store root {root} is not a directory")
    mode = folder_mode()
    if not create:
        _tighten_all(layout, mode)
        return True
    try:
        if st is None:
            os.makedirs(root.parent, exist_ok=True)
            try:
                os.mkdir(root, mode)
            except FileExistsError:  # another command made it since the stat: use theirs
                if not root.is_dir():
                    raise StoreError(f"store root {root} is not a directory") from None
        (root / "image").mkdir(mode=0o700, exist_ok=True)  # Docker's /var/lib/docker/image is 0700
        for d in [layout.image_root, *layout.dirs()]:
            d.mkdir(mode=mode, parents=True, exist_ok=True)
    except OSError as exc:
        if exc.errno == errno.EROFS:
            raise StoreError(f"store root {root} is on a read-only filesystem") from None
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise StoreError(f"store root {root}: permission denied") from None
        raise StoreError(f"store root {root}: {_os_text(exc)}") from None
    _tighten_all(layout, mode)
    return True


def _tighten_all(layout: Layout, mode: int) -> None:
    """An older store (0755 folders) is tightened whenever it is opened, by any command."""
    for d in (layout.root, layout.driver_root, layout.containers):
        _tighten(d, mode)
    _tighten(layout.root / "image", 0o700)
    try:
        names = os.listdir(layout.driver_root)
    except OSError:
        names = []
    for name in names:
        _tighten(layout.driver_root / name, mode)


def writable(root: Path) -> bool:
    """Can this process change the store (not a read-only filesystem, not another user's)?"""
    try:
        return os.access(root, os.W_OK) and not os.statvfs(root).f_flag & os.ST_RDONLY
    except OSError:
        return False


def _os_text(exc: OSError) -> str:
    text = exc.strerror or str(exc)
    return text[:1].lower() + text[1:]


def _internal(name: object) -> bool:
    """A path that names one of our temporary files, or /proc: not the user's object."""
    text = os.fsdecode(name) if isinstance(name, (str, bytes, os.PathLike)) else str(name)
    return text.startswith("/proc/") or any(is_tmp(part) or ".imagegraph-" in part for part in text.split("/"))


def os_error_line(exc: OSError, root: Path | None = None) -> str:
    """An OSError as one line that names the user's object: the file it names, unless that is
    one of our temporary names; a full disk names the store."""
    text = _os_text(exc)
    name = exc.filename
    if name is not None and not _internal(name):
        return f"{text}: {os.fsdecode(name) if isinstance(name, bytes) else name}"
    if root is not None and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO):
        return f"{text} (store {root})"
    return text


def _open_unnamed(directory: Path) -> int | None:
    """A file with no name yet in `directory` (O_TMPFILE): a crash leaves nothing behind."""
    flag = getattr(os, "O_TMPFILE", 0)
    if not flag:
        return None
    try:
        return os.open(directory, flag | os.O_WRONLY | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT):
            return None  # the filesystem cannot: a named temporary file instead
        raise


@contextmanager
def atomic_file(path: str | os.PathLike[str], mode: int = 0o644, prefix: str = TMP_PREFIX) -> Iterator[BinaryIO]:
    """Yield a binary file that replaces `path` only when the block ends without an error.

    The data goes to an unnamed file beside `path` (O_TMPFILE; same filesystem, so the final
    rename is atomic), is fsynced and given `mode`, then linked under a temporary name and
    renamed over `path`. A crash or an error before that leaves nothing at all. Where the
    filesystem has no O_TMPFILE, a named temporary file is used, flock-ed while it is written,
    so `clear_stale` can tell a dead writer's leftover from a live one.
    """
    path = Path(path)
    fd = _open_unnamed(path.parent)
    tmp: str | None = None
    if fd is None:
        fd, tmp = tempfile.mkstemp(prefix=prefix, dir=path.parent)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
            os.fchmod(f.fileno(), mode)
            if tmp is None:
                tmp = _link_unnamed(f.fileno(), path.parent, prefix)
            os.replace(tmp, path)
    except BaseException:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
        raise


def _link_unnamed(fd: int, directory: Path, prefix: str) -> str:
    """Give the O_TMPFILE file a (temporary) name: linkat through /proc with AT_SYMLINK_FOLLOW
    (Python calls plain link(), which does not follow, unless a dir fd is given)."""
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for _ in range(100):
            name = prefix + secrets.token_hex(6)
            try:
                os.link(f"/proc/self/fd/{fd}", name, dst_dir_fd=dir_fd, follow_symlinks=True)
                return os.path.join(directory, name)
            except FileExistsError:
                continue
    finally:
        os.close(dir_fd)
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(directory))


def clear_stale(directory: Path, marker: str) -> list[str]:
    """Remove the named temporary files of writers that died (their flock is gone) whose names
    hold `marker`; a live writer's file is locked and stays."""
    removed: list[str] = []
    try:
        names = [n for n in os.listdir(directory) if marker in n and n.startswith(".")]
    except OSError:
        return removed
    for name in names:
        try:
            fd = os.open(directory / name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # being written right now
            os.unlink(directory / name)
            removed.append(name)
        except OSError:
            continue
        finally:
            os.close(fd)
    return removed


def atomic_write(path: str | os.PathLike[str], data: bytes | str, mode: int = 0o644) -> None:
    """Write `data` to a temporary file beside `path`, fsync it, then rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path, mode) as f:
        f.write(data.encode() if isinstance(data, str) else data)


def read_text(path: str | os.PathLike[str], default: str | None = None) -> str | None:
    try:
        return Path(path).read_text().strip()
    except (FileNotFoundError, NotADirectoryError):
        return default


def write_dir_atomically(
    final: Path, files: Mapping[str, bytes | str | Path | BinaryIO], tmp_parent: Path | None = None
) -> None:
    """Create directory `final` holding `files`, all at once: built under a temporary name, then renamed.

    A Path value is a file on the same filesystem, hard-linked in rather than read into memory;
    an open file is copied from where it stands, in chunks.
    """
    tmp_parent = tmp_parent or final.parent
    tmp_parent.mkdir(parents=True, exist_ok=True)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir=tmp_parent))
    try:
        for name, data in files.items():
            if isinstance(data, Path):
                os.link(data, tmp / name)
                os.chmod(tmp / name, 0o600)
            elif isinstance(data, (bytes, str)):
                (tmp / name).write_bytes(data.encode() if isinstance(data, str) else data)
            else:
                fd = os.open(tmp / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as out:
                    shutil.copyfileobj(data, out, 1 << 20)
        os.chmod(tmp, 0o755)
        os.rename(tmp, final)
    except BaseException:
        remove_quietly(tmp)
        raise


def remove_dir_atomically(path: Path) -> None:
    """Rename `path` to a temporary name first, so a crash mid-delete never leaves half a record.

    What cannot be removed now stays under the temporary name, for `clean` to retry.
    """
    if not os.path.lexists(path):
        return
    tmp = path.parent / f"{TMP_PREFIX}rm-{path.name}"
    if os.path.lexists(tmp):
        remove_quietly(tmp)
    os.rename(path, tmp)
    remove_quietly(tmp)


def is_tmp(name: str) -> bool:
    return name.startswith((TMP_PREFIX, ".apply-"))


def listdir(path: Path) -> Iterator[str]:
    """Entries of `path` that are not crash leftovers, sorted; nothing if it does not exist."""
    try:
        names = sorted(os.listdir(path))
    except (FileNotFoundError, NotADirectoryError):
        return
    for n in names:
        if not is_tmp(n):
            yield n


def temporary_leftovers(layout: Layout) -> list[Path]:
    """Every temporary name in the store's own folders (layer contents are not looked into):
    what a crash left, for `clean_leftovers` to remove and `storecheck` to report."""
    found: list[Path] = []

    def scan(d: Path) -> None:
        try:
            found.extend(d / n for n in os.listdir(d) if is_tmp(n))
        except OSError:
            pass

    for d in (
        layout.root,
        layout.image_root,
        layout.imagedb / "content" / "sha256",
        layout.imagedb / "metadata" / "sha256",
        layout.layerdb / "sha256",
        layout.layerdb / "mounts",
        layout.driver_root,
        layout.containers,
    ):
        scan(d)
    for parent in (layout.imagedb / "metadata" / "sha256", layout.containers):
        for name in listdir(parent):
            scan(parent / name)
    try:
        found.extend(layout.layerdb / "tmp" / n for n in os.listdir(layout.layerdb / "tmp"))
    except OSError:
        pass
    return found


def clean_leftovers(layout: Layout) -> list[str]:
    """Remove every temporary leftover; call with the store lock held (all writers take it)."""
    removed = []
    for p in temporary_leftovers(layout):
        if remove_quietly(p) is None:
            removed.append(str(p))
    return removed


@contextmanager
def scratch_dir(layout: Layout, lock: StoreLock, prefix: str = "scratch-") -> Iterator[Path]:
    """A private folder under `<root>/tmp` for work done outside the store lock, removed afterwards.

    A long download must not hold the store lock (a pull would block every other command), so
    its files cannot live in `layerdb/tmp`, which the store empties under the lock. This folder
    is flock()ed while in use instead, and made under the shared store lock so that a cleaner
    (which holds it exclusively) never sees it before it is held: `clean_scratch` removes only
    folders nobody holds, so a crash's leftovers go and a live download in another process stays.
    """
    with lock.held(shared=True):
        layout.tmp.mkdir(parents=True, exist_ok=True)
        path = Path(tempfile.mkdtemp(prefix=prefix, dir=layout.tmp))
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield path
    finally:
        remove_quietly(path)
        os.close(fd)


def clean_scratch(layout: Layout) -> list[Path]:
    """Remove the scratch folders that no live process holds (crash leftovers).

    Call it with the store lock held exclusively (see `scratch_dir`)."""
    removed: list[Path] = []
    try:
        names = os.listdir(layout.tmp)
    except (FileNotFoundError, NotADirectoryError):
        return removed
    for name in names:
        path = layout.tmp / name
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError:  # not a folder: nothing of ours
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue  # in use by a live download
        try:
            if remove_quietly(path) is None:
                removed.append(path)
        finally:
            os.close(fd)
    return removed


def abandoned_scratch(layout: Layout) -> list[Path]:
    """Scratch folders no live process holds: what `clean_scratch` would remove (for storecheck)."""
    found: list[Path] = []
    try:
        names = os.listdir(layout.tmp)
    except (FileNotFoundError, NotADirectoryError):
        return found
    for name in names:
        try:
            fd = os.open(layout.tmp / name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError:  # not a folder: nothing of ours
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            found.append(layout.tmp / name)
        except BlockingIOError:
            pass
        finally:
            os.close(fd)
    return found


class StoreLock:
    """An fcntl lock on `<root>/.lock`: one writer at a time among concurrent imagegraph processes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._depth = 0

    def acquire(self, shared: bool = False) -> None:
        """Take the lock; on a store this process cannot write (read-only, another user's) a
        shared lock is taken through a read-only open, and none where there is no lock file."""
        if self._depth == 0:
            try:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as exc:
                if not shared or exc.errno not in (errno.EROFS, errno.EACCES, errno.ENOENT):
                    raise
                try:
                    self._fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
                except OSError:
                    self._fd = None  # nothing to read yet, nothing to lock
            if self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        self._depth += 1

    def release(self) -> None:
        self._depth -= 1
        if self._depth == 0 and self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    @contextmanager
    def held(self, shared: bool = False) -> Iterator[None]:
        self.acquire(shared)
        try:
            yield
        finally:
            self.release()
