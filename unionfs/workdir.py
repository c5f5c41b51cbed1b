"""The union's work directory: where copy-ups and swaps are built, on the upper's filesystem.

Opening a union clears what a crash left there, so the same work directory serves every later
mount. The `layerfs` command does it before it mounts (a work directory it cannot write is then
one line and no mount), and `Super.open` again for the library's unions: only `os` here, as
the command's path stays light (mountopts.py says why).
"""

from __future__ import annotations

import os


def tmpdir_of(workdir: str, aufs: bool) -> str:
    """Where a union with this work directory builds copy-ups: the aufs dialect's work
    directory itself (inside the writable branch), the overlay dialect's `work/` in it, as
    the kernel's OverlayFS uses it."""
    return workdir if aufs else os.path.join(workdir, "work")


def clear(tmpdir: str) -> None:
    """Remove leftovers of an interrupted copy-up or swap, then make sure the dir exists."""
    if os.path.isdir(tmpdir) and not os.path.islink(tmpdir):
        for name in os.listdir(tmpdir):
            path = os.path.join(tmpdir, name)
            if os.path.isdir(path) and not os.path.islink(path):
                import shutil  # only for leftovers of a crash: not on every mount's path

                shutil.rmtree(path, ignore_errors=True)
            else:
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass
    else:
        os.makedirs(tmpdir, mode=0o700, exist_ok=True)
