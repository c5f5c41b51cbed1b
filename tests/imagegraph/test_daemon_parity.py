"""The same commands through the real docker CLI (→ imagegraph daemon) and through `imagegraph`,
on two stores: the tables print the same, and the stores end up the same."""

from __future__ import annotations

import hashlib
import io
import os
import re
import stat
import tarfile
from pathlib import Path

import pytest

from imagegraph.cli import main as imagegraph_main
from imagegraph.container import ContainerStore
from imagegraph.layerstore import LayerStore
from imagegraph.store import Layout

from .conftest import make_rootfs
from .daemon_fixture import RunningDaemon

HEX64 = re.compile(r"[0-9a-f]{64}")


def layer_tar(path: Path, files: dict[str, str]) -> Path:
    """A small layer tar with fixed metadata, as `docker import` would be given."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs = sorted({str(Path(f).parent) for f in files} - {"."})
        for d in dirs:
            info = tarfile.TarInfo(d)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 1600000000
            tar.addfile(info)
        for name, content in sorted(files.items()):
            data = content.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o755 if name.startswith("bin/") else 0o644, 1600000000
            tar.addfile(info, io.BytesIO(data))
    path.write_bytes(buf.getvalue())
    return path


def write_in_top_layer(root: Path, container: str, rel: str, data: str) -> None:
    """What a process in the container would leave in its top layer (no mount needed here)."""
    layout = Layout(root)
    store = ContainerStore(layout, LayerStore(layout))
    c = store.get(container)
    target = layout.layer_dir(store.mount_layer(c).mount_id) / "diff" / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(data)
    os.utime(target, (1600000000, 1600000000))


def snapshot(root: Path) -> dict[str, str]:
    """Everything in a store that says what it holds, with the random names (cache-ids, mount-ids)
    replaced by what they belong to, and the root's own path by `<root>`."""
    layout = Layout(root)
    names: dict[str, str] = {}
    layers = LayerStore(layout)
    for layer in layers.layers():
        names[layer.cache_id] = f"<layer {layer.chain_id[7:19]}>"
    for m in layers.mounts():
        names[m.mount_id] = f"<top {m.container_id[:12]}>"
        names[m.init_id] = f"<init {m.container_id[:12]}>"

    def norm(text: str) -> str:
        text = text.replace(str(root), "<root>")
        return HEX64.sub(lambda x: names.get(x.group(0), x.group(0)), text)

    out: dict[str, str] = {}
    skip = {".lock", "engine-id", "lastUpdated"}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        if rel_dir.split(os.sep)[0] == "tmp" or rel_dir.endswith("layerdb/tmp"):
            continue
        for n in dirnames + filenames:
            if n in skip:
                continue
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            key = norm(os.path.normpath(os.path.join(rel_dir, n)))
            if stat.S_ISREG(st.st_mode):
                data = Path(p).read_bytes()
                try:
                    value = norm(data.decode())
                except UnicodeDecodeError:
                    value = hashlib.sha256(data).hexdigest()
                if n in ("mount-id", "init-id", "cache-id"):
                    value = norm(value)
                out[key] = f"{oct(st.st_mode)} {value}"
            elif stat.S_ISDIR(st.st_mode):
                out[key] = f"{oct(st.st_mode)} dir"
            else:
                out[key] = f"{oct(st.st_mode)} other"
    return out


@pytest.fixture
def ig_root(tmp_path: Path, daemon: RunningDaemon) -> Path:
    return tmp_path / "ig-root"


def ig(root: Path, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    rc = imagegraph_main(["--root", str(root), *args], out, err)
    return rc, out.getvalue(), err.getvalue()


def repos_in_order(stdout: str) -> str:
    """docker/cli lists the repositories of one image in Go map order, which is random
    (imageFormatTaggedAndDigest ranges over a map); imagegraph sorts them. So the rows of
    one image are compared as a set, and the order of the images themselves still counts."""
    lines = stdout.splitlines(keepends=True)
    if not lines or not lines[0].startswith("REPOSITORY"):
        return stdout
    out, run_key = [lines[0]], None
    run: list[str] = []
    for line in lines[1:]:
        key = re.split(r"\s{2,}", line.strip())[-3:]  # IMAGE ID, CREATED, SIZE
        if key != run_key:
            out += sorted(run)
            run, run_key = [], key
        run.append(line)
    return "".join(out + sorted(run))


def test_repos_in_order_sorts_only_the_rows_of_one_image() -> None:
    table = "REPOSITORY  TAG  IMAGE ID  CREATED  SIZE\nb  1  aaa  now  1B\na  1  aaa  now  1B\nz  1  bbb  now  1B\n"
    assert repos_in_order(table).splitlines()[1:] == ["a  1  aaa  now  1B", "b  1  aaa  now  1B", "z  1  bbb  now  1B"]
    assert repos_in_order("x\ny\n") == "x\ny\n"


def both(daemon: RunningDaemon, root: Path, *args: str) -> tuple[int, str, str]:
    d = daemon.docker(*args, check=False)
    rc, out, err = ig(root, *args)
    assert (d.returncode, repos_in_order(d.stdout), d.stderr) == (rc, repos_in_order(out), err), (
        f"docker {' '.join(args)} and imagegraph differ"
    )
    return rc, out, err


def test_docker_and_imagegraph_print_the_same_and_make_the_same_store(
    daemon: RunningDaemon, ig_root: Path, tmp_path: Path
) -> None:
    tar = layer_tar(tmp_path / "base.tar", {"bin/sh": "#!/bin/sh\n", "etc/motd": "hello\n"})
    other = layer_tar(tmp_path / "other.tar", {"etc/os-release": "NAME=other\n"})
    root = daemon.root
    both(daemon, ig_root, "import", str(tar), "base:1")
    both(daemon, ig_root, "import", "-m", "the other one", "-c", "ENV A=1", str(other), "other")
    both(daemon, ig_root, "tag", "base:1", "base:2")
    both(daemon, ig_root, "tag", "base:1", "127.0.0.1:5000/team/base:1.0")
    both(daemon, ig_root, "create", "--name", "c1", "-l", "team=blue", "base:1", "/bin/sh")
    for r in (root, ig_root):
        write_in_top_layer(r, "c1", "hello.txt", "Hello from layerlab!\n")
    both(daemon, ig_root, "diff", "c1")
    both(daemon, ig_root, "commit", "-a", "me", "-m", "add hello.txt", "-c", "ENV B=2", "c1", "child:1")
    both(daemon, ig_root, "create", "--name", "c2", "child:1")
    both(daemon, ig_root, "commit", "c2")  # an untagged image with a parent: dangling, then intermediate
    for args in (
        ["images"],
        ["images", "-a"],
        ["images", "-q"],
        ["images", "-a", "--no-trunc"],
        ["images", "--filter", "dangling=true"],
        ["images", "--filter", "reference=base"],
        ["images", "--filter", "reference=*/team/*"],
        ["images", "base"],
        ["images", "--digests"],
        ["history", "child:1"],
        ["history", "--no-trunc", "child:1"],
        ["history", "-q", "child:1"],
        ["history", "other"],
        ["ps", "-a"],
        ["ps", "-a", "--no-trunc"],
        ["ps", "-aq"],
        ["ps"],
        # --format: Go templates, `table` templates and json lines, run by docker/cli on one side
        # (one repository per image: docker/cli lists the repositories of one image in map order)
        ["images", "--filter", "reference=base", "--format", "{{.Repository}}:{{.Tag}} {{.ID}} {{.Size}}"],
        ["images", "--filter", "reference=*", "--format", "table {{.Repository}}\\t{{.Tag}}\\t{{.Digest}}"],
        ["images", "-a", "--filter", "reference=child", "--format", "{{.Tag}}:{{upper .Repository}}"],
        ["images", "--filter", "dangling=true", "--format", '{{if eq .Tag "<none>"}}untagged {{.ID}}{{end}}'],
        ["images", "--filter", "reference=other", "--format", "json"],
        ["images", "--filter", "dangling=true", "--format", "json"],
        ["images", "--format", "{{.Nope}}"],
        ["images", "--format", "{{nope .ID}}"],
        ["history", "--format", "{{.ID}}|{{.CreatedBy}}|{{.Size}}|{{.Comment}}", "child:1"],
        ["history", "--format", "table {{.ID}}\\t{{.CreatedBy}}\\t{{.Comment}}", "--no-trunc", "child:1"],
        ["history", "--format", "json", "other"],
        ["history", "-H=false", "--format", "{{.CreatedBy}} {{.Size}}", "other"],
        ["ps", "-a", "--format", "table {{.Names}}\\t{{.Image}}\\t{{.Command}}\\t{{.State}}"],
        ["ps", "-a", "--format", '{{.Names}}: {{.Image}} {{json .Ports}} {{.Label "team"}}|{{.Label "x"}}|'],
        ["ps", "-a", "--format", "json"],
        ["ps", "-a", "-s"],
        ["ps", "-a", "--no-trunc", "--size", "--format", "table {{.Names}}\\t{{.Size}}"],
        ["ps", "-a", "--format", "{{.Names}} {{.Size}}"],
        ["ps", "-a", "--format", "{{.Platform}} {{.Labels}} {{.Nope}}"],
        ["ps", "-a", "--format", "{{if}}"],
        ["history", "--format", "{{.Nope}}", "other"],
        # inspect -f: docker/cli runs the template on the typed object, then on the raw JSON
        ["inspect", "-f", "{{.Id}} {{.Config.Env}} {{json .RootFS}} {{.RootFS}}", "child:1", "other"],
        ["inspect", "--format", "{{range .RepoTags}}[{{.}}]{{end}} {{len .RootFS.Layers}} {{.Parent}}", "base:1"],
        ["inspect", "-f", "{{.Config.Cmd}} {{.Config.Entrypoint}} {{.Config.Volumes}} {{.Config.Labels}}", "other"],
        ["inspect", "-f", "{{.Config.User}}|{{.Config.Healthcheck}}|{{.ContainerConfig}}|{{.Size}}", "other"],
        ["inspect", "-f", '{{.Config.Labels.nope}} {{index .Config.Labels "x"}} {{.Os}}/{{.Architecture}}', "other"],
        ["inspect", "-f", "{{.Name}} {{.Image}} {{.Config.Cmd}} {{json .Config.Entrypoint}} {{.State.Status}}", "c1"],
        ["inspect", "-f", "{{.Id}} {{.Nope}}", "base:1", "nothere", "c1"],
        ["inspect", "-f", "{{.State.Running}}", "c1", "base:1"],
        ["inspect", "-f", "{{.Id}", "base:1"],
        ["inspect", "-f", "{{nope .Id}}", "base:1"],
    ):
        both(daemon, ig_root, *args)
    assert snapshot(root) == snapshot(ig_root)

    rc, _, err = both(daemon, ig_root, "rmi", "child:1")  # c1 uses base, c2 uses child
    assert rc == 1 and err.startswith("Error response from daemon: conflict: unable to remove repository reference")
    both(daemon, ig_root, "rmi", "base:2")
    both(daemon, ig_root, "rm", "c2")
    both(daemon, ig_root, "rmi", "-f", "child:1")
    both(daemon, ig_root, "rmi", "nothere:1")
    both(daemon, ig_root, "rm", "c1", "nothere")
    both(daemon, ig_root, "image", "prune", "-f")
    both(daemon, ig_root, "images", "-a")
    both(daemon, ig_root, "image", "prune", "-a", "-f")
    both(daemon, ig_root, "images", "-a")
    assert snapshot(root) == snapshot(ig_root)


def test_a_directory_import_matches_a_tar_of_it(daemon: RunningDaemon, tmp_path: Path) -> None:
    """`imagegraph import DIR` (ours) and `docker import` of the layer tar of DIR give one image."""
    rootfs = make_rootfs(tmp_path / "rootfs", {"bin/sh": "#!/bin/sh\n"})
    rc, out, err = ig(daemon.root, "import", "-m", "m", str(rootfs), "fromdir")
    assert rc == 0, err
    from imagegraph.archive import write_layer_tar

    with open(tmp_path / "fs.tar", "wb") as f:
        write_layer_tar(rootfs, f)
    image_id = daemon.docker("import", "-m", "m", str(tmp_path / "fs.tar"), "fromtar").stdout.strip()
    assert image_id == out.strip()
