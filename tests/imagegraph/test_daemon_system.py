"""`/events`, `/system/df`, and the daemon under load: requests served side by side, a long pull
that does not block `docker images`, and a pull interrupted by SIGTERM or kill -9."""

from __future__ import annotations

import hashlib
import io
import json
import os
import queue
import signal
import socket
import subprocess
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from imagegraph.service import Services

from .daemon_fixture import RunningDaemon, require_docker, start_daemon
from .registry_fixture import RunningRegistry
from .test_daemon_parity import layer_tar


def test_events_since_until_and_filters(daemon: RunningDaemon, tmp_path: Path) -> None:
    start = time.time()
    tar = layer_tar(tmp_path / "l.tar", {"a.txt": "a\n"})
    image_id = daemon.docker("import", str(tar), "ev:1").stdout.strip()
    daemon.docker("tag", "ev:1", "ev:2")
    cid = daemon.docker("create", "--name", "evc", "ev:1", "/bin/sh").stdout.strip()
    daemon.docker("rm", "evc")
    daemon.docker("rmi", "ev:2")
    end = time.time() + 1
    since, until = f"{start - 1:.0f}", f"{end:.0f}"
    lines = daemon.docker("events", "--since", since, "--until", until).stdout.splitlines()
    got = [" ".join(line.split(" ")[1:4]) for line in lines]
    assert got == [
        f"image import {image_id}",
        f"image tag {image_id}",
        f"image tag {image_id}",
        f"container create {cid}",
        f"container destroy {cid}",
        f"image untag {image_id}",
    ], lines
    assert "(name=ev:2)" in lines[2]
    assert "image=ev:1, name=evc" in lines[3]
    only = daemon.docker("events", "--since", since, "--until", until, "--filter", "type=container").stdout
    assert [line.split(" ")[2] for line in only.splitlines()] == ["create", "destroy"]
    named = daemon.docker(
        "events", "--since", since, "--until", until, "--filter", "event=tag", "--format", "{{json .}}"
    )
    msgs = [json.loads(line) for line in named.stdout.splitlines()]
    assert [m["Actor"]["Attributes"]["name"] for m in msgs] == ["ev:1", "ev:2"]
    assert all(m["Type"] == "image" and m["scope"] == "local" and m["status"] == "tag" for m in msgs)


def test_events_stream_as_they_happen(daemon: RunningDaemon, tmp_path: Path) -> None:
    tar = layer_tar(tmp_path / "l.tar", {"a.txt": "a\n"})
    daemon.docker("import", str(tar), "stream:1")
    proc = subprocess.Popen(
        [
            require_docker(),
            "events",
            "--filter",
            "type=container",
            "--format",
            "{{.Action}} {{.Actor.Attributes.name}}",
        ],
        env=daemon.env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1)  # subscribed
        daemon.docker("create", "--name", "live", "stream:1", "/bin/sh")
        daemon.docker("rename", "live", "alive")
        assert proc.stdout is not None
        got: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [got.put(line.strip()) for line in proc.stdout or []], daemon=True).start()
        assert [got.get(timeout=20) for _ in range(2)] == ["create live", "rename alive"]
    finally:
        proc.terminate()
        proc.wait(10)


def test_system_df(daemon: RunningDaemon, tmp_path: Path) -> None:
    tar = layer_tar(tmp_path / "l.tar", {"a.txt": "a" * 1000})
    daemon.docker("import", str(tar), "df:1")
    daemon.docker("tag", "df:1", "df:2")
    daemon.docker("create", "--name", "dfc", "df:1", "/bin/sh")
    rows = {line.split("  ")[0].strip(): line.split() for line in daemon.docker("system", "df").stdout.splitlines()}
    assert rows["Images"][1:3] == ["1", "1"]  # one image (two tags), used by a container
    assert rows["Containers"][1:3] == ["1", "0"]  # nothing runs
    assert rows["Images"][3] == "1kB"
    data = json.loads(daemon.request("GET", "/v1.50/system/df").body)
    assert data["LayersSize"] == 1000
    assert [img["Containers"] for img in data["Images"]] == [1]
    assert data["Containers"][0]["SizeRw"] == 0 and data["Containers"][0]["SizeRootFs"] == 1000
    verbose = daemon.docker("system", "df", "-v").stdout
    assert "Images space usage:" in verbose and "dfc" in verbose


# ---- a slow registry: a throttling proxy in front of the real one --------------------------------


class SlowProxy:
    """Forwards 127.0.0.1:port to the registry, answers at `rate` bytes a second."""

    def __init__(self, upstream: str, rate: int) -> None:
        self.upstream = upstream
        self.rate = rate
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.stopped = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def domain(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            host, port = self.upstream.split(":")
            server = socket.create_connection((host, int(port)))
            threading.Thread(target=self._pipe, args=(client, server, 0), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, self.rate), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, rate: int) -> None:
        try:
            while not self.stopped.is_set():
                data = src.recv(4096 if rate else 65536)
                if not data:
                    break
                dst.sendall(data)
                if rate:
                    time.sleep(len(data) / rate)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self.stopped.set()
        self.sock.close()


@pytest.fixture
def slow_image(registry: RunningRegistry, tmp_path: Path) -> Iterator[tuple[SlowProxy, str]]:
    """A 400 kB incompressible layer in the registry, and a proxy that serves it at 50 kB/s."""
    name = f"{registry.domain}/slow/big-{hashlib.sha256(str(tmp_path).encode()).hexdigest()[:8]}"
    root = tmp_path / "seed"
    data = os.urandom(400_000)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("big.bin")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    (tmp_path / "big.tar").write_bytes(buf.getvalue())
    from imagegraph.cli import main

    assert (
        main(["--root", str(root), "import", str(tmp_path / "big.tar"), f"{name}:1"], io.StringIO(), io.StringIO()) == 0
    )
    assert main(["--root", str(root), "push", f"{name}:1"], io.StringIO(), io.StringIO()) == 0
    proxy = SlowProxy(registry.domain, 50_000)
    try:
        yield proxy, name.replace(registry.domain, proxy.domain) + ":1"
    finally:
        proxy.close()


def _wait_for(predicate: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_a_long_pull_does_not_block_docker_images(daemon: RunningDaemon, slow_image: tuple[SlowProxy, str]) -> None:
    _, ref = slow_image
    pull = subprocess.Popen([require_docker(), "pull", ref], env=daemon.env, stdout=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: any("/blobs/sha256:" in line and "→ 200" in line for line in daemon.flow()[-3:]))
        time.sleep(0.5)  # downloading now
        t0 = time.monotonic()
        images = daemon.docker("images")
        assert time.monotonic() - t0 < 5
        assert images.stdout.startswith("REPOSITORY")
        assert daemon.ig("images").rc == 0  # the imagegraph command too: the store lock is free
        assert pull.poll() is None, "the pull should still be downloading"
        assert pull.wait(60) == 0
        assert pull.stdout is not None and "Pull complete" in pull.stdout.read()
    finally:
        if pull.poll() is None:
            pull.kill()


def _consistent(root: Path) -> None:
    """Nothing half-made: every layer has its files, no scratch left once the store is opened."""
    svc = Services.open(root)
    for layer in svc.layers.layers():
        assert svc.layers.diff_dir(layer).is_dir(), layer
    for img in svc.images.images():
        svc.images.size(img)  # every layer of every image is there
    assert list((root / "tmp").iterdir()) == []
    assert list((root / "image" / "layerfs" / "layerdb" / "tmp").iterdir()) == []
    known = {layer.cache_id for layer in svc.layers.layers()}
    assert set(os.listdir(root / "layerfs")) <= known


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_an_interrupted_pull_leaves_the_store_consistent(
    tmp_path: Path, slow_image: tuple[SlowProxy, str], how: str
) -> None:
    _, ref = slow_image
    with start_daemon(tmp_path / "d", "--shutdown-timeout", "1") as d:
        pull = subprocess.Popen([require_docker(), "pull", ref], env=d.env, stdout=subprocess.PIPE, text=True)
        _wait_for(lambda: any("/blobs/sha256:" in line for line in d.flow()))
        time.sleep(1)
        d.process.send_signal(getattr(signal, how))
        d.process.wait(30)
        pull.wait(30)
        assert pull.returncode != 0
        if how == "SIGTERM":
            assert "cancelling them" in d.log()
        _consistent(d.root)
        assert Services.open(d.root).images.ids() == []
