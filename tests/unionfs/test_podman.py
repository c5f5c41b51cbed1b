"""layerfs as the overlay `mount_program` of real podman and buildah (Debian's 4.3 and 1.28),
with fuse-overlayfs run through the same steps as the reference.

Each mount program gets its own containers-storage: a storage.conf (driver overlay, graphroot
and runroot in a temporary folder, mount_program = this checkout's layerfs or fuse-overlayfs)
named by CONTAINERS_STORAGE_CONF, and --root/--runroot on every command. podman and buildah
drop storage.conf's driver options when --root is given, so the mount program is passed with
--storage-opt as well (podman info shows which one is in use; the first test checks it).

The image: Debian's static busybox with a hard link and a setuid file, imported by
`imagegraph import`, pushed by `imagegraph push` to a test registry and pulled by podman.
podman cannot run a container here (the sandbox refuses the rlimits crun and runc set, whatever
the mount program): that test asserts the failure is the runtime's, and the output where it runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import stat
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from unionfs.mountinfo import mount_at, mounts, spec_of_mount
from unionfs.options import Role

from ..imagegraph.registry_fixture import RunningRegistry, start_registry
from ..support import require_root, require_tool, skip_or_fail
from .mount_helpers import LAYERFS

pytestmark = [pytest.mark.mount, pytest.mark.root("podman's rootful storage and mounts")]

ENGINES = ("layerfs", "fuse-overlayfs")
TIMEOUT = 180
BUSYBOX_APPLETS = ("sh", "ls", "cat", "echo", "id", "ln", "chmod", "stat", "true", "mkdir", "rm")


def _run(argv: list[str], env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT, env=env)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} exited {result.returncode}:\n{result.stderr}{result.stdout}")
    return result


def _static_busybox() -> str:
    path = require_tool("busybox")
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    if b"/lib64/ld-linux" in head or b"/lib/ld-linux" in head:
        skip_or_fail(f"{path} is dynamically linked: install busybox-static (scripts/setup-system.sh does)")
    return path


# -- the image ------------------------------------------------------------------------------------


@dataclass
class Image:
    ig_root: Path  # imagegraph's store
    reference: str  # in the test registry
    rootfs: Path
    env: dict[str, str]  # imagegraph runs this checkout's layerfs

    def imagegraph(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return _run([str(Path(LAYERFS).parent / "imagegraph"), "--root", str(self.ig_root), *argv], self.env)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    with start_registry(tmp_path_factory.mktemp("podman-registry")) as reg:
        yield reg


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory, registry: RunningRegistry) -> Image:
    require_root("podman")
    base = tmp_path_factory.mktemp("podman-image")
    rootfs = base / "rootfs"
    for d in ("bin", "etc", "opt", "tmp"):
        (rootfs / d).mkdir(parents=True)
    shutil.copy2(_static_busybox(), rootfs / "bin" / "busybox")
    for applet in BUSYBOX_APPLETS:
        (rootfs / "bin" / applet).symlink_to("busybox")
    (rootfs / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/sh\n")
    (rootfs / "etc" / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
    (rootfs / "opt" / "one").write_text("a file with two names in the image\n")
    os.link(rootfs / "opt" / "one", rootfs / "opt" / "two")
    (rootfs / "opt" / "suid").write_text("#!/bin/sh\nid\n")
    os.chmod(rootfs / "opt" / "suid", 0o4755)
    env = {**os.environ, "PATH": f"{Path(LAYERFS).parent}:{os.environ.get('PATH', '')}"}
    img = Image(base / "store", f"{registry.domain}/layerlab/busybox:1", rootfs, env)
    img.imagegraph("import", str(rootfs), img.reference)
    img.imagegraph("push", img.reference)
    return img


# -- one containers-storage per mount program ------------------------------------------------------


@dataclass
class Store:
    engine: str
    program: str
    base: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def global_flags(self) -> list[str]:
        return [
            "--root",
            str(self.base / "root"),
            "--runroot",
            str(self.base / "run"),
            "--storage-opt",
            f"overlay.mount_program={self.program}",
        ]

    def podman(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        flags = [
            *self.global_flags,
            "--tmpdir",
            str(self.base / "libpod"),
            "--events-backend",
            "none",
            "--cgroup-manager",
            "cgroupfs",
            "--network-config-dir",
            str(self.base / "cni"),
        ]
        return _run([require_tool("podman"), *flags, *argv], self.env, check)

    def buildah(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return _run([require_tool("buildah"), *self.global_flags, *argv], self.env, check)

    def mounted_here(self) -> list[str]:
        root = str(self.base)
        return [m.mountpoint for m in mounts() if m.mountpoint.startswith(root + "/")]


def _program(engine: str) -> str:
    return LAYERFS if engine == "layerfs" else require_tool("fuse-overlayfs")


@pytest.fixture(scope="module", params=ENGINES)
def store(request: pytest.FixtureRequest, image: Image) -> Iterator[Store]:
    require_tool("podman")
    require_tool("buildah")
    engine: str = request.param
    base = Path(tempfile.mkdtemp(prefix=f"pm-{engine[:2]}-", dir="/tmp"))  # podman: a runroot under 50 characters
    (base / "cni").mkdir()
    conf = base / "storage.conf"
    program = _program(engine)
    conf.write_text(
        f'[storage]\ndriver = "overlay"\ngraphroot = "{base / "root"}"\nrunroot = "{base / "run"}"\n'
        f'[storage.options.overlay]\nmount_program = "{program}"\n'
    )
    env = {**os.environ, "CONTAINERS_STORAGE_CONF": str(conf), "TMPDIR": str(base)}
    s = Store(engine, program, base, env)
    pulled = s.podman("pull", "--tls-verify=false", image.reference)
    assert pulled.returncode == 0
    try:
        yield s
    finally:
        s.podman("rm", "--all", "--force", check=False)
        s.buildah("rm", "--all", check=False)
        s.podman("rmi", "--all", "--force", check=False)
        for point in reversed(s.mounted_here()):
            subprocess.run(["umount", "-l", point], capture_output=True)
        subprocess.run(["rm", "-rf", str(base)], capture_output=True)


@contextlib.contextmanager
def container(store: Store, image: str, *create_args: str) -> Iterator[str]:
    name = store.podman("create", "--network", "none", *create_args, image, "/bin/sh").stdout.strip()
    try:
        yield name
    finally:
        store.podman("rm", "--force", name, check=False)


def _tree(root: Path, skip: frozenset[str] | set[str] = frozenset()) -> dict[str, tuple]:
    """Every path under `root` with type, mode bits, size, content or target (owners aside)."""
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = Path(dirpath, name)
            rel = "/" + str(full.relative_to(root))
            if rel in skip or any(rel.startswith(s + "/") for s in skip):
                continue
            st = os.lstat(full)
            if stat.S_ISREG(st.st_mode):
                detail: object = full.read_bytes()
            elif stat.S_ISLNK(st.st_mode):
                detail = os.readlink(full)
            else:
                detail = None
            out[rel] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), detail)
    return out


def _layer_members(archive: Path) -> list[tarfile.TarInfo]:
    """The members of the last layer of a `podman save --format docker-archive` archive."""
    with tarfile.open(archive) as outer:
        listing = outer.extractfile("manifest.json")
        assert listing is not None
        layer = outer.extractfile(json.load(listing)[0]["Layers"][-1])
        assert layer is not None
        with tarfile.open(fileobj=layer) as inner:
            return inner.getmembers()


# -- the steps ----------------------------------------------------------------------------------------


def test_podman_info_shows_the_mount_program_and_its_version(store: Store) -> None:
    info = json.loads(store.podman("info", "--format", "json").stdout)
    program = info["store"]["graphOptions"]["overlay.mount_program"]
    assert program["Executable"] == store.program
    # fuse-overlayfs's own line comes second (after fusermount3's), layerfs's first.
    assert any(line.startswith(f"{store.engine}: version ") for line in program["Version"].splitlines())
    assert info["store"]["graphDriverName"] == "overlay"


def test_pull_create_and_mount_show_the_tree_imagegraph_mounts(store: Store, image: Image) -> None:
    with container(store, image.reference) as c:
        merged = Path(store.podman("mount", c).stdout.strip())
        info = mount_at(merged)
        assert info is not None and info.fstype == f"fuse.{store.engine}"
        ig = image.imagegraph("create", "--name", f"ig-{store.engine}", image.reference, "/bin/sh").stdout.strip()
        try:
            ig_merged = Path(image.imagegraph("mount", ig).stdout.strip())
            try:
                ig_info = mount_at(ig_merged)
                assert ig_info is not None
                init = next(b.path for b in spec_of_mount(ig_info).branches if b.role is Role.INIT)
                # What imagegraph's init layer adds (/dev, /proc, /etc/hosts, ...), not the image.
                added = {
                    "/" + str(p.relative_to(init))
                    for p in Path(init).rglob("*")
                    if not os.path.lexists(image.rootfs / p.relative_to(init))
                }
                assert _tree(merged) == _tree(ig_merged, added) == _tree(image.rootfs)
            finally:
                image.imagegraph("umount", ig)
        finally:
            image.imagegraph("rm", ig)
        # Changes in the merged directory, as podman diff reports them.
        (merged / "etc" / "motd").write_text("changed through the mount\n")
        os.unlink(merged / "bin" / "true")
        (merged / "tmp" / "d").mkdir()
        diff = set(store.podman("diff", c).stdout.split("\n")) - {""}
        assert {"A /etc/motd", "C /etc", "D /bin/true", "C /bin", "A /tmp/d", "C /tmp"} <= diff
        store.podman("umount", c)


def test_export_keeps_hard_links(store: Store, image: Image, tmp_path: Path) -> None:
    with container(store, image.reference) as c:
        merged = Path(store.podman("mount", c).stdout.strip())
        os.link(merged / "bin" / "busybox", merged / "bin" / "bb")  # a link made in the container
        store.podman("umount", c)
        store.podman("export", "-o", str(tmp_path / "export.tar"), c)
    with tarfile.open(tmp_path / "export.tar") as tar:
        links = {m.name.lstrip("./"): m.linkname.lstrip("./") for m in tar if m.islnk()}
    assert {frozenset(p) for p in links.items()} >= {
        frozenset({"opt/one", "opt/two"}),
        frozenset({"bin/busybox", "bin/bb"}),
    }


def test_commit_keeps_a_hard_link_and_a_setuid_file(store: Store, image: Image, tmp_path: Path) -> None:
    committed = f"localhost/committed-{store.engine}:1"
    with container(store, image.reference) as c:
        merged = Path(store.podman("mount", c).stdout.strip())
        (merged / "opt" / "tool").write_text("#!/bin/sh\necho tool\n")
        os.chmod(merged / "opt" / "tool", 0o4755)
        os.link(merged / "opt" / "tool", merged / "opt" / "tool2")
        store.podman("umount", c)
        store.podman("commit", c, committed)
    try:
        store.podman("save", "--format", "docker-archive", "-o", str(tmp_path / "c.tar"), committed)
        members = {m.name.lstrip("./"): m for m in _layer_members(tmp_path / "c.tar")}
        tool, tool2 = members["opt/tool"], members["opt/tool2"]
        pair = {tool.islnk(), tool2.islnk()}
        assert pair == {True, False}
        data, link = (tool, tool2) if tool2.islnk() else (tool2, tool)
        assert link.linkname.lstrip("./") == data.name.lstrip("./")
        assert data.mode & 0o7777 == 0o4755
        image_root = Path(store.podman("image", "mount", committed).stdout.strip())
        try:
            assert os.lstat(image_root / "opt" / "tool").st_mode & stat.S_ISUID
            assert os.lstat(image_root / "opt" / "tool").st_ino == os.lstat(image_root / "opt" / "tool2").st_ino
        finally:
            store.podman("image", "umount", committed)
    finally:
        store.podman("rmi", committed, check=False)


def test_uidmap_container_files_are_owned_by_host_ids(store: Store, image: Image) -> None:
    with container(store, image.reference, "--uidmap", "0:100000:65536", "--gidmap", "0:100000:65536") as c:
        merged = Path(store.podman("mount", c).stdout.strip())
        owners = {(os.lstat(p).st_uid, os.lstat(p).st_gid) for p in [merged, *merged.rglob("*")]}
        layer_owners = {(os.lstat(p).st_uid, os.lstat(p).st_gid) for p in merged.rglob("*")}
        (merged / "tmp" / "new").write_text("written by the host's root\n")
        new = os.lstat(merged / "tmp" / "new")
        store.podman("umount", c)
    if store.engine == "fuse-overlayfs":
        # The reference's known defect with podman 4.3: the lowers come through idmapped
        # mounts and uidmapping= maps them again, so the image's files show the overflow id.
        assert layer_owners == {(65534, 65534)}
        return
    assert owners == {(100000, 100000)}
    # The host's root is outside the range: stored as the overflow id, 65534 in the container.
    assert (new.st_uid, new.st_gid) == (165534, 165534)


def test_buildah_from_mount_run_and_commit(store: Store, image: Image, tmp_path: Path) -> None:
    built = f"localhost/built-{store.engine}:1"
    work = store.buildah("from", image.reference).stdout.strip()
    try:
        root = Path(store.buildah("mount", work).stdout.strip())
        info = mount_at(root)
        assert info is not None and info.fstype == f"fuse.{store.engine}"
        assert (root / "opt" / "one").read_text() == "a file with two names in the image\n"
        ran = store.buildah(
            "run",
            "--isolation",
            "chroot",
            work,
            "--",
            "/bin/sh",
            "-c",
            "echo built > /opt/built && ln /opt/built /opt/built2 && chmod 4755 /opt/built && id -u",
        )
        assert ran.stdout.strip() == "0"
        assert (root / "opt" / "built").read_text() == "built\n"
        assert os.lstat(root / "opt" / "built").st_ino == os.lstat(root / "opt" / "built2").st_ino
        store.buildah("umount", work)
        store.buildah("commit", work, built)
        store.podman("save", "--format", "docker-archive", "-o", str(tmp_path / "b.tar"), built)
        members = {m.name.lstrip("./"): m for m in _layer_members(tmp_path / "b.tar")}
        assert {members["opt/built"].islnk(), members["opt/built2"].islnk()} == {True, False}
        data = members["opt/built"] if not members["opt/built"].islnk() else members["opt/built2"]
        assert data.mode & 0o7777 == 0o4755
    finally:
        store.buildah("rm", work, check=False)
        store.podman("rmi", built, check=False)


def test_podman_run_fails_in_the_runtime_not_in_the_mount(store: Store, image: Image) -> None:
    run = ("run", "--rm", "--network", "none", image.reference, "/bin/echo", "ran")
    result = store.podman("--log-level=debug", *run, check=False)
    if result.returncode == 0:  # a machine where containers run: then the output must be right
        assert result.stdout.strip() == "ran"
        return
    # This sandbox: crun/runc cannot set rlimits (or use hybrid cgroups). podman's debug log shows
    # the mount program mounted the rootfs, then the runtime started (conmon) and failed, then the
    # rootfs was unmounted; the error podman reports is the runtime's.
    log = result.stderr
    assert result.returncode in (125, 126, 127), log
    mounted, conmon, unmounted = (
        log.find(m) for m in ('msg="Mounted container', "running conmon", 'msg="Unmounted container')
    )
    assert -1 < mounted < conmon < unmounted, log
    errors = [line for line in log.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, log
    assert re.match(r"Error: (crun|runc): .*(rlimit|cgroup).*: OCI ", errors[0], re.IGNORECASE), errors[0]
    assert store.engine + ":" not in errors[0] and "mount" not in errors[0]


def test_umount_rm_and_rmi(store: Store, image: Image) -> None:
    tagged = f"localhost/to-remove-{store.engine}:1"
    store.podman("tag", image.reference, tagged)
    name = store.podman("create", "--network", "none", tagged, "/bin/sh").stdout.strip()
    merged = Path(store.podman("mount", name).stdout.strip())
    assert mount_at(merged) is not None
    store.podman("umount", name)
    after = mount_at(merged)
    assert after is None or after.fstype != f"fuse.{store.engine}"
    store.podman("rm", name)
    assert name not in store.podman("ps", "-a", "--format", "{{.ID}}", "--no-trunc").stdout
    store.podman("rmi", tagged)
    assert tagged not in store.podman("images", "--format", "{{.Repository}}:{{.Tag}}").stdout
    assert not [m for m in mounts() if m.mountpoint.startswith(str(store.base) + "/") and m.fstype.startswith("fuse.")]


def test_imagegraph_commit_keeps_hard_links_made_through_layerfs(image: Image, tmp_path: Path) -> None:
    name = f"ig-links-{os.getpid()}"
    image.imagegraph("create", "--name", name, image.reference, "/bin/sh")
    committed = f"localhost/ig-links:{os.getpid()}"
    try:
        merged = Path(image.imagegraph("mount", name).stdout.strip())
        info = mount_at(merged)
        assert info is not None and info.fstype == "fuse.layerfs"
        (merged / "opt" / "new").write_text("new\n")
        os.link(merged / "opt" / "new", merged / "opt" / "new2")
        os.link(merged / "opt" / "suid", merged / "opt" / "suid2")  # a lower file, copied up and linked
        assert os.lstat(merged / "opt" / "suid").st_ino == os.lstat(merged / "opt" / "suid2").st_ino
        image.imagegraph("umount", name)
        image.imagegraph("commit", name, committed)
        image.imagegraph("save", "-o", str(tmp_path / "ig.tar"), committed)
        members = {m.name.lstrip("./"): m for m in _layer_members(tmp_path / "ig.tar")}
        assert {members["opt/new"].islnk(), members["opt/new2"].islnk()} == {True, False}
        assert {members["opt/suid"].islnk(), members["opt/suid2"].islnk()} == {True, False}
        data = members["opt/suid"] if not members["opt/suid"].islnk() else members["opt/suid2"]
        assert data.mode & 0o7777 == 0o4755
    finally:
        subprocess.run(
            [str(Path(LAYERFS).parent / "imagegraph"), "--root", str(image.ig_root), "rm", "-f", name],
            capture_output=True,
            env=image.env,
        )
