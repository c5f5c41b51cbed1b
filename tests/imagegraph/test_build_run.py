"""RUN in a build: a container from the current image runs the command, its top layer is committed
(issue 14: RUN, build args in the history, a failing step, --rm, --force-rm, heredocs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagegraph.service import Services

from .build_helpers import (
    context,
    created_by,
    image,
    image_config,
    read,
)

pytestmark = [pytest.mark.mount, pytest.mark.namespaces, pytest.mark.usefixtures("this_layerfs")]


def build(ig, ctx: Path, *args: str):
    return ig("build", *args, str(ctx))


def test_run_commits_what_the_command_wrote(ig, svc: Services, busybox: str, tmp_path: Path) -> None:
    dockerfile = (
        "FROM busybox\nENV GREETING=hello\nWORKDIR /work\n"
        'RUN echo "$GREETING from $(pwd) as $(id -u)" > out.txt && cat out.txt\n'
        'RUN ["/bin/sh", "-c", "echo exec form > /exec.txt"]\n'
        "RUN true\n"
        "USER nobody\nRUN id -un > /tmp/who\n"
    )
    r = build(ig, context(tmp_path / "c", dockerfile), "-t", "ran")
    assert r.rc == 0, r.err
    assert "hello from /work as 0\n" in r.out
    assert read(svc, "ran", "/work/out.txt") == b"hello from /work as 0\n"
    assert read(svc, "ran", "/exec.txt") == b"exec form\n"
    assert read(svc, "ran", "/tmp/who") == b"nobody\n"
    history = image_config(svc, "ran")["history"]
    by = [h.get("created_by") for h in history]
    assert by[3:] == [
        '/bin/sh -c echo "$GREETING from $(pwd) as $(id -u)" > out.txt && cat out.txt',
        "/bin/sh -c echo exec form > /exec.txt",
        "/bin/sh -c true",
        "/bin/sh -c #(nop)  USER nobody",
        "/bin/sh -c id -un > /tmp/who",
    ]
    assert history[5].get("empty_layer") is True  # `RUN true` wrote nothing
    assert not history[3].get("empty_layer")
    cfg = image_config(svc, "ran")
    assert cfg["container_config"]["Cmd"] == ["/bin/sh", "-c", "id -un > /tmp/who"]
    assert cfg["config"]["Cmd"] == ["sh"]  # RUN never changes the image's own command
    assert svc.containers.containers() == []


def test_build_args_in_run_history(ig, svc: Services, busybox: str, tmp_path: Path) -> None:
    dockerfile = "FROM busybox\nARG B=2\nARG A\nRUN echo $A$B > /ab\nARG HTTP_PROXY\nRUN echo $HTTP_PROXY > /p\n"
    ctx = context(tmp_path / "c", dockerfile)
    r = build(ig, ctx, "-t", "args", "--build-arg", "A=1", "--build-arg", "HTTP_PROXY=http://proxy:3128")
    assert r.rc == 0, r.err
    by = created_by(svc, "args")
    assert by[3] == "|2 A=1 B=2 /bin/sh -c echo $A$B > /ab"  # the undeclared proxy arg is left out
    assert by[5] == "|3 A=1 B=2 HTTP_PROXY=http://proxy:3128 /bin/sh -c echo $HTTP_PROXY > /p"
    assert read(svc, "args", "/ab") == b"12\n"
    again = build(ig, ctx, "--build-arg", "A=1", "--build-arg", "HTTP_PROXY=http://proxy:3128")
    assert again.out.count(" ---> Using cache") == 5
    changed = build(ig, ctx, "--build-arg", "A=9", "--build-arg", "HTTP_PROXY=http://proxy:3128")
    assert changed.out.count(" ---> Using cache") == 2  # the ARGs; the first RUN misses


def test_proxy_args_reach_run_without_declaration(ig, svc: Services, busybox: str, tmp_path: Path) -> None:
    ctx = context(tmp_path / "c", "FROM busybox\nRUN echo ${https_proxy:-none} > /p\n")
    r = build(ig, ctx, "-t", "proxy", "--build-arg", "https_proxy=http://q:1")
    assert r.rc == 0, r.err
    assert read(svc, "proxy", "/p") == b"http://q:1\n"
    assert (
        created_by(svc, "proxy")[1] == "|0 /bin/sh -c echo ${https_proxy:-none} > /p"
    )  # moby: the arg is hidden, its count not


def test_failing_run(ig, svc: Services, busybox: str, tmp_path: Path) -> None:
    ctx = context(tmp_path / "c", "FROM busybox\nENV A=1\nRUN echo partial > /p && false\nRUN echo never\n")
    r = build(ig, ctx, "-t", "failed")
    assert r.rc == 1
    assert r.err == "The command '/bin/sh -c echo partial > /p && false' returned a non-zero code: 1\n"
    assert "Step 4/4" not in r.out and "Successfully" not in r.out
    kept = image(svc, busybox)
    env_step = [
        i for i in svc.images.children(kept.id) if image_config(svc, i)["config"].get("Env", [])[-1:] == ["A=1"]
    ]
    assert env_step, "the image of the step that succeeded stays"
    left = svc.containers.containers()
    assert len(left) == 1 and left[0].state.get("ExitCode") == 1  # moby keeps a failed step's container
    assert left[0].image_id == env_step[0]
    svc.remove_container(left[0].id)
    code = build(ig, context(tmp_path / "d", "FROM busybox\nRUN exit 3\n"), "--force-rm")
    assert code.rc == 3 and code.err.endswith("returned a non-zero code: 3\n")
    assert svc.containers.containers() == []


def test_rm_false_keeps_every_container(ig, svc: Services, busybox: str, tmp_path: Path) -> None:
    r = build(ig, context(tmp_path / "c", "FROM busybox\nENV A=1\nRUN true\n"), "--rm=false")
    assert r.rc == 0, r.err
    assert "Removed intermediate container" not in r.out
    assert len(svc.containers.containers()) == 2


def test_heredoc_run(ig, svc: Services, busybox: str, tmp_path: Path) -> None:
    dockerfile = "FROM busybox\nRUN <<EOF\necho one > /one\necho two > /two\nEOF\nRUN cat <<EOF > /three\nthree\nEOF\n"
    r = build(ig, context(tmp_path / "c", dockerfile), "-t", "here")
    assert r.rc == 0, r.err
    assert read(svc, "here", "/one") == b"one\n" and read(svc, "here", "/two") == b"two\n"
    assert read(svc, "here", "/three") == b"three\n"
    assert created_by(svc, "here")[1] == "/bin/sh -c echo one > /one\necho two > /two\n"


def test_quiet_prints_only_the_id(ig, svc: Services, busybox: str, tmp_path: Path) -> None:
    r = build(ig, context(tmp_path / "c", "FROM busybox\nRUN echo noisy\n"), "-q", "-t", "quiet")
    assert r.rc == 0, r.err
    assert r.out == image(svc, "quiet").id + "\n"
