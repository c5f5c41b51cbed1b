"""`imagegraph build` without RUN (no container runs): every metadata instruction, COPY and ADD,
the cache, multi-stage builds, ONBUILD, .dockerignore, and the classic builder's texts."""

from __future__ import annotations

import bz2
import functools
import gzip
import io
import lzma
import tarfile
from pathlib import Path

import pytest

from imagegraph.service import Services

from .build_helpers import context, created_by, exists, image, image_config, read, stat, steps

NOP = "/bin/sh -c #(nop) "
NOT_FOUND = "COPY failed: file not found in build context or excluded by .dockerignore: "


def build(ig, ctx: Path, *args: str):
    return ig("build", *args, str(ctx))


def test_metadata_instructions_and_their_history(ig, svc: Services, busybox: str, tmp_path: Path) -> None:
    dockerfile = """FROM busybox
MAINTAINER Jane <jane@example.com>
ENV A=b C="d e"
ENV OLD form with spaces
LABEL org.example.x="1" y=2
WORKDIR /app
WORKDIR sub
USER nobody:nogroup
EXPOSE 8080 80/udp 9000-9001
VOLUME /data ["/cache"]
VOLUME ["/cache2"]
STOPSIGNAL SIGINT
HEALTHCHECK --interval=30s --timeout=5s --retries=3 CMD wget -q -O- http://localhost/ || exit 1
SHELL ["/bin/sh", "-e", "-c"]
ENTRYPOINT ["/bin/echo"]
CMD echo $A
ONBUILD RUN echo triggered
ARG V=1
"""
    r = build(ig, context(tmp_path / "c", dockerfile), "-t", "meta")
    assert r.rc == 0, r.err
    cfg = image_config(svc, "meta")
    c = cfg["config"]
    assert c["Env"] == [
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "A=b",
        "C=d e",
        "OLD=form with spaces",
    ]
    assert c["Labels"] == {"org.example.x": "1", "y": "2"}
    assert c["WorkingDir"] == "/app/sub" and c["User"] == "nobody:nogroup"
    assert c["ExposedPorts"] == {"80/udp": {}, "8080/tcp": {}, "9000/tcp": {}, "9001/tcp": {}}
    assert c["Volumes"] == {"/data": {}, "[/cache]": {}, "/cache2": {}}  # not JSON: split, then unquoted
    assert c["StopSignal"] == "SIGINT"
    assert c["Healthcheck"] == {
        "Test": ["CMD-SHELL", "wget -q -O- http://localhost/ || exit 1"],
        "Interval": 30_000_000_000,
        "Timeout": 5_000_000_000,
        "Retries": 3,
    }
    assert c["Shell"] == ["/bin/sh", "-e", "-c"]
    assert c["Entrypoint"] == ["/bin/echo"]
    assert c["Cmd"] == ["/bin/sh", "-e", "-c", "echo $A"]
    assert c["OnBuild"] == ["RUN echo triggered"]
    assert cfg["author"] == "Jane <jane@example.com>"
    assert created_by(svc, "meta")[1:] == [
        NOP + " MAINTAINER Jane <jane@example.com>",
        NOP + " ENV A=b C=d e",
        NOP + " ENV OLD=form with spaces",
        NOP + " LABEL org.example.x=1 y=2",
        NOP + "WORKDIR /app",
        NOP + "WORKDIR /app/sub",
        NOP + " USER nobody:nogroup",
        NOP + " EXPOSE 80/udp 8080 9000-9001",
        NOP + " VOLUME [/data [/cache]]",
        NOP + " VOLUME [/cache2]",
        NOP + " STOPSIGNAL SIGINT",
        NOP + " HEALTHCHECK &{Test:[CMD-SHELL wget -q -O- http://localhost/ || exit 1] Interval:30s Timeout:5s"
        " StartPeriod:0s StartInterval:0s Retries:3}",
        "/bin/sh -e -c #(nop)  SHELL [/bin/sh -e -c]",  # the new shell already
        '/bin/sh -e -c #(nop)  ENTRYPOINT ["/bin/echo"]',
        '/bin/sh -e -c #(nop)  CMD ["/bin/sh" "-e" "-c" "echo $A"]',
        "/bin/sh -e -c #(nop)  ONBUILD RUN echo triggered",
        "/bin/sh -e -c #(nop)  ARG V=1",
    ]
    history = cfg["history"][1:]
    assert [bool(h.get("empty_layer")) for h in history] == [True] * 4 + [False, False] + [True] * 11
    assert exists(svc, "meta", "/app/sub")
    assert "author" not in history[0] or history[0]["author"] == "Jane <jane@example.com>"


def test_output_and_intermediate_images_form_a_chain(ig, svc: Services, busybox: str, tmp_path: Path) -> None:
    r = build(ig, context(tmp_path / "c", "FROM busybox\nENV A=1\nLABEL b=2\n"), "-t", "chain")
    assert r.rc == 0, r.err
    lines = r.out.splitlines()
    assert lines[0] == "Sending build context to Docker daemon  2.048kB"
    assert steps(r.out)[1:] == [
        "Step 1/3 : FROM busybox",
        "Step 2/3 : ENV A=1",
        "Step 3/3 : LABEL b=2",
        "Successfully tagged chain:latest",
    ]
    running = [line for line in lines if line.startswith(" ---> Running in ")]
    removed = [line for line in lines if line.startswith(" ---> Removed intermediate container ")]
    assert len(running) == len(removed) == 2
    assert [x[-12:] for x in running] == [x[-12:] for x in removed]
    final = image(svc, "chain")
    assert lines[-2] == f"Successfully built {final.id[7:19]}"
    parent = svc.images.get(final.parent or "")
    assert parent.parent == busybox
    assert svc.containers.containers() == []  # --rm: none left


def test_cache_hits_and_misses(ig, svc: Services, busybox: str, tmp_path: Path) -> None:
    ctx = context(tmp_path / "c", "FROM busybox\nARG X=1\nENV A=$X\nCOPY f /f\nLABEL l=1\n", {"f": "one"})
    first = build(ig, ctx)
    assert first.rc == 0, first.err
    again = build(ig, ctx)
    assert again.out.count(" ---> Using cache") == 4
    assert again.out.splitlines()[-1] == first.out.splitlines()[-1]
    changed_arg = build(ig, ctx, "--build-arg", "X=2")
    assert changed_arg.out.count(" ---> Using cache") == 1  # ARG hits, ENV A=2 misses, then no more probes
    context(ctx, None, {"f": "two"})
    changed_file = build(ig, ctx)
    assert changed_file.out.count(" ---> Using cache") == 2  # ARG, ENV; COPY misses
    context(ctx, "FROM busybox\nARG X=1\nCOPY f /f\nENV A=$X\nLABEL l=1\n")
    reordered = build(ig, ctx)
    assert reordered.out.count(" ---> Using cache") == 1
    no_cache = build(ig, ctx, "--no-cache")
    assert " ---> Using cache" not in no_cache.out and no_cache.rc == 0


def test_cache_hit_needs_the_same_parent(ig, svc: Services, busybox: str, tmp_path: Path) -> None:
    build(ig, context(tmp_path / "a", "FROM busybox\nENV A=1\nENV B=2\n"))
    r = build(ig, context(tmp_path / "b", "FROM busybox\nENV X=0\nENV B=2\n"))
    assert " ---> Using cache" not in r.out


def test_copy_history_and_files(ig, svc: Services, busybox: str, tmp_path: Path) -> None:
    ctx = context(
        tmp_path / "c",
        "FROM busybox\nCOPY hello.txt /hello.txt\nCOPY dir /opt/dir\nCOPY hello.txt dir/a /multi/\n"
        "COPY *.txt /txt/\nWORKDIR /w\nCOPY hello.txt rel\n",
        {"hello.txt": "hello\n", "dir/a": "a\n", "dir/sub/b": "b\n", "other.txt": "o"},
    )
    r = build(ig, ctx, "-t", "cp")
    assert r.rc == 0, r.err
    h = created_by(svc, "cp")[1:]
    assert h[0].startswith(NOP + "COPY file:") and h[0].endswith(" in /hello.txt ")
    assert h[1].startswith(NOP + "COPY dir:") and h[1].endswith(" in /opt/dir ")
    assert h[2].startswith(NOP + "COPY multi:") and h[2].endswith(" in /multi/ ")
    assert h[3].startswith(NOP + "COPY multi:") and h[3].endswith(" in /txt/ ")
    assert h[5].endswith(" in rel ")
    assert read(svc, "cp", "/hello.txt") == b"hello\n"
    assert read(svc, "cp", "/opt/dir/sub/b") == b"b\n"
    assert read(svc, "cp", "/multi/a") == b"a\n" and read(svc, "cp", "/multi/hello.txt") == b"hello\n"
    assert read(svc, "cp", "/txt/other.txt") == b"o"
    assert read(svc, "cp", "/w/rel") == b"hello\n"
    st = stat(svc, "cp", "/hello.txt")
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777, st.st_mtime_ns // 10**9) == (0, 0, 0o644, 1600000000)
    assert "Running in" not in r.out.split("COPY hello.txt /hello.txt")[1].split("Step 3")[0]


def test_copy_chown_chmod_and_heredoc(ig, svc: Services, busybox: str, tmp_path: Path) -> None:
    dockerfile = (
        "FROM busybox\nENV WHO=world\nCOPY --chown=nobody:nogroup f /owned\nCOPY --chown=1234 f /numeric\n"
        "COPY --chmod=0751 f /mode\nCOPY <<EOF /etc/motd\nhello $WHO\nEOF\nCOPY <<'EOF' /raw\nhello $WHO\nEOF\n"
    )
    r = build(ig, context(tmp_path / "c", dockerfile, {"f": "x"}), "-t", "own")
    assert r.rc == 0, r.err
    assert (stat(svc, "own", "/owned").st_uid, stat(svc, "own", "/owned").st_gid) == (65534, 65534)
    assert (stat(svc, "own", "/numeric").st_uid, stat(svc, "own", "/numeric").st_gid) == (1234, 1234)
    assert stat(svc, "own", "/mode").st_mode & 0o7777 == 0o751
    assert read(svc, "own", "/etc/motd") == b"hello world\n"
    assert read(svc, "own", "/raw") == b"hello $WHO\n"
    assert created_by(svc, "own")[2].startswith(NOP + "COPY --chown=nobody:nogroup file:")
    assert created_by(svc, "own")[4].startswith(NOP + "COPY --chmod=0751 file:")


@functools.cache
def _archive(kind: str) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as t:
        for name, data in (("pkg/bin/tool", b"#!/bin/sh\necho tool\n"), ("pkg/README", b"read me\n")):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime, info.uid = len(data), 0o755, 1500000000, 42
            t.addfile(info, io.BytesIO(data))
    data = raw.getvalue()
    return {"tar": data, "gz": gzip.compress(data), "bz2": bz2.compress(data), "xz": lzma.compress(data)}[kind]


@pytest.mark.parametrize("kind", ["tar", "gz", "bz2", "xz"])
def test_add_extracts_local_archives(ig, svc: Services, busybox: str, tmp_path: Path, kind: str) -> None:
    ctx = context(
        tmp_path / "c", f"FROM busybox\nADD a.{kind} /opt/\nCOPY a.{kind} /kept/\n", {f"a.{kind}": _archive(kind)}
    )
    r = build(ig, ctx, "-t", "add")
    assert r.rc == 0, r.err
    assert read(svc, "add", "/opt/pkg/bin/tool") == b"#!/bin/sh\necho tool\n"
    st = stat(svc, "add", "/opt/pkg/bin/tool")
    assert (st.st_uid, st.st_mode & 0o777, st.st_mtime_ns // 10**9) == (42, 0o755, 1500000000)
    assert read(svc, "add", f"/kept/a.{kind}") == _archive(kind)  # COPY never extracts
    assert created_by(svc, "add")[1].startswith(NOP + "ADD file:")


@pytest.mark.parametrize(
    ("dockerfile", "message"),
    [
        (
            "FROM busybox\nCOPY missing /x\n",
            NOT_FOUND + "stat missing: file does not exist",
        ),
        (
            "FROM busybox\nCOPY secret /x\n",
            NOT_FOUND + "stat secret: file does not exist",
        ),
        (
            "FROM busybox\nADD https://example.com/a.tar.gz /\n",
            "ADD failed: https://example.com/a.tar.gz: a URL or git source needs the network",
        ),
        ("FROM busybox\nCOPY https://example.com/a /\n", "COPY failed: source can't be a URL for COPY"),
        (
            "FROM busybox\nCOPY f g /x\n",
            "When using COPY with more than one source file, the destination must be a directory and end with a /",
        ),
        (
            "FROM busybox\nCOPY --chown=nosuchuser f /x\n",
            "unable to convert uid/gid chown string to host mapping: "
            "can't find uid for user nosuchuser: no such user: nosuchuser",
        ),
        ("FROM busybox\nCOPY nomatch* /x/\n", "COPY failed: no source files were specified"),
        ("FROM busybox\nRUN --mount=type=cache,target=/x true\n", "the --mount option requires BuildKit"),
        ("FROM busybox\nCOPY --exclude=x f /x\n", "the --exclude option requires BuildKit"),
        ("FROM busybox\nSTOPSIGNAL SIGWAT\n", "Invalid signal: SIGWAT"),
        ("FROM busybox\nEXPOSE 80/xyz\n", "invalid proto: xyz"),
        ("FROM busybox\nENV A=${B:-x\n", "failed to process \"${B:-x\": syntax error: missing '}'"),
        ("FROM busybox\nCOPY --from=nosuchstage f /x\n", "invalid from flag value nosuchstage"),
        ("FROM busybox\nCOPY --from=0 f /x\n", "invalid from flag value 0: refers to current build stage"),
    ],
)
def test_errors_are_one_line(ig, svc: Services, busybox: str, tmp_path: Path, dockerfile: str, message: str) -> None:
    ctx = context(tmp_path / "c", dockerfile, {"f": "x", "g": "y", "secret": "s", ".dockerignore": "secret\n"})
    r = build(ig, ctx)
    assert r.rc == 1
    assert message in r.err
    assert len(r.err.strip().splitlines()) == 1


def _hostile_tar(kind: str) -> bytes:
    """Archives that try to leave ADD's destination, nest too deep, or lie about their size."""

    def reg(name: str, data: bytes = b"x") -> tuple[tarfile.TarInfo, bytes | None]:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        return info, data

    def link(name: str, target: str, kind: bytes) -> tuple[tarfile.TarInfo, bytes | None]:
        info = tarfile.TarInfo(name)
        info.type, info.linkname = kind, target
        return info, None

    members = {
        "dotdot": [reg("../../evil")],
        "through": [link("a", "/etc", tarfile.SYMTYPE), reg("a/evil")],
        "hardlink": [link("a", "/etc", tarfile.SYMTYPE), link("h", "a/passwd", tarfile.LNKTYPE)],
        "deep": [reg("d/" * 200 + "f")],
        "long": [reg("n" * 200 + "/" + "n" * 250 + "/" + ("x" * 250 + "/") * 16 + "f")],
    }
    raw = io.BytesIO()
    if kind == "liar":
        big = tarfile.TarInfo("big")
        big.size = 1 << 40  # a terabyte, declared; 10 kB follow
        raw.write(big.tobuf(format=tarfile.PAX_FORMAT) + b"x" * 10000)
        return raw.getvalue()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as t:
        for info, data in members[kind]:
            t.addfile(info, io.BytesIO(data) if data is not None else None)
    return raw.getvalue()


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("dotdot", "invalid archive entry '../../evil': outside the destination"),
        ("through", "invalid archive entry 'a/evil': through a link outside the destination"),
        ("hardlink", "invalid hardlink 'a/passwd': outside the destination"),
        ("deep", "…: nested deeper than 128 directories"),
        ("long", "…: file name too long"),
        ("liar", "unexpected end of data"),
    ],
)
def test_add_of_a_hostile_archive_is_one_line(
    ig, svc: Services, busybox: str, tmp_path: Path, kind: str, message: str
) -> None:
    ctx = context(tmp_path / "c", "FROM busybox\nADD a.tar /x/\n", {"a.tar": _hostile_tar(kind)})
    r = build(ig, ctx, "-t", "hostile")
    assert r.rc == 1
    assert r.err.startswith("failed to copy files: ") and message in r.err
    assert len(r.err.strip().splitlines()) == 1 and len(r.err) < 300
    assert svc.containers.containers() == []  # the step's container went
    assert not exists(svc, busybox, "/evil") and not exists(svc, busybox, "/etc/evil")


def test_copy_follows_links_inside_the_context_only(ig, svc: Services, busybox: str, tmp_path: Path) -> None:
    """A link is followed as if the context were `/` (moby's FollowSymlinkInScope): one to the
    host's /etc/passwd, or climbing out with `..`, names a file the context does not have."""
    ctx = context(tmp_path / "c", None, {"etc/hostname": "in the context\n"})
    (ctx / "abs").symlink_to("/etc/passwd")
    (ctx / "up").symlink_to("../../../../../../etc")
    (ctx / "host").symlink_to("/etc/hostname")
    for src in ("abs", "up/passwd"):
        (ctx / "Dockerfile").write_text(f"FROM busybox\nCOPY {src} /x\n")
        r = build(ig, ctx)
        assert r.rc == 1 and r.err == f"{NOT_FOUND}stat {src}: file does not exist\n"
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY host /x\nADD up/hostname /y\n")
    r = build(ig, ctx, "-t", "inscope")
    assert r.rc == 0, r.err
    assert read(svc, "inscope", "/x") == read(svc, "inscope", "/y") == b"in the context\n"


def test_copy_of_a_too_deep_directory_is_one_line(ig, svc: Services, busybox: str, tmp_path: Path) -> None:
    ctx = context(tmp_path / "c", "FROM busybox\nCOPY deep /deep\n", {"deep/" + "d/" * 130 + "f": "x"})
    r = build(ig, ctx)
    assert r.rc == 1
    assert r.err.startswith("failed to copy files: '/deep/d/d/") and "nested deeper than 128 directories" in r.err
    assert svc.containers.containers() == []


def test_a_long_dockerfile_is_parsed_without_recursion(ig, busybox: str, tmp_path: Path) -> None:
    """5,000 lines: a RUN continued over all of them, 5,000 ARGs, ONBUILD chained 5,000 deep, and
    a syntax error on the last line, which is named; nothing runs before the whole file parses."""
    lines = ["FROM busybox", "RUN echo \\", *[f"  {i} \\" for i in range(5000)], "  end"]
    lines += [f"ARG A{i}={i}" for i in range(5000)] + ["COPY"]
    r = build(ig, context(tmp_path / "c", "\n".join(lines) + "\n"))
    assert r.rc == 1 and "Step 1/" not in r.out
    assert r.err == (
        "Error response from daemon: dockerfile parse error on line 10004: COPY requires at least two "
        "arguments, but only one was provided. Destination could not be determined\n"
    )
    r = build(ig, context(tmp_path / "d", "FROM busybox\n" + "ONBUILD " * 5000 + "RUN x\n"))
    assert r.rc == 1
    assert r.err.endswith("line 2: Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed\n")


def test_missing_base_image_is_pulled(ig, busybox: str, tmp_path: Path) -> None:
    """An image the store lacks is pulled, as dockerd does; with no registry in reach, that fails."""
    r = build(ig, context(tmp_path / "c", "FROM nosuchbase\nENV A=1\n"))
    assert r.rc == 1
    assert "Step 1/2 : FROM nosuchbase" in r.out and "Step 2/2" not in r.out
    assert "nosuchbase" in r.err or "registry-1.docker.io" in r.err  # Docker Hub was asked
    assert len(r.err.strip().splitlines()) == 1


def test_syntax_error_names_the_line(ig, busybox: str, tmp_path: Path) -> None:
    r = build(ig, context(tmp_path / "c", "FROM busybox\n\nCOPY only-one-arg\n"))
    assert r.rc == 1
    assert r.err == (
        "Error response from daemon: dockerfile parse error on line 3: COPY requires at least two arguments, "
        "but only one was provided. Destination could not be determined\n"
    )


def test_multi_stage_copy_from(ig, svc: Services, busybox: str, tmp_path: Path) -> None:
    dockerfile = (
        "FROM busybox AS build\nCOPY --chown=123:456 src /src\nWORKDIR /out\nCOPY src/a result\n"
        "FROM scratch AS empty\n"
        "FROM busybox\nCOPY --from=build /out/result /copied\nCOPY --from=0 /src /all\n"
        "COPY --from=busybox /etc/passwd /passwd\n"
    )
    r = build(ig, context(tmp_path / "c", dockerfile, {"src/a": "A", "src/b": "B"}), "-t", "multi")
    assert r.rc == 0, r.err
    assert read(svc, "multi", "/copied") == b"A"
    assert read(svc, "multi", "/all/b") == b"B"
    st = stat(svc, "multi", "/all/b")
    assert (st.st_uid, st.st_gid) == (123, 456)  # --from keeps the owners
    assert read(svc, "multi", "/passwd").startswith(b"root:x:0:0")
    assert r.out.count("Step ") == 9


def test_target_and_labels(ig, svc: Services, busybox: str, tmp_path: Path) -> None:
    ctx = context(tmp_path / "c", "FROM busybox AS one\nENV STAGE=1\nFROM one AS two\nENV STAGE=2\n")
    r = build(ig, ctx, "--target", "one", "--label", "b=2", "--label", "a=1", "-t", "tgt")
    assert r.rc == 0, r.err
    assert "Step 4/4 : LABEL b=2" in r.out and "Step 3/4 : LABEL a=1" in r.out
    c = image_config(svc, "tgt")["config"]
    assert "STAGE=1" in c["Env"] and c["Labels"] == {"a": "1", "b": "2"}
    missing = build(ig, ctx, "--target", "nope")
    assert missing.rc == 1 and 'target stage "nope" could not be found' in missing.err


def test_onbuild_runs_in_the_child_build(ig, svc: Services, busybox: str, tmp_path: Path) -> None:
    build(ig, context(tmp_path / "p", "FROM busybox\nONBUILD COPY f /from-trigger\nONBUILD ENV T=1\n"), "-t", "parent")
    r = build(ig, context(tmp_path / "c", "FROM parent\nENV AFTER=1\n", {"f": "trig"}), "-t", "child")
    assert r.rc == 0, r.err
    assert "# Executing 2 build triggers" in r.out
    assert read(svc, "child", "/from-trigger") == b"trig"
    c = image_config(svc, "child")["config"]
    assert c["OnBuild"] is None and "T=1" in c["Env"]


def test_build_args_scoping_and_warning(ig, svc: Services, busybox: str, tmp_path: Path) -> None:
    dockerfile = "ARG BASE=busybox\nARG V=meta\nFROM $BASE\nARG V\nENV V=$V NOT=${UNSET:-dflt} P=${HTTP_PROXY:+set}\n"
    r = build(
        ig,
        context(tmp_path / "c", dockerfile),
        "-t",
        "args",
        "--build-arg",
        "HTTP_PROXY=http://p",
        "--build-arg",
        "UNUSED=1",
    )
    assert r.rc == 0, r.err
    assert "[Warning] One or more build-args [UNUSED] were not consumed" in r.out
    env = image_config(svc, "args")["config"]["Env"]
    assert "V=meta" in env and "NOT=dflt" in env and "P=set" in env


def test_dockerignore_keeps_files_out(ig, svc: Services, busybox: str, tmp_path: Path) -> None:
    ctx = context(
        tmp_path / "c",
        "FROM busybox\nCOPY . /ctx\n",
        {".dockerignore": "*.log\n!keep.log\n", "a.log": "", "keep.log": "", "f": ""},
    )
    r = build(ig, ctx, "-t", "ign")
    assert r.rc == 0, r.err
    assert exists(svc, "ign", "/ctx/keep.log") and exists(svc, "ign", "/ctx/f")
    assert not exists(svc, "ign", "/ctx/a.log")
    assert exists(svc, "ign", "/ctx/Dockerfile") and exists(svc, "ign", "/ctx/.dockerignore")


def test_dockerfile_from_stdin_and_quiet(ig, svc: Services, busybox: str, tmp_path: Path) -> None:
    ctx = context(tmp_path / "c", None, {"f": "x"})
    r = ig("build", "-q", "-f", "-", "-t", "stdin", str(ctx), stdin="FROM busybox\nCOPY f /f\n")
    assert r.rc == 0, r.err
    assert r.out == image(svc, "stdin").id + "\n"
    assert not exists(svc, "stdin", "/.dockerfile")


def test_scratch_image(ig, svc: Services, tmp_path: Path) -> None:
    r = build(ig, context(tmp_path / "c", 'FROM scratch\nCOPY f /f\nCMD ["/f"]\n', {"f": "x"}), "-t", "scr")
    assert r.rc == 0, r.err
    img = image(svc, "scr")
    assert len(img.diff_ids) == 1 and img.parent is not None
    assert svc.images.get(img.parent).parent is None
    assert "container" not in svc.images.get(img.parent).config  # COPY commits a layer, not a container


def test_source_date_epoch_gives_the_same_layers(ig, svc: Services, busybox: str, tmp_path: Path) -> None:
    ctx = context(tmp_path / "c", "FROM busybox\nCOPY d /new/dir\nWORKDIR /w\n", {"d/f": "x"})
    a = build(ig, ctx, "--no-cache", "--build-arg", "SOURCE_DATE_EPOCH=1700000000", "-t", "a")
    b = build(ig, ctx, "--no-cache", "--build-arg", "SOURCE_DATE_EPOCH=1700000000", "-t", "b")
    assert a.rc == b.rc == 0
    assert "were not consumed" not in a.out
    assert image(svc, "a").diff_ids == image(svc, "b").diff_ids
    assert stat(svc, "a", "/new").st_mtime_ns == 1700000000 * 10**9
