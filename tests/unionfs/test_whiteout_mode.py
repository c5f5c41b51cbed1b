"""Char-device whiteouts are made as the kernel makes them: mode 0 (WHITEOUT_MODE).

Found by the differential test against the kernel's OverlayFS (test_mount_differential.py),
whose upper directory showed 0000 where layerfs wrote 0600.
"""

from __future__ import annotations

import os
import stat

import pytest

from unionfs.union import Union

from ..support import skip_or_fail


@pytest.mark.parametrize("operation", ["unlink", "rmdir", "rename"])
def test_overlay_whiteouts_have_mode_zero(tmp_path, operation):
    lower, upper, work = tmp_path / "lower", tmp_path / "upper", tmp_path / "work"
    for d in (lower, upper, work):
        d.mkdir()
    (lower / "file").write_text("x\n")
    (lower / "dir").mkdir()
    union = Union.from_options(f"lowerdir={lower},upperdir={upper},workdir={work}")
    assert union.sb.marks is not None
    if not union.sb.marks.writes_char_whiteouts:
        skip_or_fail("this process cannot mknod: whiteouts are .wh. files here")
    if operation == "unlink":
        union.unlink("/file")
        name = "file"
    elif operation == "rmdir":
        union.rmdir("/dir")
        name = "dir"
    else:
        union.write_file("/file", b"changed\n")  # in the upper: the swap makes the whiteout
        union.unlink("/file")
        name = "file"
    st = os.lstat(upper / name)
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert stat.S_IMODE(st.st_mode) == 0
