"""fuse_ops.py overrides mfusepy's own FUSE methods (the libfuse 3 wrappers that drop rename
flags, UTIME_NOW/OMIT and READDIRPLUS) and calls its internals. pyproject.toml pins mfusepy to
the minor version they were written for; these tests fail as soon as the installed mfusepy no
longer has what the overrides replace or call.

What the overrides do on a real mount is tested in test_mount_fs.py (rename flags, utimens)
and test_mount_cache.py (READDIRPLUS, kept listings).
"""

from __future__ import annotations

import importlib.metadata
import inspect
import re
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

from ..support import skip_or_fail

OVERRIDES = ("opendir", "readdir_fuse_3", "rename_fuse_3", "utimens_fuse_3", "utimens_fuse_2")


@pytest.fixture(scope="module")
def fuse_ops() -> ModuleType:
    try:
        from unionfs import fuse_ops
    except (ImportError, OSError) as exc:  # mfusepy loads libfuse when imported
        skip_or_fail(f"mfusepy cannot load libfuse: {exc}")
    return fuse_ops


def test_the_installed_mfusepy_is_the_pinned_minor_version() -> None:
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    (pin,) = [d for d in pyproject["project"]["dependencies"] if d.startswith("mfusepy")]
    wanted = re.fullmatch(r"mfusepy~=(\d+)\.(\d+)", pin)
    assert wanted, f"mfusepy must be pinned to a minor version (~=X.Y), not {pin!r}"
    installed = importlib.metadata.version("mfusepy").split(".")
    assert installed[:2] == list(wanted.groups()), f"mfusepy {'.'.join(installed)} is installed, {pin} is pinned"


@pytest.mark.parametrize("name", OVERRIDES)
def test_each_override_replaces_a_method_of_the_same_signature(fuse_ops: ModuleType, name: str) -> None:
    ours = fuse_ops._LayerFUSE.__dict__[name]
    theirs = getattr(fuse_ops.fuse.FUSE, name, None)
    assert theirs is not None, f"mfusepy's FUSE has no {name} any more: the override is never called"
    assert list(inspect.signature(ours).parameters) == list(inspect.signature(theirs).parameters)


@pytest.mark.parametrize("name", [n for n in OVERRIDES if n.endswith(("_fuse_2", "_fuse_3"))])
def test_mfusepy_still_picks_the_suffixed_wrapper(fuse_ops: ModuleType, name: str) -> None:
    """mfusepy's FUSE.__init__ takes `NAME_fuse_3` (or `_fuse_2`) for libfuse's NAME, and
    refuses a class that has both that and a plain NAME."""
    base = name.rsplit("_fuse_", 1)[0]
    assert not hasattr(fuse_ops.fuse.FUSE, base), f"mfusepy now has a plain {base}: {name} may be bypassed"
    assert f"name + '_fuse_{name[-1]}'" in inspect.getsource(fuse_ops.fuse.FUSE.__init__)


def test_the_internals_the_overrides_call_are_there(fuse_ops: ModuleType) -> None:
    fuse = fuse_ops.fuse
    assert list(inspect.signature(fuse.FUSE._readdir).parameters) == ["self", "path", "buf", "filler", "offset", "fip"]
    assert "use_ns" in inspect.signature(fuse.set_st_attrs).parameters
    assert {"actime", "modtime"} <= {f[0] for f in fuse.c_utimbuf._fields_}
    assert {"fh", "keep_cache"} <= {f[0] for f in fuse.fuse_file_info._fields_}
