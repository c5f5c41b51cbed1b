"""Media types, manifest and index parsing and building, platform parsing and matching."""

from __future__ import annotations

import json

import pytest

from imagegraph.distribution import manifest as M


def desc(n: int, mt=M.OCI_LAYER_GZIP, **kw) -> M.Descriptor:
    return M.Descriptor(mt, "sha256:" + f"{n:064x}", 100 + n, **kw)


def test_build_then_parse_docker_manifest():
    body = M.build_manifest(desc(1, M.DOCKER_CONFIG), [desc(2, M.DOCKER_LAYER_GZIP), desc(3, M.DOCKER_LAYER_GZIP)])
    data = json.loads(body)
    assert list(data) == ["schemaVersion", "mediaType", "config", "layers"]
    assert list(data["config"]) == ["mediaType", "size", "digest"]  # schema2 order
    assert body.startswith(b'{\n   "schemaVersion": 2')  # docker's 3-space MarshalIndent
    m = M.parse(body, M.DOCKER_MANIFEST)
    assert isinstance(m, M.Manifest)
    assert m.config == desc(1, M.DOCKER_CONFIG)
    assert [d.digest for d in m.layers] == [desc(2).digest, desc(3).digest]


def test_build_then_parse_oci_manifest_and_index():
    body = M.build_manifest(desc(1, M.OCI_CONFIG), [desc(2)], M.OCI_MANIFEST)
    assert list(json.loads(body)["config"]) == ["mediaType", "digest", "size"]
    assert isinstance(M.parse(body), M.Manifest)
    idx = M.build_index(
        [
            desc(5, M.OCI_MANIFEST, platform=M.Platform("linux", "arm", "v7")),
            desc(6, M.OCI_MANIFEST, platform=M.Platform("linux", "amd64")),
        ]
    )
    parsed = M.parse(idx, "")
    assert isinstance(parsed, M.Index)
    assert parsed.manifests[0].platform == M.Platform("linux", "arm", "v7")


def test_media_type_from_fields_when_absent():
    assert isinstance(M.parse(b'{"schemaVersion":2,"manifests":[]}'), M.Index)
    assert isinstance(
        M.parse(
            b'{"schemaVersion":2,"config":{"mediaType":"x","digest":"sha256:%s","size":1},"layers":[]}' % (b"a" * 64)
        ),
        M.Manifest,
    )


@pytest.mark.parametrize(
    "body,message",
    [
        (b'{"schemaVersion":1,"name":"x"}', "schema 1 has been removed"),
        (b"not json", "invalid manifest"),
        (b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}', "no config descriptor"),
        (b'{"schemaVersion":2,"mediaType":"text/weird"}', "unsupported manifest media type"),
        (b'{"schemaVersion":2,"manifests":[{"mediaType":"x","digest":"nope","size":1}]}', "invalid descriptor digest"),
    ],
)
def test_parse_errors(body, message):
    with pytest.raises(M.ManifestError, match=message):
        M.parse(body)


def test_declared_type_must_agree_with_header():
    body = M.build_manifest(desc(1, M.OCI_CONFIG), [], M.OCI_MANIFEST)
    with pytest.raises(M.ManifestError, match="mediaType in manifest should be"):
        M.parse(body, M.DOCKER_MANIFEST)


@pytest.mark.parametrize(
    "spec,expected",
    [
        ("linux/amd64", M.Platform("linux", "amd64")),
        ("linux/x86_64", M.Platform("linux", "amd64")),
        ("linux/arm64/v8", M.Platform("linux", "arm64")),
        ("linux/aarch64", M.Platform("linux", "arm64")),
        ("linux/arm", M.Platform("linux", "arm", "v7")),
        ("linux/arm/v6", M.Platform("linux", "arm", "v6")),
        ("Linux/AMD64", M.Platform("linux", "amd64")),
    ],
)
def test_parse_platform(spec, expected):
    assert M.parse_platform(spec) == expected


def test_parse_platform_errors():
    with pytest.raises(M.ManifestError, match='"a/b/c/d": cannot parse platform specifier'):
        M.parse_platform("a/b/c/d")
    with pytest.raises(M.ManifestError, match='"li nux" is an invalid component'):
        M.parse_platform("li nux/amd64")


def test_select_platform_first_match_and_variant():
    idx = M.Index(
        M.OCI_INDEX,
        (
            desc(1, M.OCI_MANIFEST, platform=M.Platform("linux", "arm", "v6")),
            desc(2, M.OCI_MANIFEST, platform=M.Platform("linux", "arm", "v7")),
            desc(3, M.OCI_MANIFEST, platform=M.Platform("linux", "arm64", "v8")),
            desc(4, "application/vnd.in-toto+json", platform=M.Platform("linux", "amd64")),
            desc(5, M.OCI_MANIFEST, platform=M.Platform("linux", "amd64")),
        ),
    )
    assert M.select_platform(idx, M.parse_platform("linux/arm/v7")).digest == desc(2).digest
    assert M.select_platform(idx, M.parse_platform("linux/arm64")).digest == desc(3).digest
    assert M.select_platform(idx, M.parse_platform("linux/amd64")).digest == desc(5).digest
    with pytest.raises(M.ManifestError, match="^no matching manifest for windows/amd64 in the manifest list entries$"):
        M.select_platform(idx, M.parse_platform("windows/amd64"))


def test_host_platform_is_normalised():
    host = M.host_platform()
    assert host.os == "linux"
    assert host.architecture in ("amd64", "arm64", "arm", "386", "ppc64le", "s390x", "riscv64")


def test_layer_types():
    M.check_layer_type(desc(1, M.DOCKER_LAYER_GZIP))
    M.check_layer_type(desc(1, M.OCI_LAYER))
    assert M.is_gzip_layer(M.OCI_LAYER_GZIP) and not M.is_gzip_layer(M.OCI_LAYER)
    with pytest.raises(M.ManifestError, match="unsupported layer media type"):
        M.check_layer_type(desc(1, M.OCI_LAYER_ZSTD))
