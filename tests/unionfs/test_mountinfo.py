"""The one mountinfo parser (unionfs.mountinfo), which imagegraph, the bench, the labs' runner
and the tests all read the mount table through."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from unionfs.mountinfo import MountInfo, make_state_dir, mount_at, mounts, parse_mountinfo, unescape
from unionfs.options import OptionError

from ..support import require_root

# Two lines as the kernel writes them (proc(5)): optional fields before the "-", escapes for
# space, tab, newline and backslash, and every other byte (UTF-8 here) as it is.
TABLE = (
    b"22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro\n"
    b"97 22 0:51 / /tmp/caf\xc3\xa9\\040x rw,nosuid,nodev - fuse.layerfs "
    b"dirs=/srv/a\\134b:/srv/c rw,user_id=0,group_id=0,allow_other\n"
    b"98 22 0:52 / /tmp/odd\\011tab\\012nl ro master:3 propagation_from:1 - tmpfs none ro\n"
    b"malformed line without a separator\n"
)


def test_fields_are_unescaped_and_decoded_as_paths() -> None:
    root, union, odd = parse_mountinfo(TABLE)
    assert root == MountInfo("/", "ext4", "/dev/sda1", "rw,relatime", "rw,errors=remount-ro", "/", "0:21")
    assert union.mountpoint == "/tmp/café x"
    assert (union.fstype, union.source) == ("fuse.layerfs", "dirs=/srv/a\\b:/srv/c")
    assert union.options == "rw,nosuid,nodev"
    assert union.super_options.split(",")[-1] == "allow_other"
    assert odd.mountpoint == "/tmp/odd\ttab\nnl" and odd.options == "ro" and odd.source == "none"


def test_text_and_bytes_give_the_same_table() -> None:
    assert parse_mountinfo(TABLE.decode("utf-8")) == parse_mountinfo(TABLE)


def test_bytes_that_are_not_utf8_survive_as_the_os_module_spells_them() -> None:
    (info,) = parse_mountinfo(b"1 0 0:1 / /mnt/\xff\\040z rw - tmpfs none rw\n")
    assert os.fsencode(info.mountpoint) == b"/mnt/\xff z"
    assert unescape(b"/a\\134\\040b") == "/a\\ b"


def test_the_topmost_mount_of_a_point_wins(tmp_path: Path) -> None:
    point = str(tmp_path)
    table = [
        MountInfo(point, "tmpfs", "first", "rw"),
        MountInfo(point, "fuse.layerfs", "second", "rw"),
        MountInfo(point + "x", "tmpfs", "other", "rw"),
    ]
    found = mount_at(tmp_path / "." / "", table)
    assert found is not None and found.source == "second"
    assert mount_at(tmp_path / "elsewhere", table) is None


def test_the_live_table_has_the_root_mount() -> None:
    assert any(m.mountpoint == "/" for m in mounts())
    assert mount_at("/") is not None


def test_the_state_dir_is_made_private(tmp_path: Path) -> None:
    made = make_state_dir(str(tmp_path / "layerfs-1000" / "layerfs"))
    assert made == str(tmp_path / "layerfs-1000" / "layerfs")
    assert stat.S_IMODE(os.stat(tmp_path / "layerfs-1000").st_mode) & 0o077 == 0
    assert make_state_dir(made) == made  # a second mount finds it as it left it


@pytest.mark.parametrize("planted", ["open to all", "a symlink", "another user's"])
def test_a_state_dir_someone_else_could_write_is_refused(tmp_path: Path, planted: str) -> None:
    """Another user may make /tmp/layerfs-$UID before us: then it must not be used."""
    parent = tmp_path / "layerfs-1000"
    if planted == "open to all":
        parent.mkdir()
        os.chmod(parent, 0o777)
    elif planted == "a symlink":
        (tmp_path / "elsewhere").mkdir(mode=0o700)
        parent.symlink_to(tmp_path / "elsewhere")
    else:
        require_root("chown to another user")
        parent.mkdir(mode=0o700)
        os.chown(parent, 4321, 4321)
    with pytest.raises(OptionError, match=f"{parent} is not a private directory of this user"):
        make_state_dir(str(parent / "layerfs"))
    assert not (parent / "layerfs").exists()
