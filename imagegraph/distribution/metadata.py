"""What the store remembers about layers' registry blobs: moby's distribution/metadata.

`<image root>/distribution/v2metadata-by-diffid/sha256/<diffid>` holds a JSON list of
`{"Digest","SourceRepository","HMAC"}` (each compressed blob a layer was seen as, and where),
and `diffid-by-digest/sha256/<blob>` the reverse. Pull writes both; push reads them to skip
compressing and uploading a layer a registry already has, and to mount across repositories.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..store import Layout, atomic_write, hex_of


@dataclass(frozen=True)
class V2Metadata:
    digest: str
    source_repository: str  # the full name, e.g. 127.0.0.1:5000/team/app


@dataclass
class V2MetadataStore:
    layout: Layout

    @property
    def base(self) -> Path:
        return self.layout.image_root / "distribution"

    def _by_diffid(self, diff_id: str) -> Path:
        return self.base / "v2metadata-by-diffid" / "sha256" / hex_of(diff_id)

    def _by_digest(self, digest: str) -> Path:
        return self.base / "diffid-by-digest" / "sha256" / hex_of(digest)

    def get(self, diff_id: str) -> list[V2Metadata]:
        try:
            data = json.loads(self._by_diffid(diff_id).read_text())
        except (FileNotFoundError, ValueError):
            return []
        return [V2Metadata(d["Digest"], d.get("SourceRepository", "")) for d in data if "Digest" in d]

    def add(self, diff_id: str, meta: V2Metadata) -> None:
        """Record (most recent first, no duplicates), as moby's V2MetadataService.Add does."""
        entries = [m for m in self.get(diff_id) if m != meta]
        entries.insert(0, meta)
        atomic_write(
            self._by_diffid(diff_id),
            json.dumps(
                [{"Digest": m.digest, "SourceRepository": m.source_repository, "HMAC": ""} for m in entries[:50]]
            ),
        )
        atomic_write(self._by_digest(meta.digest), diff_id)
