"""imagegraph.reference against distribution/reference v0.6.0's own test tables.

The cases below are the Go package's tables (reference_test.go, normalize_test.go,
regexp_test.go) rewritten as pytest parameters, plus the spec's worked examples (§1.6)
and the daemon's error texts.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imagegraph import reference as r
from imagegraph.reference import InvalidReference, Reference

F64 = "f" * 64
SHA = "sha256:" + F64
DBCC = "dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9c"

E_FORMAT = "invalid reference format"
E_EMPTY = "repository name must have at least one component"
E_UPPER = "repository name must be lowercase"
E_LONG = "repository name must not be more than 255 characters"
E_LENGTH = "invalid checksum digest length"
E_UNSUPPORTED = "unsupported digest algorithm"


def _err(fn, *args) -> str:
    with pytest.raises(InvalidReference) as exc:
        fn(*args)
    return str(exc.value)


# --- TestReferenceParse ------------------------------------------------------------------
# (input, name, domain, tag, digest); name None means "no name"
PARSE_OK = [
    ("test_com", "test_com", "", None, None),
    ("test.com:tag", "test.com", "", "tag", None),
    ("test.com:5000", "test.com", "", "5000", None),
    ("test.com/repo:tag", "test.com/repo", "test.com", "tag", None),
    ("test:5000/repo", "test:5000/repo", "test:5000", None, None),
    ("test:5000/repo:tag", "test:5000/repo", "test:5000", "tag", None),
    (f"test:5000/repo@{SHA}", "test:5000/repo", "test:5000", None, SHA),
    (f"test:5000/repo:tag@{SHA}", "test:5000/repo", "test:5000", "tag", SHA),
    ("lowercase:Uppercase", "lowercase", "", "Uppercase", None),
    ("a/" * 127 + "a:tag-puts-this-over-max", "a/" * 127 + "a", "a", "tag-puts-this-over-max", None),
    ("sub-dom1.foo.com/bar/baz/quux", "sub-dom1.foo.com/bar/baz/quux", "sub-dom1.foo.com", None, None),
    (
        "sub-dom1.foo.com/bar/baz/quux:some-long-tag",
        "sub-dom1.foo.com/bar/baz/quux",
        "sub-dom1.foo.com",
        "some-long-tag",
        None,
    ),
    (
        "b.gcr.io/test.example.com/my-app:test.example.com",
        "b.gcr.io/test.example.com/my-app",
        "b.gcr.io",
        "test.example.com",
        None,
    ),
    ("xn--n3h.com/myimage:xn--n3h.com", "xn--n3h.com/myimage", "xn--n3h.com", "xn--n3h.com", None),
    (
        "xn--7o8h.com/myimage:xn--7o8h.com@sha512:" + "f" * 128,
        "xn--7o8h.com/myimage",
        "xn--7o8h.com",
        "xn--7o8h.com",
        "sha512:" + "f" * 128,
    ),
    ("foo_bar.com:8080", "foo_bar.com", "", "8080", None),
    ("foo/foo_bar.com:8080", "foo/foo_bar.com", "foo", "8080", None),
    ("192.168.1.1", "192.168.1.1", "", None, None),
    ("192.168.1.1:tag", "192.168.1.1", "", "tag", None),
    ("192.168.1.1:5000", "192.168.1.1", "", "5000", None),
    ("192.168.1.1/repo", "192.168.1.1/repo", "192.168.1.1", None, None),
    ("192.168.1.1:5000/repo", "192.168.1.1:5000/repo", "192.168.1.1:5000", None, None),
    ("192.168.1.1:5000/repo:5050", "192.168.1.1:5000/repo", "192.168.1.1:5000", "5050", None),
    ("[2001:db8::1]/repo", "[2001:db8::1]/repo", "[2001:db8::1]", None, None),
    ("[2001:db8:1:2:3:4:5:6]/repo:tag", "[2001:db8:1:2:3:4:5:6]/repo", "[2001:db8:1:2:3:4:5:6]", "tag", None),
    ("[2001:db8::1]:5000/repo", "[2001:db8::1]:5000/repo", "[2001:db8::1]:5000", None, None),
    ("[2001:db8::1]:5000/repo:tag", "[2001:db8::1]:5000/repo", "[2001:db8::1]:5000", "tag", None),
    (f"[2001:db8::1]:5000/repo@{SHA}", "[2001:db8::1]:5000/repo", "[2001:db8::1]:5000", None, SHA),
    (f"[2001:db8::1]:5000/repo:tag@{SHA}", "[2001:db8::1]:5000/repo", "[2001:db8::1]:5000", "tag", SHA),
    ("[2001:db8::]:5000/repo", "[2001:db8::]:5000/repo", "[2001:db8::]:5000", None, None),
    ("[::1]:5000/repo", "[::1]:5000/repo", "[::1]:5000", None, None),
    ("Uppercase/lowercase:tag", "Uppercase/lowercase", "Uppercase", "tag", None),  # Go FIXME case
]


@pytest.mark.parametrize("s, name, dom, tag, dgst", PARSE_OK)
def test_parse(s, name, dom, tag, dgst):
    ref = r.parse(s)
    assert str(ref) == s
    assert ref.name == name
    assert ref.domain == dom == r.domain(ref)
    assert ref.tag == tag
    assert ref.digest == dgst


PARSE_ERR = [
    ("", E_EMPTY),
    (":justtag", E_FORMAT),
    (f"@{SHA}", E_FORMAT),
    ("repo@sha256:" + "f" * 34, E_LENGTH),
    (f"validname@invaliddigest:{F64}", E_UNSUPPORTED),
    ("Uppercase:tag", E_UPPER),
    ("test:5000/Uppercase/lowercase:tag", E_UPPER),
    ("a/" * 128 + "aa:tag", E_LONG),  # path 256; the Go table's "a/"*128+"a" predates PR #9
    ("aa/asdf$$^/aa", E_FORMAT),
    ("[2001:db8::1]", E_FORMAT),
    ("[2001:db8::1]:5000", E_FORMAT),
    ("[2001:db8::1]:tag", E_FORMAT),
    ("[fe80::1%eth0]:5000/repo", E_FORMAT),
    ("[fe80::1%@invalidzone]:5000/repo", E_FORMAT),
    ("repo@sha256:" + "F" * 64, "invalid checksum digest format"),
    ("ubuntu\n", E_FORMAT),  # Go's $ does not match before a newline; Python's would
]


@pytest.mark.parametrize("s, message", PARSE_ERR)
def test_parse_errors(s, message):
    assert _err(r.parse, s) == message


def test_name_length_limit_counts_the_path_only():
    # distribution/reference PR #9 (v0.6.0): "a" is the domain, the path is exactly 255
    assert r.parse("a/" * 128 + "a:tag").path == "a/" * 127 + "a"
    # since v0.6.0 (commit aaca75e) the domain is not counted
    path_ = "a" * 255
    assert r.parse("example.com/" + path_).path == path_
    assert _err(r.parse, "example.com/" + path_ + "a") == E_LONG


# --- TestWithNameFailure, TestDomainAndPath ----------------------------------------------


@pytest.mark.parametrize(
    "s", ["", ":justtag", f"@{SHA}", f"validname@invaliddigest:{F64}", "a/" * 128 + "a:tag", "aa/asdf$$^/aa"]
)
def test_with_name_failure(s):
    with pytest.raises(InvalidReference):
        r.with_name(s)


def test_with_name_too_long():
    assert _err(r.with_name, "a/" * 128 + "aa") == E_LONG
    assert r.with_name("a/" * 128 + "a").path == "a/" * 127 + "a"


@pytest.mark.parametrize(
    "s, dom, p",
    [
        ("test.com/foo", "test.com", "foo"),
        ("test_com/foo", "", "test_com/foo"),
        ("test:8080/foo", "test:8080", "foo"),
        ("test.com:8080/foo", "test.com:8080", "foo"),
        ("test-com:8080/foo", "test-com:8080", "foo"),
        ("xn--n3h.com:18080/foo", "xn--n3h.com:18080", "foo"),
    ],
)
def test_domain_and_path(s, dom, p):
    named = r.with_name(s)
    assert r.split_hostname(named) == (dom, p)
    assert r.domain(named) == dom and r.path(named) == p


# --- TestWithTag, TestWithDigest --------------------------------------------------------

SHORT = "sha256:1234567890098765432112345667890098765"


@pytest.mark.parametrize(
    "name, dgst, tag, combined",
    [
        ("test.com/foo", None, "tag", "test.com/foo:tag"),
        ("foo", None, "tag2", "foo:tag2"),
        ("test.com:8000/foo", None, "tag4", "test.com:8000/foo:tag4"),
        ("test.com:8000/foo", None, "TAG5", "test.com:8000/foo:TAG5"),
        ("test.com:8000/foo", SHORT, "TAG5", f"test.com:8000/foo:TAG5@{SHORT}"),
    ],
)
def test_with_tag(name, dgst, tag, combined):
    named = r.with_name(name)
    if dgst:
        named = r.with_digest(named, dgst)
    assert str(r.with_tag(named, tag)) == combined


@pytest.mark.parametrize(
    "name, dgst, tag, combined",
    [
        ("test.com/foo", SHORT, None, f"test.com/foo@{SHORT}"),
        ("foo", SHORT, None, f"foo@{SHORT}"),
        ("test.com:8000/foo", SHORT, None, f"test.com:8000/foo@{SHORT}"),
        ("test.com:8000/foo", SHORT, "latest", f"test.com:8000/foo:latest@{SHORT}"),
    ],
)
def test_with_digest(name, dgst, tag, combined):
    named = r.with_name(name)
    if tag:
        named = r.with_tag(named, tag)
    assert str(r.with_digest(named, dgst)) == combined


def test_invalid_reference_components():
    # TestInvalidReferenceComponents
    with pytest.raises(InvalidReference):
        r.parse_normalized_named("-foo")
    ref = r.parse_normalized_named("busybox")
    assert _err(r.with_tag, ref, "-foo") == "invalid tag format"
    assert _err(r.with_digest, ref, "foo") == "invalid digest format"


def test_with_tag_length_limit():
    ref = r.with_name("foo")
    assert r.with_tag(ref, "a" * 128).tag == "a" * 128
    assert _err(r.with_tag, ref, "a" * 129) == "invalid tag format"


# --- TestParseNamed -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "s, dom, p",
    [
        ("test.com/foo", "test.com", "foo"),
        ("test:8080/foo", "test:8080", "foo"),
        ("docker.io/library/foo", "docker.io", "library/foo"),
    ],
)
def test_parse_named(s, dom, p):
    ref = r.parse_named(s)
    assert (ref.domain, ref.path) == (dom, p)


@pytest.mark.parametrize("s", ["test_com/foo", "test.com", "foo", "library/foo", "docker.io/foo"])
def test_parse_named_not_canonical(s):
    assert _err(r.parse_named, s) == "repository name must be canonical"


# --- TestValidateReferenceName, TestValidateRemoteName ------------------------------------

VALID_NAMES = [
    "docker/docker",
    "library/debian",
    "debian",
    "docker.io/docker/docker",
    "docker.io/library/debian",
    "docker.io/debian",
    "index.docker.io/docker/docker",
    "index.docker.io/library/debian",
    "index.docker.io/debian",
    "127.0.0.1:5000/docker/docker",
    "127.0.0.1:5000/library/debian",
    "127.0.0.1:5000/debian",
    "192.168.0.1",
    "192.168.0.1:80",
    "192.168.0.1:8/debian",
    "192.168.0.2:25000/debian",
    "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
    "[fc00::1]:5000/docker",
    "[fc00::1]:5000/docker/docker",
    "[fc00:1:2:3:4:5:6:7]:5000/library/debian",
    "docker.io/1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
    "Docker/docker",
    "DOCKER/docker",
    "docker-rules/docker",
    "docker---rules/docker",
    "doc/docker",
    "d/docker",
    "jess/t",
    "dock__er/docker",
]
INVALID_NAMES = [
    "https://github.com/docker/docker",
    "docker/Docker",
    "-docker",
    "-docker/docker",
    "-docker.io/docker/docker",
    "docker///docker",
    "docker.io/docker/Docker",
    "docker.io/docker///docker",
    "[fc00::1]",
    "[fc00::1]:5000",
    "fc00::1:5000/debian",
    "[fe80::1%eth0]:5000/debian",
    "[2001:db8:3:4::192.0.2.33]:5000/debian",
    "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
    "docker-/docker",
    "-docker-/docker",
    "____/____",
    "_docker/_docker",
    "dock..er/docker",
    "dock_.er/docker",
    "dock-.er/docker",
    "docker/",
    "this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255" * 4 + "/docker",
]


@pytest.mark.parametrize("s", VALID_NAMES)
def test_valid_repository_names(s):
    assert r.parse_normalized_named(s).is_named


@pytest.mark.parametrize("s", INVALID_NAMES)
def test_invalid_repository_names(s):
    with pytest.raises(InvalidReference):
        r.parse_normalized_named(s)


# --- TestParseRepositoryInfo (+ spec §1.6 worked examples) --------------------------------
# (remote name, familiar, full, ambiguous alternative or "", domain)
REPO_INFO = [
    ("fooo/bar", "fooo/bar", "docker.io/fooo/bar", "index.docker.io/fooo/bar", "docker.io"),
    ("library/ubuntu", "ubuntu", "docker.io/library/ubuntu", "library/ubuntu", "docker.io"),
    ("nonlibrary/ubuntu", "nonlibrary/ubuntu", "docker.io/nonlibrary/ubuntu", "", "docker.io"),
    ("other/library", "other/library", "docker.io/other/library", "", "docker.io"),
    ("private/moonbase", "127.0.0.1:8000/private/moonbase", "127.0.0.1:8000/private/moonbase", "", "127.0.0.1:8000"),
    ("privatebase", "127.0.0.1:8000/privatebase", "127.0.0.1:8000/privatebase", "", "127.0.0.1:8000"),
    ("private/moonbase", "example.com/private/moonbase", "example.com/private/moonbase", "", "example.com"),
    ("privatebase", "example.com/privatebase", "example.com/privatebase", "", "example.com"),
    (
        "private/moonbase",
        "example.com:8000/private/moonbase",
        "example.com:8000/private/moonbase",
        "",
        "example.com:8000",
    ),
    ("privatebasee", "example.com:8000/privatebasee", "example.com:8000/privatebasee", "", "example.com:8000"),
    (
        "library/ubuntu-12.04-base",
        "ubuntu-12.04-base",
        "docker.io/library/ubuntu-12.04-base",
        "index.docker.io/library/ubuntu-12.04-base",
        "docker.io",
    ),
    ("library/foo", "foo", "docker.io/library/foo", "docker.io/foo", "docker.io"),
    ("library/foo/bar", "library/foo/bar", "docker.io/library/foo/bar", "", "docker.io"),
    ("store/foo/bar", "store/foo/bar", "docker.io/store/foo/bar", "", "docker.io"),
    ("bar", "Foo/bar", "Foo/bar", "", "Foo"),
    ("bar", "FOO/bar", "FOO/bar", "", "FOO"),
    ("fooo", "localhost/fooo", "localhost/fooo", "", "localhost"),  # spec §1.6
    ("library/ubuntu", "ubuntu", "docker.io/library/ubuntu", "ubuntu", "docker.io"),
]


@pytest.mark.parametrize(
    "s, remote, familiar, full, dom",
    [
        (s, remote, familiar, full, dom)
        for remote, familiar, full, ambiguous, dom in REPO_INFO
        for s in [familiar, full] + ([ambiguous] if ambiguous else [])
    ],
)
def test_parse_repository_info(s, remote, familiar, full, dom):
    named = r.parse_normalized_named(s)
    assert r.familiar_name(named) == familiar
    assert str(named) == full
    assert r.domain(named) == dom
    assert r.path(named) == remote


def test_parse_reference_with_tag_and_digest():
    short = "busybox:latest@sha256:86e0e091d0da6bde2456dbb48306f3956bbeb2eae1b5b9a43045843f69fe4aaa"
    ref = r.parse_normalized_named(short)
    assert str(ref) == "docker.io/library/" + short
    assert ref.tag == "latest" and ref.digest is not None
    assert r.familiar_string(ref) == short


# --- TestParseAnyReference ------------------------------------------------------------------


@pytest.mark.parametrize(
    "s, equivalent",
    [
        ("redis", "docker.io/library/redis"),
        ("redis:latest", "docker.io/library/redis:latest"),
        ("docker.io/library/redis:latest", "docker.io/library/redis:latest"),
        (f"redis@sha256:{DBCC}", f"docker.io/library/redis@sha256:{DBCC}"),
        (f"docker.io/library/redis@sha256:{DBCC}", f"docker.io/library/redis@sha256:{DBCC}"),
        ("dmcgowan/myapp", "docker.io/dmcgowan/myapp"),
        ("dmcgowan/myapp:latest", "docker.io/dmcgowan/myapp:latest"),
        ("docker.io/mcgowan/myapp:latest", "docker.io/mcgowan/myapp:latest"),
        (f"dmcgowan/myapp@sha256:{DBCC}", f"docker.io/dmcgowan/myapp@sha256:{DBCC}"),
        (f"docker.io/dmcgowan/myapp@sha256:{DBCC}", f"docker.io/dmcgowan/myapp@sha256:{DBCC}"),
        (DBCC[:-1], "docker.io/library/" + DBCC[:-1]),
        ("dbcc1", "docker.io/library/dbcc1"),
    ],
)
def test_parse_any_reference_names(s, equivalent):
    ref = r.parse_any_reference(s)
    assert str(ref) == equivalent
    assert ref == r.parse(equivalent)


@pytest.mark.parametrize("s", [DBCC, f"sha256:{DBCC}"])
def test_parse_any_reference_ids_are_digest_references(s):
    ref = r.parse_any_reference(s)
    assert ref == Reference("", None, f"sha256:{DBCC}")
    assert str(ref) == f"sha256:{DBCC}"
    assert not ref.is_named
    assert r.familiar_string(ref) == f"sha256:{DBCC}"


# --- TestNormalizedSplitHostname -------------------------------------------------------------


@pytest.mark.parametrize(
    "s, dom, p",
    [
        ("test.com/foo", "test.com", "foo"),
        ("test_com/foo", "docker.io", "test_com/foo"),
        ("docker/migrator", "docker.io", "docker/migrator"),
        ("test.com:8080/foo", "test.com:8080", "foo"),
        ("test-com:8080/foo", "test-com:8080", "foo"),
        ("foo", "docker.io", "library/foo"),
        ("xn--n3h.com/foo", "xn--n3h.com", "foo"),
        ("xn--n3h.com:18080/foo", "xn--n3h.com:18080", "foo"),
        ("docker.io/foo", "docker.io", "library/foo"),
        ("docker.io/library/foo", "docker.io", "library/foo"),
        ("docker.io/library/foo/bar", "docker.io", "library/foo/bar"),
        ("localhost:5000/app", "localhost:5000", "app"),
        ("localhost", "docker.io", "library/localhost"),  # a bare "localhost" is a Hub name
    ],
)
def test_normalized_split_hostname(s, dom, p):
    named = r.parse_normalized_named(s)
    assert (named.domain, named.path) == (dom, p)
    assert r.split_hostname(named) == (dom, p)


# --- TestMatch, TestMatchError ------------------------------------------------------------------


@pytest.mark.parametrize(
    "ref, pattern, expected",
    [
        ("foo", "foo/**/ba[rz]", False),
        ("foo/any/bat", "foo/**/ba[rz]", False),
        ("foo/a/bar", "foo/**/ba[rz]", True),
        ("foo/b/baz", "foo/**/ba[rz]", True),
        ("foo/c/baz:tag", "foo/**/ba[rz]", True),
        ("foo/c/baz:tag", "foo/*/baz:tag", True),
        ("foo/c/baz:tag", "foo/c/baz:tag", True),
        ("example.com/foo/c/baz:tag", "*/foo/c/baz", True),
        ("example.com/foo/c/baz:tag", "example.com/foo/c/baz", True),
        ("ubuntu:22.04", "ubuntu", True),
        ("ubuntu:22.04", "ub*", True),
        ("ubuntu:22.04", "ub?ntu:2[^3]*", True),
        ("ubuntu:22.04", "debian", False),
    ],
)
def test_familiar_match(ref, pattern, expected):
    assert r.familiar_match(pattern, r.parse_any_reference(ref)) is expected


def test_familiar_match_bad_pattern():
    assert _err(r.familiar_match, "[-x]", r.parse_any_reference("foo")) == "syntax error in pattern"


# --- TestParseDockerRef ---------------------------------------------------------------------------

E6 = "sha256:e6693c20186f837fc393390135d8a598a96a833917917789d63766cab6c59582"


@pytest.mark.parametrize(
    "s, expected",
    [
        ("busybox", "docker.io/library/busybox:latest"),
        ("busybox:latest", "docker.io/library/busybox:latest"),
        (f"busybox@{E6}", f"docker.io/library/busybox@{E6}"),
        ("library/busybox", "docker.io/library/busybox:latest"),
        ("docker.io/busybox", "docker.io/library/busybox:latest"),
        ("docker.io/library/busybox", "docker.io/library/busybox:latest"),
        ("docker.io/busybox:latest", "docker.io/library/busybox:latest"),
        ("library/busybox:latest", "docker.io/library/busybox:latest"),
        ("docker.io/library/busybox:latest", "docker.io/library/busybox:latest"),
        ("gcr.io/library/busybox", "gcr.io/library/busybox:latest"),
        (f"gcr.io/library/busybox:latest@{E6}", f"gcr.io/library/busybox@{E6}"),
    ],
)
def test_parse_docker_ref(s, expected):
    ref = r.parse_docker_ref(s)
    assert str(ref) == expected
    assert r.parse(str(ref)) == ref


# --- regexp_test.go: the anchored name regexp's two groups ------------------------------------


@pytest.mark.parametrize(
    "s, dom, p",
    [
        ("short", "", "short"),
        ("simple/name", "simple", "name"),
        ("docker/stevvooe/app", "docker", "stevvooe/app"),
        ("aa/aa/bb/bb/bb", "aa", "aa/bb/bb/bb"),
        ("a/a/a/a", "a", "a/a/a"),
        ("foo.com", "", "foo.com"),
        ("foo.com:8080/bar", "foo.com:8080", "bar"),
        ("localhost:8080/bar", "localhost:8080", "bar"),
        ("aa-a/a", "aa-a", "a"),
        ("foo_bar.com", "", "foo_bar.com"),
        ("do__cker/docker", "", "do__cker/docker"),
        (
            "registry.io/foo/project--id.module--name.ver---sion--name",
            "registry.io",
            "foo/project--id.module--name.ver---sion--name",
        ),
        ("example.com/some_separator__underscore/myimage", "example.com", "some_separator__underscore/myimage"),
    ],
)
def test_name_regexp_groups(s, dom, p):
    assert r.split_hostname(r.with_name(s)) == (dom, p)


@pytest.mark.parametrize(
    "s",
    [
        "",
        "a/a/a/a/",
        "a//a/a",
        "foo.com/",
        "foo.com:http/bar",
        "a^a",
        "a-/a/a/a",
        "foo.com/a-/a/a",
        "-foo/bar",
        "foo/bar-",
        "foo-/bar",
        "foo/-bar",
        "_foo/bar",
        "foo_bar.com:8080",
        "foo_bar.com:8080/app",
        "docker_/docker_",
        "example.com/__underscore/myimage",
        "example.com/..dots/myimage",
        "example.com/.dots/myimage",
        "example.com/nodouble..dots/myimage",
        "docker./docker",
        ".docker/docker",
        "do..cker/docker",
        "do__cker:8080/docker",
        "Foo/FarB",
    ],
)
def test_name_regexp_refuses(s):
    assert _err(r.with_name, s) == E_FORMAT


@pytest.mark.parametrize(
    "s, name, tag, dgst",
    [
        ("registry.com:8080/myapp:tag", "registry.com:8080/myapp", "tag", None),
        (
            "localhost:8080@" + "sha256:be178c0543eb17f5f3043021c9e5fcf30285e557a4fc309cce97ff9ca6182912",
            "localhost",
            "8080",
            "sha256:be178c0543eb17f5f3043021c9e5fcf30285e557a4fc309cce97ff9ca6182912",
        ),
        (
            "localhost@sha256:be178c0543eb17f5f3043021c9e5fcf30285e557a4fc309cce97ff9ca6182912",
            "localhost",
            None,
            "sha256:be178c0543eb17f5f3043021c9e5fcf30285e557a4fc309cce97ff9ca6182912",
        ),
    ],
)
def test_reference_regexp_groups(s, name, tag, dgst):
    ref = r.parse(s)
    assert (ref.name, ref.tag, ref.digest) == (name, tag, dgst)


@pytest.mark.parametrize(
    "s",
    [
        "registry.com:8080/myapp@sha256:badbadbadbad",
        "registry.com:8080/myapp:invalid~tag",
        "bad_hostname.com:8080/myapp:tag",
        "registry.com:8080/myapp@bad",
        "registry.com:8080/myapp@2bad",
    ],
)
def test_reference_regexp_refuses(s):
    assert _err(r.parse, s) == E_FORMAT


@pytest.mark.parametrize(
    "s, expected",
    [
        ("da304e823d8ca2b9d863a3c897baeb852ba21ea9a9f1414736394ae7fcaf9821", True),
        ("7EC43B381E5AEFE6E04EFB0B3F0693FF2A4A50652D64AEC573905F2DB5889A1C", False),
        ("da304e823d8ca2b9d863a3c897baeb852ba21ea9a9f1414736394ae7fcaf", False),
        ("sha256:da304e823d8ca2b9d863a3c897baeb852ba21ea9a9f1414736394ae7fcaf9821", False),
        ("da304e823d8ca2b9d863a3c897baeb852ba21ea9a9f1414736394ae7fcaf98218482", False),
    ],
)
def test_identifier(s, expected):
    assert r.is_identifier(s) is expected


# --- Docker's error texts for what students type -------------------------------------------


@pytest.mark.parametrize(
    "s, message",
    [
        ("Foo", "invalid reference format: repository name (library/Foo) must be lowercase"),
        ("ubuntu/Bar:1", "invalid reference format: repository name (ubuntu/Bar) must be lowercase"),
        (DBCC, f"invalid repository name ({DBCC}), cannot specify 64-byte hexadecimal strings"),
        ("", E_FORMAT),  # "" becomes "docker.io/library/", which has no path
        ("ubuntu:", E_FORMAT),
        ("ubuntu:-bad", E_FORMAT),
        ("ubuntu@sha256:abc", E_FORMAT),
        ("ubuntu@sha256:" + "a" * 63 + "g", E_FORMAT),
        ("ubuntu@sha256:" + "a" * 32, E_LENGTH),
        ("a" * 256, E_LONG),
    ],
)
def test_parse_normalized_named_errors(s, message):
    assert _err(r.parse_normalized_named, s) == message


def test_errors_are_value_errors():
    with pytest.raises(ValueError):
        r.parse("")


# --- the small helpers --------------------------------------------------------------------------


def test_reference_dataclass():
    ref = r.parse_normalized_named("ubuntu:22.04")
    assert ref == Reference("docker.io/library/ubuntu", "22.04", None)
    assert (ref.domain, ref.path) == ("docker.io", "library/ubuntu")
    with pytest.raises(AttributeError):
        ref.tag = "x"  # type: ignore[misc]  # the point: a frozen field refuses assignment


def test_tag_name_only_and_trim_named():
    bare = r.parse_normalized_named("ubuntu")
    assert str(r.tag_name_only(bare)) == "docker.io/library/ubuntu:latest"
    tagged = r.parse_normalized_named("ubuntu:22.04")
    assert r.tag_name_only(tagged) is tagged
    digested = r.parse_normalized_named(f"ubuntu@{SHA}")
    assert r.tag_name_only(digested) is digested
    both = r.parse_normalized_named(f"ubuntu:1@{SHA}")
    assert r.trim_named(both) == bare


def test_familiar_forms():
    assert r.familiar_string(r.parse_docker_ref("ubuntu")) == "ubuntu:latest"
    assert r.familiar_string(r.parse_docker_ref("localhost:5000/app")) == "localhost:5000/app:latest"
    assert r.familiar_name(r.parse_normalized_named("index.docker.io/library/foo")) == "foo"


def test_constants():
    assert (r.DEFAULT_TAG, r.DEFAULT_DOMAIN, r.LEGACY_DEFAULT_DOMAIN, r.OFFICIAL_REPO_PREFIX) == (
        "latest",
        "docker.io",
        "index.docker.io",
        "library/",
    )


# --- properties ---------------------------------------------------------------------------------

_component = st.from_regex(r"[a-z0-9]{1,5}(?:[._-][a-z0-9]{1,4})?", fullmatch=True)
_tag = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,10}", fullmatch=True)


@given(st.lists(_component, min_size=1, max_size=3), st.none() | _tag)
def test_normalised_string_is_a_fixed_point(parts, tag):
    s = "/".join(parts) + (f":{tag}" if tag else "")
    ref = r.parse_normalized_named(s)
    assert r.parse_normalized_named(str(ref)) == ref
    assert r.parse_normalized_named(r.familiar_string(ref)) == ref
    assert r.parse_named(str(ref)) == ref


@given(st.text(max_size=30))
def test_parsers_raise_only_invalid_reference(s):
    for fn in (r.parse, r.parse_normalized_named, r.parse_any_reference, r.parse_docker_ref):
        try:
            fn(s)
        except InvalidReference:
            pass
