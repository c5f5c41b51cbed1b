"""One differential run: the same layers served by the kernel's overlay and by layerfs.

`Run` builds a stack once, clones it per side, mounts the kernel's copy, opens layerfs on its
own copy (in process, or through FUSE), replays operations on both, and at the end checks the
uppers, the cross-mounts and the OCI form. `script()` turns a run into a standalone shell
script that replays it on a fresh machine.
"""

from __future__ import annotations

import errno
import inspect
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field, replace

from unionfs.union import Union

from . import layers, oci, realops
from .layers import Stack
from .realops import RealFS, run
from .unionops import UnionFS
from .views import Entry, Reader, diff, lower_inode_labels, snapshot, snapshot_one, walk

KERNEL_OPTS = "redirect_dir=on,index=off"


def kernel_mount(lowers: list[str], upper: str, work: str, target: str) -> None:
    os.makedirs(work, exist_ok=True)
    os.makedirs(target, exist_ok=True)
    opts = f"lowerdir={':'.join(lowers)},upperdir={upper},workdir={work},{KERNEL_OPTS}"
    subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o", opts, target], check=True, capture_output=True, text=True
    )


def umount(target: str) -> None:
    subprocess.run(["umount", target], check=False, capture_output=True)


def layerfs_options(lowers: list[str], upper: str, work: str) -> str:
    return f"lowerdir={':'.join(lowers)},upperdir={upper},workdir={work}"


def aufs_options(lowers: list[str], upper: str) -> str:
    return "br=" + ":".join([f"{upper}=rw"] + [f"{d}=ro+wh" for d in lowers])


@dataclass
class Run:
    stack: Stack
    fuse: bool = False
    aufs: bool = True
    base: str = ""
    build_log: list[str] = field(default_factory=list)
    ops: list[tuple[str, tuple, tuple, tuple]] = field(default_factory=list)  # op, args, kernel, layerfs

    def __post_init__(self) -> None:
        # Short paths: the kernel's legacy mount(2) takes at most one page of options.
        self.base = tempfile.mkdtemp(prefix="cf", dir="/tmp")
        self.mounted = False
        try:
            self._set_up()
        except BaseException:
            self.cleanup()
            raise

    def _set_up(self) -> None:
        self.src = os.path.join(self.base, "s")
        self.lowers_src, _upper_src = layers.build_stack(self.src, self.stack, self.build_log)
        self.sides: dict[str, tuple[list[str], str]] = {}
        for side in ("k", "f") + (("a",) if self.aufs else ()):
            layers.clone(self.src, os.path.join(self.base, side))
            n = len(self.lowers_src)
            self.sides[side] = (
                [os.path.join(self.base, side, f"l{i}") for i in range(n)],
                os.path.join(self.base, side, "upper"),
            )
        self.kmnt = os.path.join(self.base, "km")
        kl, ku = self.sides["k"]
        kernel_mount(kl, ku, os.path.join(self.base, "kw"), self.kmnt)
        self.mounted = True
        self.kernel = RealFS(self.kmnt)
        fl, fu = self.sides["f"]
        self.f_options = layerfs_options(fl, fu, os.path.join(self.base, "fw"))
        os.makedirs(os.path.join(self.base, "fw"))
        self.fmnt = os.path.join(self.base, "fm")
        if self.fuse:
            from .fusemount import fuse_mount

            fuse_mount(self.f_options, self.fmnt)
            self.layerfs: RealFS | UnionFS = RealFS(self.fmnt)
            self.freader = Reader.real(self.fmnt)
        else:
            self.union = Union.from_options(self.f_options)
            self.layerfs = UnionFS(self.union)
            self.freader = Reader.union(self.union)
        self.kreader = Reader.real(self.kmnt)
        self.aufs_fs: UnionFS | None = None
        if self.aufs:
            al, au = self.sides["a"]
            try:
                for d in al + [au]:
                    layers.to_aufs_encoding(d)
            except OSError as exc:
                # `.wh.` + a 252-255 byte name exceeds NAME_MAX: the aufs/OCI encoding cannot
                # hold that whiteout on disk (docs/conformance.md); no aufs side for this run.
                if exc.errno != errno.ENAMETOOLONG:
                    raise
                self.aufs = False
        if self.aufs:
            self.aufs_union = Union.from_options(aufs_options(al, au))
            self.aufs_fs = UnionFS(self.aufs_union)
        # Last: the aufs copies' char whiteouts are gone by now, and with them inode numbers
        # that a new upper file may get again. Lower objects that stay never lend theirs out.
        self.lower_inos = lower_inode_labels(
            [[self.sides[side][0][i] for side in self.sides] for i in range(len(self.lowers_src))]
        )

    # -- steps --------------------------------------------------------------------------------
    def step(self, op: str, args: tuple) -> tuple[tuple, tuple]:
        k = run(self.kernel, op, args)
        f = run(self.layerfs, op, args)
        if self.aufs_fs is not None:
            run(self.aufs_fs, op, args)  # checked at the end, against the OCI rules
        self.ops.append((op, args, k, f))
        return k, f

    def views(self) -> tuple[dict, dict]:
        return snapshot(self.kreader, self.lower_inos), snapshot(self.freader, self.lower_inos)

    def paths(self) -> tuple[list[str], list[str], list[str]]:
        """(all paths, directories, symlinks) of the kernel's merged view, for drawing operands."""
        every, dirs, links = ["/"], ["/"], []
        for dirpath, dirnames, filenames in os.walk(self.kmnt):
            rel = dirpath[len(self.kmnt) :] or "/"
            for name in dirnames + filenames:
                p = ("" if rel == "/" else rel) + "/" + name
                every.append(p)
                full = os.path.join(dirpath, name)
                if os.path.islink(full):
                    links.append(p)
                elif name in dirnames:
                    dirs.append(p)
        return every, dirs, links

    # -- the end ------------------------------------------------------------------------------
    def unmount(self) -> None:
        if not self.mounted:
            return
        self.mounted = False
        try:
            for side in ("kernel", "layerfs", "aufs_fs"):
                if getattr(self, side, None) is not None:
                    getattr(self, side).close_all()
        finally:
            umount(self.kmnt)
            if self.fuse:
                from .fusemount import fuse_umount

                fuse_umount(self.fmnt)

    def final_checks(self) -> list[str]:
        """(a) uppers equivalent, (b) cross-mounts, (c) OCI apply; returns the problems found."""
        problems: list[str] = []
        kview = snapshot(self.kreader, self.lower_inos)
        aufs_view = snapshot(Reader.union(self.aufs_union)) if self.aufs else None
        self.unmount()
        kl, ku = self.sides["k"]
        fl, fu = self.sides["f"]
        problems += [f"(a) upper: {line}" for line in diff(upper_snapshot(ku, kl), upper_snapshot(fu, fl))]
        # (b) the kernel mounts layerfs's upper; layerfs opens the kernel's.
        xm = os.path.join(self.base, "xm")
        kernel_mount(kl, fu, os.path.join(self.base, "xw"), xm)
        try:
            problems += [
                f"(b) kernel over layerfs's upper: {line}"
                for line in diff(kview, snapshot(Reader.real(xm), self.lower_inos))
            ]
        finally:
            umount(xm)
        os.makedirs(os.path.join(self.base, "yw"))
        other = Union.from_options(layerfs_options(fl, ku, os.path.join(self.base, "yw")))
        problems += [
            f"(b) layerfs over the kernel's upper: {line}"
            for line in diff(kview, snapshot(Reader.union(other), self.lower_inos))
        ]
        # (c) the upper as an OCI layer on the flattened lowers.
        if not oci.has_redirects(ku):
            flat = os.path.join(self.base, "oci")
            oci.flatten(kl, flat)
            oci.apply_changeset(oci.layer_tar(ku), flat)
            problems += [
                f"(c) OCI apply: {line}" for line in diff(for_oci(kview), for_oci(snapshot(Reader.real(flat))))
            ]
        if aufs_view is not None:
            al, au = self.sides["a"]
            flat = os.path.join(self.base, "aoci")
            oci.flatten(al, flat)
            oci.apply_changeset(oci.layer_tar(au), flat)
            problems += [
                f"(c) aufs dialect, OCI apply: {line}"
                for line in diff(for_oci(aufs_view), for_oci(snapshot(Reader.real(flat))))
            ]
        return problems

    def cleanup(self) -> None:
        try:
            self.unmount()
        finally:
            umount(os.path.join(self.base, "xm"))
            shutil.rmtree(self.base, ignore_errors=True)

    # -- reproduction -------------------------------------------------------------------------
    def script(self) -> str:
        """A standalone shell script: builds the layers, replays the operations on the kernel's
        overlay and on layerfs, and prints both results side by side."""
        replay = "\n".join(f"step({op!r}, {args!r})" for op, args, _, _ in self.ops)
        lines = [
            "#!/bin/bash",
            "# Reproduces a layerfs/OverlayFS divergence found by tests/conformance (run as root).",
            "set -e",
            "B=$(mktemp -d /tmp/repro.XXXX)",
            'S="$B/s"',
        ]
        lines += self.build_log
        n = len(self.lowers_src)
        lowers = ":".join(f"$B/SIDE/l{i}" for i in range(n))
        lines += [
            'for side in k f; do cp -a "$S" "$B/$side"; done',
            'mkdir -p "$B/km" "$B/kw" "$B/fm" "$B/fw"',
            f'mount -t overlay overlay -o "lowerdir={lowers.replace("SIDE", "k")},upperdir=$B/k/upper,'
            f'workdir=$B/kw,{KERNEL_OPTS}" "$B/km"',
            f'layerfs mount -o "lowerdir={lowers.replace("SIDE", "f")},upperdir=$B/f/upper,workdir=$B/fw" "$B/fm"',
            "cat > \"$B/replay.py\" <<'PYEOF'",
            inspect.getsource(realops),
            "import sys",
            "fs = RealFS(sys.argv[1])",
            "def step(op, args):",
            "    print(op, args, '->', run(fs, op, args))",
            replay,
            "fs.close_all()",
            "PYEOF",
            'python3 "$B/replay.py" "$B/km" > "$B/kernel.out"',
            'python3 "$B/replay.py" "$B/fm" > "$B/layerfs.out"',
            'diff -u "$B/kernel.out" "$B/layerfs.out" || true',
            'umount "$B/km"; layerfs umount "$B/fm"',
        ]
        return "\n".join(lines) + "\n"


def for_oci(view: dict) -> dict:
    """What a layer tar can carry. Link counts cannot survive flattening: a lower's hard link
    broken by a copy-up still counts its lower twin in the union, while the applied tar has one
    name left; inode numbers are the extracting filesystem's. The root directory is no entry of
    a layer tar, so its attributes are not either."""
    return {p: replace(e, nlink=0, ino="", root_dev=True) for p, e in view.items() if p != "/"}


def upper_snapshot(root: str, lowers: list[str]) -> dict:
    """An upper dir, raw: whiteouts as such, opaque and redirect marks, everything else as is.

    Left out: the bookkeeping each implementation keeps for itself (overlay.origin/impure/…,
    user.layerfs.*) and a whiteout's own mode/owner (only its 0/0 device number means
    anything). Opaque marks are compared exactly: layerfs sets them where the kernel does.
    """
    keep = ("trusted.overlay.opaque", "trusted.overlay.redirect")
    view = {}
    reader = Reader.real(root)
    for path in walk(reader):
        st = os.lstat(root + ("" if path == "/" else path))
        entry = snapshot_one(reader, path)
        if entry.kind == "chr" and st.st_rdev == 0:
            entry = Entry("whiteout", 0, 0, 0, 0, 0, None, ())
        else:
            marks = []
            for name in keep:
                try:
                    marks.append((name, os.getxattr(root + ("" if path == "/" else path), name, follow_symlinks=False)))
                except OSError:
                    pass
            entry = replace(entry, xattrs=entry.xattrs + tuple(marks))
        view[path] = entry
    return view
