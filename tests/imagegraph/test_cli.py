"""The imagegraph command, end to end: Docker's syntax, output and errors; the seed's reuse chain."""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from imagegraph import cli, cli_distribution
from imagegraph.digest import canonical_config_json, chain_id
from imagegraph.service import Services

from .conftest import Result, make_rootfs


def one_line_error(r, text: str | None = None) -> None:
    assert r.rc != 0
    assert r.err.count("\n") == 1 and r.err.endswith("\n"), r.err
    assert "Traceback" not in r.err
    if text is not None:
        assert r.err == text + "\n"


def imported(ig, rootfs: Path, name: str = "base") -> str:
    r = ig("import", str(rootfs), name, "-c", 'CMD ["/bin/sh"]')
    assert r.rc == 0, r.err
    return r.out.strip()


def commit_step(ig, svc_root: Path, image: str, name: str, files: dict[str, str], cmd: str) -> str:
    """create → write into the top layer → commit: one step of a classic build."""
    r = ig("create", "--name", f"build-{name.replace(':', '-')}", image, "/bin/sh", "-c", cmd)
    assert r.rc == 0, r.err
    cid = r.out.strip()
    s = Services.open(svc_root)
    top = s.layout.layer_dir(s.layers.get_mount(cid).mount_id) / "diff"
    for rel, content in files.items():
        p = top / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(content)
    r = ig("commit", cid, name)
    assert r.rc == 0, r.err
    assert ig("rm", cid).rc == 0
    return r.out.strip()


# ---- import, images, inspect, tag, history -------------------------------------------


def test_import_directory_prints_the_id(ig, rootfs: Path, root: Path) -> None:
    r = ig("import", str(rootfs), "base:1.0", "-m", "from a dir")
    assert r.rc == 0 and r.err == ""
    image_id = r.out.strip()
    assert image_id.startswith("sha256:") and len(image_id) == 71
    content = root / "image" / "layerfs" / "imagedb" / "content" / "sha256" / image_id[7:]
    cfg = json.loads(content.read_bytes())
    assert cfg["comment"] == "from a dir" and cfg["history"] == [
        {"created": "2023-11-14T22:13:20Z", "comment": "from a dir"}
    ]
    repos = json.loads((root / "image" / "layerfs" / "repositories.json").read_text())
    assert repos == {"Repositories": {"base": {"base:1.0": image_id}}}


def test_import_tar_gzip_and_stdin_give_the_same_image(ig, rootfs: Path, tmp_path: Path) -> None:
    from imagegraph.archive import write_layer_tar

    plain = tmp_path / "rootfs.tar"
    with open(plain, "wb") as f:
        write_layer_tar(rootfs, f)
    gz = tmp_path / "rootfs.tar.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    a = ig("import", str(rootfs)).out
    b = ig("import", str(plain)).out
    c = ig("import", str(gz)).out
    assert a == b == c


def test_import_refuses_a_tar_that_escapes(ig, tmp_path: Path, root: Path) -> None:
    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as tf:
        ti = tarfile.TarInfo("../../etc/evil")
        ti.size = 1
        tf.addfile(ti, io.BytesIO(b"x"))
    r = ig("import", str(evil), "evil")
    one_line_error(r)
    assert r.err.startswith("Error response from daemon: refusing to apply layer")
    assert ig("images", "-q", "-a").out == ""
    assert list((root / "layerfs").iterdir()) == []


def test_import_missing_source(ig) -> None:
    one_line_error(
        ig("import", "/nonexistent/rootfs"),
        "Error response from daemon: open /nonexistent/rootfs: no such file or directory",
    )


def test_images_table_quiet_json_and_filters(ig, rootfs: Path) -> None:
    image_id = imported(ig, rootfs)
    assert ig("tag", "base", "localhost:5000/team/base:v2").rc == 0
    r = ig("images")
    lines = r.out.splitlines()
    assert lines[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    rows = [line.split() for line in lines[1:]]
    assert [r_[:3] for r_ in rows] == [
        ["base", "latest", image_id[7:19]],
        ["localhost:5000/team/base", "v2", image_id[7:19]],
    ]
    assert rows[0][3:6] == ["3", "years", "ago"]
    assert ig("images", "-q").out == f"{image_id[7:19]}\n{image_id[7:19]}\n"
    assert ig("images", "-q", "--no-trunc").out.splitlines()[0] == image_id
    js = [json.loads(x) for x in ig("images", "--format", "json").out.splitlines()]
    assert js[0]["Repository"] == "base" and js[0]["ID"] == image_id[7:19] and js[0]["Tag"] == "latest"
    assert js[0]["CreatedAt"] == "2023-11-14 22:13:20 +0000 UTC" and js[0]["Size"] == "45B"
    assert ig("images", "--filter", "reference=localhost:5000/*/*").out.count("\n") == 2  # header + 1
    assert ig("images", "--filter", "reference=nothing*").out.count("\n") == 1
    assert "DIGEST" in ig("images", "--digests").out
    assert ig("images", "base").out.count("\n") == 2


def test_images_hides_intermediate_images_unless_all(ig, rootfs: Path, root: Path) -> None:
    base = imported(ig, rootfs)
    commit_step(ig, root, "base", "child", {"x": "1"}, "touch x")
    assert ig("rmi", "base").rc == 0  # untag only: child still needs it
    assert base[7:19] not in ig("images").out
    assert base[7:19] in ig("images", "-a").out
    rows = [line.split()[:3] for line in ig("images", "-a").out.splitlines()]
    assert ["<none>", "<none>", base[7:19]] in rows
    assert ig("images").out.splitlines()[0] == "REPOSITORY   TAG       IMAGE ID       CREATED       SIZE"
    dangling = ig("images", "-q", "--filter", "dangling=true").out
    assert dangling == ""  # the untagged base has a child: not dangling


def test_inspect_image_and_container(ig, rootfs: Path, root: Path) -> None:
    image_id = imported(ig, rootfs)
    r = ig("inspect", "base")
    (doc,) = json.loads(r.out)
    assert doc["Id"] == image_id and doc["RepoTags"] == ["base:latest"] and doc["Parent"] == ""
    assert doc["RootFS"]["Type"] == "layers" and len(doc["RootFS"]["Layers"]) == 1
    upper = Path(doc["GraphDriver"]["Data"]["UpperDir"])
    assert doc["GraphDriver"]["Name"] == "layerfs" and (upper / "etc" / "motd").read_text() == "hello\n"
    assert doc["Config"]["Cmd"] == ["/bin/sh"]
    cid = ig("create", "--name", "box", "base").out.strip()
    (c,) = json.loads(ig("inspect", "box").out)
    assert c["Id"] == cid and c["Name"] == "/box"
    data = c["GraphDriver"]["Data"]
    assert set(data) == {"LowerDir", "MergedDir", "UpperDir", "WorkDir"}
    assert data["LowerDir"].split(":")[1] == str(upper)
    assert data["LowerDir"].split(":")[0].endswith("-init/diff")
    r = ig("inspect", "nosuch")
    assert r.out == "[]\n"
    one_line_error(r, "Error: No such object: nosuch")


def test_tag_errors(ig, rootfs: Path) -> None:
    imported(ig, rootfs)
    one_line_error(ig("tag", "nosuch", "x"), "Error response from daemon: No such image: nosuch:latest")
    one_line_error(
        ig("tag", "base", "Upper"),
        'Error parsing reference: "Upper" is not a valid repository/tag: '
        "invalid reference format: repository name (library/Upper) must be lowercase",
    )
    one_line_error(ig("tag", "base", "x@sha256:" + "a" * 64), "refusing to create a tag with a digest reference")
    one_line_error(
        ig("tag", "base", "a" * 64),
        'Error parsing reference: "' + "a" * 64 + '" is not a valid '
        "repository/tag: invalid repository name (" + "a" * 64 + "), cannot specify 64-byte hexadecimal strings",
    )


def test_lookup_by_id_prefix_and_digest(ig, rootfs: Path) -> None:
    image_id = imported(ig, rootfs)
    for ref in (image_id, image_id[7:], image_id[7:12], image_id[:14]):
        (doc,) = json.loads(ig("inspect", "--type", "image", ref).out)
        assert doc["Id"] == image_id


def test_history_rows_and_missing(ig, rootfs: Path, root: Path) -> None:
    base = imported(ig, rootfs)
    child = commit_step(ig, root, "base", "child", {"added": "x" * 2000}, "echo a\tb")
    r = ig("history", "child")
    lines = r.out.splitlines()
    assert lines[0].split() == ["IMAGE", "CREATED", "CREATED", "BY", "SIZE", "COMMENT"]
    assert lines[1].split()[0] == child[7:19] and "/bin/sh -c echo a b" in lines[1] and "2kB" in lines[1]
    assert lines[2].split()[0] == base[7:19]
    assert ig("history", "-q", "child").out == f"{child[7:19]}\n{base[7:19]}\n"
    assert ig("history", "-q", "--no-trunc", "child").out.splitlines() == [child, base]
    raw = ig("history", "-H=false", "child").out
    assert "CREATED AT" in raw and "2023-11-14T22:13:20" in raw and " 2000 " in raw
    # an image with more history than parents (as pulled images are): <missing> below it
    s = Services.open(root)
    cfg = json.loads(s.images.get(base).raw)
    cfg["history"] = [
        {"created": "2020-01-01T00:00:00Z", "created_by": "/bin/sh -c #(nop) ADD file in /"},
        {"created": "2020-01-01T00:00:01Z", "created_by": '/bin/sh -c #(nop)  CMD ["sh"]', "empty_layer": True},
    ]
    pulled = s.images.create(canonical_config_json(cfg))
    rows = ig("history", pulled).out.splitlines()[1:]
    assert rows[0].split()[0] == pulled[7:19] and rows[1].split()[0] == "<missing>"
    assert rows[0].split()[-1] == "0B"
    one_line_error(ig("history", "nosuch"), "Error response from daemon: No such image: nosuch:latest")


# ---- rmi and prune ------------------------------------------------------------------------


def test_rmi_untags_then_deletes_with_layers(ig, rootfs: Path, root: Path) -> None:
    base = imported(ig, rootfs)
    assert ig("tag", "base", "other").rc == 0
    assert ig("rmi", "other").out == "Untagged: other:latest\n"
    layers = json.loads(ig("inspect", "base").out)[0]["RootFS"]["Layers"]
    r = ig("rmi", "base")
    lines = r.out.splitlines()
    assert lines[0] == "Untagged: base:latest"
    assert lines[1] == f"Deleted: {base}"
    assert len(lines) == 3 and lines[2] == f"Deleted: {chain_id(layers)}"
    assert list((root / "layerfs").iterdir()) == []
    assert ig("images", "-a", "-q").out == ""


def test_rmi_prunes_untagged_parents(ig, rootfs: Path, root: Path) -> None:
    base = imported(ig, rootfs)
    mid = commit_step(ig, root, "base", "mid", {"m": "1"}, "step 1")
    top = commit_step(ig, root, "mid", "top", {"t": "2"}, "step 2")
    assert ig("rmi", "mid").out == "Untagged: mid:latest\n"
    r = ig("rmi", "top")
    deleted = [x.split()[1] for x in r.out.splitlines() if x.startswith("Deleted:")]
    assert r.out.splitlines()[0] == "Untagged: top:latest"
    assert deleted[0] == top and mid in deleted  # the untagged parent went too
    assert base not in deleted  # tagged: the recursion stops there
    assert len(deleted) == 4  # two images, two layers
    assert ig("images", "-q").out.strip() == base[7:19]


def test_rmi_no_prune_keeps_parents(ig, rootfs: Path, root: Path) -> None:
    imported(ig, rootfs)
    mid = commit_step(ig, root, "base", "mid", {"m": "1"}, "s1")
    commit_step(ig, root, "mid", "top", {"t": "2"}, "s2")
    ig("rmi", "mid")
    r = ig("rmi", "--no-prune", "top")
    assert mid not in r.out
    assert mid[7:19] in ig("images", "-a", "-q").out


def test_rmi_conflicts(ig, rootfs: Path, root: Path) -> None:
    base = imported(ig, rootfs)
    cid = ig("create", "--name", "user", "base").out.strip()
    one_line_error(
        ig("rmi", "base"),
        f"Error response from daemon: conflict: unable to remove repository reference "
        f'"base" (must force) - container {cid[:12]} is using its referenced image '
        f"{base[7:19]}",
    )
    one_line_error(
        ig("rmi", base[7:19]),
        f"Error response from daemon: conflict: unable to delete {base[7:19]} "
        f"(must be forced) - image is being used by stopped container {cid[:12]}",
    )
    commit_step(ig, root, "base", "kid", {"k": "1"}, "s")
    ig("rm", "user")
    one_line_error(
        ig("rmi", base[7:19]),
        f"Error response from daemon: conflict: unable to delete {base[7:19]} "
        "(cannot be forced) - image has dependent child images",
    )
    one_line_error(
        ig("rmi", "-f", base[7:19]),
        f"Error response from daemon: conflict: unable to delete "
        f"{base[7:19]} (cannot be forced) - image has dependent child images",
    )
    assert ig("inspect", "base").rc == 0  # nothing changed
    one_line_error(ig("rmi", "nosuch"), "Error response from daemon: No such image: nosuch:latest")
    one_line_error(
        ig("rmi", "Bad"),
        "Error response from daemon: invalid reference format: repository name (library/Bad) must be lowercase",
    )


def test_rmi_force_untags_an_image_in_use(ig, rootfs: Path) -> None:
    imported(ig, rootfs)
    ig("create", "--name", "user", "base")
    base = json.loads(ig("inspect", "base").out)[0]["Id"]
    r = ig("rmi", "-f", "base")
    # Docker deletes the image; the container's RW layer still holds the layers
    assert r.out == f"Untagged: base:latest\nDeleted: {base}\n"
    assert len(Services.open(Path(os.environ["IMAGEGRAPH_ROOT"])).layers.layers()) == 1


def test_image_prune(ig, rootfs: Path, root: Path) -> None:
    imported(ig, rootfs)
    dangling = commit_step(ig, root, "base", "scratchpad", {"big": "x" * 5000}, "s")
    ig("rmi", "--no-prune", "scratchpad")  # deletes it (no parent pruning needed)
    again = commit_step(ig, root, "base", "again", {"big": "y" * 5000}, "s")
    ig("tag", "again", "keep")
    ig("rmi", "again")  # still tagged keep
    # a dangling image: untagged, no children
    s = Services.open(root)
    s.refs.delete(__import__("imagegraph.reference", fromlist=["x"]).parse_normalized_named("keep"))
    r = ig("image", "prune", "-f")
    assert r.rc == 0
    lines = r.out.splitlines()
    assert lines[0] == "Deleted Images:"
    assert f"deleted: {again}" in lines
    assert lines[-1] == "Total reclaimed space: 5kB"
    assert ig("image", "prune", "-f").out == "Total reclaimed space: 0B\n"
    r = ig("image", "prune", "-a", "-f")
    assert "untagged: base:latest" in r.out and r.out.endswith("\n\nTotal reclaimed space: 45B\n")
    assert ig("images", "-a", "-q").out == ""
    assert dangling


def test_prune_asks_first(ig, rootfs: Path) -> None:
    imported(ig, rootfs)
    r = ig("image", "prune", "-a", stdin="n\n")
    assert "WARNING! This will remove all images without at least one container associated to them." in r.out
    assert ig("images", "-q").out != ""


# ---- containers ----------------------------------------------------------------------------


def test_create_ps_diff_commit_rm(ig, rootfs: Path, root: Path) -> None:
    imported(ig, rootfs)
    r = ig("create", "--name", "web", "base", "/bin/sh", "-c", "echo a long command line here")
    cid = r.out.strip()
    assert len(cid) == 64
    assert ig("ps").out.splitlines() == ["CONTAINER ID   IMAGE     COMMAND   CREATED   STATUS    PORTS     NAMES"]
    ps = ig("ps", "-a").out.splitlines()
    assert ps[0].split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
    assert ps[1].startswith(cid[:12] + '   base      "/bin/sh -c echo a l…"')
    assert ps[1].split()[-2:] == ["Created", "web"]
    assert ig("ps", "-a", "-q").out == cid[:12] + "\n"
    assert json.loads(ig("ps", "-a", "--format", "json").out)["Names"] == "web"
    assert ig("diff", "web").out == ""
    (doc,) = json.loads(ig("inspect", "web").out)
    upper = Path(doc["GraphDriver"]["Data"]["UpperDir"])
    (upper / "etc").mkdir()
    (upper / "etc" / "motd").write_text("bye\n")
    (upper / "srv").mkdir()
    (upper / "srv" / "index.html").write_text("<h1>")
    (upper / ".wh.bin").write_text("")
    assert ig("diff", "web").out == "D /bin\nC /etc\nC /etc/motd\nA /srv\nA /srv/index.html\n"
    assert [json.loads(x)["Kind"] for x in ig("diff", "web", "--format", "json").out.splitlines()] == [2, 0, 0, 1, 1]
    r = ig("commit", "-a", "me", "-m", "site", "-c", "EXPOSE 80", "web", "site:1")
    assert r.rc == 0 and r.out.startswith("sha256:")
    (img,) = json.loads(ig("inspect", "site:1").out)
    assert img["Author"] == "me" and img["Comment"] == "site" and img["Config"]["ExposedPorts"] == {"80/tcp": {}}
    assert img["Parent"] == json.loads(ig("inspect", "base").out)[0]["Id"]
    # -p/--pause is a flag, as in docker: `-p web site:2` commits web as site:2
    for pause in ("-p", "--pause", "--pause=false", "--pause=true"):
        r = ig("commit", pause, "web", "site:2")
        assert r.rc == 0 and ig("inspect", "--type", "image", "site:2").rc == 0, (pause, r.err)
    assert ig("rm", "web").out == "web\n"
    assert ig("ps", "-a", "-q").out == ""
    one_line_error(ig("rm", "web"), "Error response from daemon: No such container: web")
    one_line_error(ig("diff", "web"), "Error response from daemon: No such container: web")


def test_container_errors(ig, rootfs: Path) -> None:
    imported(ig, rootfs)
    one_line_error(ig("create", "nosuch"), "Error response from daemon: No such image: nosuch:latest")
    one_line_error(
        ig("create", "Nope"),
        "Error response from daemon: invalid reference format: repository name (library/Nope) must be lowercase",
    )
    one_line_error(ig("commit", "ghost"), "Error response from daemon: No such container: ghost")
    ig("create", "--name", "dup", "base")
    r = ig("create", "--name", "dup", "base")
    one_line_error(r)
    assert r.err.startswith('Error response from daemon: Conflict. The container name "/dup" is already in use')
    one_line_error(
        ig("commit", "-c", "RUN rm -rf /", "dup"), "Error response from daemon: run is not a valid change command"
    )
    one_line_error(
        ig("commit", "dup", "Bad:tag"),
        "Error response from daemon: invalid reference format: repository name (library/Bad) must be lowercase",
    )
    one_line_error(ig("mount", "ghost"), "Error response from daemon: No such container: ghost")


def test_usage_errors_are_one_line(ig) -> None:
    r = ig("tag", "only-one")
    one_line_error(r)
    assert r.rc == 125 and "imagegraph tag" in r.err
    one_line_error(ig("images", "--bogus"))
    one_line_error(ig("images", "--filter", "colour=red"), "Error response from daemon: invalid filter 'colour'")


@pytest.mark.mount
def test_mount_and_umount_print_paths(ig, rootfs: Path, tmp_path: Path) -> None:
    imported(ig, rootfs)
    cid = ig("create", "--name", "mnt", "base").out.strip()
    target = tmp_path / "here"
    r = ig("mount", "mnt", str(target))
    assert r.rc == 0, r.err
    assert r.out == f"{target}\n"
    try:
        assert (target / "etc" / "motd").read_text() == "hello\n"
        assert (target / "etc" / "hostname").read_text() == ""  # the init layer's placeholder
        assert (Path(os.environ["IMAGEGRAPH_ROOT"]) / "containers" / cid / "hostname").read_text() == cid[:12] + "\n"
        assert ig("mount", "mnt").out == f"{target}\n"  # already mounted: same place
    finally:
        assert ig("umount", "mnt").rc == 0
    assert not (target / "etc").exists()


# ---- the seed's reuse example and the graph -----------------------------------------------------


def test_seed_reuse_chain(ig, tmp_path: Path, root: Path) -> None:
    """image_0 → image_1 → image_3 → ubuntu → mysql, plus redis on image_3: parents, base, shared layers."""
    rootfs = make_rootfs(tmp_path / "r0", {"var/.keep": "", "boot/.keep": "", "proc/.keep": ""})
    i0 = imported(ig, rootfs, "image_0")
    i1 = commit_step(ig, root, "image_0", "image_1", {"media/.keep": "", "opt/.keep": "", "home/.keep": ""}, "s1")
    i3 = commit_step(ig, root, "image_1", "image_3", {"lib/libc.so": "c" * 100, "etc/os-release": "x"}, "s3")
    ub = commit_step(ig, root, "image_3", "ubuntu", {"usr/bin/apt": "apt"}, "install apt")
    my = commit_step(ig, root, "ubuntu", "mysql", {"usr/sbin/mysqld": "m" * 300}, "install mysql")
    rd = commit_step(ig, root, "image_3", "redis", {"usr/bin/redis-server": "r" * 200}, "install redis")
    s = Services.open(root)
    parent = {i: s.images.get(i).parent for i in (i0, i1, i3, ub, my, rd)}
    assert parent == {i0: None, i1: i0, i3: i1, ub: i3, my: ub, rd: i3}
    # base image = the one at the bottom of the parent chain
    for i in (my, rd):
        bottom = i
        while (up := parent[bottom]) is not None:
            bottom = up
        assert bottom == i0
    # shared layers stored once: 6 images, 6 distinct ChainIDs, 6 layer directories
    all_chains = [
        chain_id(s.images.get(i).diff_ids[:n]) for i in (my, rd) for n in range(1, len(s.images.get(i).diff_ids) + 1)
    ]
    assert len(all_chains) == 5 + 4 and len(set(all_chains)) == 6
    assert len(s.layers.layers()) == 6
    assert len(list((root / "layerfs").iterdir())) == 6
    assert s.images.get(my).diff_ids[:3] == s.images.get(rd).diff_ids[:3]
    # history of mysql walks the chain
    assert ig("history", "-q", "mysql").out.split() == [x[7:19] for x in (my, ub, i3, i1, i0)]
    text = ig("graph").out
    assert "image_0:latest" in text and "mysql:latest" in text and "redis:latest" in text
    assert text.index("image_0") < text.index("image_1") < text.index("image_3") < text.index("ubuntu")
    assert "Shared layers" in text
    dot = ig("graph", "--format", "dot").out
    assert dot.lstrip().startswith("digraph")
    if shutil.which("dot"):
        r = subprocess.run(["dot", "-Tsvg"], input=dot.encode(), capture_output=True)
        assert r.returncode == 0 and b"<svg" in r.stdout


def test_python_dash_m_and_root_option(tmp_path: Path, rootfs: Path) -> None:
    env = dict(os.environ, SOURCE_DATE_EPOCH="1700000000")
    env.pop("IMAGEGRAPH_ROOT", None)
    r = subprocess.run(
        [sys.executable, "-m", "imagegraph", "--root", str(tmp_path / "r"), "import", str(rootfs), "x"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert r.returncode == 0 and r.stdout.startswith("sha256:")
    assert (tmp_path / "r" / "image" / "layerfs" / "repositories.json").exists()


def test_ambiguous_id_prefix(ig, tmp_path: Path) -> None:
    ids = []
    for n in range(17):  # 17 images: two share their first hex digit
        src = make_rootfs(tmp_path / f"r{n}", {"f": str(n)})
        ids.append(imported(ig, src, f"img{n}"))
    firsts = [i[7] for i in ids]
    dup = next(c for c in firsts if firsts.count(c) > 1)
    one_line_error(ig("history", dup), f"Error response from daemon: ambiguous digest string: {dup}")
    one_line_error(ig("rmi", dup), f"Error response from daemon: ambiguous digest string: {dup}")
    assert len(ig("images", "-q").out.split()) == 17


def test_store_survives_crash_leftovers(ig, rootfs: Path, root: Path) -> None:
    image_id = imported(ig, rootfs)
    lo = root / "image" / "layerfs"
    (lo / "imagedb" / "content" / "sha256" / ".tmp-abc").write_bytes(b"{half")
    (lo / "layerdb" / "sha256" / ("d" * 64)).mkdir()  # a layer record that never got its files
    (root / "layerfs" / ("9" * 64) / "diff").mkdir(parents=True)  # layer contents without a record
    (root / "containers" / ("8" * 64)).mkdir()  # a container whose config never landed
    (lo / ".tmp-repositories").write_text("{")
    r = ig("images", "-q", "--no-trunc")
    assert r.rc == 0 and r.out == image_id + "\n"
    assert not (root / "layerfs" / ("9" * 64)).exists()
    assert not (root / "containers" / ("8" * 64)).exists()
    assert ig("create", "--name", "after", "base").rc == 0


def test_concurrent_imports_share_one_layer(tmp_path: Path, rootfs: Path) -> None:
    env = dict(os.environ, SOURCE_DATE_EPOCH="1700000000", IMAGEGRAPH_ROOT=str(tmp_path / "r"))
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "imagegraph", "import", str(rootfs), f"same{n}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        for n in range(4)
    ]
    outs = [p.communicate() for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    assert len({o for o, _ in outs}) == 1  # the same image ID from every process
    s = Services.open(tmp_path / "r")
    assert len(s.layers.layers()) == 1 and len(list((tmp_path / "r" / "layerfs").iterdir())) == 1
    assert len(s.refs.all()) == 4


ALL_COMMANDS = [*cli.COMMANDS, *cli_distribution.COMMANDS]


@pytest.mark.parametrize("command", ALL_COMMANDS, ids=[c.name for c in ALL_COMMANDS])
def test_every_command_has_the_same_help(ig, command, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whichever module defines it, `imagegraph CMD --help` says what CMD does, and
    `imagegraph --help` lists it beside the global options every command takes."""
    monkeypatch.setenv("COLUMNS", "200")  # argparse wraps at the terminal's width
    result = ig(*command.name.split(), "--help")
    assert (result.rc, result.err) == (0, "")
    assert result.out.startswith(f"usage: imagegraph {command.name} ")
    assert f"\n\n{command.help}\n\n" in result.out
    top = ig("--help").out
    assert f"    {command.name.split()[0]} " in top and "--root ROOT" in top and "--whiteouts" in top


def test_version_is_the_package_version(ig) -> None:
    import importlib.metadata

    expected = f"imagegraph version {importlib.metadata.version('layerlab')}\n"
    for flag in ("--version", "-V", "-v"):
        assert ig(flag) == Result(0, expected, "")


def test_an_internal_error_is_one_line_unless_debugging(ig, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug prints one line; --debug (or IMAGEGRAPH_DEBUG=1) lets it out with its traceback, as pip's."""

    def broken(self, *args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(Services, "list_images", broken)
    monkeypatch.delenv("IMAGEGRAPH_DEBUG", raising=False)
    r = ig("images")
    assert r.rc == 1 and r.out == ""
    assert r.err == "Error: internal error: ZeroDivisionError: a bug (--debug shows where)\n"
    with pytest.raises(ZeroDivisionError, match="a bug"):
        ig("--debug", "images")
    monkeypatch.setenv("IMAGEGRAPH_DEBUG", "1")
    with pytest.raises(ZeroDivisionError):
        ig("images")
    # known failures stay one line, debugging or not
    assert ig("inspect", "--type", "image", "nothing") == Result(
        1, "[]\n", "Error response from daemon: No such image: nothing:latest\n"
    )
