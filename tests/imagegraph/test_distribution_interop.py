"""Interop with the real tools: skopeo copies what imagegraph pushed or saved, umoci unpacks it to
the same tree `imagegraph mount` shows; an image umoci made pulls, loads and mounts in imagegraph."""

from __future__ import annotations

import io
import os
import stat
import subprocess
import sys
import tarfile
from collections.abc import Set
from pathlib import Path

import pytest

from imagegraph.digest import go_json
from imagegraph.distribution.localstore import open_local_store
from imagegraph.reference import parse_normalized_named

from ..support import require_tool

pytestmark = [pytest.mark.registry, pytest.mark.mount]

# What Docker's init layer adds to a container's view (spec §3.3); umoci's rootfs has none of it.
INIT_PATHS = {
    "dev",
    "dev/pts",
    "dev/shm",
    "dev/console",
    "proc",
    "sys",
    ".dockerenv",
    "etc/resolv.conf",
    "etc/hosts",
    "etc/hostname",
    "etc/mtab",
}


def ig(root: Path, *argv: str, input_bytes: bytes | None = None) -> str:
    r = subprocess.run(
        [sys.executable, "-m", "imagegraph", "--root", str(root), *argv],
        capture_output=True,
        input=input_bytes,
        timeout=120,
    )
    assert r.returncode == 0, f"imagegraph {' '.join(argv)}: {r.stderr.decode()}"
    return r.stdout.decode()


def tool(*argv: str) -> None:
    require_tool(argv[0])
    r = subprocess.run(list(argv), capture_output=True, timeout=120)
    assert r.returncode == 0, f"{' '.join(argv)}: {r.stderr.decode()}"


def tree(root: Path, skip: Set[str] = frozenset()) -> dict[str, tuple[str, str | bytes | None, int]]:
    """path → (kind, content or link target, permission bits) for everything under root."""
    out: dict[str, tuple[str, str | bytes | None, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            if rel in skip:
                continue
            st = p.lstat()
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(p), 0)
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", None, stat.S_IMODE(st.st_mode))
            else:
                out[rel] = ("file", p.read_bytes(), stat.S_IMODE(st.st_mode))
    # /etc exists in a container even when the image has none (the init layer puts hosts etc. there):
    # an empty /etc is left out on both sides of every comparison
    if out.get("etc", ("",))[0] == "dir" and not any(k.startswith("etc/") for k in out):
        del out["etc"]
    return out


def mounted_tree(root: Path, image: str) -> dict[str, tuple]:
    cid = ig(root, "create", image).strip()
    merged = Path(ig(root, "mount", cid).strip())
    try:
        view = tree(merged, INIT_PATHS)
    finally:
        ig(root, "umount", cid)
        ig(root, "rm", cid)
    return view


def layer_tar(entries: list[tuple[str, bytes | None, str | None]]) -> bytes:
    """A layer from (name, file bytes | None for a dir, symlink target)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, data, link in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 1_700_000_000
            if link is not None:
                info.type, info.linkname = tarfile.SYMTYPE, link
                t.addfile(info)
            elif data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                t.addfile(info)
            else:
                info.size, info.mode = len(data), 0o644
                t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def build_whiteout_image(root: Path, tag: str) -> str:
    """Two layers: the second deletes a file with a whiteout and replaces a directory opaquely."""
    store = open_local_store(root)
    l1, _ = store.layers.register(
        io.BytesIO(
            layer_tar(
                [
                    ("etc", None, None),
                    ("etc/motd", b"hello\n", None),
                    ("etc/gone", b"bye\n", None),
                    ("opt", None, None),
                    ("opt/old", b"old\n", None),
                    ("bin", None, None),
                    ("bin/sh", None, "busybox"),
                    ("bin/busybox", b"\x7fELF-not-really", None),
                ]
            )
        )
    )
    l2, _ = store.layers.register(
        io.BytesIO(
            layer_tar(
                [
                    ("etc", None, None),
                    ("etc/.wh.gone", b"", None),
                    ("etc/new", b"new\n", None),
                    ("opt", None, None),
                    ("opt/.wh..wh..opq", b"", None),
                    ("opt/fresh", b"fresh\n", None),
                ]
            )
        ),
        l1.chain_id,
    )
    config = go_json(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": [l1.diff_id, l2.diff_id]},
            "history": [{"created_by": "base"}, {"created_by": "change"}],
        }
    )
    image_id = store.images.create(config)
    store.refs.add_tag(parse_normalized_named(tag), image_id)
    return image_id


EXPECTED = {"etc/motd": b"hello\n", "etc/new": b"new\n", "opt/fresh": b"fresh\n", "bin/busybox": b"\x7fELF-not-really"}


def check_expected(view: dict[str, tuple]) -> None:
    files = {k: v[1] for k, v in view.items() if v[0] == "file"}
    assert files == EXPECTED
    assert view["bin/sh"] == ("link", "busybox", 0)


def test_pushed_image_through_skopeo_and_umoci(registry, tmp_path):
    root = tmp_path / "store"
    name = f"{registry.domain}/interop/pushed:1"
    build_whiteout_image(root, name)
    ig(root, "push", name)
    layout = tmp_path / "layout"
    tool("skopeo", "copy", "--src-tls-verify=false", f"docker://{name}", f"oci:{layout}:one")
    tool("umoci", "unpack", "--rootless", "--image", f"{layout}:one", str(tmp_path / "bundle"))
    umoci_view = tree(tmp_path / "bundle" / "rootfs")
    check_expected(umoci_view)
    assert mounted_tree(root, name) == umoci_view


def test_saved_archive_through_skopeo_and_umoci(tmp_path):
    root = tmp_path / "store"
    build_whiteout_image(root, "interop/saved:1")
    ig(root, "save", "-o", str(tmp_path / "saved.tar"), "interop/saved:1")
    for src in (f"docker-archive:{tmp_path / 'saved.tar'}", f"oci-archive:{tmp_path / 'saved.tar'}"):
        kind = src.split(":")[0]
        tool("skopeo", "copy", src, f"oci:{tmp_path / kind}:s")
        tool("umoci", "unpack", "--rootless", "--image", f"{tmp_path / kind}:s", str(tmp_path / f"bundle-{kind}"))
        view = tree(tmp_path / f"bundle-{kind}" / "rootfs")
        check_expected(view)
    assert mounted_tree(root, "interop/saved:1") == view


def test_umoci_image_pulls_loads_and_mounts(registry, tmp_path):
    layout = tmp_path / "umoci-layout"
    tool("umoci", "init", "--layout", str(layout))
    tool("umoci", "new", "--image", f"{layout}:base")
    bundle = tmp_path / "ubundle"
    tool("umoci", "unpack", "--rootless", "--image", f"{layout}:base", str(bundle))
    rootfs = bundle / "rootfs"
    (rootfs / "srv").mkdir()
    (rootfs / "srv" / "index.html").write_text("<h1>umoci</h1>\n")
    os.symlink("srv/index.html", rootfs / "home-page")
    tool("umoci", "repack", "--image", f"{layout}:base", str(bundle))
    tool("umoci", "config", "--image", f"{layout}:base", "--config.cmd", "/bin/true")
    expected = tree(rootfs)

    name = f"{registry.domain}/interop/umoci:base"
    tool("skopeo", "copy", "--dest-tls-verify=false", f"oci:{layout}:base", f"docker://{name}")
    root = tmp_path / "store"
    out = ig(root, "pull", name)
    assert out.splitlines()[-1] == name
    assert mounted_tree(root, name) == expected

    # the same layout, tarred, loads as a bare OCI layout (a tag-only ref.name: untagged) to the same ID
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        t.add(layout, arcname=".")
    root2 = tmp_path / "store2"
    loaded = ig(root2, "load", input_bytes=buf.getvalue())
    image_ids = open_local_store(root).images.ids()
    assert loaded == f"Loaded image ID: {image_ids[0]}\n"
    assert mounted_tree(root2, image_ids[0][7:19]) == expected
