"""The container's mount namespace, as runc's libcontainer/rootfs_linux.go builds it.

Runs in the container's first process after unshare(CLONE_NEWNS), before exec. The order is
runc's: everything becomes a slave mount (nothing propagates back to the host), the union
mount is bound onto itself, /proc, /dev (a small tmpfs with the default devices), /dev/pts
(a new devpts instance), /sys (read-only), /dev/mqueue and /dev/shm are mounted inside it,
the container's hostname, hosts and resolv.conf are bound over the init layer's placeholders,
then pivot_root makes the union `/` and the old root is detached. Masked and read-only paths
and a read-only root come last, from inside.
"""

from __future__ import annotations

import errno
import os
import stat

from . import syscalls as sc
from .spec import DEFAULT_DEVICES, DEFAULT_MOUNTS, ContainerSpec, Mount

_FLAGS = {
    "ro": sc.MS_RDONLY,
    "nosuid": sc.MS_NOSUID,
    "nodev": sc.MS_NODEV,
    "noexec": sc.MS_NOEXEC,
    "strictatime": sc.MS_STRICTATIME,
    "relatime": sc.MS_RELATIME,
}


def mount_flags(options: tuple[str, ...]) -> tuple[int, str]:
    """A mount's option words split into MS_* flags and the filesystem's data string."""
    flags = 0
    data = []
    for o in options:
        if o in _FLAGS:
            flags |= _FLAGS[o]
        else:
            data.append(o)
    return flags, ",".join(data)


def inside(rootfs: str, path: str) -> str:
    """`path` of the container, on the host (no symlink in the container may lead outside)."""
    return os.path.join(rootfs, path.lstrip("/"))


def _mkdir_in_root(rootfs: str, path: str) -> str:
    """Create a mount point below rootfs, refusing symlinks on the way (a hostile image could
    point /proc at the host's /etc)."""
    current = rootfs
    for part in path.strip("/").split("/"):
        current = os.path.join(current, part)
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            os.mkdir(current, 0o755)
            continue
        if stat.S_ISLNK(st.st_mode):
            raise OSError(errno.ELOOP, f"mount point {path} in the container is a symlink")
    return current


def prepare_root(rootfs: str) -> None:
    """runc prepareRoot: make every mount a slave, then bind the rootfs onto itself."""
    sc.mount(None, "/", None, sc.MS_SLAVE | sc.MS_REC)
    sc.mount(rootfs, rootfs, None, sc.MS_BIND | sc.MS_REC)


def mount_default(rootfs: str, m: Mount) -> None:
    target = _mkdir_in_root(rootfs, m.destination)
    flags, data = mount_flags(m.options)
    sc.mount(m.source, target, m.type, flags, data or None)


def create_devices(rootfs: str) -> None:
    """mknod the default devices in the new /dev; bind the host's where mknod is refused."""
    old = os.umask(0)
    try:
        for d in DEFAULT_DEVICES:
            target = inside(rootfs, d.path)
            try:
                os.mknod(target, stat.S_IFCHR | d.mode, os.makedev(d.major, d.minor))
            except PermissionError:
                with open(target, "w"):
                    pass
                sc.mount(d.path, target, None, sc.MS_BIND)
    finally:
        os.umask(old)


def setup_dev_symlinks(rootfs: str) -> None:
    links = [
        ("/proc/self/fd", "/dev/fd"),
        ("/proc/self/fd/0", "/dev/stdin"),
        ("/proc/self/fd/1", "/dev/stdout"),
        ("/proc/self/fd/2", "/dev/stderr"),
        ("pts/ptmx", "/dev/ptmx"),
    ]
    if os.path.exists("/proc/kcore"):
        links.append(("/proc/kcore", "/dev/core"))
    for target, name in links:
        os.symlink(target, inside(rootfs, name))


def bind_etc_files(rootfs: str, binds: list[tuple[str, str]], readonly: bool) -> None:
    """The container's own hostname, hosts and resolv.conf over the init layer's placeholders."""
    for source, dest in binds:
        parent = _mkdir_in_root(rootfs, os.path.dirname(dest))
        target = os.path.join(parent, os.path.basename(dest))
        if os.path.islink(target):
            raise OSError(errno.ELOOP, f"{dest} in the container is a symlink")
        if not os.path.exists(target):
            with open(target, "w"):
                pass
        sc.mount(source, target, None, sc.MS_BIND | sc.MS_REC)
        sc.mount(None, target, None, sc.MS_PRIVATE | sc.MS_REC)
        if readonly:
            sc.mount(None, target, None, sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY | sc.MS_REC)


def pivot(rootfs: str) -> None:
    """runc pivotRoot: pivot_root(".", "."), then detach the old root stacked below."""
    oldroot = os.open("/", os.O_DIRECTORY | os.O_RDONLY)
    newroot = os.open(rootfs, os.O_DIRECTORY | os.O_RDONLY)
    try:
        os.fchdir(newroot)
        sc.pivot_root(".", ".")
        os.fchdir(oldroot)
        sc.mount(None, ".", None, sc.MS_SLAVE | sc.MS_REC)
        sc.umount2(".", sc.MNT_DETACH)
        os.chdir("/")
    finally:
        os.close(oldroot)
        os.close(newroot)


def mask_paths(paths: list[str]) -> None:
    """Files get /dev/null bound over them; directories an empty read-only tmpfs."""
    for p in paths:
        try:
            sc.mount("/dev/null", p, None, sc.MS_BIND)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                continue
            if exc.errno != errno.ENOTDIR:
                raise
            sc.mount("tmpfs", p, "tmpfs", sc.MS_RDONLY, "nr_blocks=1,nr_inodes=1")


def readonly_paths(paths: list[str]) -> None:
    for p in paths:
        try:
            sc.mount(p, p, None, sc.MS_BIND | sc.MS_REC)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                continue
            raise
        flags = _statvfs_flags(p) & (sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC)
        sc.mount(p, p, None, flags | sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY | sc.MS_REC)


def _statvfs_flags(path: str) -> int:
    st = os.statvfs(path)
    out = 0
    for bit, flag in ((os.ST_NOSUID, sc.MS_NOSUID), (os.ST_NODEV, sc.MS_NODEV), (os.ST_NOEXEC, sc.MS_NOEXEC)):
        if st.f_flag & bit:
            out |= flag
    return out


def readonly_root() -> None:
    """--read-only: remount / read-only (keeping its other flags if the kernel insists)."""
    try:
        sc.mount(None, "/", None, sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY)
    except OSError:
        sc.mount(None, "/", None, sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY | _statvfs_flags("/"))


def setup(spec: ContainerSpec) -> None:
    """Everything before pivot_root (runc prepareRootfs)."""
    rootfs = spec.rootfs
    prepare_root(rootfs)
    for m in DEFAULT_MOUNTS:
        mount_default(rootfs, m)
    create_devices(rootfs)
    setup_dev_symlinks(rootfs)
    with open(inside(rootfs, "/dev/console"), "w"):
        pass  # a mount point for the terminal, when there is one
    bind_etc_files(rootfs, spec.etc_binds, spec.readonly_rootfs)
    pivot(rootfs)


def mount_console(slave_path: str) -> None:
    """The container's terminal is also /dev/console (runc mountConsole)."""
    sc.mount(slave_path, "/dev/console", None, sc.MS_BIND)


def finalize(spec: ContainerSpec) -> None:
    """From inside, after pivot_root (runc finalizeRootfs and the masked/read-only paths)."""
    mask_paths(spec.masked_paths)
    readonly_paths(spec.readonly_paths)
    if spec.readonly_rootfs:
        readonly_root()
    os.umask(0o022)
