"""The `Union` facade: one object per union, with a method per filesystem operation.

Paths are union paths ("/etc/hosts"). Errors are OSError with the errno the kernel's
OverlayFS gives for the same call. Nothing here imports FUSE: the same object serves the
FUSE adapter, the `layerfs` command and Python users.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from . import dir as dir_ops
from . import file as file_ops
from . import inode
from . import readdir as readdir_ops
from .branch import Branch
from .file import Handle
from .inode import Stat
from .namei import ExplainLine, Node, explain, normalize
from .options import UnionSpec, parse_options, validate
from .super import Cred, Super
from .trace import Tracer

__all__ = ["Union", "Cred", "Handle", "Stat"]


@dataclass
class Union:
    sb: Super

    # -- opening ----------------------------------------------------------------------------
    @classmethod
    def from_spec(cls, spec: UnionSpec, tracer: Tracer | None = None) -> Union:
        """Open a union over a validated spec (see `options.validate`)."""
        return cls(Super.open(spec, tracer))

    @classmethod
    def from_options(cls, options: Sequence[str] | str, cwd: str | None = None, tracer: Tracer | None = None) -> Union:
        """Parse, check and open: `Union.from_options("dirs=./fruits:./vegetables")`."""
        return cls.from_spec(validate(parse_options(options, cwd)), tracer)

    @classmethod
    def observe(cls, spec: UnionSpec) -> Union:
        """Look at the layers of a live mount (for `explain`, `tree --origin`); never write through it."""
        return cls(Super.observe(spec))

    @property
    def spec(self) -> UnionSpec:
        return self.sb.spec

    @property
    def branches(self) -> tuple[Branch, ...]:
        return self.sb.branches

    @property
    def readonly(self) -> bool:
        return self.sb.upper is None

    def listen(self, listener: Tracer) -> None:
        """Call `listener(event)` for every copy-up, whiteout, opaque dir and redirect (see
        trace.py for the events), after the tracer given when the union was opened."""
        self.sb.listeners.append(listener)

    # -- lookup and provenance ----------------------------------------------------------------
    def lookup(self, path: str) -> Node:
        """Resolve a path; the Node says which branch serves it (Node.top.branch)."""
        node = self.sb.resolver.lookup(normalize(path))
        if not node.exists:
            raise FileNotFoundError(2, os.strerror(2), path)
        return node

    def exists(self, path: str) -> bool:
        try:
            return self.sb.resolver.lookup(normalize(path)).exists
        except OSError:
            return False

    def explain(self, path: str) -> list[ExplainLine]:
        return explain(self.sb.resolver, path)

    def origin(self, path: str) -> str:
        return inode.origin(self.sb, normalize(path))

    # -- reading ------------------------------------------------------------------------------
    def getattr(self, path: str) -> Stat:
        return inode.getattr_(self.sb, normalize(path))

    def getattr_identity(self, path: str) -> tuple[Stat, bool]:
        """getattr, and whether st_ino names the object for good (see inode.getattr_identity):
        what a FUSE adapter needs to give every name of one file one kernel inode."""
        return inode.getattr_identity(self.sb, normalize(path))

    def lookup_child(self, parent: Node, name: str) -> Node:
        """`name` in the directory `parent` that `lookup` or `lookup_child` resolved, without
        walking from the root again; valid while nothing has changed the union since."""
        return self.sb.resolver.lookup_child(parent, name)

    def identity_of(self, node: Node) -> tuple[Stat, bool]:
        """`getattr_identity` of a node resolved by `lookup_child` (ENOENT if it is absent)."""
        return inode.identity_of(self.sb, node)

    def getattr_of(self, node: Node) -> Stat:
        """`getattr` of a node that `lookup` or `lookup_child` resolved (valid while nothing
        has changed how its path resolves), with its upper object's attributes read again:
        one lstat, not a walk from the root."""
        return inode.getattr_of(self.sb, node)

    def readdir(self, path: str) -> list[str]:
        return readdir_ops.readdir(self.sb, normalize(path))

    def readdir_of(self, node: Node) -> list[str]:
        """`readdir` of a directory that `lookup` or `lookup_child` resolved (valid while
        nothing has changed the union since)."""
        return readdir_ops.readdir_of(self.sb, node)

    def listdir(self, path: str) -> list[str]:
        """Like os.listdir: without '.' and '..'."""
        return self.readdir(path)[2:]

    def readlink(self, path: str) -> str:
        return inode.readlink(self.sb, normalize(path))

    def statfs(self, path: str = "/") -> os.statvfs_result:
        return inode.statfs(self.sb, normalize(path))

    # -- files --------------------------------------------------------------------------------
    def open(self, path: str, flags: int = os.O_RDONLY, mode: int = 0o644, cred: Cred | None = None) -> Handle:
        return file_ops.open_file(self.sb, _keep_slash(path), flags, mode, cred)

    def create(
        self, path: str, mode: int = 0o644, flags: int = os.O_WRONLY | os.O_CREAT | os.O_TRUNC, cred: Cred | None = None
    ) -> Handle:
        return file_ops.open_file(self.sb, _keep_slash(path), flags | os.O_CREAT, mode, cred)

    def create_in(
        self,
        parent: Node,
        name: str,
        mode: int = 0o644,
        flags: int = os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
        cred: Cred | None = None,
    ) -> tuple[Handle, Node]:
        """`create` of `name` in the directory `parent` that `lookup` or `lookup_child`
        resolved (valid while nothing has changed the union since), without walking from
        the root: the handle and the new file's node (for `identity_of`)."""
        return file_ops.create_in(self.sb, parent, name, flags | os.O_CREAT, mode, cred)

    @staticmethod
    def read(handle: Handle, size: int, offset: int) -> bytes:
        return handle.read(size, offset)

    @staticmethod
    def write(handle: Handle, data: bytes, offset: int) -> int:
        return handle.write(data, offset)

    @staticmethod
    def fsync(handle: Handle, datasync: bool = False) -> None:
        handle.fsync(datasync)

    def fsyncdir(self, path: str) -> None:
        file_ops.fsync_dir(self.sb, normalize(path))

    @staticmethod
    def release(handle: Handle) -> None:
        handle.close()

    def read_file(self, path: str) -> bytes:
        """The whole content of a union file (a convenience for tools and tests)."""
        handle = self.open(path)
        try:
            chunks: list[bytes] = []
            offset = 0
            while True:
                chunk = handle.read(1 << 20, offset)
                if not chunk:
                    return b"".join(chunks)
                chunks.append(chunk)
                offset += len(chunk)
        finally:
            handle.close()

    def write_file(self, path: str, data: bytes, mode: int = 0o644, cred: Cred | None = None) -> None:
        handle = self.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode, cred)
        try:
            handle.write(data, 0)
        finally:
            handle.close()

    def truncate(self, path: str, length: int) -> None:
        inode.truncate(self.sb, normalize(path), length)

    # -- namespace ----------------------------------------------------------------------------
    def mkdir(self, path: str, mode: int = 0o755, cred: Cred | None = None) -> None:
        dir_ops.mkdir(self.sb, normalize(path), mode, cred)

    def rmdir(self, path: str) -> None:
        dir_ops.rmdir(self.sb, normalize(path))

    def unlink(self, path: str) -> None:
        dir_ops.unlink(self.sb, normalize(path))

    def rename(self, old: str, new: str, flags: int = 0) -> None:
        dir_ops.rename(self.sb, normalize(old), normalize(new), flags)

    def symlink(self, target: str, path: str, cred: Cred | None = None) -> None:
        dir_ops.symlink(self.sb, target, normalize(path), cred)

    def link(self, existing: str, new: str) -> None:
        dir_ops.link(self.sb, normalize(existing), normalize(new))

    def mknod(self, path: str, mode: int, device: int = 0, cred: Cred | None = None) -> None:
        dir_ops.mknod(self.sb, normalize(path), mode, device, cred)

    def mkfifo(self, path: str, mode: int = 0o644, cred: Cred | None = None) -> None:
        import stat

        dir_ops.mknod(self.sb, normalize(path), stat.S_IFIFO | (mode & 0o7777), 0, cred)

    # -- attributes ---------------------------------------------------------------------------
    def chmod(self, path: str, mode: int) -> None:
        inode.chmod(self.sb, normalize(path), mode)

    def chown(self, path: str, uid: int, gid: int) -> None:
        inode.chown(self.sb, normalize(path), uid, gid)

    def utimens(self, path: str, ns: tuple[int, int] | None = None) -> None:
        inode.utimens(self.sb, normalize(path), ns)

    def getxattr(self, path: str, name: str) -> bytes:
        return inode.getxattr(self.sb, normalize(path), name)

    def getxattr_of(self, node: Node, name: str) -> bytes:
        """`getxattr` of a node that `lookup` or `lookup_child` resolved (valid while nothing
        has changed the union since)."""
        return inode.getxattr_of(self.sb, node, name)

    def setxattr(self, path: str, name: str, value: bytes, flags: int = 0) -> None:
        inode.setxattr(self.sb, normalize(path), name, value, flags)

    def listxattr(self, path: str) -> list[str]:
        return inode.listxattr(self.sb, normalize(path))

    def removexattr(self, path: str, name: str) -> None:
        inode.removexattr(self.sb, normalize(path), name)


def _keep_slash(path: str) -> str:
    """Normalise, but remember a trailing slash (open("file/") must fail with ENOTDIR)."""
    normal = normalize(path)
    return normal + "/" if path.endswith("/") and normal != "/" else normal
