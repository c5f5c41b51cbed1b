"""commit: the top layer (never init) into a new image; -c changes as Docker parses them."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from imagegraph.commit import ChangeError, apply_changes
from imagegraph.digest import EMPTY_LAYER_DIFF_ID, chain_id
from imagegraph.service import Services

from .conftest import make_rootfs


@pytest.fixture
def base(svc: Services, rootfs: Path) -> str:
    return svc.import_image(str(rootfs), "base:1", changes=['CMD ["/bin/sh"]', "ENV PATH=/bin"], message="imported")


def top_dir(svc: Services, name: str) -> Path:
    c = svc.get_container(name)
    return svc.layout.layer_dir(svc.layers.get_mount(c.id).mount_id) / "diff"


def layer_names(svc: Services, chain: str) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(b"".join(svc.layers.tar_stream(chain)))) as tf:
        return tf.getnames()


def test_round_trip(svc: Services, base: str) -> None:
    svc.create_container("base:1", ["/bin/sh", "-c", "edit things"], name="work")
    top = top_dir(svc, "work")
    (top / "etc").mkdir()
    (top / "etc" / "motd").write_text("changed\n")
    (top / "new.txt").write_text("added\n")
    (top / ".wh.bin").write_text("")  # delete /bin, aufs form
    res = svc.commit(
        "work",
        "derived:v1",
        author="Ann <ann@example.org>",
        message="my change",
        changes=["EXPOSE 80", "LABEL team=red"],
        created=1700000100,
    )
    img = svc.images.get(res.image_id)
    parent = svc.images.get(base)
    assert img.parent == base
    assert img.diff_ids == parent.diff_ids + [res.diff_id]
    assert (
        svc.refs.get(__import__("imagegraph.reference", fromlist=["x"]).parse_normalized_named("derived:v1")) == img.id
    )
    cfg = img.config
    assert "parent" not in cfg
    assert cfg["author"] == "Ann <ann@example.org>" and cfg["comment"] == "my change"
    assert cfg["created"] == "2023-11-14T22:15:00Z"
    assert cfg["container"] == svc.get_container("work").id
    assert cfg["history"][-1] == {
        "created": "2023-11-14T22:15:00Z",
        "author": "Ann <ann@example.org>",
        "created_by": "/bin/sh -c edit things",
        "comment": "my change",
    }
    assert len(cfg["history"]) == 2
    assert cfg["config"]["ExposedPorts"] == {"80/tcp": {}}
    assert cfg["config"]["Labels"] == {"team": "red"}
    assert cfg["config"]["Env"] == ["PATH=/bin"] and cfg["config"]["Cmd"] == ["/bin/sh", "-c", "edit things"]
    # the layer holds the top layer only, whiteouts in OCI form, none of the init files
    names = layer_names(svc, chain_id(img.diff_ids))
    assert names == [".wh.bin", "etc", "etc/motd", "new.txt"]
    # a container of the new image sees the changes through its layers
    c2 = svc.create_container("derived:v1", name="next")
    lowers = svc.layers.lower_dirs(svc.layers.get_mount(c2.id).parent)
    assert (lowers[0] / "new.txt").read_text() == "added\n"
    assert (lowers[0] / "etc" / "motd").read_text() == "changed\n"
    assert not (lowers[0] / "etc" / "hosts").exists() and not (lowers[0] / ".dockerenv").exists()
    assert (lowers[1] / "etc" / "motd").read_text() == "hello\n"


@pytest.mark.root("char 0/0 whiteouts")
def test_overlay_whiteouts_are_committed_in_oci_form(svc: Services, base: str) -> None:
    svc.create_container("base:1", name="ov")
    top = top_dir(svc, "ov")
    (top / "etc").mkdir()
    os.mknod(top / "etc" / "passwd", stat.S_IFCHR, os.makedev(0, 0))
    os.setxattr(top / "etc", "trusted.overlay.opaque", b"y")
    res = svc.commit("ov", created=1700000100)
    assert layer_names(svc, chain_id(svc.images.get(res.image_id).diff_ids)) == [
        "etc",
        "etc/.wh..wh..opq",
        "etc/.wh.passwd",
    ]


def test_empty_diff_gives_an_empty_layer_entry(svc: Services, base: str) -> None:
    svc.create_container("base:1", name="idle")
    before = {layer.chain_id for layer in svc.layers.layers()}
    res = svc.commit("idle", changes=["CMD echo hi"], created=1700000200)
    img = svc.images.get(res.image_id)
    assert res.empty and res.diff_id == EMPTY_LAYER_DIFF_ID
    assert img.diff_ids == svc.images.get(base).diff_ids
    assert img.history[-1]["empty_layer"] is True
    assert img.container_config["Cmd"] == ["/bin/sh", "-c", "echo hi"]
    assert {layer.chain_id for layer in svc.layers.layers()} == before


def test_ids_are_stable_from_run_to_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    ids = []
    for run in range(2):
        src = make_rootfs(tmp_path / f"src{run}", {"etc/motd": "same\n", "bin/sh": "x"})
        s = Services.open(tmp_path / f"root{run}")
        base = s.import_image(str(src), "base")
        s.create_container("base", ["/bin/sh"], name="c1")
        top = s.layout.layer_dir(s.layers.get_mount(s.get_container("c1").id).mount_id) / "diff"
        (top / "f").write_text("content")
        os.utime(top / "f", (1600000000, 1600000000))
        os.utime(top, (1600000000, 1600000000))
        res = s.commit("c1", "child", created=1700000300)
        ids.append((base, res.image_id, res.diff_id))
    assert ids[0] == ids[1]


def test_commit_of_missing_container(svc: Services, base: str) -> None:
    with pytest.raises(Exception, match="No such container: ghost"):
        svc.commit("ghost")
    assert len(svc.images.ids()) == 1


@pytest.mark.parametrize(
    "change,key,value",
    [
        ('CMD ["a","b"]', "Cmd", ["a", "b"]),
        ("CMD echo hi", "Cmd", ["/bin/sh", "-c", "echo hi"]),
        ('ENTRYPOINT ["/e"]', "Entrypoint", ["/e"]),
        ("ENTRYPOINT run it", "Entrypoint", ["/bin/sh", "-c", "run it"]),
        ('ENV A=1 B="two words"', "Env", ["PATH=/bin", "A=1", "B=two words"]),
        ("ENV PATH /usr/bin:/bin", "Env", ["PATH=/usr/bin:/bin"]),
        ("EXPOSE 80 443/udp 8000-8001", "ExposedPorts", {"80/tcp": {}, "443/udp": {}, "8000/tcp": {}, "8001/tcp": {}}),
        ('LABEL a=b "c d"=e', "Labels", {"a": "b", "c d": "e"}),
        ("USER nobody:nogroup", "User", "nobody:nogroup"),
        ('VOLUME ["/data", "/logs"]', "Volumes", {"/data": {}, "/logs": {}}),
        ("VOLUME /a /b", "Volumes", {"/a": {}, "/b": {}}),
        ("WORKDIR /srv", "WorkingDir", "/srv"),
        ("STOPSIGNAL SIGTERM", "StopSignal", "SIGTERM"),
        ("ONBUILD run make", "OnBuild", ["RUN make"]),
        (
            "HEALTHCHECK --interval=30s --retries=3 CMD curl -f http://x/",
            "Healthcheck",
            {"Test": ["CMD-SHELL", "curl -f http://x/"], "Interval": 30_000_000_000, "Retries": 3},
        ),
        ('HEALTHCHECK CMD ["/check"]', "Healthcheck", {"Test": ["CMD", "/check"]}),
        ("HEALTHCHECK NONE", "Healthcheck", {"Test": ["NONE"]}),
        ("cmd lower case works", "Cmd", ["/bin/sh", "-c", "lower case works"]),
    ],
)
def test_changes(change: str, key: str, value) -> None:
    cfg = apply_changes({"Env": ["PATH=/bin"], "Cmd": ["old"]}, [change])
    assert cfg[key] == value


def test_entrypoint_resets_cmd_unless_cmd_came_first() -> None:
    assert apply_changes({"Cmd": ["x"]}, ["ENTRYPOINT /e"])["Cmd"] is None
    assert apply_changes({"Cmd": ["x"]}, ['CMD ["y"]', "ENTRYPOINT /e"])["Cmd"] == ["y"]
    assert apply_changes({"WorkingDir": "/a"}, ["WORKDIR b", "WORKDIR ../c"])["WorkingDir"] == "/a/c"


@pytest.mark.parametrize(
    "change,message",
    [
        ("RUN echo hi", "run is not a valid change command"),
        ("FROM x", "from is not a valid change command"),
        ("COPY a b", "copy is not a valid change command"),
        ("EXPOSE abc", "invalid containerPort: abc"),
        ("ENV", "ENV requires at least one argument"),
        ("HEALTHCHECK --bogus=1 CMD x", "Unknown flag: bogus"),
        ("ONBUILD FROM x", "FROM isn't allowed as an ONBUILD trigger"),
    ],
)
def test_invalid_changes(change: str, message: str) -> None:
    with pytest.raises(ChangeError) as exc:
        apply_changes({}, [change])
    assert str(exc.value) == message
