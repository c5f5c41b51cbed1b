"""Parsing mount options into a union description, and every description error."""

from __future__ import annotations

import pytest

from unionfs.options import Dialect, Encoding, OptionError, Role, format_options, parse_options, split_escaped, validate

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
        ("lowerdir=/a,whiteout=zz", "unknown whiteout encoding"),
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
