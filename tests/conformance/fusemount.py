"""layerfs through FUSE for the harness: `layerfs mount -o OPTIONS MNT` and `layerfs umount MNT`."""

from __future__ import annotations

import os
import subprocess
import sys


def _layerfs(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "unionfs", *args], capture_output=True, text=True, timeout=60)


def fuse_mount(options: str, mountpoint: str) -> None:
    os.makedirs(mountpoint, exist_ok=True)
    done = _layerfs("mount", "-o", options, mountpoint)
    if done.returncode != 0:
        raise RuntimeError(f"layerfs mount failed: {done.stderr.strip()}")


def fuse_umount(mountpoint: str) -> None:
    done = _layerfs("umount", mountpoint)
    if done.returncode != 0 and os.path.ismount(mountpoint):
        subprocess.run(["umount", "-l", mountpoint], capture_output=True)
