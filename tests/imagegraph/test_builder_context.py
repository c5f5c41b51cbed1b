"""The build context: the tar the client sends (.dockerignore, -f -, stdin), and the daemon's
unpacked copy with its tarsums, the checksums COPY's cache keys are made of."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from imagegraph.builder.context import ContextError, detect_context_type, is_archive, prepare
from imagegraph.builder.remotecontext import ContextError as DaemonContextError
from imagegraph.builder.remotecontext import detect, from_archive

from .build_helpers import context


def _names(body) -> list[str]:
    with tarfile.open(fileobj=body, mode="r|") as t:
        return [m.name + ("/" if m.isdir() else "") for m in t]


def test_directory_tar_honours_dockerignore(tmp_path: Path) -> None:
    ctx = context(
        tmp_path / "c",
        "FROM scratch\n",
        {
            ".dockerignore": "# comment\n*.log\n!keep.log\nsecret/\nDockerfile\n.dockerignore\n",
            "a.txt": "a",
            "x.log": "x",
            "keep.log": "k",
            "secret/key": "s",
            "docs/README.md": "r",
        },
    )
    c = prepare(str(ctx), "", None)
    assert c.dockerfile == "Dockerfile"
    names = _names(c.body)
    assert names == [".dockerignore", "Dockerfile", "a.txt", "docs/", "docs/README.md", "keep.log"]


def test_exception_inside_an_excluded_directory(tmp_path: Path) -> None:
    ctx = context(
        tmp_path / "c", "FROM scratch\n", {".dockerignore": "docs\n!docs/keep.md\n", "docs/a": "", "docs/keep.md": ""}
    )
    assert _names(prepare(str(ctx), "", None).body) == [".dockerignore", "Dockerfile", "docs/keep.md"]


def test_owners_are_root_and_sizes_exact(tmp_path: Path) -> None:
    ctx = context(tmp_path / "c", "FROM scratch\n", {"f": "hello\n"})
    c = prepare(str(ctx), "", None)
    assert c.size == len(c.body.read())
    c.body.seek(0)
    with tarfile.open(fileobj=c.body, mode="r|") as t:
        for m in t:
            assert (m.uid, m.gid, m.mtime) == (0, 0, 1600000000)


def test_dockerfile_from_stdin_gets_a_random_name(tmp_path: Path) -> None:
    ctx = context(tmp_path / "c", None, {"f": "x"})
    c = prepare(str(ctx), "-", io.BytesIO(b"FROM scratch\nCOPY f /\n"))
    assert c.dockerfile.startswith(".dockerfile.") and len(c.dockerfile) == len(".dockerfile.") + 20
    with tarfile.open(fileobj=c.body, mode="r|") as t:
        files = {m.name: t.extractfile(m).read() for m in t if m.isreg()}  # type: ignore[union-attr]
    assert files[c.dockerfile] == b"FROM scratch\nCOPY f /\n"
    assert files[".dockerignore"] == f".dockerignore\n{c.dockerfile}\n".encode()


def test_stdin_dockerfile_is_the_whole_context() -> None:
    c = prepare("-", "", io.BytesIO(b"FROM scratch\n"))
    assert c.dockerfile == "Dockerfile" and _names(c.body) == ["Dockerfile"]


def test_stdin_tar_compressed(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        data = b"FROM scratch\n"
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    assert is_archive(buf.getvalue()[:1024])
    c = prepare("-", "", io.BytesIO(buf.getvalue()))
    assert _names(c.body) == ["Dockerfile"]


@pytest.mark.parametrize(
    ("spec", "dockerfile", "message"),
    [
        ("/no/such/dir", "", 'unable to prepare context: path "/no/such/dir" not found'),
        ("https://example.com/repo.git", "", "needs the network"),
        ("-", "-", "can't use stdin for both build context and dockerfile"),
    ],
)
def test_context_errors(spec: str, dockerfile: str, message: str) -> None:
    with pytest.raises(ContextError, match=message):
        prepare(spec, dockerfile, io.BytesIO(b""))


def test_missing_dockerfile(tmp_path: Path) -> None:
    ctx = context(tmp_path / "c", None, {"f": "x"})
    with pytest.raises(ContextError, match="cannot locate Dockerfile"):
        prepare(str(ctx), "", None)
    assert detect_context_type(str(ctx)) == "local"


def _tar(entries: list[tuple[str, bytes | None]]) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 1600000000
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                t.addfile(info)
            else:
                info.size, info.mode = len(data), 0o644
                t.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


def test_tarsum_of_a_file_is_moby_s() -> None:
    """tarsum v1: sha256 of name, mode, uid, gid, size, typeflag, linkname, (blank) owner names,
    devmajor, devminor (no mtime), then the bytes."""
    ctx = from_archive(_tar([("dir/", None), ("dir/f.txt", b"hello\n")]))
    try:
        header = "namedir/f.txtmode420uid0gid0size6typeflag0linknameunamegnamedevmajor0devminor0"
        assert ctx.hash("dir/f.txt") == hashlib.sha256(header.encode() + b"hello\n").hexdigest()
        dir_header = "namedir/mode493uid0gid0size0typeflag5linknameunamegnamedevmajor0devminor0"
        assert ctx.hash("dir") == hashlib.sha256(dir_header.encode()).hexdigest()
        assert ctx.hash("missing") == "missing"
    finally:
        ctx.close()


def test_tarsum_ignores_mtime_but_not_content() -> None:
    a = from_archive(_tar([("f", b"one")]))
    b = from_archive(_tar([("f", b"two")]))
    try:
        assert a.hash("f") != b.hash("f")
    finally:
        a.close()
        b.close()


def test_daemon_drops_dockerfile_and_dockerignore_when_ignored() -> None:
    body = _tar([("Dockerfile", b"FROM scratch\n"), (".dockerignore", b"Dockerfile\n.dockerignore\n"), ("f", b"x")])
    ctx, result = detect(body, "Dockerfile")
    try:
        assert [c.value for c in result.ast.children] == ["FROM"]
        assert sorted(p.name for p in Path(ctx.root).iterdir()) == ["f"]
    finally:
        ctx.close()


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([("f", b"x")], "Cannot locate specified Dockerfile: Dockerfile"),
        ([("Dockerfile", b"")], r"the Dockerfile \(Dockerfile\) cannot be empty"),
        (
            [("Dockerfile", b"FROM a\nRUN <<EOF\n")],
            "failed to parse Dockerfile: dockerfile parse error on line 2: unterminated heredoc",
        ),
        ([("../evil", b"x")], "outside the context"),
    ],
)
def test_daemon_context_errors(entries: list[tuple[str, bytes | None]], message: str) -> None:
    with pytest.raises(DaemonContextError, match=message):
        detect(_tar(entries), "Dockerfile")


def test_lowercase_dockerfile_is_found() -> None:
    ctx, result = detect(_tar([("dockerfile", b"FROM scratch\n")]), "Dockerfile")
    ctx.close()
    assert result.ast.children[0].value == "FROM"


def _hostile(kind: str) -> io.BytesIO:
    """Context tars that lie: a hard link through a symlink to the host, a declared terabyte."""
    buf = io.BytesIO()
    if kind == "liar":
        big = tarfile.TarInfo("big")
        big.size = 1 << 40
        buf.write(big.tobuf(format=tarfile.PAX_FORMAT) + b"x" * 10000)
    else:
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
            link = tarfile.TarInfo("a")
            link.type, link.linkname = tarfile.SYMTYPE, "/etc"
            hard = tarfile.TarInfo("h")
            hard.type, hard.linkname = tarfile.LNKTYPE, "a/passwd"
            t.addfile(link)
            t.addfile(hard)
    buf.seek(0)
    return buf


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("hardlink", "invalid build context: hard link 'h' to 'a/passwd' leaves the context"),
        ("liar", "failed to unpack the build context: unexpected end of data"),
    ],
)
def test_hostile_context_is_one_line(kind: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(DaemonContextError) as err:
        from_archive(_hostile(kind), tmp_path)
    assert str(err.value) == message
    assert list(tmp_path.iterdir()) == []  # nothing of it is left
