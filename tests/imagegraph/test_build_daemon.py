"""`POST /build` on imagegraph daemon, driven by the real clients: `DOCKER_BUILDKIT=0 docker build`
and docker-py's `images.build`; the same Dockerfile built three ways gives the same layers and
config (issue 14: Through the daemon, Tests)."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

from imagegraph.service import Services
from tutorials.images import build_busybox

from .build_helpers import (
    context,
)
from .daemon_fixture import RunningDaemon
from .test_daemon_docker_py import docker_sdk

pytestmark = [pytest.mark.mount, pytest.mark.namespaces, pytest.mark.usefixtures("this_layerfs")]

DOCKERFILE = """FROM busybox
ARG FLAVOUR=plain
ENV APP=/app
WORKDIR $APP
COPY src/ ./src/
RUN echo "$FLAVOUR" > flavour && mkdir -p /app/out && cp src/a.txt out/ && touch -d @1600000000 out out/a.txt flavour
LABEL made.by=layerlab
CMD ["cat", "/app/flavour"]
"""


@pytest.fixture
def busybox_d(daemon: RunningDaemon) -> str:
    return build_busybox(Services.open(daemon.root))


def _build_env(daemon: RunningDaemon) -> dict[str, str]:
    return dict(daemon.env, DOCKER_BUILDKIT="0")


def docker_build(daemon: RunningDaemon, *args: str, check: bool = True) -> Any:
    import subprocess

    proc = subprocess.run(
        ["docker", "build", *args], capture_output=True, text=True, env=_build_env(daemon), timeout=300
    )
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def test_docker_build_through_the_daemon(daemon: RunningDaemon, busybox_d: str, tmp_path: Path) -> None:
    ctx = context(tmp_path / "c", DOCKERFILE, {"src/a.txt": "a\n", ".dockerignore": "secret\n", "secret": "s"})
    r = docker_build(daemon, "-t", "web:1", "--build-arg", "FLAVOUR=spicy", str(ctx))
    lines = r.stdout.splitlines()
    assert lines[0].startswith("Sending build context to Docker daemon")
    assert "Step 6/8 : RUN echo" in r.stdout and " ---> Running in " in r.stdout
    assert lines[-2].startswith("Successfully built ") and lines[-1] == "Successfully tagged web:1"
    assert "DEPRECATED: The legacy builder is deprecated" in r.stderr
    history = json.loads(daemon.docker("image", "inspect", "web:1").stdout)[0]
    assert history["Config"]["Cmd"] == ["cat", "/app/flavour"] and history["Config"]["WorkingDir"] == "/app"
    hist = daemon.docker("history", "--no-trunc", "--format", "{{.CreatedBy}}", "web:1").stdout.splitlines()
    assert hist[2].startswith('|1 FLAVOUR=spicy /bin/sh -c echo "$FLAVOUR" > flavour')
    assert hist[3].startswith("/bin/sh -c #(nop) COPY dir:") and hist[3].endswith(" in ./src/ ")
    again = docker_build(daemon, "-t", "web:1", "--build-arg", "FLAVOUR=spicy", str(ctx))
    assert again.stdout.count(" ---> Using cache") == 7
    quiet = docker_build(daemon, "-q", "--build-arg", "FLAVOUR=spicy", str(ctx))
    assert quiet.stdout.strip() == history["Id"]
    out = daemon.docker("run", "--rm", "web:1", check=False)
    if out.returncode == 0:  # the daemon's run route may not be there yet
        assert out.stdout == "spicy\n"


def test_failing_step_through_the_daemon(daemon: RunningDaemon, busybox_d: str, tmp_path: Path) -> None:
    ctx = context(tmp_path / "c", "FROM busybox\nRUN echo out; echo err >&2; exit 7\n")
    r = docker_build(daemon, str(ctx), check=False)
    assert r.returncode == 7
    assert r.stderr.strip().endswith(
        "The command '/bin/sh -c echo out; echo err >&2; exit 7' returned a non-zero code: 7"
    )
    assert "out\n" in r.stdout and "\x1b[91merr\n\x1b[0m" in r.stdout  # a RUN's stderr, red as dockerd sends it
    bad = docker_build(daemon, str(context(tmp_path / "d", "FROM busybox\nCOPY only\n")), check=False)
    assert bad.returncode == 1
    assert (
        "Error response from daemon: dockerfile parse error on line 2: COPY requires at least two arguments"
        in bad.stderr
    )


def test_api_details(daemon: RunningDaemon, busybox_d: str, tmp_path: Path) -> None:
    """What a BuildKit client would ask gets dockerd-without-BuildKit answers; the stream's shape."""
    assert daemon.request("GET", "/_ping").headers.get("Builder-Version") == "1"
    assert daemon.request("POST", "/session").status == 404
    assert daemon.request("POST", "/grpc").status == 404
    v2 = daemon.request("POST", "/build?version=2", body=b"")
    assert v2.status == 400 and "BuildKit is not supported by this daemon" in v2.json()["message"]
    body = io.BytesIO()
    with tarfile.open(fileobj=body, mode="w") as t:
        data = b"FROM busybox\nENV A=1\n"
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    r = daemon.request("POST", "/v1.50/build?t=api:1&labels=%7B%22k%22%3A%22v%22%7D", body=body.getvalue())
    assert r.status == 200 and r.headers["Content-Type"] == "application/json"
    messages = [json.loads(line) for line in r.body.split(b"\r\n") if line]
    assert messages[0] == {"stream": "Step 1/3 : FROM busybox\n"}
    aux = [m["aux"] for m in messages if "aux" in m]
    assert len(aux) == 1 and aux[0]["ID"].startswith("sha256:")
    assert messages[-1] == {"stream": "Successfully tagged api:1\n"}
    assert {"stream": "Step 3/3 : LABEL k=v\n"} in messages


def _normalised(config: dict[str, Any]) -> dict[str, Any]:
    """An image config without what differs from build to build: times, container and image IDs."""
    out = json.loads(json.dumps(config))
    out.pop("created", None)
    out.pop("container", None)
    for key in ("config", "container_config"):
        out.get(key, {}).pop("Image", None)
        out.get(key, {}).pop("Hostname", None)
    for h in out.get("history", []):
        h.pop("created", None)
    return out


def test_three_ways_give_the_same_image(daemon: RunningDaemon, busybox_d: str, tmp_path: Path) -> None:
    """imagegraph build, DOCKER_BUILDKIT=0 docker build and docker-py: the same DiffIDs and the
    same config apart from timestamps and IDs (SOURCE_DATE_EPOCH makes the layers reproducible)."""
    ctx = context(tmp_path / "c", DOCKERFILE, {"src/a.txt": "a\n", "src/b.txt": "b\n"})
    sde = ["--build-arg", "SOURCE_DATE_EPOCH=1700000000", "--build-arg", "FLAVOUR=x"]
    r = daemon.ig("build", "--no-cache", "-t", "way:ig", *sde, str(ctx))
    assert r.rc == 0, r.err
    docker_build(daemon, "--no-cache", "-t", "way:cli", *sde, str(ctx))
    docker = docker_sdk()
    client = docker.DockerClient(base_url=daemon.host, version="auto")
    try:
        client.images.build(
            path=str(ctx),
            tag="way:py",
            nocache=True,
            rm=True,
            buildargs={"SOURCE_DATE_EPOCH": "1700000000", "FLAVOUR": "x"},
        )
    finally:
        client.close()
    svc = Services.open(daemon.root)
    svc.refs.reload()
    images = [svc.get_image(f"way:{k}") for k in ("ig", "cli", "py")]
    assert images[0].diff_ids == images[1].diff_ids == images[2].diff_ids
    assert len(images[0].diff_ids) == len(svc.get_image(busybox_d).diff_ids) + 3  # WORKDIR, COPY, RUN
    configs = [_normalised(i.config) for i in images]
    assert configs[0] == configs[1] == configs[2]
    assert [svc.images.get_parent(i.id) is not None for i in images] == [True, True, True]
    assert svc.containers.containers() == []
