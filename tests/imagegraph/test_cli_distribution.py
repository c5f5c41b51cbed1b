"""The pull/push/login/save/load commands, run as a user runs them (a pipe and a real terminal)."""

from __future__ import annotations

import fcntl
import io
import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest

from imagegraph.cli import main
from imagegraph.distribution.localstore import open_local_store

from .distribution_helpers import build_image, snapshot
from .registry_fixture import free_port
from .test_distribution_progress import render_terminal


def run(root, *argv, env=None, stdin=None, input_bytes=None):
    e = dict(os.environ, **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "imagegraph", "--root", str(root), *argv],
        capture_output=True,
        env=e,
        input=input_bytes,
        timeout=120,
    )


def run_in_terminal(root, *argv, env=None) -> str:
    """Run with stdout on a pseudo-terminal; returns everything written to it."""
    pid, fd = pty.fork()
    if pid == 0:  # child
        os.environ.update(env or {})
        os.execv(sys.executable, [sys.executable, "-m", "imagegraph", "--root", str(root), *argv])
    chunks = []
    while True:
        try:
            data = os.read(fd, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    os.waitpid(pid, 0)
    return b"".join(chunks).decode().replace("\r\n", "\n")


@pytest.fixture
def src_store(tmp_path):
    (tmp_path / "w").mkdir()
    return open_local_store(tmp_path / "src"), tmp_path


@pytest.mark.registry
def test_push_and_pull_commands_on_a_pipe(registry, src_store):
    src, tmp = src_store
    name = f"{registry.domain}/cli/app"
    image_id = build_image(src, tmp / "w", [{"a": "1"}, {"b": "2"}], name + ":latest")
    r = run(src.layout.root, "push", name)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.decode().splitlines()
    assert lines[0] == "Using default tag: latest"
    assert lines[1] == f"The push refers to repository [{name}]"
    assert lines[-1].startswith("latest: digest: sha256:") and " size: " in lines[-1]
    digest = lines[-1].split()[2]
    r = run(tmp / "dst", "pull", name)
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode().splitlines()
    assert out[0] == "Using default tag: latest"
    assert out[1] == "latest: Pulling from cli/app"
    assert [line.split(": ", 1)[1] for line in out[2:-3]] == [
        "Pulling fs layer",
        "Pulling fs layer",
        "Verifying Checksum",
        "Download complete",
        "Pull complete",
        "Verifying Checksum",
        "Download complete",
        "Pull complete",
    ]
    assert out[-3:] == [f"Digest: {digest}", f"Status: Downloaded newer image for {name}:latest", f"{name}:latest"]
    dst = open_local_store(tmp / "dst")
    assert dst.images.ids() == [image_id]
    r = run(tmp / "dst", "pull", "-q", name + ":latest")
    assert r.stdout.decode() == f"{name}:latest\n"


@pytest.mark.registry
def test_pull_progress_on_a_terminal(registry, src_store):
    src, tmp = src_store
    name = f"{registry.domain}/cli/tty:1"
    build_image(src, tmp / "w", [{"big": os.urandom(300_000).hex()}], name)
    assert run(src.layout.root, "push", name).returncode == 0
    text = run_in_terminal(tmp / "dst", "pull", name)
    assert "Downloading" in text and "\x1b[1A" in text and "\x1b[2K" in text  # redrawn in place
    assert re.search(r"Downloading \[=*>? *\] +[0-9.]+[kM]B/[0-9.]+[kM]B", text)  # bar and byte counts
    screen = render_terminal(text, rows=40)
    assert screen[0] == "1: Pulling from cli/tty"
    assert screen[1].endswith(": Pull complete")
    assert screen[2].startswith("Digest: sha256:")
    assert screen[3:] == [f"Status: Downloaded newer image for {name}", name]


@pytest.mark.registry
def test_errors_are_one_line_and_leave_the_store(registry, tmp_path):
    root = tmp_path / "s"
    r = run(root, "pull", f"{registry.domain}/nope/nope:1")
    assert r.returncode == 1
    assert r.stderr.decode() == (
        f"Error response from daemon: manifest for {registry.domain}/nope/nope:1 not found: "
        "manifest unknown: manifest unknown\n"
    )
    assert r.stdout.decode() == "", "moby says 'Pulling from' only after the manifest is found"
    port = free_port()
    r = run(root, "pull", f"127.0.0.1:{port}/x")
    assert r.returncode == 1
    assert r.stderr.decode() == (
        f'Error response from daemon: Get "http://127.0.0.1:{port}/v2/": '
        f"dial tcp 127.0.0.1:{port}: connect: connection refused\n"
    )
    r = run(root, "pull", "Ubuntu")
    assert (
        r.returncode == 1
        and r.stderr.decode() == "invalid reference format: repository name (library/Ubuntu) must be lowercase\n"
    )
    r = run(root, "pull", "--platform", "a/b/c/d", "x")
    assert r.returncode == 1 and len(r.stderr.decode().splitlines()) == 1
    r = run(root, "push", f"{registry.domain}/absent/img:1")
    assert (
        r.stderr.decode()
        == f"Error response from daemon: An image does not exist locally with the tag: {registry.domain}/absent/img\n"
    )
    assert not any(
        k.startswith("image/layerfs/imagedb/content/sha256/") and not k.endswith("/") for k in snapshot(root)
    )


@pytest.mark.registry
def test_login_writes_docker_config_and_pull_uses_it(basic_registry, src_store):
    src, tmp = src_store
    env = {"DOCKER_CONFIG": str(tmp / "dockercfg")}
    r = run(
        src.layout.root,
        "login",
        "-u",
        "alice",
        "--password-stdin",
        basic_registry.domain,
        env=env,
        input_bytes=b"wrong\n",
    )
    assert r.returncode == 1
    assert r.stderr.decode() == (
        f"Error response from daemon: login attempt to http://{basic_registry.domain}/v2/ "
        "failed with status: 401 Unauthorized\n"
    )
    assert not (tmp / "dockercfg" / "config.json").exists()
    r = run(
        src.layout.root,
        "login",
        "-u",
        "alice",
        "--password-stdin",
        basic_registry.domain,
        env=env,
        input_bytes=b"wonderland\n",
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode() == "Login Succeeded\n"
    assert "WARNING! Your password will be stored unencrypted" in r.stderr.decode()
    cfg = json.loads((tmp / "dockercfg" / "config.json").read_text())
    assert cfg == {"auths": {basic_registry.domain: {"auth": "YWxpY2U6d29uZGVybGFuZA=="}}}
    name = f"{basic_registry.domain}/logged/in:1"
    build_image(src, tmp / "w", [{"x": "y"}], name)
    assert run(src.layout.root, "push", name, env=env).returncode == 0
    assert run(tmp / "dst", "pull", name, env=env).returncode == 0
    r = run(tmp / "dst2", "pull", name, env={"DOCKER_CONFIG": str(tmp / "empty")})
    assert r.returncode == 1 and r.stderr.decode().endswith("no basic auth credentials\n")


def test_save_and_load_commands(src_store):
    src, tmp = src_store
    image_id = build_image(src, tmp / "w", [{"etc/motd": "hello"}], "saved/app:1")
    r = run(src.layout.root, "save", "-o", str(tmp / "app.tar"), "saved/app:1")
    assert r.returncode == 0, r.stderr
    r = run(src.layout.root, "save", "saved/app")  # to stdout (a pipe)
    assert r.returncode == 0 and r.stdout == (tmp / "app.tar").read_bytes()
    r = run(tmp / "dst", "load", "-i", str(tmp / "app.tar"))
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode() == "Loaded image: saved/app:1\n"
    r = run(tmp / "dst", "load", "-q", input_bytes=(tmp / "app.tar").read_bytes())
    assert r.stdout.decode() == "Loaded image: saved/app:1\n"
    assert open_local_store(tmp / "dst").images.ids() == [image_id]
    r = run(src.layout.root, "save", "-o", str(tmp / "x.tar"), "missing:tag")
    assert (r.returncode, r.stderr.decode()) == (1, "Error response from daemon: No such image: missing:tag\n")
    assert not (tmp / "x.tar").exists()
    (tmp / "junk").write_bytes(b"this is not a tar file at all" * 40)
    r = run(tmp / "dst", "load", "-i", str(tmp / "junk"))
    assert r.returncode == 1 and len(r.stderr.decode().splitlines()) == 1


def test_save_reads_under_the_shared_lock_like_every_reading_command(src_store, monkeypatch):
    """save comes through the same command path as images or history: while it reads, the
    store's lock is held shared, so another reader may come in but a writer must wait."""
    from imagegraph import tarexport

    src, tmp = src_store
    build_image(src, tmp / "w", [{"f": "x"}], "locked/app:1")
    seen: list[tuple[bool, bool]] = []
    real_save_to_file = tarexport.save_to_file

    def probing_save_to_file(*args):
        seen.append((_lock_free(src.layout.lock_file, fcntl.LOCK_SH), _lock_free(src.layout.lock_file, fcntl.LOCK_EX)))
        return real_save_to_file(*args)

    monkeypatch.setattr(tarexport, "save_to_file", probing_save_to_file)
    out, err = io.StringIO(), io.StringIO()
    argv = ["--root", str(src.layout.root), "save", "-o", str(tmp / "a.tar"), "locked/app:1"]
    assert main(argv, out, err) == 0, err.getvalue()
    assert seen == [(True, False)]
    assert (tmp / "a.tar").stat().st_size > 0


def _lock_free(path: Path, mode: int) -> bool:
    """Whether another process could take the lock file in `mode` right now."""
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def test_insecure_registries_from_flag_and_daemon_json(tmp_path):
    import argparse

    from imagegraph.cli_distribution import _insecure

    root = tmp_path / "s"
    root.mkdir()
    (root / "daemon.json").write_text('{"insecure-registries": ["reg.lan:5000", "10.0.0.0/8"]}')
    args = argparse.Namespace(insecure_registry=["other.lan:443"])
    assert _insecure(args, root) == ("other.lan:443", "reg.lan:5000", "10.0.0.0/8")
    from imagegraph.distribution.client import registry_base_url

    assert registry_base_url("10.2.3.4:5000", _insecure(args, root)) == "http://10.2.3.4:5000"
    assert registry_base_url("reg.lan:5000", _insecure(args, root)) == "http://reg.lan:5000"
    assert registry_base_url("public.example.com", _insecure(args, root)) == "https://public.example.com"


def test_transfer_concurrency_flags_and_daemon_json(tmp_path):
    """dockerd's --max-concurrent-downloads/--max-concurrent-uploads: 1 or more, from the
    pull/push flags, the daemon's flags or daemon.json; anything else is one line and no store."""
    from imagegraph.daemon import DaemonConfig

    root = tmp_path / "s"
    for argv in (("pull", "--max-concurrent-downloads", "0", "x"), ("push", "--max-concurrent-uploads", "z", "x")):
        result = run(root, *argv)
        err = result.stderr.decode()
        assert result.returncode != 0 and len(err.strip().splitlines()) == 1 and "--max-concurrent-" in err, err
        assert not root.exists()
    root.mkdir()
    config = DaemonConfig.load(root)
    assert (config.max_concurrent_downloads, config.max_concurrent_uploads) == (3, 5)
    (root / "daemon.json").write_text('{"max-concurrent-downloads": 1, "max-concurrent-uploads": 2}')
    config = DaemonConfig.load(root)
    assert (config.max_concurrent_downloads, config.max_concurrent_uploads) == (1, 2)
    (root / "daemon.json").write_text('{"max-concurrent-uploads": 0}')
    with pytest.raises(ValueError, match="max-concurrent-uploads must be 1 or more"):
        DaemonConfig.load(root)
