"""Containers: the init layer as Docker makes it, the RW layer, lookup, diff, rm, mount."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from imagegraph.container import KIND_LETTER, ContainerError, ContainerNotFound, layer_changes
from imagegraph.service import Services
from unionfs.mountinfo import mount_at

needs_root = pytest.mark.root("mknod, trusted.* xattrs")


@pytest.fixture
def base(svc: Services, rootfs: Path) -> str:
    return svc.import_image(str(rootfs), "base", changes=['CMD ["/bin/sh"]'])


def test_create_builds_init_and_top_layers(svc: Services, base: str, tmp_path: Path) -> None:
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 192.0.2.53\n")
    img = svc.images.get(base)
    c = svc.containers.create(img, "base", ["/bin/sh", "-c", "true"], "web", host_resolv=str(resolv))
    lo = svc.layout
    meta = lo.mount_meta(c.id)
    mount_id = (meta / "mount-id").read_text()
    assert (meta / "init-id").read_text() == mount_id + "-init"
    assert (meta / "parent").read_text() == img.top_chain_id
    init = lo.layer_dir(mount_id + "-init") / "diff"
    # moby's initlayer: empty placeholders (mode 0755), the mount points and the mtab link
    for f in (".dockerenv", "etc/hostname", "etc/hosts", "etc/resolv.conf", "dev/console"):
        st = (init / f).lstat()
        assert stat.S_ISREG(st.st_mode) and st.st_size == 0 and stat.S_IMODE(st.st_mode) == 0o755, f
    for d in ("dev/pts", "dev/shm", "proc", "sys"):
        assert (init / d).is_dir() and not (init / d).is_symlink()
    assert os.readlink(init / "etc" / "mtab") == "/proc/mounts"
    assert sorted(str(p.relative_to(init)) for p in init.rglob("*")) == [
        ".dockerenv",
        "dev",
        "dev/console",
        "dev/pts",
        "dev/shm",
        "etc",
        "etc/hostname",
        "etc/hosts",
        "etc/mtab",
        "etc/resolv.conf",
        "proc",
        "sys",
    ]
    top = lo.layer_dir(mount_id)
    assert sorted(p.name for p in top.iterdir()) == ["diff", "merged", "work"]
    assert list((top / "diff").iterdir()) == []
    # the real files, bind-mounted over the placeholders when the container starts
    cdir = lo.container_dir(c.id)
    assert (cdir / "hostname").read_text() == c.id[:12] + "\n"
    assert (cdir / "hosts").read_text() == (
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::\tip6-localnet\n"
        "ff00::\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n"
    )
    assert (cdir / "resolv.conf").read_text().splitlines()[4:] == [
        "nameserver 192.0.2.53",
        "",
        f"# Based on host file: '{resolv}' (legacy)",
        "# Overrides: []",
    ]
    cfg = json.loads((cdir / "config.v2.json").read_text())
    assert cfg["ID"] == c.id and cfg["Name"] == "/web" and cfg["Image"] == base
    assert cfg["Path"] == "/bin/sh" and cfg["Args"] == ["-c", "true"]
    assert cfg["Config"]["Hostname"] == c.id[:12] and cfg["Config"]["Image"] == "base"


def test_image_cmd_is_the_default(svc: Services, base: str) -> None:
    c = svc.create_container("base")
    assert c.config["Cmd"] == ["/bin/sh"] and c.command == "/bin/sh"
    assert "_" in c.name  # adjective_surname


def test_lookup_by_name_id_and_prefix(svc: Services, base: str) -> None:
    a = svc.create_container("base", name="one")
    b = svc.create_container("base", name="two")
    assert svc.containers.get("one").id == a.id
    assert svc.containers.get("/two").id == b.id
    assert svc.containers.get(a.id[:10]).id == a.id
    assert svc.containers.get(a.id).id == a.id
    with pytest.raises(ContainerNotFound, match="No such container: nope"):
        svc.containers.get("nope")
    firsts = {a.id[0], b.id[0]} if a.id[0] != b.id[0] else set()
    n = 0
    while a.id[0] != b.id[0] and len(firsts) == n + 2:  # 17 containers at most: two share a first digit
        b = svc.create_container("base", name=f"more{n}")
        firsts.add(b.id[0])
        n += 1
    dup = next(
        c.id[0]
        for c in svc.containers.containers()
        if sum(1 for x in svc.containers.containers() if x.id[0] == c.id[0]) > 1
    )
    with pytest.raises(ContainerError, match=f"multiple IDs found with provided prefix: {dup}$"):
        svc.containers.get(dup)


def test_name_rules(svc: Services, base: str) -> None:
    svc.create_container("base", name="dup")
    with pytest.raises(Exception, match='Conflict. The container name "/dup" is already in use by container'):
        svc.create_container("base", name="dup")
    with pytest.raises(Exception, match=r"Invalid container name \(-bad\)"):
        svc.create_container("base", name="-bad")
    assert len(svc.containers.containers()) == 1


def test_rm_removes_layers_and_folder(svc: Services, base: str) -> None:
    c = svc.create_container("base", name="gone")
    m = svc.layers.get_mount(c.id)
    svc.remove_container("gone")
    lo = svc.layout
    assert not lo.container_dir(c.id).exists()
    assert not lo.mount_meta(c.id).exists()
    assert not lo.layer_dir(m.mount_id).exists() and not lo.layer_dir(m.init_id).exists()
    assert svc.images.exists(base) and svc.layers.exists(svc.images.get(base).top_chain_id)


def test_crash_leftover_container_is_cleaned(svc: Services, base: str, root: Path) -> None:
    c = svc.create_container("base", name="half")
    (svc.layout.container_dir(c.id) / "config.v2.json").unlink()  # the crash came before the commit point
    again = Services.open(root)
    assert again.containers.containers() == []
    assert again.layers.mounts() == []


def _top(svc: Services, c) -> Path:
    return svc.layout.layer_dir(svc.layers.get_mount(c.id).mount_id) / "diff"


def test_diff_lists_changes_relative_to_the_init_layer(svc: Services, base: str) -> None:
    c = svc.create_container("base", name="dd")
    top = _top(svc, c)
    (top / "etc").mkdir()
    (top / "etc" / "motd").write_text("changed\n")
    (top / "etc" / "new.conf").write_text("x")
    (top / "tmp" / "deep").mkdir(parents=True)
    (top / "tmp" / "deep" / "f").write_text("y")
    (top / "bin").mkdir()
    (top / "bin" / ".wh.sh").write_text("")  # aufs-style deletion
    assert [f"{KIND_LETTER[k]} {p}" for k, p in svc.containers.changes(c)] == [
        "C /bin",
        "D /bin/sh",
        "C /etc",
        "C /etc/motd",
        "A /etc/new.conf",
        "A /tmp",
        "A /tmp/deep",
        "A /tmp/deep/f",
    ]


def test_diff_of_a_fresh_container_is_empty(svc: Services, base: str) -> None:
    c = svc.create_container("base")
    assert svc.containers.changes(c) == []  # /etc/hosts etc. are in the init layer, not in the diff


@needs_root
def test_diff_reads_overlay_whiteouts_and_opaque_dirs(tmp_path: Path) -> None:
    lower = tmp_path / "lower"
    (lower / "etc" / "old").mkdir(parents=True)
    (lower / "etc" / "gone").write_text("x")
    rw = tmp_path / "rw"
    (rw / "etc" / "old").mkdir(parents=True)
    os.mknod(rw / "etc" / "gone", stat.S_IFCHR, os.makedev(0, 0))
    os.setxattr(rw / "etc" / "old", "trusted.overlay.opaque", b"y")
    assert layer_changes(rw, [lower]) == [(0, "/etc"), (2, "/etc/gone"), (2, "/etc/old")]


# ---- mounting -----------------------------------------------------------------------------


def test_mount_command_lines(svc: Services, base: str) -> None:
    c = svc.create_container("base", name="mm")
    m = svc.layers.get_mount(c.id)
    lo = svc.layout
    top = lo.layer_dir(m.mount_id)
    lower = str(svc.layers.lower_dirs(m.parent)[0])
    cmd = svc.containers.mount_command(c, top / "merged")
    assert cmd[-4:] == [
        "mount",
        "-o",
        f"lowerdir={lower},upperdir={top}/diff,workdir={top}/work,initdir={lo.layer_dir(m.init_id)}/diff,"
        f"whiteout={svc.layers.encoding}",
        f"{top}/merged",
    ]
    ov = svc.containers.mount_command(c, top / "merged", "overlay")
    assert ov == [
        "mount",
        "-t",
        "overlay",
        "overlay",
        "-o",
        f"lowerdir={lo.layer_dir(m.init_id)}/diff:{lower},upperdir={top}/diff,workdir={top}/work",
        f"{top}/merged",
    ]
    gd = svc.containers.graph_driver_data(c)
    assert gd == {
        "LowerDir": f"{lo.layer_dir(m.init_id)}/diff:{lower}",
        "MergedDir": f"{top}/merged",
        "UpperDir": f"{top}/diff",
        "WorkDir": f"{top}/work",
    }


def _exercise_mount(svc: Services, driver: str) -> None:
    c = svc.create_container("base", name="live")
    merged = svc.containers.mount(c, driver=driver)
    try:
        assert svc.containers.mountpoint(c) == merged
        assert (merged / "etc" / "motd").read_text() == "hello\n"  # image layer
        assert (merged / "etc" / "hostname").read_text() == ""  # the init layer's placeholder
        assert (merged / ".dockerenv").exists()
        (merged / "etc" / "motd").write_text("edited\n")
        (merged / "added").write_text("new")
        os.unlink(merged / "bin" / "sh")
        changes = [(k, p) for k, p in svc.containers.changes(c)]
        assert (1, "/added") in changes and (2, "/bin/sh") in changes and (0, "/etc/motd") in changes
        res = svc.commit("live", "committed:live", created=1700000001)
        img = svc.images.get(res.image_id)
        assert len(img.diff_ids) == 2
    finally:
        svc.containers.umount(c)
    assert svc.containers.mountpoint(c) is None
    assert list(merged.iterdir()) == []
    # a container of the committed image sees the changes, and the new layer holds no init file
    c2 = svc.create_container("committed:live", name="next")
    merged2 = svc.containers.mount(c2, driver=driver)
    try:
        assert (merged2 / "etc" / "motd").read_text() == "edited\n"
        assert (merged2 / "added").read_text() == "new"
        assert not (merged2 / "bin" / "sh").exists()
        assert (merged2 / "etc" / "hostname").read_text() == ""
        assert (svc.layout.container_dir(c2.id) / "hostname").read_text() == c2.id[:12] + "\n"
    finally:
        svc.containers.umount(c2)
    new_layer = svc.layers.lower_dirs(img.top_chain_id)[0]
    assert not (new_layer / "etc" / "hostname").exists() and not (new_layer / ".dockerenv").exists()
    assert not (new_layer / "etc" / "hosts").exists() and not (new_layer / "etc" / "resolv.conf").exists()


@pytest.mark.mount
def test_mount_with_layerfs(svc: Services, base: str) -> None:
    _exercise_mount(svc, "layerfs")


@pytest.mark.kernel_overlay
def test_mount_with_kernel_overlay(svc: Services, base: str) -> None:
    _exercise_mount(svc, "overlay")


@pytest.mark.mount
def test_a_mount_point_with_a_space_and_an_accent_is_seen_mounted(svc: Services, base: str, tmp_path: Path) -> None:
    """mountinfo writes `/…/café x` as `café\\040x`: the container must still look mounted."""
    c = svc.create_container("base", name="accent")
    target = tmp_path / "café x"
    merged = svc.containers.mount(c, target)
    try:
        assert svc.containers.mountpoint(c) == merged == target
        assert svc.containers.mount(c, target) == merged  # mounted already: no second mount
        assert (merged / "etc" / "motd").read_text() == "hello\n"
    finally:
        svc.containers.umount(c)
        if mount_at(target) is not None:  # never leave a mount behind, even when umount failed
            subprocess.run(["umount", "-l", str(target)])
    assert svc.containers.mountpoint(c) is None and list(target.iterdir()) == []


@pytest.mark.mount
def test_rm_unmounts_first(svc: Services, base: str) -> None:
    c = svc.create_container("base", name="busy")
    merged = svc.containers.mount(c)
    svc.remove_container("busy")
    assert not merged.exists()
    r = subprocess.run(["findmnt", str(merged)], capture_output=True)
    assert r.returncode != 0
