"""Lab 08 (pull): the page and its worked answers run as written and stop their registry; the
self-checks catch broken states. The lab runs once per module; each breaking test works on its
own copy."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from tests.imagegraph.registry_fixture import require_registry, wait_for_v2
from tests.support import require_tool
from tests.tutorials.helpers import assert_check_finds, assert_every_check_passed, exercise_folder
from tutorials.checks import run_check
from tutorials.checks.lab08 import registry_address, running_registries
from tutorials.checks.store import Store
from tutorials.normalize import normalize

LAB = "08"
REQUIRES = (require_registry,)
pytestmark = pytest.mark.mount


def _processes_in(folder: str) -> list[int]:
    """PIDs whose working directory is at or below `folder`."""
    found = []
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            continue
        if cwd == folder or cwd.startswith(folder + "/"):
            found.append(int(pid))
    return found


def test_lab_its_answers_and_every_check_pass_and_no_registry_is_left(finished):
    assert_every_check_passed(LAB, finished.result)
    assert running_registries(finished.folder) == []
    assert _processes_in(os.path.dirname(finished.home)) == []


def test_the_registry_wants_a_password(finished):
    """One registry per student: htpasswd auth, so nobody pushes into anyone else's."""
    text = Path(finished.folder, "registry.yml").read_text()
    assert re.search(r"^auth:\n  htpasswd:\n    realm: lab08\n    path: \S+/htpasswd$", text, re.M), text
    assert Path(finished.folder, "htpasswd").read_text().startswith("student:$2y$")


def test_the_pulled_image_shares_its_base_with_tiny(finished):
    """What the page claims, read from the store: two layers, the bottom one tiny's, and a
    RepoDigest; the store holds exactly the two layers (tiny's re-import added none)."""
    store = Store(os.path.join(finished.folder, "store"))
    name = f"{registry_address(finished.folder)}/test/hello-world"
    image, tiny = store.image_id(name + ":2.0"), store.image_id("tiny")
    assert image is not None and tiny is not None
    layers = store.config(image)["rootfs"]["diff_ids"]
    assert store.config(tiny)["rootfs"]["diff_ids"] == layers[:1]
    assert sorted(Store.chain_ids(layers)) == ["sha256:" + c for c in store.layer_ids()]
    assert any(ref.startswith(name + "@sha256:") and target == image for ref, target in store.tags().items())
    assert store.image_id(name + ":1.0") is None


BREAKS = {
    "untagged": ("imagegraph rmi $REG/test/hello-world:2.0", "no image tagged 127.0.0.1:"),
    "no tiny": ("imagegraph rmi tiny", "no image tagged tiny:latest"),
    "retagged": ("imagegraph tag tiny $REG/test/hello-world:2.0", "has 1 layers, expected 2"),
    "no repodigest": (
        "python -c 'import json,sys; p=sys.argv[1]; d=json.load(open(p)); "
        '[r.pop(k) for r in d["Repositories"].values() for k in list(r) if "@" in k]; '
        'json.dump(d, open(p, "w"))\' store/image/layerfs/repositories.json',
        "has no RepoDigest",
    ),
    "other manifest": (
        "cp $V2/repositories/test/hello-world/_manifests/tags/1.0/current/link "
        "$V2/repositories/test/hello-world/_manifests/tags/2.0/current/link",
        "is not the manifest the registry's tag points at",
    ),
    "duplicated layer": ("cp -a $BASE store/layerfs/0123456789abcdef-copy", "belongs to no layer"),
    "shared cache-id": ("cp $DB/$TOPCHAIN/cache-id $DB/$BASECHAIN/cache-id", "is the cache-id of 2 layers"),
    "lost files": ("rm -rf $TOP", "layer 2's files"),
    "wrong parent": ("echo sha256:$TOPCHAIN > $DB/$TOPCHAIN/parent", "parent is not the layer below"),
    "changed file": ("echo changed > $TOP/diff/hello.txt", "hello.txt holds 'changed\\n'"),
    "no v2metadata": ("rm -r store/image/layerfs/distribution", "has no record of layer 1's blob"),
    "no blobs": ("rm -r $V2/blobs", "names a blob the registry does not hold"),
    "container left": ("imagegraph create --name hello2 tiny /bin/sh", "container hello2 still exists"),
    "no registry.yml": ("rm registry.yml", "registry.yml is missing"),
}


@pytest.mark.parametrize("how, expected", list(BREAKS.values()), ids=list(BREAKS))
def test_check_catches_a_broken_state(lab_copy, how, expected):
    store = Store(os.path.join(lab_copy, "store"))
    reg = registry_address(lab_copy)
    image = store.image_id(f"{reg}/test/hello-world:2.0")
    assert image is not None
    chains = [c.split(":")[1] for c in Store.chain_ids(store.config(image)["rootfs"]["diff_ids"])]
    base_dir, top_dir = (os.path.dirname(d) for d in store.diff_dirs(image))
    assert os.path.isfile(os.path.join(top_dir, "diff", "hello.txt"))
    assert run_check("08", lab_copy) == []
    env = (
        f"export IMAGEGRAPH_ROOT=$PWD/store REG={reg} V2=registry/docker/registry/v2 "
        f"DB=store/image/layerfs/layerdb/sha256 BASE={base_dir} TOP={top_dir} "
        f"BASECHAIN={chains[0]} TOPCHAIN={chains[1]}; "
    )
    subprocess.run(["bash", "-c", env + how], cwd=lab_copy, check=True, stdout=subprocess.DEVNULL)
    problems = run_check("08", lab_copy)
    assert any(expected in p for p in problems), problems


def test_check_catches_a_registry_left_running(lab_copy):
    """The student forgot step 8: a registry serving this folder's registry.yml is named, by PID."""
    assert run_check("08", lab_copy) == []
    proc = subprocess.Popen(
        [shutil.which("docker-registry") or "/usr/bin/docker-registry", "serve", "registry.yml"],
        cwd=lab_copy,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for_v2(f"http://{registry_address(lab_copy)}", proc)
        problems = run_check("08", lab_copy)
        assert f"docker-registry (pid {proc.pid}) still serves this lab's registry.yml" in problems[0], problems
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert run_check("08", lab_copy) == []


@pytest.mark.parametrize("exercise", [1, 2, 3])
def test_an_exercise_not_done_fails_its_check(lab_copy, exercise):
    assert run_check(LAB, lab_copy, exercise) != []


RMI_1_0 = "imagegraph rmi $(sed -n 's/^  addr: //p' ../lab08/registry.yml)/test/hello-world:1.0"
A_BLOB = "echo 'GET /v2/test/hello-world/blobs/sha256:0 HTTP/1.1'"


@pytest.mark.parametrize(
    "exercise, how, expected",
    [
        (1, RMI_1_0, "no image tagged 127.0.0.1:"),
        (1, A_BLOB + " >> registry.log", "registry.log shows 3 blob downloads"),
        (2, "echo 'HEAD /v2/test/hello-world/manifests/1.0 HTTP/1.1' >> registry.log", "shows a HEAD request"),
        (2, "rm -r store && cp -a ../lab08/store .", "the store has no 127.0.0.1:"),
        (3, A_BLOB + " >> requests.txt", "requests.txt shows a layer blob downloaded"),
        (3, ": > requests.txt", "requests.txt has no HEAD of tag 2.0"),
    ],
)
def test_exercise_check_catches_a_broken_state(lab_copy, exercise, how, expected):
    assert_check_finds(LAB, exercise_folder(lab_copy, exercise), how, expected, exercise)


def test_an_exercise_check_names_a_registry_left_running(lab_copy):
    """Exercise 1 starts the lab's registry again: left running, its check names the PID."""
    folder = exercise_folder(lab_copy, 1)
    lab = os.path.join(os.path.dirname(folder), "lab08")
    proc = subprocess.Popen(
        [shutil.which("docker-registry") or "/usr/bin/docker-registry", "serve", "../lab08/registry.yml"],
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for_v2(f"http://{registry_address(lab)}", proc)
        problems = run_check(LAB, folder, 1)
        assert f"docker-registry (pid {proc.pid}) still serves the lab's registry.yml" in problems[0], problems
    finally:
        proc.terminate()
        proc.wait(timeout=10)


class _FakeEngine(threading.Thread):
    """An Engine API socket that records the request lines the real docker CLI sends."""

    def __init__(self, path: str) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.requests: list[str] = []
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.bind(path)
        self.sock.listen(8)

    def run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                head = conn.recv(65536).decode("latin-1").split("\r\n")[0]
                self.requests.append(head)
                ping = "/_ping" in head
                body = b"OK" if ping else b'{"status":"done"}\r\n'
                ctype = b"text/plain" if ping else b"application/json"
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nApi-Version: 1.50\r\nConnection: close\r\nContent-Type: "
                    + ctype
                    + b"\r\nContent-Length: "
                    + str(len(body)).encode()
                    + b"\r\n\r\n"
                    + body
                )


def test_the_page_quotes_what_the_docker_cli_sends(tmp_path):
    """The seed's `docker image pull test/hello-world:1.0`, sent by the real docker CLI to a
    socket that records it: the query lab 08 quotes is the one the CLI sends."""
    docker = require_tool("docker")
    page = (Path(__file__).parents[2] / "tutorials" / "08-pull.md").read_text(encoding="utf-8")
    quoted = re.search(r"`POST (/images/create\?[^`]+)`", page)
    assert quoted, "lab 08 quotes the client's request"
    engine = _FakeEngine(str(tmp_path / "docker.sock"))
    engine.start()
    try:
        subprocess.run(
            [docker, "-H", f"unix://{engine.path}", "image", "pull", "test/hello-world:1.0"],
            env={**os.environ, "HOME": str(tmp_path), "DOCKER_CONFIG": str(tmp_path / ".docker")},
            capture_output=True,
            timeout=60,
        )
    finally:
        engine.sock.close()
    creates = [r for r in engine.requests if "/images/create" in r]
    assert creates, engine.requests
    method, target, _ = creates[0].split(" ")
    assert method == "POST"
    assert re.sub(r"^/v[0-9.]+", "", target) == quoted[1]


@pytest.mark.parametrize(
    "a, b",
    [
        (
            "The push refers to repository [127.0.0.1:41234/test/hello-world]",
            "The push refers to repository [127.0.0.1:5000/test/hello-world]",
        ),
        (
            "Status: Downloaded newer image for localhost:38000/app:1.0",
            "Status: Downloaded newer image for localhost:5000/app:1.0",
        ),
        ("1.0: digest: sha256:" + "a" * 64 + " size: 731", "1.0: digest: sha256:" + "b" * 64 + " size: 1029"),
    ],
)
def test_normalise_a_registry_port_and_a_manifest_size(a, b):
    assert normalize(a) == normalize(b)


@pytest.mark.parametrize(
    "a, b",
    [
        ("registry.example.com:443/team/app", "registry.example.com:8443/team/app"),  # not this machine's
        ("size: 731", "size: 1029"),  # only push's digest line
    ],
)
def test_normalise_leaves_other_ports_and_numbers(a, b):
    assert normalize(a) != normalize(b)
