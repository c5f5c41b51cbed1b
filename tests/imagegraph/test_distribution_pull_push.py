"""pull and push against a real docker-registry: round trips, output, Already exists, errors."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os

import pytest

from imagegraph.digest import go_json
from imagegraph.distribution import client as client_module
from imagegraph.distribution import manifest as M
from imagegraph.distribution.client import RegistryClient
from imagegraph.distribution.credentials import AuthConfig, store_auth
from imagegraph.distribution.errors import RegistryError, Unauthorized, Unreachable
from imagegraph.distribution.localstore import open_local_store
from imagegraph.distribution.progress import ProgressWriter
from imagegraph.distribution.pull import PullError, PullOptions, pull
from imagegraph.distribution.push import PushError, push
from imagegraph.reference import parse_normalized_named
from imagegraph.refstore import RefNotFound

from .distribution_helpers import build_image, snapshot
from .registry_fixture import free_port

pytestmark = pytest.mark.registry


def pipe():
    buf = io.StringIO()
    return buf, ProgressWriter(buf, tty=False)


def sha(b: bytes) -> str:
    return "sha256:" + hashlib.sha256(b).hexdigest()


def publish_one_layer(registry, repo: str, tag: str, blob: bytes, diff_id: str) -> None:
    """An image of one gzip layer `blob` whose config names `diff_id`, uploaded by hand."""
    config = go_json({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [diff_id]}})
    c = RegistryClient(registry.domain)
    c.upload_blob(repo, sha(blob), blob, len(blob))
    c.upload_blob(repo, sha(config), config, len(config))
    manifest = M.build_manifest(
        M.Descriptor(M.DOCKER_CONFIG, sha(config), len(config)),
        [M.Descriptor(M.DOCKER_LAYER_GZIP, sha(blob), len(blob))],
    )
    c.put_manifest(repo, tag, manifest, M.DOCKER_MANIFEST)


@pytest.fixture
def stores(tmp_path):
    (tmp_path / "w").mkdir()
    return open_local_store(tmp_path / "a"), open_local_store(tmp_path / "b"), tmp_path / "w"


def test_push_then_pull_round_trip(registry, stores):
    a, b, w = stores
    name = f"{registry.domain}/round/trip:v1"
    image_id = build_image(a, w, [{"etc/hello": "hi\n"}, {"bin/tool": "x" * 5000}], name)
    ref = parse_normalized_named(name)
    buf, out = pipe()
    pushed = push(a, ref, out)
    layer_ids = [d.split(":")[1][:12] for d in a.images.get(image_id).diff_ids]
    assert buf.getvalue().splitlines() == [
        f"The push refers to repository [{registry.domain}/round/trip]",
        f"{layer_ids[1]}: Preparing",
        f"{layer_ids[0]}: Preparing",
        f"{layer_ids[1]}: Pushed",
        f"{layer_ids[0]}: Pushed",
        f"v1: digest: {pushed.digest} size: {pushed.size}",
    ]
    assert len(pushed.uploaded) == 2
    # a second push uploads nothing
    buf, out = pipe()
    again = push(a, ref, out)
    assert again.uploaded == [] and len(again.existed) == 2 and again.digest == pushed.digest
    assert "Layer already exists" in buf.getvalue()

    buf, out = pipe()
    result = pull(b, ref, out)
    assert result.image_id == image_id
    blob_ids = [d[7:19] for d in result.downloaded]
    assert buf.getvalue().splitlines() == [
        "v1: Pulling from round/trip",
        f"{blob_ids[0]}: Pulling fs layer",
        f"{blob_ids[1]}: Pulling fs layer",
        f"{blob_ids[0]}: Verifying Checksum",
        f"{blob_ids[0]}: Download complete",
        f"{blob_ids[0]}: Pull complete",
        f"{blob_ids[1]}: Verifying Checksum",
        f"{blob_ids[1]}: Download complete",
        f"{blob_ids[1]}: Pull complete",
        f"Digest: {pushed.digest}",
        f"Status: Downloaded newer image for {name}",
    ]
    repos = json.loads(b.layout.repositories_json.read_text())["Repositories"]
    assert repos == {
        f"{registry.domain}/round/trip": {name: image_id, f"{registry.domain}/round/trip@{pushed.digest}": image_id}
    }
    # same layers, same ChainIDs, same files
    assert a.images.get(image_id).top_chain_id == b.images.get(image_id).top_chain_id
    top = b.layers.get(b.images.get(image_id).top_chain_id)
    assert (b.layers.diff_dir(top) / "bin/tool").read_text() == "x" * 5000
    # pulling again: nothing downloaded, "up to date"
    buf, out = pipe()
    repull = pull(b, ref, out)
    assert not repull.downloaded and not repull.tag_updated
    assert buf.getvalue().splitlines()[-1] == f"Status: Image is up to date for {name}"


def test_a_pulled_tar_of_our_own_writer_is_not_written_again(registry, stores, monkeypatch):
    """Pull gunzips and hashes each layer as it downloads and scans its headers: a tar our own
    writer made is known to come back from the extracted tree by its headers alone, so the
    store neither writes the tar again to compare nor keeps a copy of it. A tar that differs
    (more zeros at its end, as tar(1) writes) is still found out, and kept."""
    from imagegraph import archive, layerstore

    a, b, w = stores
    name = f"{registry.domain}/own/tar:v1"
    image_id = build_image(a, w, [{"etc/hello": "hi\n"}, {"bin/tool": "x" * 5000}], name)
    push(a, parse_normalized_named(name), pipe()[1])

    def no_rewrite(*args, **kwargs):
        raise AssertionError("the pulled layer was written again to check it")

    monkeypatch.setattr(archive, "write_layer_tar", no_rewrite)
    result = pull(b, parse_normalized_named(name), pipe()[1])
    assert result.image_id == image_id
    for layer in b.layers.chain(b.images.get(image_id).top_chain_id):
        assert not (b.layout.layer_meta(layer.chain_id) / layerstore.KEPT_TAR).exists()
    monkeypatch.undo()

    # the same files in a tar padded to a 10 KiB record: not ours byte for byte, so kept
    base = a.images.get(image_id).diff_ids[0]
    padded = b"".join(a.layers.tar_stream(base)) + b"\0" * 9216
    publish_one_layer(registry, "own/padded", "v1", gzip.compress(padded, mtime=0), sha(padded))
    store = open_local_store(w / "padded")
    pulled = pull(store, parse_normalized_named(f"{registry.domain}/own/padded:v1"), pipe()[1])
    (layer,) = store.layers.chain(store.images.get(pulled.image_id).top_chain_id)
    kept = store.layout.layer_meta(layer.chain_id) / layerstore.KEPT_TAR
    assert kept.read_bytes() == padded


def test_download_progress_comes_every_512_KiB_and_at_the_end(registry, stores, monkeypatch):
    """As moby's progress reader: not a message per read (through the daemon each one is a
    JSON message to the client), but one per 512 KiB and the last at the full size."""
    a, b, w = stores
    name = f"{registry.domain}/progress/every:v1"
    build_image(a, w, [{"blob": base64.b64encode(os.urandom(3 << 20)).decode()}], name)
    push(a, parse_normalized_named(name), pipe()[1])
    monkeypatch.setattr(client_module, "CHUNK", 64 << 10)  # many reads per 512 KiB
    seen: list[tuple[int, int]] = []

    class Recording(ProgressWriter):
        def progress(self, id: str, status: str, current: int, total: int, start: float = 0.0) -> None:
            if status == "Downloading":
                seen.append((current, total))

    pull(b, parse_normalized_named(name), Recording(io.StringIO(), tty=True))
    size = seen[-1][1]
    assert seen[-1] == (size, size) and size > 2 << 20
    assert len(seen) <= size // (512 << 10) + 2
    assert all(later - earlier >= 512 << 10 for (earlier, _), (later, _) in zip(seen[:-2], seen[1:-1], strict=True))


def test_big_layers_go_up_and_down_concurrently_with_the_same_output(registry, stores, tmp_path):
    """Layers over 1 MiB are transferred side by side (5 up, 3 down by default); the status
    lines, the manifest and the store come out as with one transfer at a time."""
    a, _, w = stores
    name = f"{registry.domain}/conc/big:v1"
    layers = [{f"blob{i}": base64.b64encode(os.urandom(1536 * 1024)).decode()} for i in range(4)]
    image_id = build_image(a, w, layers, name)
    ref = parse_normalized_named(name)
    buf, out = pipe()
    pushed = push(a, ref, out, PullOptions(max_concurrent_uploads=5))
    ids = [d.split(":")[1][:12] for d in a.images.get(image_id).diff_ids][::-1]
    preparing, done = [f"{i}: Preparing" for i in ids], [f"{i}: Pushed" for i in ids]
    assert buf.getvalue().splitlines()[1:-1] == preparing + done
    assert len(pushed.uploaded) == 4
    outputs, snaps = [], []
    for downloads in (1, 3):
        store = open_local_store(tmp_path / f"pulled-{downloads}")
        buf, out = pipe()
        result = pull(store, ref, out, PullOptions(max_concurrent_downloads=downloads))
        assert result.image_id == image_id and len(result.downloaded) == 4
        outputs.append(buf.getvalue())
        stored = sorted(
            (layer.chain_id, layer.diff_id, layer.parent, layer.size, sorted(os.listdir(store.layers.diff_dir(layer))))
            for layer in store.layers.layers()
        )
        snaps.append((stored, store.images.get(image_id).raw))
    assert outputs[0] == outputs[1]
    assert [line.split(": ", 1)[1] for line in outputs[1].splitlines()[1:-2]] == (
        ["Pulling fs layer"] * 4 + ["Verifying Checksum", "Download complete", "Pull complete"] * 4
    )
    assert snaps[0] == snaps[1] and len(snaps[0][0]) == 4


def test_already_exists_for_stored_chain(registry, stores):
    a, b, w = stores
    base = {"etc/os-release": "base\n"}
    build_image(a, w, [base], f"{registry.domain}/ae/base:1")
    build_image(a, w, [base, {"app": "app\n"}], f"{registry.domain}/ae/app:1")
    push(a, parse_normalized_named(f"{registry.domain}/ae/base:1"), pipe()[1])
    push(a, parse_normalized_named(f"{registry.domain}/ae/app:1"), pipe()[1])
    pull(b, parse_normalized_named(f"{registry.domain}/ae/base:1"), pipe()[1])
    buf, out = pipe()
    res = pull(b, parse_normalized_named(f"{registry.domain}/ae/app:1"), out)
    assert len(res.existed) == 1 and len(res.downloaded) == 1
    assert f"{res.existed[0][7:19]}: Already exists" in buf.getvalue().splitlines()


def test_pull_by_digest(registry, stores):
    a, b, w = stores
    image_id = build_image(a, w, [{"f": "by digest"}], f"{registry.domain}/dig/img:t")
    pushed = push(a, parse_normalized_named(f"{registry.domain}/dig/img:t"), pipe()[1])
    ref = parse_normalized_named(f"{registry.domain}/dig/img@{pushed.digest}")
    buf, out = pipe()
    res = pull(b, ref, out)
    assert res.image_id == image_id
    lines = buf.getvalue().splitlines()
    assert lines[0] == f"{pushed.digest}: Pulling from dig/img"
    assert lines[-1] == f"Status: Downloaded newer image for {registry.domain}/dig/img@{pushed.digest}"
    assert b.refs.get(ref) == image_id
    with pytest.raises(RefNotFound):
        b.refs.get(parse_normalized_named(f"{registry.domain}/dig/img:t"))  # no tag recorded


def test_uncompressed_layers_and_oci_index_pull(registry, stores):
    """A hand-made OCI image: plain tar layer, index with two platforms; the host's is chosen."""
    _, b, w = stores
    a2 = open_local_store(w / "src-store")
    image_id = build_image(a2, w, [{"plain": "uncompressed"}])
    img = a2.images.get(image_id)
    layer_tar = b"".join(a2.layers.tar_stream(img.top_chain_id))
    c = RegistryClient(registry.domain)
    repo = "oci/plain"
    c.upload_blob(repo, sha(layer_tar), layer_tar, len(layer_tar))
    c.upload_blob(repo, sha(img.raw), img.raw, len(img.raw))
    man = M.build_manifest(
        M.Descriptor(M.OCI_CONFIG, sha(img.raw), len(img.raw)),
        [M.Descriptor(M.OCI_LAYER, sha(layer_tar), len(layer_tar))],
        M.OCI_MANIFEST,
    )
    c.put_manifest(repo, sha(man), man, M.OCI_MANIFEST)
    host = M.host_platform()
    other = M.Platform("linux", "s390x") if host.architecture != "s390x" else M.Platform("linux", "amd64")
    index = M.build_index(
        [
            M.Descriptor(M.OCI_MANIFEST, sha(man), len(man), platform=other),
            M.Descriptor(M.OCI_MANIFEST, sha(man), len(man), platform=host),
        ]
    )
    c.put_manifest(repo, "multi", index, M.OCI_INDEX)
    res = pull(b, parse_normalized_named(f"{registry.domain}/{repo}:multi"), pipe()[1])
    assert res.image_id == image_id
    assert res.manifest_digest == sha(index)  # the index digest is the RepoDigest, as docker records
    before = snapshot(b.layout.root)
    with pytest.raises(M.ManifestError, match="^no matching manifest for linux/mips64le in the manifest list entries$"):
        pull(
            b,
            parse_normalized_named(f"{registry.domain}/{repo}:multi"),
            pipe()[1],
            PullOptions(platform=M.parse_platform("linux/mips64le")),
        )
    assert snapshot(b.layout.root) == before


def test_unknown_tag_and_repo_leave_store_unchanged(registry, stores):
    _, b, _ = stores
    before = snapshot(b.layout.root)
    with pytest.raises(PullError) as exc:
        pull(b, parse_normalized_named(f"{registry.domain}/no/such:tag"), pipe()[1])
    assert str(exc.value) == f"manifest for {registry.domain}/no/such:tag not found: manifest unknown: manifest unknown"
    assert snapshot(b.layout.root) == before


def test_corrupted_and_truncated_layer_leave_store_unchanged(registry, stores):
    a, b, w = stores
    name = f"{registry.domain}/bad/layer:1"
    build_image(a, w, [{"one": "1" * 3000}, {"two": "2" * 3000}], name)
    pushed = push(a, parse_normalized_named(name), pipe()[1])
    top_blob = pushed.uploaded[0]  # pushed top first
    data_path = registry.storage / "docker/registry/v2/blobs/sha256" / top_blob[7:9] / top_blob[7:] / "data"
    good = data_path.read_bytes()
    before = snapshot(b.layout.root)
    try:
        data_path.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
        with pytest.raises(RegistryError, match=f"^filesystem layer verification failed for digest {top_blob}$"):
            pull(b, parse_normalized_named(name), pipe()[1])
        assert snapshot(b.layout.root) == before  # the base layer registered first was rolled back
        data_path.write_bytes(good[:-10])
        with pytest.raises(RegistryError, match=r"^filesystem layer sha256:[0-9a-f]{64}: unexpected EOF"):
            pull(b, parse_normalized_named(name), pipe()[1])
        assert snapshot(b.layout.root) == before
    finally:
        data_path.write_bytes(good)


def test_diff_id_mismatch_is_refused(registry, stores):
    _, b, _ = stores
    layer = gzip.compress(b"\0" * 1024, mtime=0)  # an empty tar, gzipped
    publish_one_layer(registry, "bad/diffid", "v", layer, "sha256:" + "1" * 64)
    before = snapshot(b.layout.root)
    with pytest.raises(PullError, match="^layers from manifest don't match image configuration$"):
        pull(b, parse_normalized_named(f"{registry.domain}/bad/diffid:v"), pipe()[1])
    assert snapshot(b.layout.root) == before


def test_registry_down(stores):
    _, b, _ = stores
    port = free_port()
    with pytest.raises(Unreachable, match=f"dial tcp 127.0.0.1:{port}: connect: connection refused$"):
        pull(b, parse_normalized_named(f"127.0.0.1:{port}/x/y"), pipe()[1])


def test_push_unknown_tag(registry, stores):
    a, _, _ = stores
    with pytest.raises(PushError, match=f"^An image does not exist locally with the tag: {registry.domain}/nope/img$"):
        push(a, parse_normalized_named(f"{registry.domain}/nope/img:latest"), pipe()[1])


def test_basic_auth_from_docker_config(basic_registry, stores, tmp_path):
    a, b, w = stores
    name = f"{basic_registry.domain}/private/img:1"
    image_id = build_image(a, w, [{"secret": "s"}], name)
    env = {"DOCKER_CONFIG": str(tmp_path / "dc")}
    ref = parse_normalized_named(name)
    with pytest.raises(Unauthorized, match="no basic auth credentials$"):
        push(a, ref, pipe()[1], PullOptions(env=env))
    store_auth(basic_registry.domain, AuthConfig("alice", "wrong"), env)
    with pytest.raises(Unauthorized, match="unauthorized: authentication required$"):
        push(a, ref, pipe()[1], PullOptions(env=env))
    store_auth(basic_registry.domain, AuthConfig("alice", "wonderland"), env)
    push(a, ref, pipe()[1], PullOptions(env=env))
    assert pull(b, ref, pipe()[1], PullOptions(env=env)).image_id == image_id
