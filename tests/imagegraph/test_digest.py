"""Digests, ChainIDs and Go-compatible JSON, checked against real Docker artefacts.

The three configs under data/ are real Docker image configs (hello-world 2023,
alpine:3.10, ubuntu 2021) whose file names carry their image IDs as Docker reported
them; the ubuntu ChainIDs are the layerdb directory names from the same machine.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imagegraph import digest as dg

DATA = Path(__file__).parent / "data"

REAL_CONFIGS = [
    ("config-hello-world-9c7a54a9.json", "sha256:9c7a54a9a43cca047013b82af109fe963fde787f63f9e016fdc3384500c2823d"),
    ("config-alpine-3.10-e7b300ae.json", "sha256:e7b300aee9f9bf3433d32bc9305bfdd22183beb59d933b48d77ab56ba53a197a"),
    ("config-ubuntu-7e0aa2d6.json", "sha256:7e0aa2d69a153215c790488ed1fcec162015e973e49962d438e18249d16fa9bd"),
]


# --- plain digests --------------------------------------------------------------------


def test_sha256_digest_of_empty_go_tar_is_the_empty_layer_diff_id():
    assert dg.sha256_digest(b"\0" * 1024) == dg.EMPTY_LAYER_DIFF_ID


def test_sha256_digest_format():
    assert dg.sha256_digest(b"abc") == ("sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")


def test_sha256_file_streams_large_file(tmp_path):
    p = tmp_path / "big"
    data = bytes(range(256)) * 20000  # 5 MB, several chunks
    p.write_bytes(data)
    assert dg.sha256_file(p) == "sha256:" + hashlib.sha256(data).hexdigest()


def test_digester_counts_and_matches_one_shot():
    d = dg.Digester()
    for part in (b"hello ", b"", b"world"):
        d.update(part)
    assert d.size == 11
    assert d.digest() == dg.sha256_digest(b"hello world")


def test_digester_is_a_write_target():
    d = dg.Digester()
    assert d.write(b"xyz") == 3
    assert d.digest() == dg.sha256_digest(b"xyz")


def test_sha256_stream():
    assert dg.sha256_stream(io.BytesIO(b"abc")) == dg.sha256_digest(b"abc")


@given(st.lists(st.binary(max_size=200), max_size=10))
def test_digester_equals_digest_of_concatenation(parts):
    d = dg.Digester()
    for p in parts:
        d.update(p)
    assert d.digest() == dg.sha256_digest(b"".join(parts))
    assert d.size == sum(map(len, parts))


# --- validate_digest: go-digest's order of checks and texts ---------------------------

GOOD = "sha256:" + "f" * 64


@pytest.mark.parametrize(
    "s",
    [
        GOOD,
        "sha384:" + "a" * 96,
        "sha512:" + "0" * 128,
    ],
)
def test_validate_digest_accepts(s):
    assert dg.validate_digest(s) == s


@pytest.mark.parametrize(
    "s, message",
    [
        ("", "invalid checksum digest format"),
        ("sha256", "invalid checksum digest format"),
        ("sha256:", "invalid checksum digest format"),
        (":" + "f" * 64, "invalid checksum digest format"),
        ("sha256:" + "f" * 63, "invalid checksum digest length"),
        ("sha256:" + "f" * 65, "invalid checksum digest length"),
        ("sha256:" + "F" * 64, "invalid checksum digest format"),  # upper-case hex refused
        ("sha256:" + "g" * 64, "invalid checksum digest format"),
        ("md5:" + "f" * 32, "unsupported digest algorithm"),
        ("invaliddigest:" + "f" * 64, "unsupported digest algorithm"),
        ("Sha256:" + "f" * 64, "invalid checksum digest format"),  # unknown and not digest-shaped
        ("foo:bar!baz", "invalid checksum digest format"),
    ],
)
def test_validate_digest_refuses_with_go_digest_text(s, message):
    with pytest.raises(dg.InvalidDigest) as exc:
        dg.validate_digest(s)
    assert str(exc.value) == message
    assert isinstance(exc.value, ValueError)


# --- ChainID ----------------------------------------------------------------------------


def test_chain_id_oci_vectors():
    # OCI image-spec identity/chainid_test.go, spec §2.5
    assert dg.chain_id(["sha256:" + "a" * 64]) == "sha256:" + "a" * 64
    # the OCI test feeds literal "sha256:a"; recompute the formula on the same string
    assert dg.sha256_digest(b"sha256:a sha256:b") == (
        "sha256:970a948bffa8de94d6e22d747ba8c95030e6e546909f98f54e99a13005e173a8"
    )


def test_chain_ids_of_real_ubuntu_image_match_docker_layerdb():
    diff_ids = [
        "sha256:ccdbb80308cc5ef43b605ac28fac29c6a597f89f5a169bbedbb8dec29c987439",
        "sha256:63c99163f47292f80f9d24c5b475751dbad6dc795596e935c5c7f1c73dc08107",
        "sha256:2f140462f3bcf8cf3752461e27dfd4b3531f266fa10cda716166bd3a78a19103",
    ]
    assert dg.chain_ids(diff_ids) == [
        diff_ids[0],
        "sha256:8d8dceacec7085abcab1f93ac1128765bc6cf0caac334c821e01546bd96eb741",
        "sha256:3dd8c8d4fd5b59d543c8f75a67cdfaab30aef5a6d99aea3fe74d8cc69d4e7bf2",
    ]
    assert dg.chain_id(diff_ids) == dg.chain_ids(diff_ids)[-1]


def test_chain_id_of_nothing_is_empty_like_docker():
    assert dg.chain_id([]) == ""


def test_chain_id_refuses_a_bad_diff_id():
    with pytest.raises(dg.InvalidDigest):
        dg.chain_id(["sha256:abc"])


# --- go_json ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "obj, expected",
    [
        ({"a": 1, "b": [True, False, None]}, b'{"a":1,"b":[true,false,null]}'),
        ({"z": 1, "a": 2}, b'{"z":1,"a":2}'),  # order kept as given
        ("<a href='x'>&</a>", b"\"\\u003ca href='x'\\u003e\\u0026\\u003c/a\\u003e\""),
        ("line\u2028para\u2029", b'"line\\u2028para\\u2029"'),
        ('tab\there\nnl\r"q" back\\', b'"tab\\there\\nnl\\r\\"q\\" back\\\\"'),
        ("\x00\x01\x1f", b'"\\u0000\\u0001\\u001f"'),
        ("\b\f", b'"\\b\\f"'),
        ("héllo 日本 🐳", '"héllo 日本 🐳"'.encode()),  # UTF-8 kept
        ("\x7f", b'"\x7f"'),  # DEL is not escaped by Go
        ([], b"[]"),
        ({}, b"{}"),
        (1.0, b"1"),
        (0.5, b"0.5"),
        (1e21, b"1e+21"),
        (1.5e-7, b"1.5e-7"),
        (1e20, b"100000000000000000000"),
        (-0.0, b"-0"),
        (12345678901234567890, b"12345678901234567890"),
    ],
)
def test_go_json(obj, expected):
    assert dg.go_json(obj) == expected


def test_go_json_lone_surrogate_becomes_replacement_char():
    assert dg.go_json("a\ud800b") == '"a\ufffdb"'.encode()


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), {1: "x"}, object()])
def test_go_json_refuses_what_go_refuses(bad):
    with pytest.raises((TypeError, ValueError)):
        dg.go_json(bad)


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text() | st.floats(allow_nan=False, allow_infinity=False),
        lambda children: st.lists(children) | st.dictionaries(st.text(), children),
        max_leaves=20,
    )
)
def test_go_json_is_valid_json_that_reads_back_equal(obj):
    raw = dg.go_json(obj)
    # Go writes an integral float without a point; compare numbers as floats
    assert json.loads(raw, parse_int=float) == json.loads(json.dumps(obj), parse_int=float)


# --- Docker image configs -----------------------------------------------------------------


@pytest.mark.parametrize("name, expected_id", REAL_CONFIGS)
def test_real_docker_config_bytes_have_their_image_id(name, expected_id):
    raw = (DATA / name).read_bytes()
    assert dg.image_id(raw) == expected_id


@pytest.mark.parametrize("name, expected_id", REAL_CONFIGS)
def test_canonical_config_json_reproduces_real_docker_bytes(name, expected_id):
    raw = (DATA / name).read_bytes()
    config = json.loads(raw)
    again = dg.canonical_config_json(config)
    assert again == raw
    assert dg.image_id(again) == expected_id


@pytest.mark.parametrize("name, expected_id", REAL_CONFIGS)
def test_canonical_config_json_restores_docker_order_from_shuffled_dicts(name, expected_id):
    config = json.loads((DATA / name).read_bytes())

    def shuffled(d):
        return {k: d[k] for k in reversed(list(d))}

    config = shuffled(config)
    config["config"] = shuffled(config["config"])
    config["container_config"] = shuffled(config["container_config"])
    config["rootfs"] = shuffled(config["rootfs"])
    config["history"] = [shuffled(h) for h in config["history"]]
    assert dg.image_id(dg.canonical_config_json(config)) == expected_id


def test_canonical_config_json_escapes_html_like_docker():
    # the ubuntu config's RUN lines hold && and >, which Docker writes as \u0026 and \u003e
    raw = (DATA / "config-ubuntu-7e0aa2d6.json").read_bytes()
    assert b"\\u0026\\u0026" in raw and b"&" not in raw
    assert dg.canonical_config_json(json.loads(raw)) == raw


def test_canonical_config_json_sorts_top_level_and_go_maps_only():
    config = {
        "rootfs": {"diff_ids": [], "type": "layers"},
        "os": "linux",
        "config": {"Labels": {"z": "1", "a": "2"}, "Env": ["B=1", "A=2"], "Cmd": ["sh"]},
        "architecture": "amd64",
        "x-extra": {"b": 1, "a": 2},
    }
    assert dg.canonical_config_json(config) == (
        b'{"architecture":"amd64",'
        b'"config":{"Env":["B=1","A=2"],"Cmd":["sh"],"Labels":{"a":"2","z":"1"}},'
        b'"os":"linux","rootfs":{"type":"layers","diff_ids":[]},'
        b'"x-extra":{"b":1,"a":2}}'
    )


def test_canonical_config_json_does_not_mutate_its_input():
    config = {"os": "linux", "architecture": "amd64", "config": {"Labels": {"b": "", "a": ""}}}
    before = json.dumps(config)
    dg.canonical_config_json(config)
    assert json.dumps(config) == before


def test_image_id_changes_with_one_byte():
    raw = (DATA / "config-hello-world-9c7a54a9.json").read_bytes()
    assert dg.image_id(raw + b" ") != dg.image_id(raw)


def test_go_json_without_html_escaping_like_the_cli_json_template():
    assert dg.go_json({"c": "a && b > c"}, escape_html=False) == b'{"c":"a && b > c"}'
    # U+2028/2029 are escaped even then, as Go does
    assert dg.go_json("\u2028", escape_html=False) == b'"\\u2028"'


def test_go_json_sort_keys_treats_every_dict_as_a_go_map():
    assert dg.go_json({"b": {"y": 1, "x": 2}, "a": [{"d": 1, "c": 2}]}, sort_keys=True) == (
        b'{"a":[{"c":2,"d":1}],"b":{"x":2,"y":1}}'
    )
