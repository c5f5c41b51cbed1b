"""The one rule for a test that cannot have a real component: skip here, fail in CI.

The tests drive real things: FUSE mounts, the kernel's OverlayFS, root-only operations
(char 0/0 whiteouts, trusted.* xattrs, mount(8)), the docker-registry server, tools such as
tree(1), skopeo, umoci and htpasswd, a second filesystem. On a user's machine a missing one
skips the tests that need it, with the reason.

`LAYERLAB_REQUIRE_FUSE=1` means "require every real component" (the name is historical: FUSE
came first). .ci/run sets it, so in CI every such skip is a failure instead: a missing install
step can never hide behind a skip. Every skip for a missing component goes through
`skip_or_fail`, directly or through the markers (`mount`, `kernel_overlay`, `root`) that
conftest.py turns into the `need_*` fixtures.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import NoReturn

import pytest

REQUIRE_ALL = "LAYERLAB_REQUIRE_FUSE"


def everything_required() -> bool:
    """Whether a missing component fails the test (CI) instead of skipping it."""
    return os.environ.get(REQUIRE_ALL) == "1"


def skip_or_fail(reason: str) -> NoReturn:
    if everything_required():
        pytest.fail(f"{REQUIRE_ALL}=1 (every real component required) but: {reason}")
    pytest.skip(reason)


# -- what may be missing, and why --------------------------------------------------------------


def fuse_unavailable_reason() -> str | None:
    """Why a FUSE mount cannot be made here, or None when it can."""
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse does not exist"
    if not (shutil.which("fusermount3") or shutil.which("fusermount")):
        return "fusermount3 is not installed (apt-get install fuse3)"
    os.environ.setdefault("FUSE_LIBRARY_NAME", "fuse3")  # as unionfs.fuse_ops does: libfuse 3 first
    try:
        import mfusepy  # noqa: F401  # imported only to see that it loads libfuse
    except (ImportError, OSError) as exc:
        return f"mfusepy cannot load libfuse: {exc}"
    return None


def kernel_overlay_unavailable_reason() -> str | None:
    """Why the kernel's OverlayFS cannot be used as an oracle here, or None."""
    if os.geteuid() != 0:
        return "the kernel's OverlayFS needs root"
    try:
        with open("/proc/filesystems") as f:
            if "overlay" not in f.read():
                return "the kernel has no overlay filesystem"
    except OSError as exc:
        return str(exc)
    return None


def namespaces_unavailable_reason() -> str | None:
    """Why containers cannot run here (new mount, PID, UTS, IPC and network namespaces), or None."""
    if os.geteuid() != 0:
        return "running containers needs root (namespaces, mounts)"
    for ns in ("mnt", "pid", "uts", "ipc", "net"):
        if not os.path.exists(f"/proc/self/ns/{ns}"):
            return f"this kernel has no {ns} namespaces"
    return None


# -- requiring it ----------------------------------------------------------------------------


def require_fuse() -> None:
    reason = fuse_unavailable_reason()
    if reason:
        skip_or_fail(reason)


def require_kernel_overlay() -> None:
    reason = kernel_overlay_unavailable_reason()
    if reason:
        skip_or_fail(reason)


def require_namespaces() -> None:
    reason = namespaces_unavailable_reason()
    if reason:
        skip_or_fail(reason)


def require_root(why: str = "") -> None:
    """`why`: what needs root (mknod of char 0/0, trusted.* xattrs, mount(8)…)."""
    if os.geteuid() != 0:
        skip_or_fail(f"needs root ({why})" if why else "needs root")


def require_tool(name: str) -> str:
    """The path of the program `name`, which scripts/setup-system.sh installs."""
    path = shutil.which(name)
    if not path:
        skip_or_fail(f"{name} is not installed (scripts/setup-system.sh installs it)")
    return path


def require_second_filesystem(than: str | os.PathLike[str]) -> Path:
    """A writable directory on another filesystem than `than` (/dev/shm or /run are tmpfs)."""
    dev = os.stat(than).st_dev
    for candidate in ("/dev/shm", f"/run/user/{os.getuid()}", "/run", "/tmp", "/var/tmp"):
        try:
            if os.stat(candidate).st_dev != dev and os.access(candidate, os.W_OK):
                return Path(candidate)
        except OSError:
            continue
    skip_or_fail(f"no writable directory on another filesystem than {than}")
