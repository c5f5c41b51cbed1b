"""Real layerfs mounts for tests: run the command, and never leave a mount behind."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from unionfs.mountinfo import MountInfo, mount_at

LAYERFS = str(Path(sys.executable).parent / "layerfs")

SEED = {
    "fruits": {"apple": "apple\n", "tomato": "tomato from fruits\n"},
    "vegetables": {"carrots": "carrots\n", "tomato": "tomato from vegetables\n"},
}


def make_seed(root: Path) -> Path:
    for layer, files in SEED.items():
        (root / layer).mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (root / layer / name).write_text(text)
    (root / "mnt").mkdir(exist_ok=True)
    return root


def mount_info(mountpoint: str | Path) -> MountInfo:
    """The mount table's entry for `mountpoint`, which must be mounted."""
    info = mount_at(mountpoint)
    assert info is not None, f"{mountpoint} is not mounted"
    return info


def is_mounted(mountpoint: str | Path) -> bool:
    return mount_at(mountpoint) is not None


def force_unmount(mountpoint: str | Path) -> None:
    for command in (["umount", str(mountpoint)], ["umount", "-l", str(mountpoint)]):
        if not is_mounted(mountpoint):
            return
        subprocess.run(command, capture_output=True)


def run(argv: Sequence[str], cwd: str | Path | None = None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), cwd=cwd, capture_output=True, text=True, timeout=60, **kwargs)


@contextlib.contextmanager
def mounted(
    options: str | Sequence[str] | None,
    mountpoint: str | Path,
    cwd: str | Path | None = None,
    argv: Sequence[str] | None = None,
) -> Iterator[Path]:
    """Mount with `layerfs mount -o … MOUNTPOINT` (or the given argv), unmount afterwards."""
    if argv is None:
        assert options is not None
        opts = [options] if isinstance(options, str) else list(options)
        argv = [LAYERFS, "mount"] + [a for o in opts for a in ("-o", o)] + [str(mountpoint)]
    result = run(argv, cwd=cwd)
    assert result.returncode == 0, f"mount failed: {result.stderr}"
    mp = Path(cwd or ".", mountpoint)
    assert is_mounted(mp), "the mount command returned before the mount was live"
    try:
        yield mp
    finally:
        if is_mounted(mp):
            done = run([LAYERFS, "umount", str(mp)])
            if done.returncode != 0:
                force_unmount(mp)
        assert not is_mounted(mp)


@contextlib.contextmanager
def one_layer_union(
    dialect: str, fill_lower, extra: str = "", prefix: str = "layerfs-test-", open_to_all: bool = False
) -> Iterator[tuple[Path, Path, Path, Path]]:
    """A scratch union over one lower layer, mounted in `dialect` (overlay or aufs), then
    unmounted and removed. `fill_lower(lower)` writes the layer; `extra` options may name the
    scratch folder as `{root}`. Yields (root, mnt, upper, lower)."""
    import tempfile

    root = Path(tempfile.mkdtemp(prefix=prefix))
    if open_to_all:
        os.chmod(root, 0o755)  # other users must reach the mount point
    lower, upper, work, mnt = (root / n for n in ("lower", "upper", "work", "mnt"))
    for d in (lower, upper, work, mnt):
        d.mkdir()
    fill_lower(lower)
    if dialect == "overlay":
        options = f"lowerdir={lower},upperdir={upper},workdir={work}"
    else:
        options = f"br={upper}=rw:{lower}=ro"
    options += "," + extra.format(root=root) if extra else ""
    try:
        with mounted(options, mnt) as m:
            yield root, m, upper, lower
    finally:
        force_unmount(mnt)
        subprocess.run(["rm", "-rf", str(root)])
