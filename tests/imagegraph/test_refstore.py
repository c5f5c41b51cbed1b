"""repositories.json: moby's refstore rules and file format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imagegraph.reference import parse_normalized_named as P
from imagegraph.refstore import RefConflict, RefError, RefNotFound, RefStore
from imagegraph.store import Layout

A = "sha256:" + "a" * 64
B = "sha256:" + "b" * 64
DIG = "sha256:" + "c" * 64


@pytest.fixture
def refs(tmp_path: Path) -> RefStore:
    return RefStore(Layout(tmp_path))


def test_file_format_uses_familiar_names(refs: RefStore) -> None:
    refs.add_tag(P("ubuntu"), A)
    refs.add_tag(P("localhost:5000/app:v1"), B)
    refs.add_digest(P(f"ubuntu@{DIG}"), A)
    raw = refs.layout.repositories_json.read_text()
    assert json.loads(raw) == {
        "Repositories": {
            "localhost:5000/app": {"localhost:5000/app:v1": B},
            "ubuntu": {"ubuntu:latest": A, f"ubuntu@{DIG}": A},
        }
    }
    assert " " not in raw  # Go's compact JSON
    assert RefStore(refs.layout).get(P("docker.io/library/ubuntu:latest")) == A  # survives a reload


def test_tags_move_only_with_force(refs: RefStore) -> None:
    refs.add_tag(P("app:1"), A)
    refs.add_tag(P("app:1"), A, force=False)  # same image: fine
    with pytest.raises(
        RefConflict,
        match=r"Conflict: Tag app:1 is already set to image sha256:a+, if you want to "
        "replace it, please use the force option",
    ):
        refs.add_tag(P("app:1"), B, force=False)
    refs.add_tag(P("app:1"), B, force=True)
    assert refs.get(P("app:1")) == B


def test_digests_never_move(refs: RefStore) -> None:
    refs.add_digest(P(f"app@{DIG}"), A)
    with pytest.raises(RefConflict, match=f"Cannot overwrite digest {DIG}"):
        refs.add_digest(P(f"app@{DIG}"), B, force=True)


def test_refused_names(refs: RefStore) -> None:
    with pytest.raises(RefError, match="refusing to create a tag with a digest reference"):
        refs.add_tag(P(f"app@{DIG}"), A)
    with pytest.raises(RefError, match="ambiguous tag using digest algorithm"):
        refs.add_tag(P("sha256:abc"), A)
    assert not refs.layout.repositories_json.exists()


def test_get_prefers_the_digest_and_defaults_to_latest(refs: RefStore) -> None:
    refs.add_tag(P("app"), A)
    refs.add_digest(P(f"app@{DIG}"), B)
    assert refs.get(P("app")) == A
    assert refs.get(P(f"app:latest@{DIG}")) == B
    with pytest.raises(RefNotFound, match="reference does not exist"):
        refs.get(P("app:other"))


def test_references_sorted_by_full_string_and_delete(refs: RefStore) -> None:
    refs.add_tag(P("zeta"), A)
    refs.add_tag(P("alpha:2"), A)
    refs.add_tag(P("quay.io/x/y"), A)
    assert [str(r) for r in refs.references(A)] == [
        "docker.io/library/alpha:2",
        "docker.io/library/zeta:latest",
        "quay.io/x/y:latest",
    ]
    refs.delete(P("zeta"))
    assert "zeta" not in refs.repositories
    with pytest.raises(RefNotFound):
        refs.delete(P("zeta"))
    assert [str(r) for r, _ in refs.references_by_name(P("alpha"))] == ["docker.io/library/alpha:2"]


def test_batch_writes_once_and_an_error_writes_nothing(tmp_path, monkeypatch) -> None:
    """load with 20,000 tags rewrote repositories.json once per tag (quadratic): a batch writes once."""
    from imagegraph import refstore as refstore_module
    from imagegraph.reference import parse_normalized_named
    from imagegraph.refstore import RefStore
    from imagegraph.store import Layout

    writes = []
    real = refstore_module.atomic_write
    monkeypatch.setattr(refstore_module, "atomic_write", lambda *a, **k: (writes.append(a[0]), real(*a, **k)))
    refs = RefStore(Layout(tmp_path))
    image = "sha256:" + "a" * 64
    with refs.batch():
        for i in range(2000):
            refs.add_tag(parse_normalized_named(f"many:t{i}"), image)
    assert len(writes) == 1
    assert len(RefStore(Layout(tmp_path)).references(image)) == 2000
    try:
        with refs.batch():
            refs.add_tag(parse_normalized_named("other:1"), image)
            raise RuntimeError("a load failed half-way")
    except RuntimeError:
        pass
    assert len(writes) == 1 and len(refs.references(image)) == 2000  # nothing written, memory reread
