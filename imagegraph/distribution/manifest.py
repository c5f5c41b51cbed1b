"""Manifests, indexes and descriptors: media types, parsing, building, platform choice.

Sources: OCI image-spec (manifest.md, image-index.md, descriptor.md, media-types.md) and
docker/distribution manifest/schema2 and manifest/manifestlist for Docker's equivalents.
Schema 1 manifests are refused, as moby does.
"""

from __future__ import annotations

import json
import platform as _platform
import re
from dataclasses import dataclass, field
from typing import Any

from .errors import ManifestError

# OCI
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER_ND = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_LAYER_ND_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_LAYOUT_VERSION = "1.0.0"
OCI_REF_NAME = "org.opencontainers.image.ref.name"
# Docker
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"

MANIFEST_TYPES = (DOCKER_MANIFEST, OCI_MANIFEST)
INDEX_TYPES = (DOCKER_MANIFEST_LIST, OCI_INDEX)
# What moby puts in Accept when it resolves a tag: every registered manifest type.
MANIFEST_ACCEPT = (DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_MANIFEST, OCI_INDEX)
GZIP_LAYER_TYPES = (OCI_LAYER_GZIP, DOCKER_LAYER_GZIP, OCI_LAYER_ND_GZIP, DOCKER_FOREIGN_LAYER)
PLAIN_LAYER_TYPES = (OCI_LAYER, DOCKER_LAYER, OCI_LAYER_ND)

_DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")


@dataclass(frozen=True)
class Platform:
    """An OCI platform; `variant` and `os_version` are optional."""

    os: str
    architecture: str
    variant: str = ""
    os_version: str = ""

    def __str__(self) -> str:
        s = f"{self.os}/{self.architecture}"
        return s + f"/{self.variant}" if self.variant else s

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"architecture": self.architecture, "os": self.os}
        if self.os_version:
            d["os.version"] = self.os_version
        if self.variant:
            d["variant"] = self.variant
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any] | None) -> Platform | None:
        if not isinstance(d, dict):
            return None
        return cls(
            str(d.get("os", "")),
            str(d.get("architecture", "")),
            str(d.get("variant", "") or ""),
            str(d.get("os.version", "") or ""),
        )


_ARCH_ALIASES = {
    "x86_64": "amd64",
    "x86-64": "amd64",
    "aarch64": "arm64",
    "armhf": "arm",
    "armel": "arm",
    "i386": "386",
    "i686": "386",
}
_ARCH_DEFAULT_VARIANT = {"armhf": "v7", "armel": "v6"}


def normalize_platform(p: Platform) -> Platform:
    """containerd's platforms.Normalize: arch aliases, arm64's v8 dropped, arm defaults to v7."""
    arch = _ARCH_ALIASES.get(p.architecture.lower(), p.architecture.lower())
    variant = p.variant or _ARCH_DEFAULT_VARIANT.get(p.architecture.lower(), "")
    if arch == "arm64" and variant == "v8":
        variant = ""
    if arch == "arm" and not variant:
        variant = "v7"
    if arch == "amd64" and variant == "v1":
        variant = ""
    return Platform(p.os.lower(), arch, variant, p.os_version)


def host_platform() -> Platform:
    """The platform this machine runs (GOOS/GOARCH names)."""
    machine = _platform.machine() or "amd64"
    variant = "v7" if machine.startswith("armv7") else ("v6" if machine.startswith("armv6") else "")
    if machine.startswith("armv"):
        machine = "arm"
    return normalize_platform(Platform(_platform.system().lower() or "linux", machine, variant))


_COMPONENT = re.compile(r"^[A-Za-z0-9_-]+$")


def parse_platform(spec: str) -> Platform:
    """`--platform OS[/ARCH[/VARIANT]]` (containerd platforms.Parse, the common forms)."""
    parts = spec.split("/")
    if not spec or len(parts) > 3:
        raise ManifestError(f'"{spec}": cannot parse platform specifier: invalid argument')
    for part in parts:
        if not _COMPONENT.match(part):
            raise ManifestError(
                f'"{part}" is an invalid component of "{spec}": platform specifier component '
                f'must match "^[A-Za-z0-9_-]+$": invalid argument'
            )
    host = host_platform()
    if len(parts) == 1:
        return normalize_platform(Platform(parts[0], host.architecture, host.variant))
    return normalize_platform(Platform(parts[0], parts[1], parts[2] if len(parts) == 3 else ""))


def platform_matches(want: Platform, have: Platform | None) -> bool:
    """Same OS and architecture; a requested variant must match (arm64 v8 == none)."""
    if have is None:
        return False
    w, h = normalize_platform(want), normalize_platform(have)
    if (w.os, w.architecture) != (h.os, h.architecture):
        return False
    return not w.variant or w.variant == h.variant


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor."""

    media_type: str
    digest: str
    size: int
    urls: tuple[str, ...] = ()
    annotations: dict[str, str] = field(default_factory=dict, hash=False)
    platform: Platform | None = None

    def to_json(self, docker_order: bool = False) -> dict[str, Any]:
        """OCI order is mediaType, digest, size; docker's schema2 writes size before digest."""
        if docker_order:
            d: dict[str, Any] = {"mediaType": self.media_type, "size": self.size, "digest": self.digest}
        else:
            d = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.urls:
            d["urls"] = list(self.urls)
        if self.annotations:
            d["annotations"] = dict(self.annotations)
        if self.platform:
            d["platform"] = self.platform.to_json()
        return d

    @classmethod
    def from_json(cls, d: Any) -> Descriptor:
        if not isinstance(d, dict):
            raise ManifestError("invalid descriptor: not an object")
        digest, size = d.get("digest"), d.get("size")
        if not isinstance(digest, str) or not _DIGEST_RE.match(digest):
            raise ManifestError(f"invalid descriptor digest: {digest!r}")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ManifestError(f"invalid descriptor size for {digest}")
        return cls(
            str(d.get("mediaType", "")),
            digest,
            size,
            tuple(d.get("urls") or ()),
            dict(d.get("annotations") or {}),
            Platform.from_json(d.get("platform")),
        )


@dataclass(frozen=True)
class Manifest:
    """An image manifest (OCI or Docker schema2)."""

    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]
    annotations: dict[str, str] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class Index:
    """An image index or Docker manifest list."""

    media_type: str
    manifests: tuple[Descriptor, ...]
    annotations: dict[str, str] = field(default_factory=dict, hash=False)


def parse(body: bytes, media_type: str = "") -> Manifest | Index:
    """Parse a manifest or index; the media type comes from the header or the body."""
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ManifestError(f"invalid manifest: {exc}") from exc
    if not isinstance(data, dict):
        raise ManifestError("invalid manifest: not a JSON object")
    declared = data.get("mediaType") or ""
    mt = media_type if media_type and media_type not in ("application/json", "text/plain") else declared
    if data.get("schemaVersion") == 1 or mt in (DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED):
        raise ManifestError(
            "support for Docker Image Format v1 and Docker Image manifest version 2, schema 1 has been removed"
        )
    if declared and mt and declared != mt:
        raise ManifestError(f"mediaType in manifest should be '{mt}' not '{declared}'")
    if not mt:  # OCI allows leaving mediaType out: tell by the fields
        mt = OCI_INDEX if "manifests" in data else OCI_MANIFEST
    if data.get("schemaVersion") != 2:
        raise ManifestError(f"unsupported manifest schema version {data.get('schemaVersion')!r}")
    if mt in INDEX_TYPES:
        return Index(
            mt, tuple(Descriptor.from_json(m) for m in data.get("manifests") or ()), dict(data.get("annotations") or {})
        )
    if mt in MANIFEST_TYPES:
        if "config" not in data:
            raise ManifestError("invalid manifest: no config descriptor")
        return Manifest(
            mt,
            Descriptor.from_json(data["config"]),
            tuple(Descriptor.from_json(layer) for layer in data.get("layers") or ()),
            dict(data.get("annotations") or {}),
        )
    raise ManifestError(f"unsupported manifest media type and no default available: {mt}")


def select_platform(index: Index, want: Platform) -> Descriptor:
    """The first manifest in the index for `want` (moby's pull of a manifest list)."""
    for desc in index.manifests:
        if desc.media_type in MANIFEST_TYPES + INDEX_TYPES and platform_matches(want, desc.platform):
            return desc
    raise ManifestError(f"no matching manifest for {want} in the manifest list entries")


def build_manifest(
    config: Descriptor,
    layers: list[Descriptor],
    media_type: str = DOCKER_MANIFEST,
    annotations: dict[str, str] | None = None,
) -> bytes:
    """Serialise a manifest. Docker schema2 is written as docker's MarshalIndent does (3 spaces,
    size before digest); OCI is written compactly in the spec's field order."""
    docker = media_type == DOCKER_MANIFEST
    data: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": config.to_json(docker),
        "layers": [d.to_json(docker) for d in layers],
    }
    if annotations:
        data["annotations"] = annotations
    if docker:
        return json.dumps(data, indent=3).encode()
    return json.dumps(data, separators=(",", ":")).encode()


def build_index(
    manifests: list[Descriptor], media_type: str = OCI_INDEX, annotations: dict[str, str] | None = None
) -> bytes:
    data: dict[str, Any] = {"schemaVersion": 2, "mediaType": media_type, "manifests": [d.to_json() for d in manifests]}
    if annotations:
        data["annotations"] = annotations
    return json.dumps(data, separators=(",", ":")).encode()


def is_gzip_layer(media_type: str) -> bool:
    return media_type in GZIP_LAYER_TYPES


def check_layer_type(desc: Descriptor) -> None:
    """Refuse layer types we cannot apply (zstd needs a library the project does not carry)."""
    if desc.media_type not in GZIP_LAYER_TYPES + PLAIN_LAYER_TYPES:
        raise ManifestError(f"unsupported layer media type {desc.media_type} for {desc.digest}")
