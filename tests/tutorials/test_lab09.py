"""Lab 09 (docker pull through imagegraph daemon): the page runs as written with the real docker
CLI and stops its daemon and registry; its self-check catches broken states. The lab runs once
per module; each breaking test works on its own copy."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.imagegraph.daemon_fixture import ping, require_docker
from tests.imagegraph.registry_fixture import require_registry
from tests.support import require_tool
from tests.tutorials.helpers import assert_check_finds, assert_every_check_passed, exercise_folder
from tutorials.checks import run_check
from tutorials.checks.lab09 import running_daemons
from tutorials.checks.store import Store
from tutorials.lab import find_lab
from tutorials.runner import LabResult, run_lab, unmount_all

LAB = "09"
pytestmark = pytest.mark.registry


@pytest.fixture(scope="module")
def finished_run() -> Iterator[LabResult]:
    """The lab and its worked answers run for real by the runner (it must pass)."""
    require_registry()
    require_docker()
    require_tool("htpasswd")
    require_tool("script")
    out = io.StringIO()
    result = run_lab(find_lab(LAB), out=out, keep=True)
    base = os.path.dirname(result.home) if result.home else None
    try:
        assert result.ok, out.getvalue()
        yield result
    finally:
        if base:
            unmount_all(base)
            shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def finished(finished_run: LabResult) -> str:
    """The lab's folder, ~/layerlab/lab09."""
    return os.path.join(finished_run.home, "layerlab", "lab09")


@pytest.fixture
def lab_copy(finished: str, tmp_path: Path) -> str:
    """A copy of ~/layerlab (the lab's folder and its exercises' folders side by side); returns
    the copy of the lab's folder. Sockets are left behind: nothing serves them any more."""
    shutil.copytree(
        os.path.dirname(finished), tmp_path / "layerlab", symlinks=True, ignore=shutil.ignore_patterns("docker.sock")
    )
    return str(tmp_path / "layerlab" / "lab09")


def test_lab_its_answers_and_every_check_pass(finished_run: LabResult) -> None:
    assert_every_check_passed(LAB, finished_run)


def test_lab_runs_its_check_passes_and_nothing_is_left_running(finished: str) -> None:
    assert run_check(LAB, finished) == []
    assert running_daemons(finished) == []
    assert not os.path.exists(os.path.join(finished, "docker.sock"))


def test_the_pulled_image_is_in_the_store_with_its_repo_digest(finished: str) -> None:
    store = Store(os.path.join(finished, "store"))
    digests = [ref for ref in store.tags() if "/test/hello-world@sha256:" in ref]
    assert len(digests) == 1
    flow = open(os.path.join(finished, "flow.log"), encoding="utf-8").read()
    assert "401 Unauthorized" in flow and "PullImage(" in flow and "wonderland" not in flow


BREAKS = {
    "untagged": ("python -c 'import json, sys; p = sys.argv[1]; d = json.load(open(p)); "
                 "d[\"Repositories\"] = {}; json.dump(d, open(p, \"w\"))' store/image/layerfs/repositories.json",
                 "no image tagged 127.0.0.1:"),
    "no login": ("rm docker-config/config.json", "docker-config/config.json is missing"),
    "someone else's login": (
        "python -c 'import base64, json; p = \"docker-config/config.json\"; d = json.load(open(p)); "
        "[v.update(auth=base64.b64encode(b\"bob:x\").decode()) for v in d[\"auths\"].values()]; "
        "json.dump(d, open(p, \"w\"))'",
        "is not alice's",
    ),
    "empty flow log": (": > flow.log", "flow.log is missing or empty"),
    "a pull without the 401": ("grep -v '401 Unauthorized' flow.log > f && mv f flow.log", "the registry's 401"),
    "lost files": ("rm -rf store/layerfs/*", "has no files in store/layerfs/"),
    "open registry": ("sed -i '/auth:/,$d' registry.yml", "registry.yml has no htpasswd section"),
    "container left": (
        "python -c 'import json, os; d = \"store/containers/\" + \"0\" * 64; os.makedirs(d); "
        "json.dump({\"ID\": \"0\" * 64, \"Name\": \"/hello\", \"Created\": \"2024-01-01T00:00:00Z\", \"Config\": {}}, "
        "open(d + \"/config.v2.json\", \"w\"))'",
        "container hello still exists",
    ),
}  # fmt: skip


@pytest.mark.parametrize("how, expected", list(BREAKS.values()), ids=list(BREAKS))
def test_check_catches_a_broken_state(lab_copy: str, how: str, expected: str) -> None:
    assert run_check(LAB, lab_copy) == []
    subprocess.run(["bash", "-c", how], cwd=lab_copy, check=True, stdout=subprocess.DEVNULL)
    problems = run_check(LAB, lab_copy)
    assert any(expected in p for p in problems), problems


def test_check_catches_a_daemon_left_running(lab_copy: str) -> None:
    """The student forgot step 13: a daemon serving this folder's socket is named, by PID."""
    sock = os.path.join(lab_copy, "docker.sock")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "imagegraph",
            "--root",
            os.path.join(lab_copy, "store"),
            "daemon",
            "-H",
            f"unix://{sock}",
        ],
        cwd=lab_copy,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not ping(Path(sock)):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        problems = run_check(LAB, lab_copy)
        assert f"imagegraph daemon (pid {proc.pid}) still serves this lab's docker.sock" in problems[0], problems
    finally:
        proc.terminate()
        proc.wait(30)
    assert run_check(LAB, lab_copy) == []


@pytest.mark.parametrize("exercise", [1, 2, 3, 4, 5])
def test_an_exercise_not_done_fails_its_check(lab_copy: str, exercise: int) -> None:
    """Asked in the lab's own folder (the exercise not done there), each exercise check fails."""
    assert run_check(LAB, lab_copy, exercise) != []


@pytest.mark.parametrize(
    "exercise, how, expected",
    [
        (1, ": > flow.log", "flow.log is missing or empty"),
        (1, "grep -v getImagesHistory flow.log > f; mv f flow.log", "no GET /images/{name}/history → getImagesHistory"),
        (2, "grep -v 'GET .*/manifests/sha256' flow.log > f; mv f flow.log", "by its digest: pull by that digest"),
        (
            2,
            "echo 'daemon → registry  HEAD http://r/v2/test/hello-world/manifests/1.0 → 200 OK' >> flow.log",
            "flow.log shows a HEAD of a manifest",
        ),
        (2, "rm -r store/image/layerfs/repositories.json", "the store has no 127.0.0.1:"),
        (3, "echo 'HTTP 200' >> response.txt", "response.txt is not the daemon's 500"),
        (
            3,
            "echo 'daemon → registry  GET http://r/v2/ → 200 OK  (Basic alice:********)' >> flow.log",
            "flow.log shows credentials sent to the registry",
        ),
        (4, "sed -i 's/v1.40: HTTP 200/v1.40: HTTP 400/' versions.txt", "versions.txt has no 'v1.40: HTTP 200'"),
        (4, "echo '{}' > v1.99.json", "v1.99.json does not hold 'is too new. Maximum supported API version is 1.50'"),
        (5, "sed -i 1d routes.txt", "routes.txt is not what python -m imagegraph.api.routes container system prints"),
    ],
)
def test_exercise_check_catches_a_broken_state(lab_copy: str, exercise: int, how: str, expected: str) -> None:
    assert_check_finds(LAB, exercise_folder(lab_copy, exercise), how, expected, exercise)
