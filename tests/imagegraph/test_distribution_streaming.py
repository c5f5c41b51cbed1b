"""pull extracts each layer as it downloads, outside the store lock, and commits in order; push
streams each layer's gzip to the registry as it is made (POST, PATCH, PUT), as moby does."""

from __future__ import annotations

import errno
import gzip
import io
import os
import tarfile
import threading
from collections.abc import Mapping

import pytest

from imagegraph import archive
from imagegraph.distribution.client import RegistryClient
from imagegraph.distribution.pull import PullError, PullOptions, pull
from imagegraph.distribution.push import push
from imagegraph.layerstore import LayerStore
from imagegraph.reference import parse_normalized_named
from imagegraph.store import StoreLock, clean_scratch
from imagegraph.storecheck import check_store

from .distribution_helpers import build_image, snapshot
from .test_distribution_pull_push import pipe, publish_one_layer, sha

pytestmark = pytest.mark.registry


@pytest.fixture
def stores(tmp_path):
    from imagegraph.distribution.localstore import open_local_store

    (tmp_path / "w").mkdir()
    return open_local_store(tmp_path / "a"), open_local_store(tmp_path / "b"), tmp_path / "w"


def recording(log: list[tuple[str, str, Mapping[str, str]]]):
    """A client factory whose clients tell `log` every request (method, path, headers sent)."""

    def observe(method, url, *exchange):  # status, reason, headers sent, headers received
        log.append((method, url.split("/v2/", 1)[-1], exchange[2]))

    def factory(domain: str) -> RegistryClient:
        return RegistryClient(domain, observer=observe)

    return factory


def test_pull_extracts_outside_the_lock_and_commits_in_order(registry, stores, monkeypatch):
    a, b, w = stores
    name = f"{registry.domain}/stream/pull:1"
    image_id = build_image(a, w, [{"one": "1" * 3000}, {"two": "2" * 3000}, {"three": "3"}], name)
    push(a, parse_normalized_named(name), pipe()[1])

    extracting: list[str] = []  # the threads that extract
    locking: list[str] = []  # the threads that take the store lock
    committed: list[str | None] = []  # each commit's parent
    real_apply, real_commit, real_held = archive.apply_layer_tar, LayerStore.commit, StoreLock.held

    def apply(*args, **kwargs):
        extracting.append(threading.current_thread().name)
        return real_apply(*args, **kwargs)

    def commit(self, staged, parent, kept=None):
        assert staged.path.is_dir() and b.layout.tmp in staged.path.parents  # in the scratch folder
        committed.append(parent)
        return real_commit(self, staged, parent, kept)

    def held(self, shared=False):
        locking.append(threading.current_thread().name)
        return real_held(self, shared)

    monkeypatch.setattr(archive, "apply_layer_tar", apply)
    monkeypatch.setattr(LayerStore, "commit", commit)
    monkeypatch.setattr(StoreLock, "held", held)
    result = pull(b, parse_normalized_named(name), pipe()[1], PullOptions(max_concurrent_downloads=3))
    assert result.image_id == image_id
    assert len(extracting) == 3 and all(t.startswith("pull") for t in extracting)  # the download threads
    assert locking and not any(t.startswith("pull") for t in locking)  # which never take the lock
    chain = [layer.chain_id for layer in reversed(b.layers.chain(b.images.get(image_id).top_chain_id))]
    assert committed == [None, *chain[:-1]]  # bottom first, each on its parent
    for layer in b.layers.layers():
        assert (b.layers.diff_dir(layer) / ("one", "two", "three")[chain.index(layer.chain_id)]).is_file()
    assert check_store(b.layout.root) == []


def test_a_tar_that_breaks_after_its_first_member_is_refused(registry, stores):
    """tarfile stops quietly at a broken header; Go's reader (and so the pull) fails, also when
    the tar is read as it downloads (nothing to seek back in)."""
    _, b, _ = stores
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        info = tarfile.TarInfo("hello")
        info.size = 3
        tf.addfile(info, io.BytesIO(b"hi\n"))
    good = buf.getvalue()
    broken = good[:1024] + b"garbage, not a header".ljust(512, b"!") + b"\0" * 1024
    publish_one_layer(registry, "stream/broken", "v", gzip.compress(broken, mtime=0), sha(broken))
    before = snapshot(b.layout.root)
    with pytest.raises(archive.ArchiveError, match="^broken tar archive: invalid tar header$"):
        pull(b, parse_normalized_named(f"{registry.domain}/stream/broken:v"), pipe()[1])
    assert snapshot(b.layout.root) == before


def test_a_broken_tar_that_is_not_the_diff_id_says_the_diff_id(registry, stores):
    _, b, _ = stores
    junk = b"this is no tar at all".ljust(4096, b"?")
    publish_one_layer(registry, "stream/junk", "v", gzip.compress(junk, mtime=0), "sha256:" + "2" * 64)
    with pytest.raises(PullError, match="^layers from manifest don't match image configuration$"):
        pull(b, parse_normalized_named(f"{registry.domain}/stream/junk:v"), pipe()[1])
    publish_one_layer(registry, "stream/junk", "w", gzip.compress(junk, mtime=0), sha(junk))
    with pytest.raises(archive.ArchiveError):
        pull(b, parse_normalized_named(f"{registry.domain}/stream/junk:w"), pipe()[1])


def test_commit_renames_the_staged_folder_or_drops_it_for_an_existing_layer(tmp_path):
    from imagegraph.distribution.localstore import open_local_store

    store = open_local_store(tmp_path / "s")
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("data\n")
    tar = io.BytesIO()
    diff_id = archive.write_layer_tar(src, tar).diff_id
    staging = tmp_path / "s" / "tmp" / "staging"
    staging.mkdir()
    tar.seek(0)
    staged = store.layers.extract(tar, staging / "one")
    assert staged.diff_id == diff_id and store.layers.reproduces(staged, None)
    layer, created = store.layers.commit(staged, None)
    assert created and not staged.path.exists()
    assert (store.layers.diff_dir(layer) / "f").read_text() == "data\n"
    tar.seek(0)
    again = store.layers.extract(tar, staging / "two")
    same, created = store.layers.commit(again, None)
    assert same == layer and not created and not again.path.exists()
    # a crash between the rename and the record: a driver folder no record names, which clean removes
    tar.seek(0)
    third = store.layers.extract(tar, staging / "three")
    orphan = store.layout.layer_dir("f" * 64)
    third.path.rename(orphan)
    assert str(orphan) in store.layers.clean()
    # a crash before it: the staged layer is in a scratch folder nobody holds, removed at the next start
    tar.seek(0)
    store.layers.extract(tar, staging / "four")
    assert clean_scratch(store.layout) == [staging]
    assert check_store(store.layout.root) == []


def test_push_streams_each_layer_post_patch_put_without_head(registry, stores):
    a, b, w = stores
    name = f"{registry.domain}/stream/push:1"
    image_id = build_image(a, w, [{"big": "x" * 300_000}, {"small": "y"}], name)
    log: list[tuple[str, str, Mapping[str, str]]] = []
    out, writer = pipe()
    pushed = push(a, parse_normalized_named(name), writer, PullOptions(client_factory=recording(log)))
    assert out.getvalue().count(": Pushed") == 2
    blob_heads = [path for method, path, _ in log if method == "HEAD" and "/blobs/" in path]
    for digest in pushed.uploaded:
        assert not any(path.endswith(digest) for path in blob_heads)  # unknown blobs: no HEAD
    patches = [sent for method, _, sent in log if method == "PATCH"]
    assert len(patches) == 2 and all("Content-Length" not in sent for sent in patches)  # chunked
    puts = [path for method, path, _ in log if method == "PUT" and "/blobs/uploads/" in path]
    assert sum(any(p.endswith(f"digest={d.replace(':', '%3A')}") for p in puts) for d in pushed.uploaded) == 2

    # pushed again: the v2 metadata names the blobs, so HEAD finds them and nothing is sent
    log.clear()
    out, writer = pipe()
    push(a, parse_normalized_named(name), writer, PullOptions(client_factory=recording(log)))
    assert out.getvalue().count(": Layer already exists") == 2
    assert not [m for m, _, _ in log if m in ("PATCH", "POST")]

    assert pull(b, parse_normalized_named(name), pipe()[1]).image_id == image_id


def test_push_in_chunks_of_a_given_size(registry, stores):
    a, b, w = stores
    name = f"{registry.domain}/stream/chunks:1"
    image_id = build_image(a, w, [{"noise": "".join(f"{i:x}" for i in range(40_000))}], name)
    log: list[tuple[str, str, Mapping[str, str]]] = []
    push(a, parse_normalized_named(name), pipe()[1], PullOptions(client_factory=recording(log)), chunk_size=8192)
    ranges = [sent["Content-Range"] for method, _, sent in log if method == "PATCH"]
    assert len(ranges) > 2 and ranges[0] == "0-8191" and ranges[1] == "8192-16383"
    assert pull(b, parse_normalized_named(name), pipe()[1]).image_id == image_id


def test_a_layer_that_cannot_be_read_fails_as_ours_not_the_registrys(registry, stores, monkeypatch):
    a, _, w = stores
    name = f"{registry.domain}/stream/unreadable:1"
    build_image(a, w, [{"f": "z" * 10_000}], name)

    def failing(chain_id: str):
        yield b"\0" * 512
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(a.layers, "tar_stream", failing)
    log: list[tuple[str, str, Mapping[str, str]]] = []
    with pytest.raises(OSError, match="Input/output error") as caught:
        push(a, parse_normalized_named(name), pipe()[1], PullOptions(client_factory=recording(log)))
    assert type(caught.value) is OSError  # not the registry's Unreachable
    assert not list(a.layout.tmp.iterdir())  # the scratch folder went with the push
    # the upload session is cancelled, as moby's blobWriter.Cancel: the registry forgets it
    posts = [m for m, p, _ in log if m == "POST" and "/blobs/uploads/" in p]
    deletes = [p for m, p, _ in log if m == "DELETE" and "/blobs/uploads/" in p]
    assert len(posts) == 1 and len(deletes) == 1
    session = RegistryClient(registry.domain).request("GET", f"http://{registry.domain}/v2/{deletes[0]}", ())
    assert session.status == 404 and b"BLOB_UPLOAD_UNKNOWN" in session.body


def test_a_pull_killed_at_any_moment_leaves_a_consistent_store(registry, stores):
    """SIGKILL at several moments of a pull (wherever they land: downloads, extractions,
    commits): the next start cleans what was left, the store checks clean, and a pull then
    completes. No timing is asserted; the kill points only spread the chances."""
    import signal
    import subprocess
    import sys
    import time

    from imagegraph.service import Services

    a, _, w = stores
    name = f"{registry.domain}/stream/killed:1"
    noise = [os.urandom(3 << 20).hex() for _ in range(3)]
    layers = [{f"big{i}": noise[i], **{f"small/{i}-{j}": str(j) * 500 for j in range(40)}} for i in range(3)]
    image_id = build_image(a, w, layers, name)
    push(a, parse_normalized_named(name), pipe()[1])
    root = w / "killed"
    for delay in (0.3, 0.5, 0.7, 0.9, 1.2, 1.6, 2.2):
        proc = subprocess.Popen(
            [sys.executable, "-m", "imagegraph", "--root", str(root), "pull", "-q", name],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        Services.open(root)  # the next start: crash leftovers go
        assert check_store(root) == [], delay
        if Services.open(root).images.exists(image_id):
            break
    from imagegraph.distribution.localstore import open_local_store

    assert pull(open_local_store(root), parse_normalized_named(name), pipe()[1]).image_id == image_id
    assert check_store(root) == []
