"""Random layer stacks for the conformance harness: drawn by hypothesis, built on disk, cloned.

A stack is a list of layers (top first) plus an upper; each layer is a list of `Item`s built
in order. The names come from a small pool, so layers collide on purpose: that is where union
semantics live. Whiteouts are written in the kernel's encoding (char 0/0, trusted.overlay.opaque),
because the kernel reads nothing else; `to_aufs_encoding` rewrites a built layer with `.wh.` files
for the aufs-dialect and OCI checks.
"""

from __future__ import annotations

import os
import shlex
import stat
import subprocess
from dataclasses import dataclass, field

from hypothesis import strategies as st

LONG = "L" * 255
# Spaces, ':' and ',' (option separators), UTF-8, and a 255-byte name (NAME_MAX).
NAMES = ("a", "b", "c", "d e", "x:y", "p,q", "é", LONG)
XATTR_NAMES = ("user.a", "user.b", "trusted.t")
OPAQUE_XATTR = "trusted.overlay.opaque"

KINDS = ("file", "dir", "symlink", "hardlink", "whiteout", "opaque")


@dataclass(frozen=True)
class Item:
    """One object to create in a layer: `path` is a tuple of names."""

    kind: str
    path: tuple[str, ...]
    data: bytes = b""
    mode: int = 0o644
    target: str = ""  # symlink target (relative, never '..'), or index of the hardlink source
    xattrs: tuple[tuple[str, bytes], ...] = ()
    owner: tuple[int, int] = (0, 0)  # uid, gid: the permissions machine draws others


@dataclass
class Stack:
    lowers: list[list[Item]]  # top first
    upper: list[Item] = field(default_factory=list)


names = st.sampled_from(NAMES)
rel_paths = st.lists(names, min_size=1, max_size=3).map(tuple)
# Relative and descending only: a symlink can dangle or loop, but never leave the union.
symlink_targets = st.one_of(
    st.lists(names, min_size=1, max_size=2).map("/".join),
    st.just("missing"),
    st.just("."),
)
xattrs = st.lists(
    st.tuples(st.sampled_from(XATTR_NAMES), st.binary(min_size=0, max_size=4)), max_size=2, unique_by=lambda t: t[0]
).map(tuple)
modes = st.sampled_from([0o644, 0o755, 0o600, 0o444, 0o4755, 0o2755, 0o1777])


def owners_of(uid: int) -> st.SearchStrategy[tuple[int, int]]:
    """Owners for the permissions machine: root, the test's `uid`, and the two mixed."""
    return st.sampled_from([(0, 0), (uid, uid), (0, uid), (uid, 0)])


@st.composite
def items(draw, owners: st.SearchStrategy[tuple[int, int]] | None = None) -> Item:
    """One item; `owners` (None: everything root's, no draw, so other machines' examples
    stay as they were) gives files, dirs and symlinks an owner."""
    kind = draw(st.sampled_from(KINDS))
    path = draw(rel_paths)
    owner = draw(owners) if owners is not None and kind in ("file", "dir", "opaque", "symlink") else (0, 0)
    if kind == "file":
        return Item(kind, path, draw(st.binary(max_size=24)), draw(modes), xattrs=draw(xattrs), owner=owner)
    if kind in ("dir", "opaque"):
        return Item(
            kind, path, mode=draw(st.sampled_from([0o755, 0o700, 0o1777, 0o2775])), xattrs=draw(xattrs), owner=owner
        )
    if kind == "symlink":
        return Item(kind, path, target=draw(symlink_targets), owner=owner)
    if kind == "hardlink":
        return Item(kind, path, target=str(draw(st.integers(0, 5))))
    return Item(kind, path)


def layers(
    max_items: int = 8, owners: st.SearchStrategy[tuple[int, int]] | None = None
) -> st.SearchStrategy[list[Item]]:
    return st.lists(items(owners), max_size=max_items)


def stacks(
    min_lowers: int = 1,
    max_lowers: int = 6,
    max_items: int = 8,
    owners: st.SearchStrategy[tuple[int, int]] | None = None,
) -> st.SearchStrategy[Stack]:
    return st.builds(
        Stack,
        st.lists(layers(max_items, owners), min_size=min_lowers, max_size=max_lowers),
        layers(max_items // 2, owners),
    )


def build_layer(root: str, layer: list[Item], log: list[str] | None = None, log_base: str | None = None) -> None:
    """Create `layer` under `root`; items that cannot be made (parent is a file...) are skipped.

    `log` receives the shell commands that build the same layer (for reproduction scripts),
    with paths relative to "$S", which stands for `log_base`.
    """
    base = log_base or os.path.dirname(root)

    def sq(path: str) -> str:
        return '"$S"/' + shlex.quote(os.path.relpath(path, base))

    os.makedirs(root, exist_ok=True)
    if log is not None:
        log.append(f"mkdir -p {sq(root)}")
    files: list[str] = []
    for item in layer:
        rel = "/".join(item.path)
        full = os.path.join(root, rel)
        if not _make_parents(root, item.path[:-1], log, sq):
            continue
        if os.path.lexists(full):
            continue
        q = sq(full)
        try:
            if item.kind == "file":
                with open(full, "wb") as f:
                    f.write(item.data)
                _log(log, f"printf %b {shlex.quote(_printf_escape(item.data))} > {q}")
                _chown(full, item.owner, log, q)
                os.chmod(full, item.mode)
                files.append(full)
                _log(log, f"chmod {item.mode:o} {q}")
            elif item.kind in ("dir", "opaque"):
                os.mkdir(full)
                _log(log, f"mkdir {q}")
                _chown(full, item.owner, log, q)
                os.chmod(full, item.mode)
                _log(log, f"chmod {item.mode:o} {q}")
                if item.kind == "opaque":
                    os.setxattr(full, OPAQUE_XATTR, b"y")
                    _log(log, f"setfattr -n {OPAQUE_XATTR} -v y {q}")
            elif item.kind == "symlink":
                os.symlink(item.target, full)
                _log(log, f"ln -s {shlex.quote(item.target)} {q}")
                _chown(full, item.owner, log, q)
            elif item.kind == "hardlink":
                if not files:
                    continue
                source = files[int(item.target) % len(files)]
                if not os.path.lexists(source):
                    continue
                os.link(source, full)
                _log(log, f"ln {sq(source)} {q}")
            elif item.kind == "whiteout":
                os.mknod(full, stat.S_IFCHR | 0o600, os.makedev(0, 0))
                _log(log, f"mknod {q} c 0 0")
            for name, value in item.xattrs:
                if item.kind in ("file", "dir", "opaque"):
                    os.setxattr(full, name, value)
                    _log(
                        log,
                        f"setfattr -n {name} -v 0x{value.hex() or '00'} {q}" if value else f"setfattr -n {name} {q}",
                    )
        except OSError:
            continue


def _make_parents(root: str, parts: tuple[str, ...], log: list[str] | None, sq) -> bool:
    current = root
    for name in parts:
        current = os.path.join(current, name)
        try:
            st_ = os.lstat(current)
        except FileNotFoundError:
            os.mkdir(current, 0o755)
            _log(log, f"mkdir {sq(current)}")
            continue
        if not stat.S_ISDIR(st_.st_mode):
            return False
    return True


def _chown(full: str, owner: tuple[int, int], log: list[str] | None, q: str) -> None:
    """Before the chmod: chown(2) clears a file's setuid and setgid bits."""
    if owner != (0, 0):
        os.chown(full, *owner, follow_symlinks=False)
        _log(log, f"chown -h {owner[0]}:{owner[1]} {q}")


def _log(log: list[str] | None, *lines: str) -> None:
    if log is not None:
        log.extend(lines)


def _printf_escape(data: bytes) -> str:
    return "".join(f"\\{b:03o}" if b < 32 or b > 126 or b in (92, 39, 37) else chr(b) for b in data)


def build_stack(base: str, stack: Stack, log: list[str] | None = None) -> tuple[list[str], str]:
    """Build lowers l0..lN (l0 on top) and `upper` under `base`."""
    lowers = []
    for i, layer in enumerate(stack.lowers):
        d = os.path.join(base, f"l{i}")
        build_layer(d, layer, log, base)
        lowers.append(d)
    upper = os.path.join(base, "upper")
    build_layer(upper, stack.upper, log, base)
    os.chmod(upper, 0o755)
    return lowers, upper


def clone(src: str, dst: str) -> None:
    """A faithful copy: modes, owners, times, xattrs (trusted.* too, as root), hard links, devices."""
    subprocess.run(["cp", "-a", "--", src, dst], check=True)


def to_aufs_encoding(root: str) -> None:
    """Rewrite a layer in place from the kernel encoding to `.wh.` files and `.wh..wh..opq`."""
    for dirpath, _dirnames, filenames in os.walk(root):
        try:
            if os.getxattr(dirpath, OPAQUE_XATTR) == b"y":
                os.removexattr(dirpath, OPAQUE_XATTR)
                open(os.path.join(dirpath, ".wh..wh..opq"), "wb").close()
        except OSError:
            pass
        for name in filenames:
            full = os.path.join(dirpath, name)
            st_ = os.lstat(full)
            if stat.S_ISCHR(st_.st_mode) and st_.st_rdev == 0:
                os.unlink(full)
                fd = os.open(os.path.join(dirpath, ".wh." + name), os.O_WRONLY | os.O_CREAT, 0o444)
                os.close(fd)
