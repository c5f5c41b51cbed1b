"""`.wh.` names in the overlay dialect, against the kernel's OverlayFS (the oracle).

The kernel reads only its own marks: a `.wh.x` file in a layer is a file named `.wh.x`, and
it hides nothing; `.wh..wh..opq` makes no directory opaque. layerfs's overlay dialect does
the same (unless `whiteout=aufs` says the layers are OCI-unpacked). Both get the same layers
and the same operations; the outcomes, the merged views, the uppers, and the kernel's view of
layerfs's upper must agree.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from unionfs.union import Union

from .mount_helpers import force_unmount, mounted
from .test_mount_differential import (
    _diff,
    _kernel_mount,
    _write,
    assert_same_upper_and_the_kernel_reads_it,
    outcome,
    view,
)

pytestmark = [pytest.mark.mount, pytest.mark.kernel_overlay]


def build(root: Path) -> None:
    """l0 (top) holds `.wh.` files beside and above ordinary ones; l1 what they would hide."""
    files = {
        "l0/.wh.gone": "",  # an OCI whiteout of /gone, for an aufs reader
        "l0/d/.wh..wh..opq": "",  # an OCI opaque mark, for an aufs reader
        "l0/d/mine": "l0\n",
        "l0/same/.wh.x": "beside x\n",
        "l0/same/x": "x in l0\n",
        "l1/gone": "still here\n",
        "l1/d/hidden": "not hidden\n",
        "l1/keep": "keep\n",
    }
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for name in ("upper", "work", "mnt"):
        (root / name).mkdir()


OPERATIONS = [
    ("read a lower .wh. file", lambda m: (m / "same" / ".wh.x").read_text()),
    ("create .wh.keep", lambda m: _write(m / ".wh.keep", "not a whiteout\n")),
    ("keep is still there", lambda m: (m / "keep").read_text()),
    ("append to a lower .wh. file", lambda m: _write(m / ".wh.gone", "copied up\n", "a")),
    ("unlink a lower .wh. file", lambda m: os.unlink(m / "same" / ".wh.x")),
    ("unlink its neighbour too", lambda m: os.unlink(m / "same" / "x")),
    ("mkdir .wh..wh..opq", lambda m: os.mkdir(m / ".wh..wh..opq")),
    ("rename a file to a .wh. name", lambda m: os.rename(m / "keep", m / ".wh.moved")),
    ("rename a .wh. file to a plain name", lambda m: os.rename(m / ".wh.moved", m / "back")),
    ("unlink the made .wh. file", lambda m: os.unlink(m / ".wh.keep")),
    ("symlink with a .wh. name", lambda m: os.symlink("gone", m / ".wh.link")),
    ("remove the dir with an .opq file", lambda m: (os.unlink(m / "d" / ".wh..wh..opq"), os.unlink(m / "d" / "mine"))),
    ("its lower file shows", lambda m: sorted(os.listdir(m / "d"))),
]


@pytest.fixture
def layers(tmp_path):
    kernel, ours = tmp_path / "kernel", tmp_path / "layerfs"
    build(kernel)
    subprocess.run(["cp", "-a", str(kernel), str(ours)], check=True)
    yield kernel, ours
    for root in (kernel, ours):
        force_unmount(root / "mnt")
    force_unmount(tmp_path / "check")


def test_wh_names_are_ordinary_files_as_the_kernel_shows_them(layers, tmp_path):
    kernel, ours = layers
    _kernel_mount(kernel, kernel / "upper", kernel / "work", kernel / "mnt")
    options = f"lowerdir={ours / 'l0'}:{ours / 'l1'},upperdir={ours / 'upper'},workdir={ours / 'work'}"
    try:
        with mounted(options, ours / "mnt") as mnt:
            before_kernel, before_ours = view(kernel / "mnt"), view(mnt)
            outcomes = [(name, outcome(fn, kernel / "mnt"), outcome(fn, mnt)) for name, fn in OPERATIONS]
            after_kernel, after_ours = view(kernel / "mnt"), view(mnt)
    finally:
        force_unmount(kernel / "mnt")
    assert ".wh.gone" in before_kernel and "gone" in before_kernel, before_kernel  # the oracle
    assert not _diff(before_kernel, before_ours), "\n".join(_diff(before_kernel, before_ours))
    differing = [f"{name}: kernel {want}, layerfs {got}" for name, want, got in outcomes if want != got]
    assert not differing, "operations ended differently:\n" + "\n".join(differing)
    assert not _diff(after_kernel, after_ours), "\n".join(_diff(after_kernel, after_ours))
    assert_same_upper_and_the_kernel_reads_it(kernel, ours, after_ours, tmp_path)
    # And in process, without FUSE: the same union over the kernel's upper shows the same.
    reread = Union.from_options(f"lowerdir={kernel / 'upper'}:{kernel / 'l0'}:{kernel / 'l1'}")
    assert sorted(reread.listdir("/")) == sorted(p for p in after_kernel if "/" not in p)
