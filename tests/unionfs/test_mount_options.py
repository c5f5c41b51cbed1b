"""Options and inode numbers through a real FUSE mount: setuid programs run, hard links are one
file for stat, tar, find and du, numbers survive copy-up, redirect_dir, owners mapped, refusals,
and the command's help and version."""

from __future__ import annotations

import errno
import os
import shutil
import stat
import struct
import subprocess
import tarfile
from pathlib import Path

import pytest

from unionfs.mountinfo import mount_at
from unionfs.params import PARAMS

from ..support import require_root, require_tool
from .mount_helpers import LAYERFS, force_unmount, is_mounted, one_layer_union, run

pytestmark = pytest.mark.mount


def _setuid_id(lower: Path) -> None:
    """A copy of id(1) that is setuid root: run by another user it reports euid=0."""
    shutil.copy2(require_tool("id"), lower / "id")
    os.chown(lower / "id", 0, 0)
    os.chmod(lower / "id", 0o4755)
    (lower / "data").write_text("x\n")


def _as_user(*argv: str | Path) -> subprocess.CompletedProcess[str]:
    setpriv = require_tool("setpriv")
    return run([setpriv, "--reuid=1000", "--regid=1000", "--clear-groups", *map(str, argv)])


@pytest.mark.parametrize("dialect", ["overlay", "aufs"])
def test_setuid_programs_run_as_their_owner_by_default_as_root(dialect: str) -> None:
    """mount(8)'s defaults as root (suid, dev), not libfuse's (nosuid, nodev)."""
    require_root("setuid programs and another user")
    with one_layer_union(dialect, _setuid_id, open_to_all=True) as (_, mnt, _, _):
        info = mount_at(mnt)
        assert info is not None and not {"nosuid", "nodev"} & set(info.options.split(","))
        result = _as_user(mnt / "id")
        assert result.returncode == 0, result.stderr
        assert "euid=0(root)" in result.stdout and "uid=1000" in result.stdout
        assert os.lstat(mnt / "id").st_mode & stat.S_ISUID


def test_nosuid_and_noexec_are_honoured() -> None:
    require_root("setuid programs and another user")
    with one_layer_union("overlay", _setuid_id, extra="nosuid", open_to_all=True) as (_, mnt, _, _):
        assert "nosuid" in (mount_at(mnt) or pytest.fail("not mounted")).options.split(",")
        result = _as_user(mnt / "id")
        assert result.returncode == 0 and "euid=0" not in result.stdout
    with one_layer_union("overlay", _setuid_id, extra="noexec") as (_, mnt, _, _):
        with pytest.raises(PermissionError):
            subprocess.run([mnt / "id"], check=False)


def _null_device(lower: Path) -> None:
    os.mknod(lower / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))


@pytest.mark.parametrize("extra", ["", "dev", "nodev"])
def test_device_files_open_unless_nodev(extra: str) -> None:
    """mount(8)'s default as root is dev: a device file on the mount opens (the kernel opens
    it, FUSE only looks it up); nodev refuses it with EACCES."""
    require_root("mknod of a device file")
    with one_layer_union("overlay", _null_device, extra=extra) as (_, mnt, _, _):
        if extra == "nodev":
            with pytest.raises(PermissionError):
                open(mnt / "null", "wb")
            return
        with open(mnt / "null", "wb") as null:
            assert null.write(b"gone") == 4
        with open(mnt / "null", "rb") as null:
            assert null.read() == b""


def _hard_links(lower: Path) -> None:
    (lower / "a").write_text("linked in the layer\n")
    os.link(lower / "a", lower / "b")
    (lower / "sub").mkdir()
    (lower / "sub" / "f").write_text("f\n")


@pytest.mark.parametrize("dialect", ["overlay", "aufs"])
def test_hard_links_are_one_file_for_stat_tar_find_and_du(dialect: str, tmp_path: Path) -> None:
    with one_layer_union(dialect, _hard_links) as (_, mnt, _, _):
        os.link(mnt / "sub" / "f", mnt / "sub" / "g")  # copies f up, links it in the upper
        (mnt / "c").write_bytes(b"0123456789" * 1000)
        os.link(mnt / "c", mnt / "d")
        for one, two in (("a", "b"), ("sub/f", "sub/g"), ("c", "d")):
            s1, s2 = os.lstat(mnt / one), os.lstat(mnt / two)
            assert (s1.st_ino, s1.st_dev, s1.st_nlink) == (s2.st_ino, s2.st_dev, 2), (one, two)
        assert os.lstat(mnt / "a").st_ino != os.lstat(mnt / "c").st_ino
        # tar keeps the links: one member with the data, the other names as hard links.
        archive = tmp_path / "mnt.tar"
        made = run(["tar", "-C", str(mnt), "-cf", str(archive), "."])
        assert made.returncode == 0, made.stderr
        with tarfile.open(archive) as tar:
            links = {m.name.removeprefix("./"): m.linkname.removeprefix("./") for m in tar if m.islnk()}
        assert links == {"b": "a", "sub/g": "sub/f", "d": "c"}
        found = run(["find", str(mnt), "-samefile", str(mnt / "c")])
        assert sorted(found.stdout.split()) == [str(mnt / "c"), str(mnt / "d")]
        du = run(["du", "-s", "--block-size=1", "--apparent-size", str(mnt / "c"), str(mnt / "d")])
        assert du.returncode == 0 and len(du.stdout.splitlines()) == 1  # counted once


def _one_file(lower: Path) -> None:
    (lower / "f").write_text("lower\n")
    (lower / "d").mkdir()
    (lower / "d" / "x").write_text("x\n")


def test_numbers_survive_copy_up_and_rename_through_the_mount() -> None:
    with one_layer_union("overlay", _one_file) as (_, mnt, upper, lower):
        f, d = os.lstat(mnt / "f").st_ino, os.lstat(mnt / "d").st_ino
        assert (f, d) == (os.lstat(lower / "f").st_ino, os.lstat(lower / "d").st_ino)
        with open(mnt / "f", "a") as out:
            out.write("more\n")
        (mnt / "d" / "new").write_text("n\n")
        assert (upper / "f").exists() and (upper / "d" / "new").exists()
        os.rename(mnt / "f", mnt / "g")
        assert (os.lstat(mnt / "g").st_ino, os.lstat(mnt / "d").st_ino) == (f, d)
        assert {os.lstat(mnt / p).st_dev for p in ("g", "d", "d/new", ".")} == {os.lstat(mnt).st_dev}


@pytest.mark.parametrize("mode", ["off", "follow"])
def test_redirect_dir_off_gives_exdev_for_a_lower_directory(mode: str) -> None:
    with one_layer_union("overlay", _one_file, extra=f"redirect_dir={mode}") as (_, mnt, _, _):
        with pytest.raises(OSError) as info:
            os.rename(mnt / "d", mnt / "moved")
        assert info.value.errno == errno.EXDEV
        moved = run(["mv", str(mnt / "d"), str(mnt / "moved")])  # mv copies and deletes instead
        assert moved.returncode == 0, moved.stderr
        assert sorted(os.listdir(mnt)) == ["f", "moved"] and (mnt / "moved" / "x").read_text() == "x\n"


def test_uidmapping_maps_owners_through_the_mount() -> None:
    require_root("files owned by other users")
    with one_layer_union("overlay", _one_file, extra="uidmapping=0:100000:65536,gidmapping=0:100000:65536") as (
        _,
        mnt,
        upper,
        _,
    ):
        st = os.lstat(mnt / "f")
        assert (st.st_uid, st.st_gid) == (100000, 100000)
        os.chown(mnt / "f", 100001, 100002)
        assert (os.lstat(upper / "f").st_uid, os.lstat(upper / "f").st_gid) == (1, 2)
        assert (os.lstat(mnt / "f").st_uid, os.lstat(mnt / "f").st_gid) == (100001, 100002)


@pytest.mark.parametrize("extra", ["volatile,threaded=0,timeout=1", "fsync=0,noacl,static_nlink,xino=on"])
def test_fuse_overlayfs_options_mount(extra: str) -> None:
    with one_layer_union("overlay", _one_file, extra=extra) as (_, mnt, _, _):
        with open(mnt / "f", "a") as out:
            out.write("+\n")
            out.flush()
            os.fsync(out.fileno())
        assert (mnt / "f").read_text() == "lower\n+\n"


def test_max_read_mounts_and_reads(tmp_path: Path) -> None:
    """libfuse 3.14 refuses FUSE_INIT unless init repeats the max_read= option in its
    connection info: a mount with it used to end at once (ENOTCONN)."""
    data = os.urandom(300_000)
    with one_layer_union("overlay", lambda lower: (lower / "f").write_bytes(data), extra="max_read=65536") as (
        _,
        mnt,
        _,
        _,
    ):
        assert (mnt / "f").read_bytes() == data
        info = mount_at(str(mnt))
        assert info is not None and "max_read=65536" in info.super_options.split(",")


def test_max_read_mounts_through_mfusepy_too(tmp_path: Path) -> None:
    """The high-level fallback (here: the library named by FUSE_LIBRARY_PATH) repeats
    max_read= in its init as well."""
    import glob

    found = glob.glob("/usr/lib/*/libfuse3.so.3") + glob.glob("/lib/*/libfuse3.so.3")
    assert found, "libfuse 3 is not installed"
    lower, mnt = tmp_path / "lower", tmp_path / "mnt"
    lower.mkdir()
    mnt.mkdir()
    data = os.urandom(200_000)
    (lower / "f").write_bytes(data)
    env = {**os.environ, "FUSE_LIBRARY_PATH": found[0]}
    result = run([LAYERFS, "-o", f"lowerdir={lower},max_read=65536", str(mnt)], env=env)
    assert result.returncode == 0, result.stderr
    try:
        assert (mnt / "f").read_bytes() == data
    finally:
        force_unmount(mnt)


def test_refused_options_mount_nothing(tmp_path: Path) -> None:
    for d in ("l", "u", "w", "mnt"):
        (tmp_path / d).mkdir()
    layers = f"lowerdir={tmp_path / 'l'},upperdir={tmp_path / 'u'},workdir={tmp_path / 'w'}"
    cases = {
        "plugins=/x": "layerfs: plugins=/x: layerfs has no plugins",
        "index=on": "layerfs: index=on: the inode index is not supported (index=off)",
        "bogus": "layerfs: unknown option 'bogus'",
    }
    if not os.path.exists("/sys/fs/selinux"):
        cases['context="system_u:object_r:container_file_t:s0"'] = "the kernel has no SELinux here"
    for option, message in cases.items():
        result = run([LAYERFS, "-o", f"{layers},{option}", str(tmp_path / "mnt")])
        assert result.returncode == 1 and message in result.stderr, (option, result.stderr)
        assert len(result.stderr.splitlines()) == 1
        assert not is_mounted(tmp_path / "mnt")


# -- help and version -----------------------------------------------------------------------------


def test_help_lists_every_command_and_every_option() -> None:
    top = run([LAYERFS, "--help"])
    assert top.returncode == 0
    for command in ("mount", "umount", "tree", "explain", "trace"):
        assert f"    {command} " in top.stdout
    mount = run([LAYERFS, "mount", "--help"])
    assert mount.returncode == 0 and mount.stdout.startswith("usage: layerfs mount")
    listed = {line.split()[0].split("=")[0] for line in mount.stdout.splitlines() if line.startswith("  ")}
    assert {p.name for p in PARAMS} <= listed
    assert run([LAYERFS, "-o", "x", "--help"]).stdout == mount.stdout  # fuse-overlayfs's form too
    umount = run([LAYERFS, "umount", "--help"])
    assert umount.returncode == 0 and umount.stdout.startswith("usage: layerfs umount")


def test_version_as_fuse_overlayfs_prints_it() -> None:
    from importlib.metadata import version

    for argv in (
        ["--version"],
        ["-V"],
        ["mount", "-V"],
        ["mount", "--version"],
        ["umount", "-V"],
        ["umount", "--version"],
    ):
        result = run([LAYERFS, *argv])
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert lines[0] == f"layerfs: version {version('layerlab')}"
        assert lines[1].startswith("FUSE library version 3.")
        assert any(line.startswith("using FUSE kernel interface version 7.") for line in lines)


def test_noacl_acl_xattrs_are_kept_but_not_enforced() -> None:
    """layerfs never asks FUSE for POSIX ACLs (fuse-overlayfs -o noacl): the kernel passes
    system.posix_acl_access through as a plain xattr, stored in the upper, and checks
    permissions by the mode bits alone."""
    require_root("a root-owned file and another user")

    def fill(lower: Path) -> None:
        (lower / "secret").write_text("root only\n")
        os.chmod(lower / "secret", 0o600)

    def entry(tag: int, perm: int, uid: int) -> bytes:
        return struct.pack("<HHI", tag, perm, uid & 0xFFFFFFFF)

    # user::rw-, user:1000:r--, group::r--, mask::r--, other::---
    acl = struct.pack("<I", 2) + entry(1, 6, -1) + entry(2, 4, 1000) + entry(4, 4, -1) + entry(0x10, 4, -1)
    acl += entry(0x20, 0, -1)
    with one_layer_union("overlay", fill, extra="noacl", open_to_all=True) as (_, mnt, upper, _):
        os.setxattr(mnt / "secret", "system.posix_acl_access", acl)
        assert os.getxattr(upper / "secret", "system.posix_acl_access") == acl
        assert not os.lstat(mnt / "secret").st_mode & 0o007  # other users: no bits
        result = _as_user("cat", mnt / "secret")
        assert result.returncode != 0 and "Permission denied" in result.stderr
