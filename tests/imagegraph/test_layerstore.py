"""layerdb: ChainIDs, sharing, reference counts, cascade release, depth, crash leftovers."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from imagegraph.archive import ArchiveError
from imagegraph.layerstore import MAX_DEPTH, DiffIDMismatch, LayerError, LayerStore, next_chain_id
from imagegraph.store import Layout, StoreLock, atomic_write, resolve_root


def tar_of(files: dict[str, str]) -> bytes:
    b = io.BytesIO()
    with tarfile.open(fileobj=b, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, content in files.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(content)
            ti.mtime = 1600000000
            tf.addfile(ti, io.BytesIO(content.encode()))
    return b.getvalue()


@pytest.fixture
def layers(tmp_path: Path) -> LayerStore:
    return LayerStore(Layout(tmp_path / "root"), encoding="aufs")


def test_resolve_root_order(tmp_path: Path) -> None:
    assert resolve_root(str(tmp_path), {"IMAGEGRAPH_ROOT": "/x"}) == tmp_path
    assert resolve_root(None, {"IMAGEGRAPH_ROOT": "/x"}) == Path("/x")
    assert resolve_root(None, {}, euid=0) == Path("/var/lib/imagegraph")
    assert resolve_root(None, {"HOME": "/home/u"}, euid=1000) == Path("/home/u/.local/share/imagegraph")


def test_atomic_write_leaves_no_temporary_files(tmp_path: Path) -> None:
    atomic_write(tmp_path / "a" / "f", "one")
    atomic_write(tmp_path / "a" / "f", b"two")
    assert (tmp_path / "a" / "f").read_text() == "two"
    assert os.listdir(tmp_path / "a") == ["f"]


def test_register_writes_docker_layerdb_files(layers: LayerStore) -> None:
    data = tar_of({"etc/motd": "hi\n"})
    layer, created = layers.register(io.BytesIO(data))
    assert created
    diff_id = "sha256:" + hashlib.sha256(data).hexdigest()
    assert layer.diff_id == diff_id and layer.chain_id == diff_id and layer.size == 3
    meta = layers.layout.layer_meta(layer.chain_id)
    assert sorted(p.name for p in meta.iterdir() if p.name != "layer.tar") == ["cache-id", "diff", "size"]
    assert (meta / "diff").read_text() == diff_id
    assert (meta / "size").read_text() == "3"
    cache = (meta / "cache-id").read_text()
    assert len(cache) == 64
    assert (layers.layout.driver_root / cache / "diff" / "etc" / "motd").read_text() == "hi\n"


def test_chain_id_and_parent_file(layers: LayerStore) -> None:
    base, _ = layers.register(io.BytesIO(tar_of({"a": "1"})))
    top, _ = layers.register(io.BytesIO(tar_of({"b": "2"})), base.chain_id)
    expect = "sha256:" + hashlib.sha256(f"{base.chain_id} {top.diff_id}".encode()).hexdigest()
    assert top.chain_id == expect == next_chain_id(base.chain_id, top.diff_id)
    assert (layers.layout.layer_meta(top.chain_id) / "parent").read_text() == base.chain_id
    assert layers.total_size(top.chain_id) == 2
    assert [p.name for p in layers.lower_dirs(top.chain_id)] == ["diff", "diff"]


def test_same_stack_is_stored_once(layers: LayerStore) -> None:
    a, created_a = layers.register(io.BytesIO(tar_of({"a": "1"})))
    b, created_b = layers.register(io.BytesIO(tar_of({"a": "1"})))
    assert created_a and not created_b and a == b
    assert len(layers.layers()) == 1
    assert len(list(layers.layout.driver_root.iterdir())) == 1  # the duplicate's directory is gone
    # the same tar on another parent is another layer
    c, created_c = layers.register(io.BytesIO(tar_of({"a": "1"})), a.chain_id)
    assert created_c and c.chain_id != a.chain_id and c.diff_id == a.diff_id


def test_release_cascades_down_the_chain(layers: LayerStore) -> None:
    base, _ = layers.register(io.BytesIO(tar_of({"a": "1"})))
    mid, _ = layers.register(io.BytesIO(tar_of({"b": "2"})), base.chain_id)
    top, _ = layers.register(io.BytesIO(tar_of({"c": "3"})), mid.chain_id)
    held = {top.chain_id}
    layers.image_tops = lambda: list(held)
    assert layers.references(base.chain_id) == 1  # its child
    assert layers.release(mid.chain_id) == []  # still held by top
    held.clear()
    deleted = layers.release(top.chain_id)
    assert [d.chain_id for d in deleted] == [top.chain_id, mid.chain_id, base.chain_id]
    assert layers.layers() == []
    assert list(layers.layout.driver_root.iterdir()) == []


def test_release_stops_at_a_shared_layer(layers: LayerStore) -> None:
    base, _ = layers.register(io.BytesIO(tar_of({"a": "1"})))
    x, _ = layers.register(io.BytesIO(tar_of({"x": "1"})), base.chain_id)
    y, _ = layers.register(io.BytesIO(tar_of({"y": "1"})), base.chain_id)
    layers.image_tops = lambda: [y.chain_id]
    assert [d.chain_id for d in layers.release(x.chain_id)] == [x.chain_id]
    assert layers.exists(base.chain_id) and layers.exists(y.chain_id)


def test_max_depth_is_125(layers: LayerStore) -> None:
    parent = None
    for i in range(MAX_DEPTH):
        layer, _ = layers.register(io.BytesIO(tar_of({f"f{i}": "x"})), parent)
        parent = layer.chain_id
    assert layers.depth(parent) == 125
    with pytest.raises(LayerError, match="max depth exceeded"):
        layers.register(io.BytesIO(tar_of({"one-too-many": "x"})), parent)
    assert len(layers.layers()) == 125


def test_missing_parent_is_an_error(layers: LayerStore) -> None:
    with pytest.raises(LayerError, match="layer does not exist"):
        layers.register(io.BytesIO(tar_of({"a": "1"})), "sha256:" + "0" * 64)


def test_a_foreign_tar_is_kept_so_its_diff_id_can_be_reproduced(layers: LayerStore, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("data")
    gnu = tmp_path / "g.tar"
    subprocess.run(["tar", "-cf", str(gnu), "-C", str(src), "f"], check=True)
    layer, _ = layers.register(open(gnu, "rb"))
    assert layer.diff_id == "sha256:" + hashlib.sha256(gnu.read_bytes()).hexdigest()
    stream = b"".join(layers.tar_stream(layer.chain_id))
    assert "sha256:" + hashlib.sha256(stream).hexdigest() == layer.diff_id


def test_a_foreign_tar_from_a_gzip_stream_is_kept_too(layers: LayerStore, tmp_path: Path) -> None:
    """Not a plain file: spooled first (a gzip reader's fileno() is the compressed file's)."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("data")
    gnu = tmp_path / "g.tar"
    subprocess.run(["tar", "-cf", str(gnu), "-C", str(src), "f"], check=True)
    packed = tmp_path / "g.tar.gz"
    packed.write_bytes(gzip.compress(gnu.read_bytes()))
    with gzip.open(packed, "rb") as stream:
        layer, _ = layers.register(stream)
    assert layer.diff_id == "sha256:" + hashlib.sha256(gnu.read_bytes()).hexdigest()
    assert (layers.layout.layer_meta(layer.chain_id) / "layer.tar").read_bytes() == gnu.read_bytes()


def test_an_unexpected_diff_id_registers_nothing(layers: LayerStore, tmp_path: Path) -> None:
    data = tar_of({"a": "1"})
    with pytest.raises(DiffIDMismatch):
        layers.register(io.BytesIO(data), expected_diff_id="sha256:" + "0" * 64)
    spool = tmp_path / "layer.tar"
    spool.write_bytes(data)
    with open(spool, "rb") as f, pytest.raises(DiffIDMismatch):
        layers.register(f, expected_diff_id="sha256:" + "0" * 64)
    assert layers.layers() == []
    assert not layers.layout.driver_root.exists() or list(layers.layout.driver_root.iterdir()) == []
    with open(spool, "rb") as f:
        layer, created = layers.register(f, expected_diff_id="sha256:" + hashlib.sha256(data).hexdigest())
    assert created and layers.exists(layer.chain_id)


def test_own_tars_are_regenerated_from_the_directory(layers: LayerStore, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "d" / "f").write_text("data")
    layer, _ = layers.register_dir(src)
    assert not (layers.layout.layer_meta(layer.chain_id) / "layer.tar").exists()
    stream = b"".join(layers.tar_stream(layer.chain_id))
    assert "sha256:" + hashlib.sha256(stream).hexdigest() == layer.diff_id


def _tree(src: Path) -> Path:
    (src / "d" / "e").mkdir(parents=True)
    (src / "d" / "small").write_text("data")
    (src / "d" / "empty").write_text("")
    (src / "d" / "big").write_bytes(os.urandom(3 << 20) + b"tail")  # copied in chunks, hashed on a thread
    os.link(src / "d" / "small", src / "d" / "e" / "hard")
    os.symlink("../small", src / "d" / "e" / "sym")
    os.utime(src / "d", (1, 1))
    return src


@pytest.mark.parametrize("encoding", ["aufs", "overlay"])
def test_a_directory_is_copied_in_without_a_tar(tmp_path: Path, encoding: str, monkeypatch) -> None:
    from imagegraph import archive

    src = _tree(tmp_path / "src")
    store = LayerStore(Layout(tmp_path / "root"), encoding=encoding)
    monkeypatch.setattr(store, "_register_dir_via_tar", lambda *a: pytest.fail("the tar path ran"))
    layer, _ = store.register_dir(src)
    assert layer.diff_id == archive.write_layer_tar(src).diff_id
    assert not (store.layout.layer_meta(layer.chain_id) / "layer.tar").exists()
    assert os.listdir(store.tmp_dir) == []
    stream = b"".join(store.tar_stream(layer.chain_id))
    assert "sha256:" + hashlib.sha256(stream).hexdigest() == layer.diff_id
    assert (store.diff_dir(layer) / "d" / "big").read_bytes() == (src / "d" / "big").read_bytes()
    assert layer.size == (3 << 20) + 4 + 4


def test_a_directory_that_cannot_give_its_tar_back_keeps_the_tar(tmp_path: Path) -> None:
    """An aufs whiteout file stored in the overlay encoding sorts elsewhere once it is a device:
    the copy is checked, found different, and the tar path keeps the tar."""
    from imagegraph import archive

    if os.geteuid() != 0:
        pytest.skip("the overlay encoding's whiteout device needs root here")
    src = _tree(tmp_path / "src")
    (src / "d" / ".wh.gone").write_text("")
    store = LayerStore(Layout(tmp_path / "root"), encoding="overlay")
    layer, _ = store.register_dir(src)
    assert layer.diff_id == archive.write_layer_tar(src).diff_id
    assert (store.layout.layer_meta(layer.chain_id) / "layer.tar").exists()
    stream = b"".join(store.tar_stream(layer.chain_id))
    assert "sha256:" + hashlib.sha256(stream).hexdigest() == layer.diff_id


def test_a_sparse_file_takes_the_tar_path(layers: LayerStore, tmp_path: Path) -> None:
    from imagegraph import archive

    src = _tree(tmp_path / "src")
    with open(src / "sparse", "wb") as f:
        f.truncate(64 << 20)
        f.write(b"head")
    layer, _ = layers.register_dir(src)
    assert layer.diff_id == archive.write_layer_tar(src).diff_id
    stream = b"".join(layers.tar_stream(layer.chain_id))
    assert "sha256:" + hashlib.sha256(stream).hexdigest() == layer.diff_id
    assert len(stream) < 8 << 20  # a sparse member, not 64 MiB of zeros


def test_crash_leftovers_are_ignored_then_cleaned(layers: LayerStore) -> None:
    good, _ = layers.register(io.BytesIO(tar_of({"a": "1"})))
    lo = layers.layout
    orphan = lo.driver_root / ("f" * 64) / "diff"  # contents written, metadata never
    orphan.mkdir(parents=True)
    half = lo.layerdb / "sha256" / ("e" * 64)  # a record without its files
    half.mkdir(parents=True)
    (lo.layerdb / "sha256" / ".tmp-xyz").mkdir()
    (lo.layerdb / "tmp" / ".tmp-spool.tar").write_bytes(b"junk")
    (lo.driver_root / ".apply-123").mkdir()
    assert [layer.chain_id for layer in layers.layers()] == [good.chain_id]
    assert not layers.exists("sha256:" + "e" * 64)
    layers.clean()
    assert sorted(p.name for p in lo.driver_root.iterdir()) == [good.cache_id]
    assert not (lo.layerdb / "sha256" / ".tmp-xyz").exists()
    assert list((lo.layerdb / "tmp").iterdir()) == []
    assert layers.get(good.chain_id) == good


def test_failed_register_leaves_nothing(layers: LayerStore) -> None:
    bad = tar_of({"ok": "1"})[:512] + b"\x01" * 600
    with pytest.raises((ArchiveError, tarfile.TarError)):
        layers.register(io.BytesIO(bad))
    assert layers.layers() == []
    assert not layers.layout.driver_root.exists() or list(layers.layout.driver_root.iterdir()) == []


def test_rw_layers(layers: LayerStore) -> None:
    base, _ = layers.register(io.BytesIO(tar_of({"a": "1"})))
    m = layers.create_rw_layer("c" * 64, base.chain_id, lambda d: (d / "marker").write_text("init"))
    lo = layers.layout
    meta = lo.mount_meta("c" * 64)
    assert (meta / "mount-id").read_text() == m.mount_id
    assert (meta / "init-id").read_text() == m.mount_id + "-init"
    assert (meta / "parent").read_text() == base.chain_id
    assert (lo.layer_dir(m.init_id) / "diff" / "marker").read_text() == "init"
    assert sorted(p.name for p in lo.layer_dir(m.mount_id).iterdir()) == ["diff", "merged", "work"]
    assert layers.references(base.chain_id) == 1
    assert [d.chain_id for d in layers.release_rw_layer("c" * 64)] == [base.chain_id]
    assert not lo.layer_dir(m.mount_id).exists() and not lo.layer_dir(m.init_id).exists()


def test_lock_excludes_another_process(tmp_path: Path) -> None:
    lock = StoreLock(tmp_path / ".lock")
    script = (
        "import fcntl,os,sys; fd=os.open(sys.argv[1], os.O_RDWR); "
        "sys.exit(0 if fcntl.flock(fd, fcntl.LOCK_EX|fcntl.LOCK_NB) is None else 1)"
    )
    import sys

    with lock.held():
        with lock.held():  # re-entrant within a process
            r = subprocess.run([sys.executable, "-c", script, str(tmp_path / ".lock")], capture_output=True)
            assert r.returncode != 0 and b"BlockingIOError" in r.stderr
    r = subprocess.run([sys.executable, "-c", script, str(tmp_path / ".lock")])
    assert r.returncode == 0
