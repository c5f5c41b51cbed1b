"""Permissions: the same operations as a non-root uid give EACCES and EPERM exactly where the
kernel's overlay gives them (issue 7, "Also checked").

Both sides are real mounts (the kernel's overlay, layerfs through FUSE with
`allow_other,default_permissions`), and every step runs in a child that has dropped to the uid
(`asuser.AsUser`). The lowers hold files, dirs and symlinks owned by root and by that uid.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import note
from hypothesis import strategies as st
from hypothesis.stateful import initialize, rule, run_state_machine_as_test

from . import layers
from .asuser import UID, PermRun, replay_as
from .layers import Item, Stack
from .machine import ACCESS, EXTRA, UnionMachine

pytestmark = [pytest.mark.mount, pytest.mark.kernel_overlay]


class AsNonRoot(UnionMachine):
    """The FUSE machine, with owners in the layers and every step run as `UID`."""

    fuse = True
    trailing_slashes = True
    max_lowers = 4

    @initialize(data=st.data())
    def build(self, data):
        stack = data.draw(
            layers.stacks(self.min_lowers, self.max_lowers, self.max_items, owners=layers.owners_of(UID)), label="stack"
        )
        self.run = PermRun(stack)
        note(f"layers built in {self.run.base}; steps run as uid {UID}")
        self._refresh()

    @rule(
        data=st.data(), slot=st.integers(0, 2), access=ACCESS, extra=EXTRA, mode=st.sampled_from([0o644, 0o600, 0o755])
    )
    def open(self, data, slot, access, extra, mode):
        self.step("open", slot, self.path(data), access | extra, mode)

    @rule(data=st.data())
    def utime_now(self, data):
        self.step("utime_now", self.path(data))

    @rule(data=st.data(), mode=st.sampled_from([os.R_OK, os.W_OK, os.X_OK, os.R_OK | os.W_OK]))
    def access(self, data, mode):
        self.step("access", self.path(data), mode)


def test_non_root_gets_eacces_and_eperm_where_the_kernel_does():
    """The profile's examples (ci: 40, about 0.3 s each: two mounts and two children apiece)."""
    run_state_machine_as_test(AsNonRoot)


# unionmount-testsuite's `impermissible` cases: uid 1 (bin) on root's 0644 files, in a lower
# and in the upper, in root's 0755 directories.
BIN = 1
ROOTS = Stack(
    [[Item("dir", ("d",), mode=0o755), Item("file", ("d", "lower"), b"lower data", 0o644, xattrs=(("user.a", b"1"),))]],
    [Item("dir", ("d",), mode=0o755), Item("file", ("d", "upper"), b"upper data", 0o644)],
)
WRITE_DENIED = [
    (os.O_WRONLY, "EACCES"),
    (os.O_RDWR, "EACCES"),
    (os.O_RDONLY | os.O_TRUNC, "EACCES"),
    (os.O_WRONLY | os.O_TRUNC, "EACCES"),
    (os.O_WRONLY | os.O_APPEND, "EACCES"),
    (os.O_RDWR | os.O_APPEND, "EACCES"),
]


def _protected_hardlinks() -> bool:
    with open("/proc/sys/fs/protected_hardlinks") as f:
        return f.read().strip() == "1"


@pytest.mark.parametrize("name", ["lower", "upper"])
def test_impermissible_opens_truncates_and_times(name):
    path = f"/d/{name}"
    steps: list[tuple[str, tuple[object, ...]]] = [("open", (0, path, flags, 0)) for flags, _ in WRITE_DENIED]
    expected: list[tuple[str, object]] = [("err", e) for _, e in WRITE_DENIED]
    steps += [
        ("open", (1, path, os.O_RDONLY, 0)),
        ("pread", (1, 100, 0)),
        ("open", (2, path, os.O_RDONLY | os.O_APPEND, 0)),
    ]
    expected += [("ok", None), ("ok", f"{name} data".encode()), ("ok", None)]
    more = [
        (("truncate", (path, 0)), "EACCES"),
        (("utime_now", (path,)), "EACCES"),  # utimes(NULL): write access
        (("utimens", (path, 10**9, 10**9)), "EPERM"),  # explicit times: the owner only
        (("chmod", (path, 0o666)), "EPERM"),
        (("chown", (path, BIN, BIN)), "EPERM"),
        (("setxattr", (path, "user.b", b"x", 0)), "EACCES"),
        (("setxattr", (path, "trusted.t", b"x", 0)), "EPERM"),
        (("removexattr", (path, "user.a")), "EACCES"),  # checked before the name is looked up
        (("unlink", (path,)), "EACCES"),
        (("rename", (path, "/d/moved", 0)), "EACCES"),
        # fs.protected_hardlinks=1 (the default) refuses to link another's unwritable file first.
        (("link", (path, "/d/linked")), "EPERM" if _protected_hardlinks() else "EACCES"),
        (("open", (0, "/d/new", os.O_WRONLY | os.O_CREAT, 0o644)), "EACCES"),
        (("mkdir", ("/d/sub", 0o755)), "EACCES"),
        (("symlink", ("lower", "/d/sl")), "EACCES"),
    ]
    steps += [s for s, _ in more]
    expected += [("err", e) for _, e in more]
    steps += [("read_path", (path,)), ("stat", (path,))]
    expected += [("ok", f"{name} data".encode()), ("ok", (0o100000, 0o644, 0, 0, len(f"{name} data")))]
    results, problems = replay_as(ROOTS, steps, BIN, BIN)
    assert problems == []
    assert len(results) == len(steps)
    assert list(zip(steps, results, strict=True)) == list(zip(steps, expected, strict=True))
