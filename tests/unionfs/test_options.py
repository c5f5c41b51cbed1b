"""Parsing mount options into a union description, and every description error."""

from __future__ import annotations

import pytest

from unionfs.idmap import IdRange
from unionfs.options import Dialect, Encoding, OptionError, Role, format_options, parse_options, split_escaped, validate
from unionfs.params import PARAMS, help_lines

from ..support import require_second_filesystem


def test_seed_aufs_line_first_branch_rw(tmp_path):
    spec = parse_options("dirs=./fruits:./vegetables", cwd=str(tmp_path))
    assert spec.dialect is Dialect.AUFS
    assert [(b.label, b.role) for b in spec.branches] == [("./fruits", Role.UPPER), ("./vegetables", Role.LOWER)]
    assert spec.branches[0].path == str(tmp_path / "fruits")
    assert spec.encoding is Encoding.AUFS
    assert spec.workdir == str(tmp_path / "fruits" / ".wh..wh.work")


@pytest.mark.parametrize("text", ["br=/a=rw:/b=ro+wh:/c", "br:/a=rw:/b=ro+wh:/c"])
def test_br_forms_and_modes(text):
    spec = parse_options(text)
    assert [b.role for b in spec.branches] == [Role.UPPER, Role.LOWER, Role.LOWER]
    assert [b.whiteouts for b in spec.branches] == [True, True, False]


def test_ro_mount_makes_first_branch_ro():
    spec = parse_options(["dirs=/a:/b", "ro"])
    assert all(b.role is Role.LOWER for b in spec.branches)
    assert spec.readonly


def test_overlay_options_leftmost_is_top():
    spec = parse_options("lowerdir=/l1:/l2,upperdir=/u,workdir=/w,initdir=/i")
    assert spec.dialect is Dialect.OVERLAY
    assert [(b.path, b.role) for b in spec.branches] == [
        ("/u", Role.UPPER),
        ("/i", Role.INIT),
        ("/l1", Role.LOWER),
        ("/l2", Role.LOWER),
    ]
    assert spec.encoding is Encoding.OVERLAY and not spec.readonly


def test_overlay_without_upper_is_read_only():
    assert parse_options("lowerdir=/a:/b").readonly


def test_repeated_o_and_flags_and_values():
    spec = parse_options(["lowerdir=/a", "upperdir=/u,workdir=/w", "rw,dev,suid,noatime", "whiteout=aufs,trace=/t"])
    assert {"rw", "dev", "suid", "noatime"} <= spec.flags
    assert spec.encoding is Encoding.AUFS
    assert spec.value("trace") == "/t"


def test_escaped_colon_and_comma():
    spec = parse_options(r"lowerdir=/a\:b:/c\,d,upperdir=/u,workdir=/w")
    assert [b.path for b in spec.branches if b.role is Role.LOWER] == ["/a:b", "/c,d"]
    assert split_escaped(r"x\:y:z", ":") == ["x:y", "z"]


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "no branch given"),
        ("dirs=/a=rx:/b", "unknown branch mode 'rx'"),
        ("dirs=/a:/b,bogus", "unknown option 'bogus'"),
        ("lowerdir=/a,upperdir=/u", "missing 'workdir'"),
        ("lowerdir=/a,workdir=/w", "missing 'upperdir'"),
        ("upperdir=/u,workdir=/w", "missing 'lowerdir'"),
        ("dirs=/a,lowerdir=/b", "not both"),
        ("dirs=/a=rw:/b=rw", "only one branch may be writable"),
        ("lowerdir=/a,whiteout=zz", "whiteout=zz: use aufs or overlay"),
        ("lowerdir=/a::/b", "empty lowerdir"),
    ],
)
def test_option_errors(text, message):
    with pytest.raises(OptionError) as info:
        parse_options(text)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_validate_missing_and_not_a_directory(fs):
    fs.create_dir("/a")
    fs.create_file("/f")
    with pytest.raises(OptionError, match="no such directory"):
        validate(parse_options("dirs=/a:/missing"))
    with pytest.raises(OptionError, match="not a directory"):
        validate(parse_options("dirs=/a:/f"))


def test_validate_overlapping_branches(fs):
    fs.create_dir("/a/b")
    with pytest.raises(OptionError, match="branches overlap"):
        validate(parse_options("dirs=/a:/a/b"))


def test_validate_workdir_rules(fs):
    fs.create_dir("/l")
    fs.create_dir("/u")
    fs.create_dir("/u/w")
    with pytest.raises(OptionError, match="overlaps branch"):
        validate(parse_options("lowerdir=/l,upperdir=/u,workdir=/u/w"))
    with pytest.raises(OptionError, match="work directory does not exist"):
        validate(parse_options("lowerdir=/l,upperdir=/u,workdir=/nowhere"))


def test_validate_workdir_on_other_filesystem(tmp_path):
    (tmp_path / "l").mkdir()
    (tmp_path / "u").mkdir()
    other = require_second_filesystem(tmp_path)
    with pytest.raises(OptionError, match="not on the upper directory's filesystem"):
        validate(parse_options(f"lowerdir={tmp_path}/l,upperdir={tmp_path}/u,workdir={other}"))


def test_format_options_round_trip():
    spec = parse_options(r"lowerdir=/a\:b:/c,upperdir=/u,workdir=/w")
    assert parse_options(format_options(spec)).branches == spec.branches


# -- every option beside the layers (unionfs.params) -------------------------------------------

OVERLAY = "lowerdir=/l,upperdir=/u,workdir=/w"
# A value each option with a value accepts (its meaning is tested where it acts).
SAMPLE = {
    "comment": "x",
    "context": '"system_u:object_r:container_file_t:s0:c1,c2"',
    "uid": "1",
    "gid": "1",
    "umask": "022",
    "max_read": "131072",
    "redirect_dir": "follow",
    "index": "off",
    "metacopy": "off",
    "xino": "auto",
    "uidmapping": "0:100000:65536",
    "gidmapping": "0:100000:65536",
    "squash_to_uid": "7",
    "squash_to_gid": "8",
    "fsync": "0",
    "timeout": "2.5",
    "threaded": "0",
    "fast_ino": "1",
    "writeback": "0",
    "noxattrs": "1",
    "xattr_permissions": "0",
    "whiteout": "aufs",
    "trace": "/t",
}


@pytest.mark.parametrize("param", [p for p in PARAMS if not p.meaning.startswith("refused")], ids=lambda p: p.name)
def test_every_accepted_option_parses_and_is_in_the_help(param):
    item = param.name if param.value is None else f"{param.name}={SAMPLE[param.name]}"
    spec = parse_options(f"{OVERLAY},{item}")
    assert param.name in spec.flags or param.name in dict(spec.values)
    assert any(line.split()[0].split("=")[0] == param.name for line in help_lines() if line.startswith("  "))


@pytest.mark.parametrize(
    "item, message",
    [
        ("plugins=/usr/lib/fo", "plugins=/usr/lib/fo: layerfs has no plugins"),
        ("index=on", "index=on: the inode index is not supported"),
        ("metacopy=on", "metacopy=on: metadata-only copy-up is not supported"),
        ("writeback=1", "writeback=1: the kernel's writeback cache is not supported"),
        ("xattr_permissions=2", "xattr_permissions=2: owners and modes kept in xattrs are not supported"),
        ("lazytime", "lazytime: a FUSE mount keeps no timestamps"),
        ("strictatime", "strictatime: libfuse 3 cannot set this mount flag"),
        ("nodiratime", "nodiratime: libfuse 3 cannot set this mount flag"),
        ("fsname=x", "fsname=x: layerfs records the layers in the mount's source"),
        ("subtype=other", "subtype=other: the subtype is layerfs"),
        ("redirect_dir=maybe", "redirect_dir=maybe: use on or follow or nofollow or off"),
        ("xino=yes", "xino=yes: use off or auto or on"),
        ("fsync=2", "fsync=2: use 0 or 1"),
        ("timeout=soon", "timeout=soon: give seconds"),
        ("squash_to_uid=-1", "squash_to_uid=-1: give a number"),
        ("uidmapping=0:1", "uidmapping=0:1: give STORED:SHOWN:COUNT triples"),
        ("uidmapping=0:a:1", "uidmapping=0:a:1: ids must be decimal numbers"),
        ("gidmapping=0:1:0", "gidmapping=0:1:0: a range of 0 ids"),
        ("volatile=1", "volatile takes no value"),
        ("uidmapping", "uidmapping needs a value"),
        ("frobnicate", "unknown option 'frobnicate'"),
    ],
)
def test_refusals_name_the_option(item, message):
    with pytest.raises(OptionError) as info:
        parse_options(f"{OVERLAY},{item}")
    assert message in str(info.value) and "\n" not in str(info.value)


def test_mount8_userspace_options_and_layerfs_subtype_are_accepted():
    spec = parse_options(f"{OVERLAY},x-systemd.automount,x-gvfs-show,subtype=layerfs,defaults,nofail,_netdev")
    assert {"defaults", "nofail", "_netdev"} <= spec.flags


def test_containers_storage_options_and_features():
    """The argv containers-storage builds: an empty item, volatile, mappings with a leading colon."""
    spec = parse_options(f"{OVERLAY},,volatile,uidmapping=:0:100000:65536,gidmapping=:0:200000:1:1:300000:10")
    f = spec.features
    assert not f.fsync
    assert f.uid_map.ranges == (IdRange(0, 100000, 65536),)
    assert f.gid_map.ranges == (IdRange(0, 200000, 1), IdRange(1, 300000, 10))
    assert (f.uid_map.shown(0), f.uid_map.shown(65535), f.uid_map.shown(65536)) == (100000, 165535, f.uid_map.overflow)
    assert (f.uid_map.stored(100001), f.uid_map.stored(-1), f.uid_map.stored(5)) == (1, -1, f.uid_map.overflow)
    assert (f.gid_map.shown(0), f.gid_map.shown(5)) == (200000, 300004)


def test_features_defaults_and_switches():
    default = parse_options(OVERLAY).features
    assert (default.redirect_dir, default.fsync, default.xino, default.xattrs) == ("on", True, "auto", True)
    assert default.uid_map.identity and default.gid_map.identity
    assert parse_options("dirs=/a:/b").features.redirect_dir == "off"
    switches = "fsync=0,static_nlink,ino32_t,noxattrs=1,fast_ino=1,userxattr,redirect_dir=off"
    f = parse_options(f"{OVERLAY},{switches}").features
    assert (f.fsync, f.static_nlink, f.ino32, f.xattrs) == (False, True, True, False)
    assert f.fast_ino and f.userxattr
    assert not f.creates_redirects and f.follows_redirects
    assert not parse_options(f"{OVERLAY},redirect_dir=nofollow").features.follows_redirects


def test_squash_ids_win_over_squash_to_root():
    f = parse_options(f"{OVERLAY},squash_to_root,squash_to_gid=5").features
    assert (f.uid_map.shown(1234), f.gid_map.shown(1234)) == (0, 5)
    assert f.uid_map.stored(1234) == 1234  # squashing is for stat only, as in fuse-overlayfs


def test_aufs_dialect_has_no_redirects():
    with pytest.raises(OptionError, match="redirect_dir=on: the aufs dialect has no redirects"):
        parse_options("dirs=/a:/b,redirect_dir=on")
    assert parse_options("dirs=/a:/b,redirect_dir=off").features.redirect_dir == "off"


def test_a_quoted_value_keeps_its_commas():
    label = '"system_u:object_r:container_file_t:s0:c1,c2"'
    spec = parse_options(f"{OVERLAY},context={label},ro")
    assert spec.value("context") == label and "ro" in spec.flags
