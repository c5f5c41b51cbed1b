"""Containers that do not run, driven by the docker CLI: create, ps, inspect, diff, commit,
export, cp both ways (copy-ups and whiteouts in the top layer), rename, rm, prune."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import tarfile
from pathlib import Path

from imagegraph.archive import ENCODING_OVERLAY, default_encoding
from imagegraph.container import ContainerStore
from imagegraph.layerstore import LayerStore
from imagegraph.store import Layout

from .daemon_fixture import RunningDaemon
from .test_daemon_parity import layer_tar


def base_image(daemon: RunningDaemon, tmp_path: Path, name: str = "base:1") -> str:
    tar = layer_tar(
        tmp_path / "base.tar",
        {"bin/sh": "#!/bin/sh\n", "etc/motd": "hello\n", "etc/os-release": "NAME=tiny\n", "srv/a/b.txt": "b\n"},
    )
    return daemon.docker("import", "-c", 'CMD ["/bin/sh"]', "-c", "ENV BASE=1", str(tar), name).stdout.strip()


def top_layer(root: Path, name: str) -> Path:
    layout = Layout(root)
    store = ContainerStore(layout, LayerStore(layout))
    return layout.layer_dir(store.mount_layer(store.get(name)).mount_id) / "diff"


def test_create_inspect_and_ps(daemon: RunningDaemon, tmp_path: Path) -> None:
    image_id = base_image(daemon, tmp_path)
    cid = daemon.docker(
        "create", "--name", "web", "-e", "A=1", "-l", "team=blue", "-w", "/srv", "--hostname", "box", "base:1"
    ).stdout.strip()
    assert len(cid) == 64
    info = json.loads(daemon.docker("inspect", "web").stdout)[0]
    assert info["Id"] == cid and info["Name"] == "/web" and info["Image"] == image_id
    assert info["State"]["Status"] == "created" and info["State"]["Running"] is False
    assert info["Config"]["Env"] == ["A=1", "BASE=1"]  # moby merge: the request's, then the image's other keys
    assert info["Config"]["Labels"] == {"team": "blue"}
    assert info["Config"]["WorkingDir"] == "/srv" and info["Config"]["Hostname"] == "box"
    assert info["Config"]["Cmd"] == ["/bin/sh"]  # from the image
    assert info["GraphDriver"]["Name"] == "layerfs" and info["GraphDriver"]["Data"]["UpperDir"].endswith("/diff")
    assert daemon.docker("ps", "-q").stdout == ""  # nothing runs
    assert daemon.docker("ps", "-aq", "--no-trunc").stdout.strip() == cid
    assert daemon.docker("ps", "-a", "--filter", "label=team=blue", "--format", "{{.Names}}").stdout == "web\n"
    assert daemon.docker("ps", "-a", "--filter", "label=team=red", "-q").stdout == ""
    assert daemon.docker("ps", "-a", "--filter", "ancestor=base:1", "-q").stdout.strip() == cid[:12]
    assert daemon.docker("ps", "-a", "--filter", "status=created", "-q").stdout.strip() == cid[:12]
    assert daemon.docker("ps", "-a", "--filter", "status=exited", "-q").stdout == ""
    size = daemon.docker("ps", "-as", "--format", "{{.Size}}").stdout.strip()
    assert size.startswith("0B (virtual ")
    clash = daemon.docker("create", "--name", "web", "base:1", check=False)
    assert clash.returncode == 125 or clash.returncode == 1
    assert 'Conflict. The container name "/web" is already in use by container' in clash.stderr
    for args in (["nope"], ["--type", "container", "nope"], ["--type", "image", "nope"]):
        missing = daemon.docker("inspect", *args, check=False)
        assert missing.returncode == 1
        assert (missing.stdout, missing.stderr) == (daemon.ig("inspect", *args).out, daemon.ig("inspect", *args).err)


def test_cp_in_and_out_make_copy_ups_and_the_diff_commit_sees_them(daemon: RunningDaemon, tmp_path: Path) -> None:
    base_image(daemon, tmp_path)
    daemon.docker("create", "--name", "c1", "base:1")
    (tmp_path / "note.txt").write_text("a note\n")
    daemon.docker("cp", str(tmp_path / "note.txt"), "c1:/etc/")
    (tmp_path / "motd").write_text("changed\n")
    daemon.docker("cp", str(tmp_path / "motd"), "c1:/etc/motd")
    (tmp_path / "dir" / "sub").mkdir(parents=True)
    (tmp_path / "dir" / "sub" / "x").write_text("x\n")
    daemon.docker("cp", str(tmp_path / "dir"), "c1:/srv/a")  # into an existing dir: /srv/a/dir
    top = top_layer(daemon.root, "c1")
    assert (top / "etc" / "note.txt").read_text() == "a note\n"
    assert (top / "etc" / "motd").read_text() == "changed\n"  # copied up, then replaced
    assert (top / "srv" / "a" / "dir" / "sub" / "x").read_text() == "x\n"
    assert not (top / "etc" / "os-release").exists()  # untouched files stay below
    diff = daemon.docker("diff", "c1").stdout.splitlines()
    assert {"C /etc", "A /etc/note.txt", "C /etc/motd", "C /srv/a", "A /srv/a/dir", "A /srv/a/dir/sub/x"} <= set(diff)
    assert not [line for line in diff if line.startswith("D ")], diff  # a new dir is added, not deleted
    assert daemon.docker("diff", "c1").stdout == daemon.ig("diff", "c1").out

    out = tmp_path / "out"
    out.mkdir()
    daemon.docker("cp", "c1:/etc/motd", str(out / "motd"))
    assert (out / "motd").read_text() == "changed\n"
    daemon.docker("cp", "c1:/srv", str(out))
    assert (out / "srv" / "a" / "b.txt").read_text() == "b\n"  # from the image's layer
    assert (out / "srv" / "a" / "dir" / "sub" / "x").read_text() == "x\n"  # from the top layer
    streamed = daemon.docker_bytes("cp", "c1:/etc/os-release", "-")
    with tarfile.open(fileobj=io.BytesIO(streamed)) as tar:
        assert tar.getnames() == ["os-release"]
        member = tar.extractfile("os-release")
        assert member is not None and member.read() == b"NAME=tiny\n"
    nothing = daemon.docker("cp", "c1:/nope", str(out), check=False)
    assert nothing.returncode == 1 and "Could not find the file /nope in container c1" in nothing.stderr

    image_id = daemon.docker(
        "commit", "-a", "Ann <ann@example.com>", "-m", "notes", "-c", "ENV MODE=prod", "-c", 'CMD ["/bin/true"]',
        "c1", "noted:1",
    ).stdout.strip()  # fmt: skip
    info = json.loads(daemon.docker("image", "inspect", "noted:1").stdout)[0]
    assert info["Id"] == image_id and info["Author"] == "Ann <ann@example.com>" and info["Comment"] == "notes"
    assert info["Config"]["Env"] == ["BASE=1", "MODE=prod"] and info["Config"]["Cmd"] == ["/bin/true"]
    assert len(info["RootFS"]["Layers"]) == 2
    assert info["Parent"] == json.loads(daemon.docker("image", "inspect", "base:1").stdout)[0]["Id"]
    history = daemon.docker("history", "--format", "{{.Comment}}", "noted:1").stdout.splitlines()
    assert history[0] == "notes"


def test_export_is_the_merged_filesystem(daemon: RunningDaemon, tmp_path: Path) -> None:
    base_image(daemon, tmp_path)
    daemon.docker("create", "--name", "c1", "base:1")
    top = top_layer(daemon.root, "c1")
    (top / "new.txt").write_text("new\n")
    (top / "etc").mkdir()
    # deleted in the top layer, in the store's own encoding: in the kernel's (root's, and a
    # user's on Linux 5.8+) a `.wh.motd` file would be an ordinary file, as OverlayFS reads it
    if default_encoding() == ENCODING_OVERLAY:
        os.mknod(top / "etc" / "motd", stat.S_IFCHR | 0o600, os.makedev(0, 0))
    else:
        (top / "etc" / ".wh.motd").touch()
    data = daemon.docker_bytes("export", "c1")
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = tar.getnames()
        assert "new.txt" in names and "bin/sh" in names and "srv/a/b.txt" in names
        assert "etc/motd" not in names  # whited out in the top layer: gone from the merged view
        assert "etc/os-release" in names
        assert not any(n.rsplit("/", 1)[-1].startswith(".wh.") for n in names)
        assert "etc/hostname" in names  # the init layer is part of the container's files
    piped = subprocess.run(
        "docker export c1 | tar -t", shell=True, env=daemon.env, capture_output=True, text=True, timeout=60
    )
    assert piped.returncode == 0 and "new.txt" in piped.stdout.split()


def test_prune_filters_until_and_labels(daemon: RunningDaemon, tmp_path: Path) -> None:
    """`docker image prune` and `docker container prune` with moby's until (a duration, a date)
    and label filters: only what every filter admits goes."""
    from datetime import UTC, datetime, timedelta

    for n, team in enumerate(("blue", "red", "")):
        tar = layer_tar(tmp_path / f"{n}.tar", {f"f{n}": f"{n}\n"})
        label = ["-c", f"LABEL team={team}"] if team else []
        daemon.docker("import", *label, str(tar), f"{team or 'plain'}:1")

    def repos() -> list[str]:
        return sorted(daemon.docker("images", "--format", "{{.Repository}}").stdout.split())

    def prune(*filters: str) -> str:
        return daemon.docker("image", "prune", "-a", "-f", *(f for x in filters for f in ("--filter", x))).stdout

    # the fixture's SOURCE_DATE_EPOCH dates every image 2023-11-14
    assert prune("until=2023-01-01T00:00:00Z") == "Total reclaimed space: 0B\n"
    assert repos() == ["blue", "plain", "red"]
    assert "untagged: blue:1" in prune("label=team=blue") and repos() == ["plain", "red"]
    assert "untagged: plain:1" in prune("label!=team", "until=1h") and repos() == ["red"]
    soon = (datetime.now(UTC) + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert "untagged: red:1" in prune(f"until={soon}", "label=team") and repos() == []
    bad = daemon.docker("image", "prune", "-f", "--filter", "until=soon", check=False)
    assert bad.returncode == 1 and "invalid filter 'until=soon'" in bad.stderr
    two = daemon.docker("image", "prune", "-f", "--filter", "until=1h", "--filter", "until=2h", check=False)
    assert two.returncode == 1 and "more than one until filter specified" in two.stderr

    base_image(daemon, tmp_path)
    daemon.docker("create", "--name", "old", "-l", "keep=1", "base:1")
    daemon.docker("create", "--name", "new", "base:1")
    assert (
        daemon.docker("container", "prune", "-f", "--filter", "until=2020-01-01").stdout
        == "Total reclaimed space: 0B\n"
    )
    kept = daemon.docker("container", "prune", "-f", "--filter", "label!=keep").stdout
    assert (
        kept.startswith("Deleted Containers:\n")
        and daemon.docker("ps", "-a", "--format", "{{.Names}}").stdout == "old\n"
    )


def test_rename_rm_and_prune(daemon: RunningDaemon, tmp_path: Path) -> None:
    base_image(daemon, tmp_path)
    for name in ("aa", "bb", "cc"):
        daemon.docker("create", "--name", name, "base:1")
    daemon.docker("rename", "aa", "renamed")
    assert sorted(daemon.docker("ps", "-a", "--format", "{{.Names}}").stdout.split()) == ["bb", "cc", "renamed"]
    same = daemon.docker("rename", "bb", "bb", check=False)
    assert same.returncode == 1 and "Renaming a container with the same name as its current name" in same.stderr
    taken = daemon.docker("rename", "bb", "cc", check=False)
    assert taken.returncode == 1 and 'The container name "/cc" is already in use' in taken.stderr
    assert daemon.docker("rm", "renamed").stdout == "renamed\n"
    rmi = daemon.docker("rmi", "base:1", check=False)
    assert rmi.returncode == 1 and "conflict: unable to remove repository reference" in rmi.stderr
    pruned = daemon.docker("container", "prune", "-f").stdout
    assert pruned.startswith("Deleted Containers:\n") and "Total reclaimed space:" in pruned
    assert daemon.docker("ps", "-aq").stdout == ""
    assert list((daemon.root / "image" / "layerfs" / "layerdb" / "mounts").iterdir()) == []
    gone = daemon.docker("rm", "nothere", check=False)
    assert gone.returncode == 1 and gone.stderr.strip() == "Error response from daemon: No such container: nothere"
