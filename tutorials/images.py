"""Small images to run, made offline: `python -m tutorials.images busybox`.

There is no Docker Hub in a classroom without internet, so the standard small image is built
from Debian's `busybox-static` package: one statically linked binary, a link per applet in
/bin (as Docker Hub's busybox has), the same /etc/passwd and /etc/group, `CMD ["sh"]`. Every
time stamp is the binary's, so the image ID depends only on the busybox version installed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

from imagegraph.service import DaemonError, Services
from imagegraph.store import resolve_root

PASSWD = """root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
operator:x:37:37:Operator:/var:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
"""
GROUP = """root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
lp:x:7:
mail:x:8:
kmem:x:9:
wheel:x:10:root
cdrom:x:11:
dialout:x:18:
floppy:x:19:
video:x:28:
audio:x:29:
tape:x:32:
www-data:x:33:
operator:x:37:
utmp:x:43:
plugdev:x:46:
staff:x:50:
lock:x:54:
netdev:x:82:
users:x:100:
nogroup:x:65534:
"""
DIRS = {
    "bin": 0o755,
    "dev": 0o755,
    "etc": 0o755,
    "home": 0o755,
    "proc": 0o755,
    "root": 0o700,
    "sys": 0o755,
    "tmp": 0o1777,
    "usr": 0o755,
    "usr/sbin": 0o755,
    "var": 0o755,
    "var/spool": 0o755,
    "var/spool/mail": 0o755,
    "var/www": 0o755,
}
BUSYBOX_PATHS = ("/bin/busybox", "/usr/bin/busybox")
PACKAGE = "busybox-static"


class ImageBuildError(Exception):
    """Why the image cannot be built here; one line."""


def find_busybox() -> Path:
    """The installed static busybox (Debian's busybox-static puts it at /bin/busybox)."""
    for p in BUSYBOX_PATHS:
        if os.path.isfile(p):
            path = Path(p)
            if not is_static_elf(path):
                raise ImageBuildError(
                    f"{p} is linked dynamically (Debian's busybox package); apt-get install {PACKAGE}"
                )
            return path
    raise ImageBuildError(f"busybox is not installed; install {PACKAGE}: apt-get install {PACKAGE}")


def is_static_elf(path: Path) -> bool:
    """An ELF file without a PT_INTERP program header needs no dynamic loader: it runs anywhere."""
    with open(path, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF" or head[4] != 2:  # 64-bit only
            return False
        endian = "<" if head[5] == 1 else ">"
        phoff, phentsize, phnum = (
            struct.unpack_from(endian + "Q", head, 32)[0],
            *struct.unpack_from(endian + "HH", head, 54),
        )
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    return all(struct.unpack_from(endian + "I", table, i * phentsize)[0] != 3 for i in range(phnum))


def package_version() -> str:
    try:
        out = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", PACKAGE], capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        out = ""
    return out or "unknown"


def applets(busybox: Path) -> list[str]:
    res = subprocess.run([str(busybox), "--list"], capture_output=True, text=True, check=False)
    names = sorted({n.strip() for n in res.stdout.split() if n.strip() and "/" not in n})
    if res.returncode != 0 or "sh" not in names:
        raise ImageBuildError(f"{busybox} --list did not list its applets")
    return names


def busybox_rootfs(dest: Path, busybox: Path) -> int:
    """Lay out busybox's root filesystem in `dest`; returns the time stamp every entry got."""
    stamp = int(busybox.stat().st_mtime)
    for d, mode in DIRS.items():
        (dest / d).mkdir(parents=True, exist_ok=True)
        os.chmod(dest / d, mode)
    shutil.copyfile(busybox, dest / "bin" / "busybox")
    os.chmod(dest / "bin" / "busybox", 0o755)
    for name in applets(busybox):
        if name != "busybox":
            os.symlink("busybox", dest / "bin" / name)
    (dest / "etc" / "passwd").write_text(PASSWD)
    (dest / "etc" / "group").write_text(GROUP)
    for p in (dest / "etc" / "passwd", dest / "etc" / "group"):
        os.chmod(p, 0o644)
    for dirpath, dirnames, filenames in os.walk(dest, topdown=False):
        for n in filenames + dirnames:
            os.utime(os.path.join(dirpath, n), (stamp, stamp), follow_symlinks=False)
    os.utime(dest, (stamp, stamp))
    return stamp


def build_busybox(svc: Services, tag: str = "busybox:latest") -> str:
    """Import busybox into the store of `svc` as `tag`; returns the image ID (the same every time)."""
    busybox = find_busybox()
    with tempfile.TemporaryDirectory(prefix="busybox-rootfs-") as tmp:
        stamp = busybox_rootfs(Path(tmp), busybox)
        return svc.import_image(
            tmp,
            tag,
            changes=[
                "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                'CMD ["sh"]',
            ],
            message=f"busybox from Debian's {PACKAGE} {package_version()}",
            created=float(stamp),
        )


IMAGES = {"busybox": build_busybox}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tutorials.images", description="Build a small image offline into an imagegraph store."
    )
    parser.add_argument("image", choices=sorted(IMAGES))
    parser.add_argument("--root", help="store root (default $IMAGEGRAPH_ROOT, as imagegraph)")
    parser.add_argument("--tag", help="name:tag to give it (default IMAGE:latest)")
    a = parser.parse_args(argv)
    try:
        svc = Services.open(resolve_root(a.root))
        image_id = IMAGES[a.image](svc, a.tag or f"{a.image}:latest")
    except (ImageBuildError, DaemonError, OSError) as exc:
        print(f"tutorials.images: {exc}", file=sys.stderr)
        return 1
    print(image_id)
    return 0


if __name__ == "__main__":
    sys.exit(main())
