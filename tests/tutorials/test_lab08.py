"""Lab 08 (pull): the page runs as written and stops its registry; its self-check catches
broken states. The lab runs once per module; each breaking test works on its own copy."""

from __future__ import annotations

import io
import os
import shutil
import subprocess

import pytest

from tests.imagegraph.registry_fixture import require_registry, wait_for_v2
from tests.support import require_fuse, require_kernel_overlay
from tutorials.checks import run_check
from tutorials.checks.lab08 import registry_address, running_registries
from tutorials.checks.store import Store
from tutorials.lab import find_lab
from tutorials.normalize import normalize
from tutorials.runner import run_lab, unmount_all

pytestmark = [pytest.mark.mount, pytest.mark.kernel_overlay]  # imagegraph mount as root


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


@pytest.fixture(scope="module")
def finished():
    """The lab run for real by the runner (it must pass); yields its lab folder. (A module
    fixture runs before the markers' function fixtures, so it asks for FUSE itself.)"""
    require_fuse()
    require_kernel_overlay()
    require_registry()
    out = io.StringIO()
    result = run_lab(find_lab("08"), out=out, keep=True)
    base = os.path.dirname(result.home) if result.home else None
    try:
        assert result.ok, out.getvalue()
        yield os.path.join(result.home, "layerlab", "lab08")
    finally:
        if base:
            unmount_all(base)
            shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def lab_copy(finished, tmp_path):
    """A copy of the finished lab folder (the store's paths are all inside it)."""
    copy = str(tmp_path / "lab08")
    shutil.copytree(finished, copy, symlinks=True)
    return copy


def test_lab_runs_its_check_passes_and_no_registry_is_left(finished):
    assert run_check("08", finished) == []
    assert running_registries(finished) == []
    assert _processes_in(os.path.dirname(os.path.dirname(finished))) == []


def test_the_pulled_image_shares_its_base_with_tiny(finished):
    """What the page claims, read from the store: two layers, the bottom one tiny's, and a
    RepoDigest; the store holds exactly the two layers (tiny's re-import added none)."""
    store = Store(os.path.join(finished, "store"))
    name = f"{registry_address(finished)}/test/hello-world"
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
