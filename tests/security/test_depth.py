"""5,000 directories deep, through every way in and through a container's top layer: no
RecursionError, no path past PATH_MAX, and every command still works afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from imagegraph.service import Services
from imagegraph.storecheck import check_store

from .conftest import snapshot
from .hostile import deep_tar, save_archive
from .lying_registry import LyingRegistry
from .trees import deep_exists, make_deep

DEPTH = 5000


@pytest.fixture(scope="module")
def registry() -> Iterator[LyingRegistry]:
    reg = LyingRegistry()
    yield reg
    reg.close()


def _all_still_work(ig, store: Path) -> None:
    for argv in (("images",), ("ps", "-a"), ("graph",), ("image", "prune", "-f")):
        r = ig(*argv)
        assert r.rc == 0 and r.err == "", (argv, r.err)
    assert check_store(store) == []


def _deep_layer_of(store: Path, ref: str) -> Path:
    svc = Services.open(store)
    img = svc.get_image(ref)
    return svc.layers.diff_dir(svc.layers.get(img.top_chain_id))


@pytest.mark.parametrize("channel", ["import-dir", "import-tar", "load", "pull"])
def test_a_5000_deep_layer_comes_in(seeded: Path, ig, deep_tmp: Path, registry: LyingRegistry, channel: str) -> None:
    if channel == "import-dir":
        make_deep(deep_tmp / "rootfs", DEPTH)
        r = ig("import", str(deep_tmp / "rootfs"), "deep:1")
    elif channel == "import-tar":
        (deep_tmp / "deep.tar").write_bytes(deep_tar(DEPTH))
        r = ig("import", str(deep_tmp / "deep.tar"), "deep:1")
    elif channel == "load":
        (deep_tmp / "image.tar").write_bytes(save_archive([deep_tar(DEPTH)], "deep:1"))
        r = ig("load", "-q", "-i", str(deep_tmp / "image.tar"))
    else:
        registry.image("deep/img", "1", [deep_tar(DEPTH)])
        r = ig("pull", "-q", f"{registry.domain}/deep/img:1")
        assert r.rc == 0, r.err
        r = ig("tag", f"{registry.domain}/deep/img:1", "deep:1")
    assert r.rc == 0, r.err
    assert deep_exists(_deep_layer_of(seeded, "deep:1"), DEPTH)
    out = deep_tmp / "saved.tar"
    assert ig("save", "-o", str(out), "deep:1").rc == 0
    _all_still_work(ig, seeded)
    r = ig("rmi", "-f", "deep:1")
    assert r.rc == 0, r.err
    if channel == "pull":
        assert ig("rmi", f"{registry.domain}/deep/img:1").rc in (0, 1)
    _all_still_work(ig, seeded)


def test_a_container_with_a_5000_deep_top_layer(seeded: Path, ig) -> None:
    """diff, commit, rm -f and every listing after: the defect made all of them fail for good."""
    svc = Services.open(seeded)
    c = svc.get_container("c1")
    top = svc.layout.layer_dir(svc.layers.get_mount(c.id).mount_id) / "diff"
    make_deep(top, DEPTH)
    r = ig("diff", "c1")
    assert r.rc == 0, r.err
    lines = r.out.splitlines()
    assert len(lines) == DEPTH + 1 and lines[0] == "A /d" and lines[-1] == "A " + "/d" * DEPTH + "/f"
    r = ig("commit", "c1", "deep:committed")
    assert r.rc == 0, r.err
    assert deep_exists(_deep_layer_of(seeded, "deep:committed"), DEPTH)
    r = ig("rm", "-f", "c1")
    assert r.rc == 0, r.err
    assert ig("ps", "-a", "-q").out == ""
    _all_still_work(ig, seeded)
    r = ig("create", "--name", "c2", "deep:committed")
    assert r.rc == 0, r.err
    assert ig("diff", "c2").out == ""
    assert ig("rm", "c2").rc == 0 and ig("rmi", "deep:committed").rc == 0
    _all_still_work(ig, seeded)
    assert snapshot(seeded)  # readable to the bottom by a walk that does not recurse


def test_a_deep_leftover_is_cleaned_by_the_next_command(seeded: Path, ig) -> None:
    """What a crash leaves in the driver folder, however deep, goes at the next command."""
    make_deep(seeded / "layerfs" / ("f" * 64), DEPTH)
    make_deep(seeded / "layerfs" / ".apply-crashed", DEPTH)
    _all_still_work(ig, seeded)
    assert not (seeded / "layerfs" / ("f" * 64)).exists()


def test_layerfs_tree_prints_a_union_deeper_than_the_recursion_limit() -> None:
    """`layerfs tree` recursed once per level: a traceback at about 1,000. (The union core names
    whole paths, so a real union this deep is slow: a stand-in with the same interface.)"""
    import os
    import stat as stat_module

    from unionfs.tree import render_tree

    class ChainUnion:
        def listdir(self, path: str) -> list[str]:
            return ["d"] if path.count("/d") < DEPTH else ["f"]

        def getattr(self, path: str) -> os.stat_result:
            mode = stat_module.S_IFREG if path.endswith("/f") else stat_module.S_IFDIR
            return os.stat_result((mode | 0o755, 0, 0, 1, 0, 0, 0, 0, 0, 0))

    text = render_tree(ChainUnion(), "/", "mnt")  # type: ignore[arg-type]  # the part of Union tree uses
    assert text.endswith(f"\n\n{DEPTH + 1} directories, 1 file\n")
