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

import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

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


@contextmanager
def atomic_file(path: str | os.PathLike[str], mode: int = 0o644, prefix: str = TMP_PREFIX) -> Iterator[BinaryIO]:
    """Yield a binary file that replaces `path` only when the block ends without an error.

    The data goes to a temporary name beside `path` (same filesystem, so the rename is atomic),
    is fsynced and given `mode`, then renamed over `path`; on any failure the temporary file is
    removed, so `path` is never half-written.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=prefix, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


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


def write_dir_atomically(final: Path, files: Mapping[str, bytes | str], tmp_parent: Path | None = None) -> None:
    """Create directory `final` holding `files`, all at once: built under a temporary name, then renamed."""
    tmp_parent = tmp_parent or final.parent
    tmp_parent.mkdir(parents=True, exist_ok=True)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir=tmp_parent))
    try:
        for name, data in files.items():
            (tmp / name).write_bytes(data.encode() if isinstance(data, str) else data)
        os.chmod(tmp, 0o755)
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def remove_dir_atomically(path: Path) -> None:
    """Rename `path` to a temporary name first, so a crash mid-delete never leaves half a record."""
    if not path.exists():
        return
    tmp = path.parent / f"{TMP_PREFIX}rm-{path.name}"
    if tmp.exists():
        shutil.rmtree(tmp, ignore_errors=True)
    os.rename(path, tmp)
    shutil.rmtree(tmp, ignore_errors=True)


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
        shutil.rmtree(path, ignore_errors=True)
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
            shutil.rmtree(path, ignore_errors=True)
        finally:
            os.close(fd)
        removed.append(path)
    return removed


class StoreLock:
    """An fcntl lock on `<root>/.lock`: one writer at a time among concurrent imagegraph processes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._depth = 0

    def acquire(self, shared: bool = False) -> None:
        if self._depth == 0:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
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
