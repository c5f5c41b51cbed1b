"""~/.docker/config.json: reading auths, identity tokens, credential helpers; writing as docker login."""

from __future__ import annotations

import base64
import json
import os
import stat

import pytest

from imagegraph.distribution.credentials import (
    INDEX_SERVER,
    AuthConfig,
    CredentialsError,
    auth_key,
    config_path,
    get_auth,
    store_auth,
)


def write(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def test_config_location(tmp_path):
    assert config_path({"DOCKER_CONFIG": str(tmp_path / "d")}) == tmp_path / "d" / "config.json"
    assert config_path({"HOME": str(tmp_path)}) == tmp_path / ".docker" / "config.json"


def test_docker_io_key():
    assert auth_key("docker.io") == INDEX_SERVER == "https://index.docker.io/v1/"
    assert auth_key("index.docker.io") == INDEX_SERVER
    assert auth_key("localhost:5000") == "localhost:5000"


def test_auths_entries(tmp_path):
    env = {"DOCKER_CONFIG": str(tmp_path)}
    write(
        tmp_path / "config.json",
        {
            "auths": {
                INDEX_SERVER: {"auth": b64("hubuser:hub:pass\x00")},
                "localhost:5000": {"auth": b64("alice:wonderland")},
                "https://legacy.example.com/v1/": {"auth": b64("old:timer")},
                "tok.example.com": {"identitytoken": "refresh-xyz"},
            }
        },
    )
    assert get_auth("docker.io", env) == AuthConfig("hubuser", "hub:pass", "", INDEX_SERVER)
    assert get_auth("localhost:5000", env).password == "wonderland"
    assert get_auth("legacy.example.com", env).username == "old"
    assert get_auth("tok.example.com", env).identitytoken == "refresh-xyz"
    assert get_auth("nowhere:1", env).empty


def test_missing_file_and_bad_auth(tmp_path):
    env = {"DOCKER_CONFIG": str(tmp_path)}
    assert get_auth("localhost:5000", env).empty
    write(tmp_path / "config.json", {"auths": {"h": {"auth": b64(":nouser")}}})
    with pytest.raises(CredentialsError, match="invalid auth configuration file"):
        get_auth("h", env)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(CredentialsError, match="^loading config file: "):
        get_auth("h", env)


@pytest.fixture
def helper_env(tmp_path):
    """A fake `docker-credential-fake` helper that stores secrets in a JSON file."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    store = tmp_path / "helper-store.json"
    store.write_text(
        json.dumps(
            {
                "reg.example.com": {"Username": "helperuser", "Secret": "helperpass"},
                INDEX_SERVER: {"Username": "<token>", "Secret": "hub-identity"},
            }
        )
    )
    script = bindir / "docker-credential-fake"
    script.write_text(f"""#!/usr/bin/env python3
import json, sys
store = json.load(open({str(store)!r}))
cmd = sys.argv[1]
data = sys.stdin.read()
if cmd == "get":
    entry = store.get(data.strip())
    if not entry:
        print("credentials not found in native keychain"); sys.exit(1)
    print(json.dumps(dict(entry, ServerURL=data.strip())))
elif cmd == "store":
    req = json.loads(data)
    store[req["ServerURL"]] = {{"Username": req["Username"], "Secret": req["Secret"]}}
    json.dump(store, open({str(store)!r}, "w"))
""")
    script.chmod(0o755)
    env = {"DOCKER_CONFIG": str(tmp_path / "cfg"), "PATH": f"{bindir}:{os.environ['PATH']}"}
    return env, store


def test_creds_store_and_helpers(helper_env, tmp_path):
    env, _ = helper_env
    write(tmp_path / "cfg" / "config.json", {"credsStore": "fake", "auths": {"plain:1": {"auth": b64("p:q")}}})
    assert get_auth("reg.example.com", env) == AuthConfig("helperuser", "helperpass", "", "reg.example.com")
    assert get_auth("docker.io", env) == AuthConfig(identitytoken="hub-identity", server_address=INDEX_SERVER)
    assert get_auth("plain:1", env).username == "p"  # helper has nothing: fall back to auths
    write(tmp_path / "cfg" / "config.json", {"credHelpers": {"reg.example.com": "fake"}})
    assert get_auth("reg.example.com", env).username == "helperuser"
    write(tmp_path / "cfg" / "config.json", {"credHelpers": {"reg.example.com": "absent"}})
    with pytest.raises(CredentialsError, match='exec: "docker-credential-absent": executable file not found'):
        get_auth("reg.example.com", env)


def test_store_auth_writes_like_docker_login(tmp_path):
    env = {"DOCKER_CONFIG": str(tmp_path)}
    write(tmp_path / "config.json", {"psFormat": "table {{.ID}}", "auths": {"other:1": {"auth": b64("x:y")}}})
    path = store_auth("localhost:5000", AuthConfig("alice", "wonderland"), env)
    data = json.loads(path.read_text())
    assert data == {
        "psFormat": "table {{.ID}}",
        "auths": {"other:1": {"auth": b64("x:y")}, "localhost:5000": {"auth": b64("alice:wonderland")}},
    }
    assert path.read_text().startswith('{\n\t"psFormat"')  # tab indented, like MarshalIndent
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    store_auth("docker.io", AuthConfig("hub", "pw"), env)
    assert get_auth("docker.io", env) == AuthConfig("hub", "pw", "", INDEX_SERVER)
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]  # no temporary files left


def test_store_auth_through_helper(helper_env, tmp_path):
    env, store = helper_env
    write(tmp_path / "cfg" / "config.json", {"credsStore": "fake"})
    store_auth("new.example.com", AuthConfig("n", "s"), env)
    assert json.loads(store.read_text())["new.example.com"] == {"Username": "n", "Secret": "s"}
    assert json.loads((tmp_path / "cfg" / "config.json").read_text())["auths"] == {"new.example.com": {}}
    assert get_auth("new.example.com", env).password == "s"
