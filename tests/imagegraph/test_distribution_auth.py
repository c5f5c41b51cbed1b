"""Auth: challenge parsing, Basic auth (htpasswd registry), Bearer tokens (token server + registry)."""

from __future__ import annotations

import hashlib
import os

import pytest

from imagegraph.distribution.auth import Authenticator, Challenge, error_text, parse_www_authenticate
from imagegraph.distribution.client import RegistryClient
from imagegraph.distribution.credentials import AuthConfig
from imagegraph.distribution.errors import Unauthorized

from .registry_fixture import start_registry
from .token_server import TokenServer, make_keypair


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# ---- parsing ------------------------------------------------------------------------------------


def test_parse_bearer_challenge_with_comma_in_scope():
    h = (
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:samalba/my-app:pull,push"'
    )
    assert parse_www_authenticate(h) == [
        Challenge(
            "bearer",
            {
                "realm": "https://auth.docker.io/token",
                "service": "registry.docker.io",
                "scope": "repository:samalba/my-app:pull,push",
            },
        )
    ]


def test_parse_several_challenges_escapes_and_tokens():
    h = 'Basic realm="a \\"quoted\\" realm", Bearer realm=https://x/t , error="insufficient_scope"'
    assert parse_www_authenticate(h) == [
        Challenge("basic", {"realm": 'a "quoted" realm'}),
        Challenge("bearer", {"realm": "https://x/t", "error": "insufficient_scope"}),
    ]


def test_parse_empty_header():
    assert parse_www_authenticate("") == []


def test_error_text_shapes():
    assert (
        error_text(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}')
        == "manifest unknown: manifest unknown"
    )
    assert (
        error_text(401, b'{"details":"incorrect username or password"}')
        == "unauthorized: incorrect username or password"
    )
    assert error_text(401, b"") == "unauthorized: authentication required"
    assert error_text(500, b"oops") == "unexpected status code 500"


def test_token_cache_per_scope_and_expiry():
    calls = []
    now = [1000.0]

    def fetch(url, headers):
        calls.append((url, dict(headers)))
        return 200, {}, b'{"token":"t%d","expires_in":60}' % len(calls)

    a = Authenticator(AuthConfig("u", "p"), fetch, clock=lambda: now[0])
    assert a.handle_challenge('Bearer realm="http://ts/token",service="svc"')
    assert a.authorization(("repository:a:pull",)) == "Bearer t1"
    assert a.authorization(("repository:a:pull",)) == "Bearer t1"  # cached
    assert a.authorization(("repository:a:pull,push",)) == "Bearer t2"  # another scope
    assert calls[0][0] == "http://ts/token?service=svc&scope=repository%3Aa%3Apull&account=u"
    assert calls[0][1]["Authorization"] == "Basic dTpw"
    now[0] += 55  # past expiry minus the renewal margin
    assert a.authorization(("repository:a:pull",)) == "Bearer t3"


def test_identity_token_is_sent_as_bearer_to_the_token_server():
    seen = []

    def fetch(url, headers):
        seen.append(headers.get("Authorization"))
        return 200, {}, b'{"access_token":"abc"}'

    a = Authenticator(AuthConfig(identitytoken="refresh-me"), fetch)
    a.handle_challenge('Bearer realm="http://ts/token"')
    assert a.authorization(("repository:x:pull",)) == "Bearer abc"
    assert seen == ["Bearer refresh-me"]


def test_token_server_refusal_is_unauthorized():
    a = Authenticator(AuthConfig("u", "bad"), lambda url, h: (401, {}, b'{"details":"incorrect username or password"}'))
    a.handle_challenge('Bearer realm="http://ts/token"')
    with pytest.raises(Unauthorized, match="^unauthorized: incorrect username or password$"):
        a.authorization(("repository:x:pull",))


# ---- Basic auth against docker-registry with htpasswd -------------------------------------------


@pytest.mark.registry
def test_basic_auth_right_wrong_and_missing_credentials(basic_registry):
    data = os.urandom(500)
    d = digest_of(data)
    good = RegistryClient(basic_registry.domain, AuthConfig("alice", "wonderland"))
    good.upload_blob("basic/repo", d, data, len(data))
    assert good.get_blob("basic/repo", d) == data
    url = f"http://{basic_registry.domain}/v2/basic/repo/blobs/{d}"
    with pytest.raises(Unauthorized) as exc:
        RegistryClient(basic_registry.domain, AuthConfig("alice", "wrong")).head_blob("basic/repo", d)
    assert str(exc.value) == f'Head "{url}": unauthorized: authentication required'
    with pytest.raises(Unauthorized) as exc:
        RegistryClient(basic_registry.domain).get_blob("basic/repo", d)
    assert str(exc.value) == f'Get "{url}": no basic auth credentials'


@pytest.mark.registry
def test_login_check_basic(basic_registry):
    RegistryClient(basic_registry.domain, AuthConfig("alice", "wonderland")).check_login()
    with pytest.raises(Unauthorized) as exc:
        RegistryClient(basic_registry.domain, AuthConfig("alice", "nope")).check_login()
    assert str(exc.value) == f"login attempt to http://{basic_registry.domain}/v2/ failed with status: 401 Unauthorized"


# ---- Bearer tokens: our token server in front of docker-registry -------------------------------


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory):
    work = tmp_path_factory.mktemp("token")
    ts = TokenServer(
        *make_keypair(work),
        users={"bob": "secret", "reader": "r"},
        permissions={"reader": {"pull"}},
        identity_tokens={"bob-refresh": "bob"},
    )
    with ts.serve():
        with start_registry(work / "registry", token=ts.registry_settings()) as reg:
            yield ts, reg


@pytest.mark.registry
def test_bearer_push_and_pull_with_token_reuse(token_registry):
    ts, reg = token_registry
    ts.requests.clear()
    c = RegistryClient(reg.domain, AuthConfig("bob", "secret"))
    blobs = [os.urandom(300) for _ in range(3)]
    for b in blobs:
        c.upload_blob("tok/repo", digest_of(b), b, len(b))
    for b in blobs:
        assert c.get_blob("tok/repo", digest_of(b)) == b
    # one token per scope, reused for every blob
    assert [(r.account, r.scopes, r.service) for r in ts.requests] == [
        ("bob", ["repository:tok/repo:pull,push"], "layerlab-registry"),
        ("bob", ["repository:tok/repo:pull"], "layerlab-registry"),
    ]


@pytest.mark.registry
def test_bearer_cross_repo_mount_asks_for_both_scopes(token_registry):
    ts, reg = token_registry
    c = RegistryClient(reg.domain, AuthConfig("bob", "secret"))
    data = os.urandom(100)
    c.upload_blob("tok/src", digest_of(data), data, len(data))
    ts.requests.clear()
    assert c.mount_blob("tok/dst", digest_of(data), "tok/src")
    assert sorted(ts.requests[0].scopes) == ["repository:tok/dst:pull,push", "repository:tok/src:pull"]


@pytest.mark.registry
def test_bearer_identity_token(token_registry):
    _, reg = token_registry
    c = RegistryClient(reg.domain, AuthConfig(identitytoken="bob-refresh"))
    data = os.urandom(100)
    c.upload_blob("tok/ident", digest_of(data), data, len(data))
    assert c.head_blob("tok/ident", digest_of(data)) == 100


@pytest.mark.registry
def test_bearer_wrong_password_and_anonymous_and_read_only(token_registry):
    _, reg = token_registry
    url = f"http://{reg.domain}/v2/tok/repo/manifests/latest"
    with pytest.raises(Unauthorized) as exc:
        RegistryClient(reg.domain, AuthConfig("bob", "wrong")).head_manifest("tok/repo", "latest")
    assert str(exc.value) == f'Head "{url}": unauthorized: incorrect username or password'
    with pytest.raises(Unauthorized) as exc:  # anonymous gets a token with no actions
        RegistryClient(reg.domain).head_manifest("tok/repo", "latest")
    assert str(exc.value) == f'Head "{url}": unauthorized: authentication required'
    reader = RegistryClient(reg.domain, AuthConfig("reader", "r"))
    data = b"read only"
    with pytest.raises(Unauthorized):
        reader.upload_blob("tok/ro", digest_of(data), data, len(data))


@pytest.mark.registry
def test_image_push_and_pull_through_the_token_flow(token_registry, tmp_path):
    """A whole image travels through the Bearer flow, credentials read from config.json."""
    import io

    from imagegraph.distribution.credentials import store_auth
    from imagegraph.distribution.localstore import open_local_store
    from imagegraph.distribution.progress import ProgressWriter
    from imagegraph.distribution.pull import PullOptions, pull
    from imagegraph.distribution.push import push
    from imagegraph.reference import parse_normalized_named

    from .distribution_helpers import build_image

    ts, reg = token_registry
    (tmp_path / "w").mkdir()
    env = {"DOCKER_CONFIG": str(tmp_path / "cfg")}
    store_auth(reg.domain, AuthConfig("bob", "secret"), env)
    a, b = open_local_store(tmp_path / "a"), open_local_store(tmp_path / "b")
    name = f"{reg.domain}/tok/image:1"
    image_id = build_image(a, tmp_path / "w", [{"one": "1"}, {"two": "2"}], name)
    ref = parse_normalized_named(name)
    ts.requests.clear()
    push(a, ref, ProgressWriter(io.StringIO(), tty=False), PullOptions(env=env))
    assert pull(b, ref, ProgressWriter(io.StringIO(), tty=False), PullOptions(env=env)).image_id == image_id
    assert {tuple(r.scopes) for r in ts.requests} == {
        ("repository:tok/image:pull,push",),
        ("repository:tok/image:pull",),
    }
    assert all(r.account == "bob" for r in ts.requests)
