"""save and load: Docker 25+ format, the old format, a bare OCI layout, parents, errors."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile

import pytest

from imagegraph.archive import ArchiveError
from imagegraph.digest import go_json
from imagegraph.distribution.localstore import open_local_store
from imagegraph.distribution.progress import ProgressWriter
from imagegraph.reference import parse_normalized_named
from imagegraph.tarexport import TarExportError, load, save

from .distribution_helpers import build_image, snapshot


def sha(b: bytes) -> str:
    return "sha256:" + hashlib.sha256(b).hexdigest()


def saved(store, *names) -> bytes:
    buf = io.BytesIO()
    save(store, list(names), buf)
    return buf.getvalue()


def members(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        return {m.name: f.read() for m in t.getmembers() if m.isfile() and (f := t.extractfile(m)) is not None}


def do_load(store, data: bytes) -> tuple[list[str], str]:
    out = io.StringIO()
    lines = load(store, io.BytesIO(data), ProgressWriter(out, tty=False))
    return lines, out.getvalue()


def make_tar(files: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            t.addfile(info)
    return buf.getvalue()


@pytest.fixture
def env(tmp_path):
    (tmp_path / "w").mkdir()
    return open_local_store(tmp_path / "a"), open_local_store(tmp_path / "b"), tmp_path


def test_save_writes_docker_25_layout(env):
    a, _, tmp = env
    image_id = build_image(a, tmp / "w", [{"etc/a": "1"}, {"etc/b": "2"}], "busy/box:latest")
    a.refs.add_tag(parse_normalized_named("busy/box:v2"), image_id)
    files = members(saved(a, "busy/box"))
    img = a.images.get(image_id)
    for name, data in files.items():  # every blob is named by its digest
        if name.startswith("blobs/sha256/"):
            assert sha(data) == "sha256:" + name.rsplit("/", 1)[1]
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads(files["index.json"])
    assert [m["annotations"] for m in index["manifests"]] == [
        {"io.containerd.image.name": "docker.io/busy/box:latest", "org.opencontainers.image.ref.name": "latest"},
        {"io.containerd.image.name": "docker.io/busy/box:v2", "org.opencontainers.image.ref.name": "v2"},
    ]
    manifest = json.loads(files["blobs/sha256/" + index["manifests"][0]["digest"][7:]])
    assert manifest["config"] == {
        "mediaType": "application/vnd.oci.image.config.v1+json",
        "digest": image_id,
        "size": len(img.raw),
    }
    assert [layer["digest"] for layer in manifest["layers"]] == img.diff_ids
    assert {layer["mediaType"] for layer in manifest["layers"]} == {"application/vnd.oci.image.layer.v1.tar"}
    assert json.loads(files["manifest.json"]) == [
        {
            "Config": f"blobs/sha256/{image_id[7:]}",
            "RepoTags": ["busy/box:latest", "busy/box:v2"],
            "Layers": [f"blobs/sha256/{d[7:]}" for d in img.diff_ids],
        }
    ]
    assert json.loads(files["repositories"]) == {
        "busy/box": {"latest": img.diff_ids[-1][7:], "v2": img.diff_ids[-1][7:]}
    }


def test_save_to_a_file_sends_the_same_bytes(env):
    """Into a file, layer data go by sendfile; into a stream without a descriptor, by reads."""
    a, _, tmp = env
    build_image(a, tmp / "w", [{"etc/a": "1" * 5000}, {"usr/b": "2" * 70000}], "send/file:1")
    with open(tmp / "out.tar", "w+b") as f:
        f.write(b"")  # a buffered file: what is buffered must go out before the kernel copies
        save(a, ["send/file:1"], f)
    assert (tmp / "out.tar").read_bytes() == saved(a, "send/file:1")


@pytest.mark.parametrize("change", [-512, 512])
def test_save_refuses_a_layer_that_changed_since_its_size_was_counted(env, monkeypatch, change):
    a, _, tmp = env
    build_image(a, tmp / "w", [{"etc/a": "1" * 5000}], "grow/img:1")
    counted = a.layers.tar_size
    monkeypatch.setattr(a.layers, "tar_size", lambda chain: counted(chain) + change)
    for out in (io.BytesIO(), open(tmp / "out.tar", "wb")):
        with pytest.raises(TarExportError, match="changed while it was saved"):
            save(a, ["grow/img:1"], out)
        out.close()


def test_save_by_id_has_no_tags(env):
    a, _, tmp = env
    image_id = build_image(a, tmp / "w", [{"x": "1"}], "tagged/img:1")
    files = members(saved(a, image_id[7:19]))
    assert json.loads(files["manifest.json"])[0]["RepoTags"] is None
    assert "repositories" not in files
    assert "annotations" not in json.loads(files["index.json"])["manifests"][0]


def test_load_round_trip_and_twice_changes_nothing(env):
    a, b, tmp = env
    image_id = build_image(a, tmp / "w", [{"etc/a": "1"}, {"usr/bin/b": "2"}], "round/img:7")
    data = saved(a, "round/img:7")
    lines, _ = do_load(b, data)
    assert lines == ["Loaded image: round/img:7"]
    assert b.images.ids() == [image_id]
    assert b.refs.get(parse_normalized_named("round/img:7")) == image_id
    before = snapshot(b.layout.root)
    assert do_load(b, data)[0] == ["Loaded image: round/img:7"]
    assert snapshot(b.layout.root) == before


def test_load_moves_a_tag_with_dockers_message(env):
    a, b, tmp = env
    first = build_image(b, tmp / "w", [{"old": "1"}], "moved/tag:1")
    new = build_image(a, tmp / "w", [{"new": "2"}], "moved/tag:1")
    lines, printed = do_load(b, saved(a, "moved/tag:1"))
    assert printed.splitlines() == [
        f"The image moved/tag:1 already exists, renaming the old one with ID {first} to empty string",
        "Loaded image: moved/tag:1",
    ]
    assert b.refs.get(parse_normalized_named("moved/tag:1")) == new


def _child_of(store, tmp, parent_id: str, tag: str) -> str:
    parent = store.images.get(parent_id)
    src = tmp / "w" / f"child-{tag.replace(':', '-').replace('/', '-')}"
    src.mkdir()
    (src / "child").write_text("c")
    layer, _ = store.layers.register_dir(src, parent.top_chain_id)
    config = dict(parent.config)
    config["rootfs"] = {"type": "layers", "diff_ids": parent.diff_ids + [layer.diff_id]}
    config["history"] = parent.history + [{"created_by": "child step"}]
    child_id = store.images.create(go_json(config))
    store.images.set_parent(child_id, parent_id)
    store.refs.add_tag(parse_normalized_named(tag), child_id)
    return child_id


def test_parent_kept_only_when_both_are_in_the_file(env):
    a, b, tmp = env
    parent_id = build_image(a, tmp / "w", [{"base": "b"}], "fam/parent:1")
    child_id = _child_of(a, tmp, parent_id, "fam/child:1")
    both = saved(a, "fam/parent:1", "fam/child:1")
    assert json.loads(members(both)["manifest.json"])[1]["Parent"] == parent_id
    do_load(b, both)
    assert b.images.get_parent(child_id) == parent_id
    c = open_local_store(tmp / "c")
    only_child = saved(a, "fam/child:1")
    assert "Parent" not in json.loads(members(only_child)["manifest.json"])[0]
    do_load(c, only_child)
    assert c.images.get_parent(child_id) is None


def test_parent_dropped_when_history_does_not_extend(env):
    a, b, tmp = env
    parent_id = build_image(a, tmp / "w", [{"base": "b"}], "hist/parent:1")
    child_id = build_image(a, tmp / "w", [{"base": "b"}, {"other": "o"}, {"more": "m"}], "hist/child:1")
    data = saved(a, "hist/parent:1", "hist/child:1")
    files = members(data)
    manifest = json.loads(files["manifest.json"])
    manifest[1]["Parent"] = parent_id  # claims a parent two history entries short
    files["manifest.json"] = json.dumps(manifest).encode()
    do_load(b, make_tar(files))
    assert b.images.get_parent(child_id) is None


def test_load_old_docker_format_with_symlinked_layer(env):
    a, b, tmp = env
    image_id = build_image(a, tmp / "w", [{"same": "s"}, {"top": "t"}], "old/format:1")
    img = a.images.get(image_id)
    tars = [b"".join(a.layers.tar_stream(c)) for c in [a.layers.chain(img.top_chain_id)[1].chain_id, img.top_chain_id]]
    files = {
        f"{'1' * 64}/VERSION": b"1.0",
        f"{'1' * 64}/json": b"{}",
        f"{'1' * 64}/layer.tar": tars[0],
        f"{'2' * 64}/VERSION": b"1.0",
        f"{'2' * 64}/json": b"{}",
        f"{'2' * 64}/layer.tar": tars[1],
        f"{image_id[7:]}.json": img.raw,
        "manifest.json": json.dumps(
            [
                {
                    "Config": f"{image_id[7:]}.json",
                    "RepoTags": ["old/format:1"],
                    "Layers": [f"{'1' * 64}/layer.tar", f"{'3' * 64}/layer.tar"],
                }
            ]
        ).encode(),
        "repositories": json.dumps({"old/format": {"1": "2" * 64}}).encode(),
    }
    # the second layer is reached through a symlink, as docker wrote repeated layers
    data = make_tar(files, links={f"{'3' * 64}/layer.tar": f"../{'2' * 64}/layer.tar"})
    assert do_load(b, data)[0] == ["Loaded image: old/format:1"]
    assert b.images.ids() == [image_id]


def test_load_bare_oci_layout(env):
    a, b, tmp = env
    image_id = build_image(a, tmp / "w", [{"oci": "layout"}], "bare/oci:1")
    files = members(saved(a, "bare/oci:1"))
    del files["manifest.json"], files["repositories"]
    assert do_load(b, make_tar(files))[0] == ["Loaded image: bare/oci:1"]
    # a layout whose only name is a bare tag (as skopeo writes oci:dir:latest) loads untagged
    index = json.loads(files["index.json"])
    index["manifests"][0]["annotations"] = {"org.opencontainers.image.ref.name": "latest"}
    files["index.json"] = json.dumps(index).encode()
    c = open_local_store(tmp / "c")
    assert do_load(c, make_tar(files))[0] == [f"Loaded image ID: {image_id}"]


@pytest.mark.parametrize(
    "files,message",
    [
        ({"hello.txt": b"hi"}, "invalid archive: does not contain a manifest.json"),
        ({"manifest.json": b"{oops"}, "invalid archive: manifest.json"),
        ({"manifest.json": b'[{"Config":"missing.json","Layers":[]}]'}, "missing.json: no such file"),
    ],
)
def test_not_an_image(env, files, message):
    _, b, _ = env
    before = snapshot(b.layout.root)
    with pytest.raises(TarExportError, match=message):
        do_load(b, make_tar(files))
    assert snapshot(b.layout.root) == before


def test_not_a_tar(env):
    _, b, _ = env
    with pytest.raises(TarExportError, match="^archive/tar: invalid tar header$"):
        do_load(b, b"plain text, not a tar archive\n" * 50)


def _evil_layer(entry: tarfile.TarInfo, data: bytes = b"") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        ok = tarfile.TarInfo("fine.txt")
        ok.size = 2
        t.addfile(ok, io.BytesIO(b"ok"))
        t.addfile(entry, io.BytesIO(data) if data else None)
    return buf.getvalue()


def _image_tar_with_layers(layers: list[bytes], tag="evil/img:1") -> bytes:
    config = go_json(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [sha(layer) for layer in layers]},
        }
    )
    files = {f"blobs/sha256/{sha(layer)[7:]}": layer for layer in layers}
    files[f"blobs/sha256/{sha(config)[7:]}"] = config
    files["manifest.json"] = json.dumps(
        [
            {
                "Config": f"blobs/sha256/{sha(config)[7:]}",
                "RepoTags": [tag],
                "Layers": [f"blobs/sha256/{sha(layer)[7:]}" for layer in layers],
            }
        ]
    ).encode()
    return make_tar(files)


def _entries():
    dotdot = tarfile.TarInfo("../escaped.txt")
    dotdot.size = 4
    absolute = tarfile.TarInfo("/abs/escaped.txt")
    absolute.size = 4
    link = tarfile.TarInfo("linkout")
    link.type, link.linkname = tarfile.SYMTYPE, "/"
    hard = tarfile.TarInfo("hardout")
    hard.type, hard.linkname = tarfile.LNKTYPE, "../../etc/passwd"
    return [(dotdot, b"evil"), (absolute, b"evil"), (hard, b"")]


@pytest.mark.parametrize("entry,data", _entries(), ids=["dotdot", "absolute", "hardlink-out"])
def test_layer_escaping_its_root_is_refused(env, entry, data):
    _, b, tmp = env
    before = snapshot(b.layout.root)
    with pytest.raises(Exception) as exc:
        do_load(b, _image_tar_with_layers([_evil_layer(entry, data)]))
    assert str(exc.value) and "\n" not in str(exc.value)
    assert snapshot(b.layout.root) == before
    assert not (tmp / "escaped.txt").exists()


def test_symlink_then_write_through_it_is_refused(env):
    _, b, tmp = env
    target = tmp / "outside"
    target.mkdir()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        link = tarfile.TarInfo("dir")
        link.type, link.linkname = tarfile.SYMTYPE, str(target)
        t.addfile(link)
        f = tarfile.TarInfo("dir/pwned")
        f.size = 1
        t.addfile(f, io.BytesIO(b"x"))
    before = snapshot(b.layout.root)
    with pytest.raises((ArchiveError, TarExportError)):
        do_load(b, _image_tar_with_layers([buf.getvalue()]))
    assert not (target / "pwned").exists()
    assert snapshot(b.layout.root) == before


def test_diff_id_mismatch_and_rollback_of_earlier_layers(env):
    a, b, tmp = env
    good = _evil_layer(tarfile.TarInfo("empty-file"))
    other = _evil_layer(tarfile.TarInfo("another"))
    data = _image_tar_with_layers([good, other])
    files = members(data)
    # the second layer is another tar (stored honestly under its own digest): its DiffID no
    # longer matches the config
    different = _evil_layer(tarfile.TarInfo("different"))
    files[f"blobs/sha256/{sha(different)[7:]}"] = different
    manifest = json.loads(files["manifest.json"])
    manifest[0]["Layers"][1] = f"blobs/sha256/{sha(different)[7:]}"
    files["manifest.json"] = json.dumps(manifest).encode()
    before = snapshot(b.layout.root)
    with pytest.raises(
        TarExportError, match=r'^invalid diffID for layer 1: expected "sha256:[0-9a-f]{64}", got "sha256:'
    ):
        do_load(b, make_tar(files))
    assert snapshot(b.layout.root) == before
    # the same bytes swapped in under the old name: the blob no longer matches its digest (issue 10)
    files = members(data)
    files[f"blobs/sha256/{sha(other)[7:]}"] = different
    with pytest.raises(TarExportError, match=r"^invalid archive: blobs/sha256/[0-9a-f]{64} does not match its digest$"):
        do_load(b, make_tar(files))
    assert snapshot(b.layout.root) == before
