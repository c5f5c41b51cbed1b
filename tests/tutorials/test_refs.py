"""`python -m tutorials.refs`: Docker's reading of image names, as lab 08's table shows it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tutorials.refs import explain, main, render, shorten

DIGEST = "sha256:6c3c624b58dbbcd3c0dd82b4c53f04194d1247c6eebdaab7c610cf7d66709b3b"


@pytest.mark.parametrize(
    "name, normalised, registry, repository",
    [
        ("ubuntu", "docker.io/library/ubuntu:latest", "docker.io", "library/ubuntu"),
        ("ubuntu:22.04", "docker.io/library/ubuntu:22.04", "docker.io", "library/ubuntu"),
        ("test/hello-world:1.0", "docker.io/test/hello-world:1.0", "docker.io", "test/hello-world"),  # the seed's
        ("localhost:5000/app", "localhost:5000/app:latest", "localhost:5000", "app"),
        ("localhost/app", "localhost/app:latest", "localhost", "app"),
        ("index.docker.io/library/busybox", "docker.io/library/busybox:latest", "docker.io", "library/busybox"),
        (
            f"registry.example.com:443/team/app@{DIGEST}",
            "registry.example.com:443/team/app@sha256:6c3c624b58db…",
            "registry.example.com:443",
            "team/app",
        ),
        (
            f"ubuntu:22.04@{DIGEST}",
            "docker.io/library/ubuntu:22.04@sha256:6c3c624b58db…",
            "docker.io",
            "library/ubuntu",
        ),
    ],
)
def test_explain_normalises_as_docker_does(name, normalised, registry, repository):
    row = explain(name)
    assert (row.normalised, row.registry, row.repository, row.error) == (normalised, registry, repository, "")


@pytest.mark.parametrize(
    "name, error",
    [
        ("test/Hello-World:1.0", "invalid reference format: repository name (test/Hello-World) must be lowercase"),
        ("Ubuntu", "invalid reference format: repository name (library/Ubuntu) must be lowercase"),
        ("ubuntu:", "invalid reference format"),
        ("a" * 64, f"invalid repository name ({'a' * 64}), cannot specify 64-byte hexadecimal strings"),
    ],
)
def test_explain_gives_dockers_error_text(name, error):
    row = explain(name)
    assert row.error == error and row.normalised == ""


def test_render_lists_refused_names_under_the_table():
    text = render([explain("ubuntu"), explain("ubuntu:"), explain(f"app@{DIGEST}")])
    lines = text.splitlines()
    assert lines[0].split() == ["INPUT", "NORMALISED", "REGISTRY", "REPOSITORY"]
    assert lines[1].split() == ["ubuntu", "docker.io/library/ubuntu:latest", "docker.io", "library/ubuntu"]
    assert lines[2].split()[0] == "app@sha256:6c3c624b58db…"
    assert lines[3] == "'ubuntu:' is refused: invalid reference format"
    assert len(lines) == 4


def test_shorten_only_touches_a_digest():
    assert shorten(f"app@{DIGEST}") == "app@sha256:6c3c624b58db…"
    assert shorten("localhost:5000/app:1.0") == "localhost:5000/app:1.0"


def test_main_exit_status(capsys):
    assert main(["ubuntu"]) == 0
    assert "docker.io/library/ubuntu:latest" in capsys.readouterr().out
    assert main(["ubuntu", "Ubuntu"]) == 1
    assert main([]) == 2
    assert "usage:" in capsys.readouterr().err


def test_runs_as_a_module_from_any_folder(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "tutorials.refs", "test/hello-world:1.0"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "docker.io/test/hello-world:1.0" in out
