"""Fixtures of the hostile-input suite: a store, the imagegraph command (in process or as a
process that can be killed), byte-for-byte snapshots of the store, and refusal checks."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from imagegraph import fstree
from imagegraph.cli import main
from imagegraph.storecheck import check_store

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Run:
    rc: int
    out: str
    err: str

    def refused(self, words: str | None = None) -> Run:
        """A refusal: non-zero exit status, exactly one line on stderr, no traceback, no
        internal name (temporary folders, /proc) in it."""
        assert self.rc != 0, f"accepted: {self.out!r} {self.err!r}"
        assert self.err.count("\n") == 1 and self.err.endswith("\n"), self.err
        assert "Traceback" not in self.err and "internal error" not in self.err, self.err
        for internal in (".apply-", ".tmp-", "/proc/self", "[Errno", "imagegraph-save-"):
            assert internal not in self.err, self.err
        if words is not None:
            assert words in self.err, self.err
        return self


def run_in_process(*argv: str, stdin: bytes | None = None) -> Run:
    out, err = io.StringIO(), io.StringIO()
    old = sys.stdin
    if stdin is not None:
        sys.stdin = io.TextIOWrapper(io.BytesIO(stdin))
    try:
        rc = main(list(argv), out, err)
    finally:
        sys.stdin = old
    return Run(rc, out.getvalue(), err.getvalue())


def command(*argv: str) -> list[str]:
    return [sys.executable, "-m", "imagegraph.cli", *argv]


def run_process(*argv: str, stdin: bytes | None = None, timeout: float = 300) -> Run:
    res = subprocess.run(command(*argv), input=stdin, capture_output=True, timeout=timeout, cwd=REPO)
    return Run(res.returncode, res.stdout.decode(errors="replace"), res.stderr.decode(errors="replace"))


@pytest.fixture
def store(deep_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A store root under the test's tmp_path, emptied without recursion at the end (deep_tmp)."""
    monkeypatch.delenv("IMAGEGRAPH_ROOT", raising=False)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    monkeypatch.setenv("DOCKER_CONFIG", str(deep_tmp / "docker-config"))  # no credentials of the host
    return deep_tmp / "store"


@pytest.fixture
def ig(store: Path):
    """`imagegraph --root STORE ARGS…` in this process."""

    def run(*argv: str, stdin: bytes | None = None) -> Run:
        return run_in_process("--root", str(store), *argv, stdin=stdin)

    return run


@pytest.fixture
def seeded(store: Path, ig, tmp_path: Path) -> Path:
    """A store with an image (base:1), a second tag, and a container on it: the state every
    refusal must leave exactly as it was."""
    rootfs = tmp_path / "seed-rootfs"
    (rootfs / "etc").mkdir(parents=True)
    (rootfs / "etc" / "motd").write_text("hello\n")
    (rootfs / "bin").mkdir()
    (rootfs / "bin" / "sh").write_text("#!fake\n")
    r = ig("import", str(rootfs), "base:1", "-c", 'CMD ["/bin/sh"]')
    assert r.rc == 0, r.err
    assert ig("tag", "base:1", "base:latest").rc == 0
    assert ig("create", "--name", "c1", "base:1").rc == 0
    assert check_store(store) == []
    return store


def snapshot(root: Path) -> dict[str, tuple]:
    """Every entry under the store: type, mode, owner, size and content hash (or link target,
    or device), xattrs. Directory mtimes are left out (temporary files come and go)."""
    out: dict[str, tuple] = {}
    if not root.exists():
        return out
    for e in fstree.walk(root):
        st = e.st
        fd = e.dir_fd()
        assert fd is not None
        key: tuple = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
        if stat.S_ISREG(st.st_mode):
            h = hashlib.sha256()
            f = os.open(e.name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=fd)
            with os.fdopen(f, "rb") as fh:
                while chunk := fh.read(1 << 20):
                    h.update(chunk)
            key += (st.st_size, h.hexdigest())
        elif stat.S_ISLNK(st.st_mode):
            key += (os.readlink(e.name, dir_fd=fd),)
        elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            key += (st.st_rdev,)
        try:
            path = fstree.xattr_path(fd, e.name)
            key += (
                tuple(
                    sorted(
                        (n, os.getxattr(path, n, follow_symlinks=False))
                        for n in os.listxattr(path, follow_symlinks=False)
                    )
                ),
            )
        except OSError:
            pass
        out[e.rel] = key
    return out


def assert_unchanged(root: Path, before: dict[str, tuple]) -> None:
    after = snapshot(root)
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(k for k in set(after) & set(before) if after[k] != before[k])
    assert (added, removed, changed) == ([], [], []), "the store changed"
    assert check_store(root) == []
