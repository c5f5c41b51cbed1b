"""The seed's `docker pull`, for real: the docker CLI → imagegraph daemon → docker-registry, with
and without htpasswd auth; push, login, search, and the flow log of each hop."""

from __future__ import annotations

import io
import json
import os
import pty
import re
import select
import subprocess
import time
from pathlib import Path

import pytest

from imagegraph.cli import main as imagegraph_main

from .daemon_fixture import RunningDaemon, require_docker, start_daemon
from .registry_fixture import RunningRegistry, free_port
from .test_daemon_parity import layer_tar

pytestmark = pytest.mark.registry


def ig(root: Path, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    rc = imagegraph_main(["--root", str(root), *args], out, err)
    return rc, out.getvalue(), err.getvalue()


def seed_registry(tmp: Path, reg: RunningRegistry, repo: str) -> str:
    """Push `repo:1.0` (two layers) and `repo:2.0` (the same base, another top) with imagegraph,
    logged in where the registry wants it; returns the repository's full name."""
    root = tmp / "seed-store"
    env_cfg = tmp / "seed-docker-config"
    os.environ["DOCKER_CONFIG"] = str(env_cfg)
    try:
        if reg.users:
            user, password = next(iter(reg.users.items()))
            assert ig(root, "login", "-u", user, "-p", password, reg.domain)[0] == 0
        name = f"{reg.domain}/{repo}"
        base = layer_tar(tmp / "base.tar", {"bin/sh": "#!/bin/sh\n", "etc/os-release": "NAME=tiny\n"})
        assert ig(root, "import", "-m", "base", str(base), "tiny")[0] == 0
        for tag, text in (("1.0", "Hello from layerlab!\n"), ("2.0", "Hello again!\n")):
            top = layer_tar(tmp / f"top-{tag}.tar", {"hello.txt": text})
            rc, _, err = ig(root, "import", str(top), f"top-{tag}")
            assert rc == 0, err
            # a two-layer image: load a tar made of the base and the top, tagged name:tag
            _two_layer_image(root, tmp, f"{name}:{tag}", f"top-{tag}")
            rc, _, err = ig(root, "push", f"{name}:{tag}")
            assert rc == 0, err
    finally:
        del os.environ["DOCKER_CONFIG"]
    return name


def _two_layer_image(root: Path, tmp: Path, ref: str, top: str) -> None:
    """tiny's layer plus `top`'s layer as one image, via a container and a commit."""
    rc, out, err = ig(root, "create", "--name", f"mk-{top}", "tiny", "/bin/sh")
    assert rc == 0, err
    from imagegraph.container import ContainerStore
    from imagegraph.layerstore import LayerStore
    from imagegraph.store import Layout

    layout = Layout(root)
    store = ContainerStore(layout, LayerStore(layout))
    c = store.get(f"mk-{top}")
    diff = layout.layer_dir(store.mount_layer(c).mount_id) / "diff"
    text = "Hello from layerlab!\n" if top.endswith("1.0") else "Hello again!\n"
    (diff / "hello.txt").write_text(text)
    os.utime(diff / "hello.txt", (1600000000, 1600000000))
    assert ig(root, "commit", "-m", f"add hello.txt ({top})", f"mk-{top}", ref)[0] == 0
    assert ig(root, "rm", f"mk-{top}")[0] == 0


def test_pull_through_the_daemon_prints_and_stores_as_imagegraph_pull(
    daemon: RunningDaemon, registry: RunningRegistry, tmp_path: Path
) -> None:
    name = seed_registry(tmp_path, registry, "parity/hello-world")
    other_root = tmp_path / "ig-store"
    outputs = []
    for ref in (f"{name}:1.0", f"{name}:1.0", f"{name}:2.0"):
        d = daemon.docker("pull", ref)
        rc, out, err = ig(other_root, "pull", ref)
        assert (d.returncode, d.stdout, d.stderr) == (rc, out, err)
        outputs.append(d.stdout)
    first, again, second = outputs
    assert "Pull complete" in first and "Status: Downloaded newer image for" in first
    assert "Status: Image is up to date for" in again
    assert "Already exists" in second
    digest = re.search(r"Digest: (sha256:[0-9a-f]{64})", second)
    assert digest is not None
    by_digest = daemon.docker("pull", f"{name}@{digest.group(1)}").stdout
    assert by_digest.splitlines()[0] == f"{digest.group(1)}: Pulling from parity/hello-world"
    assert daemon.docker("images", "--digests").stdout == ig(daemon.root, "images", "--digests")[1]
    assert daemon.docker("images", "--digests").stdout == ig(other_root, "images", "--digests")[1]


def test_pull_all_tags_through_the_daemon_and_the_command(
    daemon: RunningDaemon, registry: RunningRegistry, tmp_path: Path
) -> None:
    """`docker pull -a NAME`: every tag the registry lists, one status line for the repository
    (moby's pullRepository); `imagegraph pull -a` prints the same."""
    name = seed_registry(tmp_path, registry, "parity/all-tags")
    other_root = tmp_path / "ig-store"
    outputs = []
    for _ in range(2):
        d = daemon.docker("pull", "-a", name)
        rc, out, err = ig(other_root, "pull", "-a", name)
        assert (d.returncode, d.stdout, d.stderr) == (rc, out, err)
        outputs.append(d.stdout)
    first, again = outputs
    pulling = [line for line in first.splitlines() if "Pulling from" in line]  # in the registry's order
    assert sorted(pulling) == ["1.0: Pulling from parity/all-tags", "2.0: Pulling from parity/all-tags"]
    assert first.count("Digest: sha256:") == 2 and f"Status: Downloaded newer image for {name}\n" in first
    assert again.splitlines()[-2:] == [f"Status: Image is up to date for {name}", name]
    tags = daemon.docker("images", "--format", "{{.Tag}}", name).stdout.split()
    assert sorted(tags) == ["1.0", "2.0"]
    d = daemon.docker("pull", "-a", f"{name}:1.0", check=False)
    rc, out, err = ig(other_root, "pull", "-a", f"{name}:1.0")
    assert (d.returncode, d.stderr) == (rc, err) == (1, "tag can't be used with --all-tags/-a\n")


def test_the_flow_of_a_pull_that_needs_a_login(
    daemon: RunningDaemon, basic_registry: RunningRegistry, tmp_path: Path
) -> None:
    """Without credentials the daemon answers as dockerd (no basic auth credentials); after
    `docker login` the client sends them in X-Registry-Auth and the flow log shows every hop."""
    name = seed_registry(tmp_path, basic_registry, "test/hello-world")
    denied = daemon.docker("pull", f"{name}:1.0", check=False)
    assert denied.returncode == 1
    assert denied.stderr.strip() == (
        f'Error response from daemon: Head "http://{basic_registry.domain}/v2/test/hello-world/manifests/1.0": '
        "no basic auth credentials"
    )
    flow = daemon.flow()
    assert flow[-1].startswith("daemon → client    500 Internal Server Error")
    login = daemon.docker("login", "-u", "alice", "--password-stdin", basic_registry.domain, input="wonderland\n")
    assert "Login Succeeded" in login.stdout
    config = json.loads((daemon.config_dir / "config.json").read_text())
    assert basic_registry.domain in config["auths"]

    start = len(daemon.flow())
    pulled = daemon.docker("pull", f"{name}:1.0")
    assert "Status: Downloaded newer image" in pulled.stdout
    flow = daemon.flow()[start:]
    text = "\n".join(flow)
    assert "password" in text and "wonderland" not in text  # the secret is masked
    expected_order = [
        "client → daemon    HEAD /_ping → pingHandler",
        f"client → daemon    POST /v1.50/images/create?fromImage={name}&tag=1.0 → postImagesCreate  "
        f'X-Registry-Auth: {{"username": "alice", "password": "********", "serveraddress": "{basic_registry.domain}"}}',
        f"daemon             postImagesCreate → PullImage({name}:1.0, platform=-)",
        f"daemon → registry  GET http://{basic_registry.domain}/v2/ → 401 Unauthorized  "
        'challenge: Basic realm="layerlab-basic-realm"',
        f"daemon → registry  HEAD http://{basic_registry.domain}/v2/test/hello-world/manifests/1.0 → 200 OK  "
        "(Basic alice:********)",
        f"daemon → registry  GET http://{basic_registry.domain}/v2/test/hello-world/manifests/sha256:",
        f"daemon → registry  GET http://{basic_registry.domain}/v2/test/hello-world/blobs/sha256:",
        "graph              layer 1/2 blob ",
        "graph              layer 2/2 blob ",
        "graph              image sha256:",
        f"daemon → client    200 OK  stream ended: Status: Downloaded newer image for {name}:1.0",
    ]
    pos = 0
    for want in expected_order:
        found = next((i for i in range(pos, len(flow)) if flow[i].startswith(want)), None)
        assert found is not None, f"not in order: {want!r}\n{text}"
        pos = found + 1
    layer_lines = [line for line in flow if line.startswith("graph              layer")]
    store = daemon.root / "image" / "layerfs" / "layerdb" / "sha256"
    for line in layer_lines:
        chain = re.search(r"layerdb/sha256/([0-9a-f]{64})/", line)
        assert chain is not None and (store / chain.group(1) / "cache-id").exists(), line


def _pull_in_a_terminal(d: RunningDaemon, ref: str, answers: list[str], timeout: float = 90) -> str:
    """Run `docker pull` on a pseudo-terminal and answer its prompts (the CLI's PrivilegeFunc)."""
    pid, fd = pty.fork()
    if pid == 0:  # child
        os.execve(require_docker(), ["docker", "pull", ref], d.env)
    out = b""
    pending = list(answers)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                data = os.read(fd, 65536)
            except OSError:
                break
            if not data:
                break
            out += data
            if pending and out.rstrip().endswith((b"Username (alice):", b"Username:", b"Password:")):
                os.write(fd, pending.pop(0).encode() + b"\n")
    _, status = os.waitpid(pid, 0)
    text = out.decode(errors="replace").replace("\r\n", "\n")
    assert os.waitstatus_to_exitcode(status) == 0, text
    return text


def test_wrong_credentials_make_a_401_and_the_cli_retries_after_asking(
    daemon: RunningDaemon, basic_registry: RunningRegistry, tmp_path: Path
) -> None:
    """The seed's tryImageCreate → errdefs.IsUnauthorized → PrivilegeFunc → tryImageCreate again."""
    name = seed_registry(tmp_path, basic_registry, "retry/hello-world")
    import base64

    auth = base64.b64encode(b"alice:not-the-password").decode()
    (daemon.config_dir / "config.json").write_text(json.dumps({"auths": {basic_registry.domain: {"auth": auth}}}))
    start = len(daemon.flow())
    out = _pull_in_a_terminal(daemon, f"{name}:2.0", ["alice", "wonderland"])
    assert "Login prior to pull:" in out
    assert "Status: Downloaded newer image" in out
    flow = daemon.flow()[start:]
    creates = [i for i, line in enumerate(flow) if "postImagesCreate  X-Registry-Auth" in line]
    assert len(creates) == 2, flow
    replies = [line for line in flow if line.startswith("daemon → client")]
    assert any(line.startswith("daemon → client    401 Unauthorized") for line in replies), flow


def test_push_through_the_daemon(daemon: RunningDaemon, registry: RunningRegistry, tmp_path: Path) -> None:
    tar = layer_tar(tmp_path / "l.tar", {"a.txt": "a\n"})
    name = f"{registry.domain}/pushed/app"
    daemon.docker("import", str(tar), f"{name}:1")
    first = daemon.docker("push", f"{name}:1").stdout.splitlines()
    assert first[0] == f"The push refers to repository [{name}]"
    assert first[-1].startswith("1: digest: sha256:") and "size: " in first[-1]
    assert any(line.endswith(": Pushed") for line in first)
    again = daemon.docker("push", f"{name}:1").stdout
    assert ": Layer already exists" in again
    assert daemon.docker("images", "--digests", "--format", "{{.Digest}}", name).stdout.startswith("sha256:")
    missing = daemon.docker("push", f"{registry.domain}/pushed/none:1", check=False)
    assert missing.returncode == 1
    assert missing.stdout.startswith(f"The push refers to repository [{registry.domain}/pushed/none]")
    assert "An image does not exist locally with the tag: " in missing.stdout + missing.stderr


def test_push_all_tags_through_the_daemon_and_the_command(
    daemon: RunningDaemon, registry: RunningRegistry, tmp_path: Path
) -> None:
    """`docker push -a NAME`: one "push refers to" line, then every tag in name order, each with
    its digest line; `imagegraph push -a` on a twin store prints the same."""
    twin = tmp_path / "twin"
    name = f"{registry.domain}/pushed/every"
    for tag, text in (("b", "b\n"), ("a", "a\n")):
        tar = layer_tar(tmp_path / f"{tag}.tar", {f"{tag}.txt": text})
        daemon.docker("import", str(tar), f"{name}:{tag}")
        assert ig(twin, "import", str(tar), f"{name}:{tag}")[0] == 0
    d = daemon.docker("push", "-a", name)
    lines = d.stdout.splitlines()
    assert lines[0] == f"The push refers to repository [{name}]"
    assert [line.split(":")[0] for line in lines if ": digest: sha256:" in line] == ["a", "b"]
    # the twin's first push sends what the daemon's first push sent (neither store knew the blobs)
    assert ig(twin, "push", "-a", name) == (d.returncode, d.stdout, d.stderr)
    assert daemon.docker("push", "-a", name).stdout.count("Layer already exists") == 2
    none = daemon.docker("push", "-a", f"{registry.domain}/pushed/nothing", check=False)
    assert none.returncode == 1 and "An image does not exist locally with the tag" in none.stderr
    tagged = daemon.docker("push", "-a", f"{name}:a", check=False)
    assert tagged.returncode == 1 and tagged.stderr == "tag can't be used with --all-tags/-a\n"
    assert ig(twin, "push", "-a", f"{name}:a")[2] == tagged.stderr


def test_pull_errors_are_the_clis_one_line_messages(daemon: RunningDaemon, registry: RunningRegistry) -> None:
    port = free_port()
    down = daemon.docker("pull", f"127.0.0.1:{port}/app:1", check=False)
    assert down.returncode == 1
    assert down.stderr.strip() == (
        f'Error response from daemon: Get "http://127.0.0.1:{port}/v2/": dial tcp 127.0.0.1:{port}: '
        "connect: connection refused"
    )
    unknown = daemon.docker("pull", f"{registry.domain}/nobody/here:1", check=False)
    assert unknown.returncode == 1
    assert unknown.stderr.startswith(
        f"Error response from daemon: manifest for {registry.domain}/nobody/here:1 not found"
    )
    bad = daemon.docker("pull", "Not/Valid", check=False)
    assert bad.returncode == 1 and "invalid reference format" in bad.stderr
    gone = daemon.docker("inspect", "nothere:1", check=False)
    assert gone.returncode == 1 and gone.stderr.strip() == "Error: No such object: nothere:1"


def test_search_reads_a_registrys_catalog(daemon: RunningDaemon, registry: RunningRegistry, tmp_path: Path) -> None:
    tar = layer_tar(tmp_path / "l.tar", {"a.txt": "a\n"})
    daemon.docker("import", str(tar), f"{registry.domain}/search/hello-world:1.0")
    daemon.docker("push", f"{registry.domain}/search/hello-world:1.0")
    out = daemon.docker("search", f"{registry.domain}/hello").stdout.splitlines()
    assert out[0].split() == ["NAME", "DESCRIPTION", "STARS", "OFFICIAL"]
    assert any(line.startswith(f"{registry.domain}/search/hello-world ") and "tags: 1.0" in line for line in out)
    nowhere = daemon.docker("search", "hello", check=False)
    assert nowhere.returncode == 1 and "there is no Docker Hub here" in nowhere.stderr


def test_search_uses_the_registries_daemon_json_names(registry: RunningRegistry, tmp_path: Path) -> None:
    root = tmp_path / "d" / "root"
    root.mkdir(parents=True)
    (root / "daemon.json").write_text(json.dumps({"search-registries": [registry.domain]}))
    with start_daemon(tmp_path / "d") as d:
        tar = layer_tar(tmp_path / "l.tar", {"b.txt": "b\n"})
        d.docker("import", str(tar), f"{registry.domain}/listed/thing:1")
        d.docker("push", f"{registry.domain}/listed/thing:1")
        out = d.docker("search", "listed").stdout
        assert f"{registry.domain}/listed/thing" in out


def test_save_load_through_a_pipe_and_import(daemon: RunningDaemon, tmp_path: Path) -> None:
    tar = layer_tar(tmp_path / "l.tar", {"bin/sh": "#!/bin/sh\n"})
    image_id = daemon.docker("import", "-m", "mine", "-c", 'CMD ["/bin/sh"]', str(tar), "imported:1").stdout.strip()
    assert daemon.docker("inspect", "-f", "{{json .Config.Cmd}}", "imported:1").stdout.strip() == '["/bin/sh"]'
    saved = daemon.docker_bytes("save", "imported:1")
    daemon.docker("rmi", "imported:1")
    shell = subprocess.run(
        "docker save imported:1 2>/dev/null; true", shell=True, env=daemon.env, capture_output=True, timeout=60
    )
    assert shell.stdout == b""  # gone
    loaded = daemon.docker("load", input=saved)
    assert loaded.stdout.strip() == "Loaded image: imported:1"
    assert daemon.docker("images", "-q", "--no-trunc", "imported:1").stdout.strip() == image_id
    piped = subprocess.run(
        "docker save imported:1 | docker load", shell=True, env=daemon.env, capture_output=True, text=True, timeout=60
    )
    assert piped.returncode == 0 and piped.stdout.strip() == "Loaded image: imported:1", piped.stderr
    with_stdin = subprocess.run(
        ["docker", "import", "-", "fromstdin:1"],
        input=tar.read_bytes(),
        env=daemon.env,
        capture_output=True,
        timeout=60,
    )
    assert with_stdin.returncode == 0
    history = daemon.docker("history", "--format", "{{.Comment}}", "fromstdin:1").stdout.strip()
    assert history == "Imported from -"
