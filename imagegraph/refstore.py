"""repositories.json: tags and digests pointing at image IDs, with moby's refstore rules (spec §3.6).

The file keys repositories by familiar name and references by familiar string, exactly as
Docker writes `/var/lib/docker/image/overlay2/repositories.json`:
`{"Repositories":{"ubuntu":{"ubuntu:latest":"sha256:…"}}}`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from .digest import go_json
from .reference import (
    Reference,
    familiar_name,
    familiar_string,
    parse_normalized_named,
    tag_name_only,
    with_digest,
    with_name,
)
from .store import Layout, atomic_write


class RefError(Exception):
    """A tag store failure; str() is moby's text."""


class RefNotFound(RefError):
    def __init__(self) -> None:
        super().__init__("reference does not exist")


class RefConflict(RefError):
    pass


@dataclass
class RefStore:
    """The tags of one store. Writes go straight to disk, or once at the end of a `batch()`;
    lookups by image use an index built once per change, so 20,000 tags stay linear."""

    layout: Layout
    repositories: dict[str, dict[str, str]] = field(default_factory=dict)
    _batching: int = 0
    _dirty: bool = False
    _by_image: dict[str, list[Reference]] | None = None
    _parsed: dict[str, Reference] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.reload()

    def reload(self) -> None:
        try:
            data = json.loads(self.layout.repositories_json.read_bytes() or b"{}")
        except FileNotFoundError:
            data = {}
        except (ValueError, RecursionError) as exc:
            raise RefError(f"invalid {self.layout.repositories_json}: {exc}") from None
        if not isinstance(data, dict) or not isinstance(data.get("Repositories") or {}, dict):
            raise RefError(f"invalid {self.layout.repositories_json}: not a tag store")
        self.repositories = {k: dict(v) for k, v in (data.get("Repositories") or {}).items() if v}
        self._by_image = None
        self._dirty = False

    def _save(self) -> None:
        self._by_image = None
        if self._batching:
            self._dirty = True
            return
        repos = {name: dict(sorted(refs.items())) for name, refs in sorted(self.repositories.items()) if refs}
        atomic_write(self.layout.repositories_json, go_json({"Repositories": repos}), 0o600)
        self._dirty = False

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Many changes, one write at the end; on an error nothing is written (the file is reread)."""
        self._batching += 1
        try:
            yield
        except BaseException:
            self._batching -= 1
            if not self._batching:
                self.reload()
            raise
        self._batching -= 1
        if not self._batching and self._dirty:
            self._save()

    # ---- writing -----------------------------------------------------------------------

    def add_tag(self, ref: Reference, image_id: str, force: bool = True) -> None:
        """Point a tag at an image; a name without tag gets `latest`."""
        if ref.digest is not None:
            raise RefError("refusing to create a tag with a digest reference")
        self._add(tag_name_only(ref), image_id, force)

    def add_digest(self, ref: Reference, image_id: str, force: bool = False) -> None:
        if ref.digest is None:
            raise RefError("reference has no digest")
        self._add(with_digest(with_name(ref.name), ref.digest), image_id, force)

    def _add(self, ref: Reference, image_id: str, force: bool) -> None:
        name = familiar_name(ref)
        if name == "sha256":
            raise RefError("refusing to create an ambiguous tag using digest algorithm as name")
        key = familiar_string(ref)
        repo = self.repositories.setdefault(name, {})
        old = repo.get(key)
        if old is not None:
            if old == image_id:
                return
            if ref.digest is not None:
                raise RefConflict(f"Cannot overwrite digest {ref.digest}")
            if not force:
                raise RefConflict(
                    f"Conflict: Tag {key} is already set to image {old}, "
                    "if you want to replace it, please use the force option"
                )
        repo[key] = image_id
        self._save()

    def delete(self, ref: Reference) -> None:
        ref = tag_name_only(ref) if ref.digest is None else ref
        name, key = familiar_name(ref), familiar_string(ref)
        repo = self.repositories.get(name)
        if not repo or key not in repo:
            raise RefNotFound()
        del repo[key]
        if not repo:
            del self.repositories[name]
        self._save()

    # ---- reading -----------------------------------------------------------------------

    def get(self, ref: Reference) -> str:
        """The image a reference names; with both a tag and a digest, the digest wins."""
        if ref.tag is not None and ref.digest is not None:
            ref = with_digest(with_name(ref.name), ref.digest)
        ref = tag_name_only(ref) if ref.digest is None else ref
        image = self.repositories.get(familiar_name(ref), {}).get(familiar_string(ref))
        if image is None:
            raise RefNotFound()
        return image

    def _ref(self, key: str) -> Reference:
        ref = self._parsed.get(key)
        if ref is None:
            ref = self._parsed[key] = parse_normalized_named(key)
        return ref

    def all(self) -> list[tuple[Reference, str]]:
        out = []
        for refs in self.repositories.values():
            for key, image in refs.items():
                out.append((self._ref(key), image))
        return sorted(out, key=lambda p: str(p[0]))

    def references(self, image_id: str) -> list[Reference]:
        """Every reference to an image, sorted by full string (moby lexicalRefs)."""
        if self._by_image is None:
            index: dict[str, list[Reference]] = {}
            for ref, image in self.all():
                index.setdefault(image, []).append(ref)
            self._by_image = index
        return list(self._by_image.get(image_id, []))

    def references_by_name(self, ref: Reference) -> list[tuple[Reference, str]]:
        name = familiar_name(ref)
        refs = self.repositories.get(name, {})
        return sorted(((self._ref(k), i) for k, i in refs.items()), key=lambda p: str(p[0]))
