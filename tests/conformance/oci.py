"""Check (c): an upper dir as an OCI layer tar, applied on the flattened lowers.

The tar is written by `imagegraph.archive.write_layer_tar` (moby's overlay whiteout converter:
char 0/0 -> `.wh.NAME`, opaque xattr -> `.wh..wh..opq`; `.wh.` files kept as they are). The
changeset is applied on an existing tree as the OCI image-spec "Applying Changesets" and moby's
UnpackLayer say; `imagegraph.archive.apply_layer_tar` only builds new layer dirs, so the small
applier lives here.
"""

from __future__ import annotations

import io
import os
import shutil
import stat
import tarfile

from imagegraph.archive import write_layer_tar

from .views import PRIVATE_PREFIXES

WH = ".wh."
OPQ = ".wh..wh..opq"


def layer_tar(layer_dir: str) -> bytes:
    out = io.BytesIO()
    write_layer_tar(layer_dir, out)
    return out.getvalue()


def has_redirects(upper: str) -> bool:
    """A renamed lower dir (overlay.redirect) has no OCI form: Docker falls back to a naive diff."""
    for dirpath, _, _ in os.walk(upper):
        for name in ("trusted.overlay.redirect", "user.overlay.redirect"):
            try:
                os.getxattr(dirpath, name)
                return True
            except OSError:
                pass
    return False


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


def apply_changeset(tar_bytes: bytes, root: str) -> None:
    """Apply one OCI layer on the tree at `root` (whiteouts delete, opaque dirs hide lower children)."""
    unpacked: set[str] = set()
    dirs: list[tuple[str, tarfile.TarInfo]] = []
    with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:") as tf:
        for m in tf:
            rel = m.name.rstrip("/")
            parent, _, base = rel.rpartition("/")
            path = os.path.join(root, rel)
            if base == OPQ:
                pdir = os.path.join(root, parent)
                for name in os.listdir(pdir):
                    if (parent + "/" + name if parent else name) not in unpacked:
                        _remove(os.path.join(pdir, name))
                continue
            if base.startswith(WH):
                _remove(os.path.join(root, parent, base[len(WH) :]))
                continue
            os.makedirs(os.path.dirname(path), exist_ok=True)
            if os.path.lexists(path) and not (m.isdir() and os.path.isdir(path) and not os.path.islink(path)):
                _remove(path)
            if m.isdir():
                if not os.path.isdir(path):
                    os.mkdir(path)
                dirs.append((path, m))
            elif m.isreg():
                src = tf.extractfile(m)
                assert src is not None  # a regular member always has data
                with open(path, "wb") as f:
                    shutil.copyfileobj(src, f)
            elif m.issym():
                os.symlink(m.linkname, path)
            elif m.islnk():
                os.link(os.path.join(root, m.linkname), path, follow_symlinks=False)
            elif m.ischr() or m.isblk():
                os.mknod(
                    path, (stat.S_IFCHR if m.ischr() else stat.S_IFBLK) | 0o600, os.makedev(m.devmajor, m.devminor)
                )
            elif m.isfifo():
                os.mkfifo(path)
            unpacked.add(rel)
            if m.islnk():
                continue
            os.chown(path, m.uid, m.gid, follow_symlinks=False)
            if not m.issym():
                os.chmod(path, m.mode & 0o7777)
            if m.isdir():  # a directory entry replaces the existing dir's xattrs too
                for name in os.listxattr(path, follow_symlinks=False):
                    if not name.startswith(PRIVATE_PREFIXES):
                        os.removexattr(path, name, follow_symlinks=False)
            for key, value in m.pax_headers.items():
                if key.startswith("SCHILY.xattr."):
                    os.setxattr(
                        path,
                        key[len("SCHILY.xattr.") :],
                        value.encode("utf-8", "surrogateescape"),
                        follow_symlinks=False,
                    )


def flatten(layers_top_first: list[str], dest: str) -> None:
    """The lowers applied bottom-up as OCI layers into `dest`."""
    os.makedirs(dest, exist_ok=True)
    for layer in reversed(layers_top_first):
        apply_changeset(layer_tar(layer), dest)
