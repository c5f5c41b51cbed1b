"""imagedb: content-addressed configs, parents, children, deletion."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from imagegraph.digest import canonical_config_json
from imagegraph.imagestore import AmbiguousImage, ImageError, ImageNotFound, ImageStore, format_time, parse_time
from imagegraph.layerstore import LayerStore
from imagegraph.store import Layout

DATA = Path(__file__).parent / "data"


def tar_of(name: str) -> bytes:
    b = io.BytesIO()
    with tarfile.open(fileobj=b, mode="w") as tf:
        ti = tarfile.TarInfo(name)
        ti.size = 1
        tf.addfile(ti, io.BytesIO(b"x"))
    return b.getvalue()


@pytest.fixture
def stores(tmp_path: Path) -> tuple[LayerStore, ImageStore]:
    layout = Layout(tmp_path)
    layers = LayerStore(layout, "aufs")
    images = ImageStore(layout, layers)
    layers.image_tops = images.top_chain_ids
    return layers, images


def config_for(diff_ids: list[str], created: str = "2020-01-01T00:00:00Z", **extra) -> bytes:
    cfg = {
        "architecture": "amd64",
        "os": "linux",
        "created": created,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": created, "created_by": "x"} for _ in diff_ids],
        **extra,
    }
    return canonical_config_json(cfg)


def test_id_is_the_sha256_of_the_config_bytes(stores) -> None:
    layers, images = stores
    layer, _ = layers.register(io.BytesIO(tar_of("a")))
    raw = config_for([layer.diff_id])
    image_id = images.create(raw)
    assert image_id == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert images.layout.image_content(image_id).read_bytes() == raw
    assert images.get(image_id).raw == raw
    assert images.create(raw) == image_id  # no-op the second time
    assert images.ids() == [image_id]


def test_a_real_docker_config_keeps_its_id(stores) -> None:
    """ubuntu's config from Docker Hub: create() must not re-serialise it."""
    layers, images = stores
    raw = (DATA / "config-ubuntu-7e0aa2d6.json").read_bytes().rstrip(b"\n")
    diff_ids = json.loads(raw)["rootfs"]["diff_ids"]
    parent = None
    from imagegraph.layerstore import next_chain_id

    # fake the three layers' records: the image store only checks that the top ChainID exists
    for d in diff_ids:
        chain = next_chain_id(parent, d)
        files = {"diff": d, "size": "0", "cache-id": "0" * 64}
        if parent:
            files["parent"] = parent
        meta = layers.layout.layer_meta(chain)
        meta.mkdir(parents=True)
        for k, v in files.items():
            (meta / k).write_text(v)
        parent = chain
    image_id = images.create(raw)
    assert image_id.startswith("sha256:7e0aa2d6")
    assert canonical_config_json(json.loads(raw)) == raw


def test_tampered_content_is_refused(stores) -> None:
    layers, images = stores
    layer, _ = layers.register(io.BytesIO(tar_of("a")))
    image_id = images.create(config_for([layer.diff_id]))
    images.layout.image_content(image_id).write_bytes(b'{"rootfs":{}}')
    with pytest.raises(ImageError, match="does not match"):
        images.get(image_id)
    assert images.images() == []  # listing skips it instead of failing


def test_create_checks_rootfs_history_and_layers(stores) -> None:
    layers, images = stores
    with pytest.raises(ImageError, match="no RootFS"):
        images.create(b'{"architecture":"amd64"}')
    with pytest.raises(ImageError, match="layer does not exist"):
        images.create(config_for(["sha256:" + "1" * 64]))
    layer, _ = layers.register(io.BytesIO(tar_of("a")))
    bad = canonical_config_json(
        {
            "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]},
            "history": [{"created_by": "a"}, {"created_by": "b"}],
        }
    )
    with pytest.raises(ImageError, match="too many non-empty layers"):
        images.create(bad)
    assert images.ids() == []


def parent_and_child(layers: LayerStore, images: ImageStore) -> tuple[str, str, str]:
    """A base image of one layer and its child of two, linked: (base, child, the child's top ChainID)."""
    base_layer, _ = layers.register(io.BytesIO(tar_of("a")))
    top_layer, _ = layers.register(io.BytesIO(tar_of("b")), base_layer.chain_id)
    base = images.create(config_for([base_layer.diff_id]))
    child = images.create(config_for([base_layer.diff_id, top_layer.diff_id]))
    images.set_parent(child, base)
    return base, child, top_layer.chain_id


def test_parents_children_heads_and_delete(stores) -> None:
    layers, images = stores
    base, child, top_chain = parent_and_child(layers, images)
    assert images.layout.image_metadata(child).joinpath("parent").read_text() == base
    assert images.get(child).parent == base
    assert "parent" not in json.loads(images.get(child).raw)  # metadata, never in the config
    assert images.children(base) == [child]
    assert images.heads() == [child]
    deleted = images.delete(child)
    assert [d.chain_id for d in deleted] == [top_chain]  # the base layer is still held by base
    assert images.children(base) == []
    assert not images.layout.image_metadata(child).exists()


def test_sizes_shared_across_a_listing_are_each_images_own(stores) -> None:
    """`size` with a shared memo gives each image its chain's total, whichever is asked first."""
    layers, images = stores
    base_layer, _ = layers.register(io.BytesIO(tar_of("a")))
    top_layer, _ = layers.register(io.BytesIO(tar_of("b")), base_layer.chain_id)
    base = images.get(images.create(config_for([base_layer.diff_id])))
    child = images.get(images.create(config_for([base_layer.diff_id, top_layer.diff_id])))
    alone = (images.size(child), images.size(base))
    assert alone == (base_layer.size + top_layer.size, base_layer.size)
    known: dict[str, int] = {}
    assert (images.size(child, known), images.size(base, known)) == alone
    known = {}
    assert (images.size(base, known), images.size(child, known)) == alone[::-1]


def test_top_chain_ids_read_each_config_once(stores, monkeypatch) -> None:
    """The layer store asks for every image's top at each release: a config is read once per
    store object, a deleted image drops out, a new one comes in."""
    layers, images = stores
    a_layer, _ = layers.register(io.BytesIO(tar_of("a")))
    b_layer, _ = layers.register(io.BytesIO(tar_of("b")))
    a = images.create(config_for([a_layer.diff_id]))
    assert images.top_chain_ids() == [a_layer.chain_id]
    reads: list[str] = []
    real_get = ImageStore.get
    monkeypatch.setattr(ImageStore, "get", lambda self, i: reads.append(i) or real_get(self, i))
    assert images.top_chain_ids() == [a_layer.chain_id]
    assert reads == []
    b = images.create(config_for([b_layer.diff_id]))
    assert sorted(images.top_chain_ids()) == sorted([a_layer.chain_id, b_layer.chain_id])
    assert reads == [b]
    monkeypatch.undo()
    images.delete(a)
    assert images.top_chain_ids() == [b_layer.chain_id]


def test_delete_parent_clears_childrens_parent_link(stores) -> None:
    layers, images = stores
    layer, _ = layers.register(io.BytesIO(tar_of("a")))
    a = images.create(config_for([layer.diff_id], created="2020-01-01T00:00:00Z"))
    b = images.create(config_for([layer.diff_id], created="2021-01-01T00:00:00Z"))
    images.set_parent(b, a)
    assert images.delete(a) == []  # b still holds the layer
    assert images.get(b).parent is None


def test_search_by_prefix(stores) -> None:
    layers, images = stores
    layer, _ = layers.register(io.BytesIO(tar_of("a")))
    # 17 images: two of them must share their first hex digit
    ids = [images.create(config_for([layer.diff_id], created=f"2020-01-{i:02d}T00:00:00Z")) for i in range(1, 18)]
    one = ids[0]
    assert images.search(one[7:19]) == one
    assert images.search(one[:19]) == one
    assert images.search(one) == one
    with pytest.raises(ImageNotFound):
        images.search("zz")
    with pytest.raises(ImageNotFound):
        images.search("sha256:")
    firsts = [i[7] for i in ids]
    dup = next(c for c in firsts if firsts.count(c) > 1)
    with pytest.raises(AmbiguousImage, match="ambiguous"):
        images.search(dup)


def test_time_formats_round_trip() -> None:
    assert format_time(1700000000) == "2023-11-14T22:13:20Z"
    assert format_time(1700000000.5) == "2023-11-14T22:13:20.5Z"
    assert parse_time("2021-04-23T22:21:37.49442735Z") == pytest.approx(1619216497.49442735)
    assert parse_time("") == 0


def test_a_delete_killed_after_its_commit_point_is_finished_by_clean(stores) -> None:
    """The config's unlink is a delete's commit point: metadata left after it (a kill before the
    metadata went) belongs to no image, and clean removes it; a live image's stays."""
    from imagegraph.storecheck import check_store

    layers, images = stores
    base, child, top_chain = parent_and_child(layers, images)
    images.layout.image_content(child).unlink()  # the delete, killed right after its commit point
    assert check_store(images.layout.root) == [f"image metadata {child}: no such image"]
    assert images.clean() == [child]
    assert not images.layout.image_metadata(child).exists()
    assert images.exists(base) and images.clean() == []
    layers.release(top_chain)  # what the finished delete would have released
    assert check_store(images.layout.root) == []
    assert images.clean() == []
