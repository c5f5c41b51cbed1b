"""The Docker SDK for Python (docker-py) as the second client of `imagegraph daemon`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support import skip_or_fail

from .daemon_fixture import RunningDaemon
from .registry_fixture import RunningRegistry
from .test_daemon_parity import layer_tar, write_in_top_layer


def docker_sdk() -> Any:
    try:
        import docker
    except ImportError:
        skip_or_fail("the Docker SDK for Python is not installed (pip install -e '.[test]' installs it)")
    return docker


@pytest.fixture
def client(daemon: RunningDaemon) -> Any:
    docker = docker_sdk()
    c = docker.DockerClient(base_url=daemon.host, version="auto")
    yield c
    c.close()


def test_version_negotiation_and_an_old_fixed_version(daemon: RunningDaemon, client: Any) -> None:
    docker = docker_sdk()
    assert client.api.api_version == "1.50"
    assert client.ping() is True
    old = docker.DockerClient(base_url=daemon.host, version="1.41")
    try:
        assert old.version()["ApiVersion"] == "1.50"
        assert old.images.list() == []
    finally:
        old.close()
    too_old = docker.DockerClient(base_url=daemon.host, version="1.30")
    try:
        with pytest.raises(docker.errors.APIError, match="client version 1.30 is too old"):
            too_old.images.list()
    finally:
        too_old.close()


def test_images_pull_list_get_remove_push(
    daemon: RunningDaemon, client: Any, registry: RunningRegistry, tmp_path: Path
) -> None:
    docker = docker_sdk()
    tar = layer_tar(tmp_path / "l.tar", {"bin/sh": "#!/bin/sh\n"})
    name = f"{registry.domain}/sdk/app"
    daemon.docker("import", str(tar), f"{name}:1")
    pushed = client.images.push(name, tag="1", stream=True, decode=True)
    statuses = [m.get("status", "") for m in pushed]
    assert statuses[0] == f"The push refers to repository [{name}]"
    assert any(s.startswith("1: digest: sha256:") for s in statuses)
    client.images.remove(f"{name}:1")
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get(f"{name}:1")
    image = client.images.pull(name, tag="1")
    assert image.tags == [f"{name}:1"]
    assert image.attrs["RepoDigests"][0].startswith(f"{name}@sha256:")
    assert [i.id for i in client.images.list()] == [image.id]
    assert client.images.get(image.short_id.split(":")[1]).id == image.id
    progress = list(client.api.pull(name, tag="1", stream=True, decode=True))
    assert progress[-1] == {"status": f"Status: Image is up to date for {name}:1"}
    with pytest.raises(docker.errors.NotFound):
        client.images.pull(name, tag="nope")


def test_containers_create_get_diff_and_commit(daemon: RunningDaemon, client: Any, tmp_path: Path) -> None:
    docker = docker_sdk()
    tar = layer_tar(tmp_path / "l.tar", {"bin/sh": "#!/bin/sh\n", "etc/motd": "hi\n"})
    daemon.docker("import", str(tar), "sdkbase:1")
    c = client.containers.create("sdkbase:1", command=["/bin/sh"], name="sdk1", labels={"k": "v"})
    assert c.name == "sdk1" and c.status == "created" and c.labels == {"k": "v"}
    assert client.containers.get("sdk1").id == c.id
    assert [x.name for x in client.containers.list(all=True)] == ["sdk1"]
    assert client.containers.list() == []
    write_in_top_layer(daemon.root, "sdk1", "etc/new.conf", "x=1\n")
    assert c.diff() == [{"Kind": 0, "Path": "/etc"}, {"Kind": 1, "Path": "/etc/new.conf"}]
    result = client.api.commit(c.id, repository="sdkchild", tag="1", message="via the SDK", author="py")
    child = client.images.get("sdkchild:1")
    assert child.id == result["Id"]
    assert child.attrs["Comment"] == "via the SDK" and child.attrs["Author"] == "py"
    assert len(child.attrs["RootFS"]["Layers"]) == 2
    assert json.loads(daemon.docker("inspect", "sdkchild:1").stdout)[0]["Id"] == child.id
    with pytest.raises(docker.errors.NotFound):
        client.containers.get("nope")
    with pytest.raises(docker.errors.APIError, match="conflict"):
        client.images.remove("sdkbase:1")
    c.remove()
    client.images.remove("sdkchild:1")
    assert [i.tags for i in client.images.list()] == [["sdkbase:1"]]
