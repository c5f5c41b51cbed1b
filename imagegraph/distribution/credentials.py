"""Registry credentials from the docker CLI's config file, and writing it as `docker login` does.

Source: docker/cli cli/config/configfile/file.go, credentials/{file_store,native_store}.go.
The file is `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`. Lookup order for a
registry: `credHelpers[key]`, then `credsStore`, then the plaintext `auths` entry. The key is
the registry's domain, except that docker.io is filed under `https://index.docker.io/v1/`.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..store import atomic_file
from .errors import RegistryError

INDEX_SERVER = "https://index.docker.io/v1/"
TOKEN_USERNAME = "<token>"  # a credential helper's way of saying "this secret is an identity token"


class CredentialsError(RegistryError):
    """The config file or a credential helper could not be used."""


@dataclass(frozen=True)
class AuthConfig:
    """What we know to log in to one registry (moby's registry.AuthConfig, trimmed)."""

    username: str = ""
    password: str = ""
    identitytoken: str = ""
    server_address: str = ""

    @property
    def empty(self) -> bool:
        return not (self.username or self.password or self.identitytoken)


def config_dir(env: Mapping[str, str] | None = None) -> Path:
    """$DOCKER_CONFIG, else ~/.docker (docker/cli config.Dir)."""
    env = os.environ if env is None else env
    if env.get("DOCKER_CONFIG"):
        return Path(env["DOCKER_CONFIG"])
    home = env.get("HOME") or os.path.expanduser("~")
    return Path(home) / ".docker"


def config_path(env: Mapping[str, str] | None = None) -> Path:
    return config_dir(env) / "config.json"


def auth_key(domain: str) -> str:
    """The `auths`/helper key for a registry domain (cli/command/registry.go getAuthConfigKey)."""
    if domain in ("docker.io", "index.docker.io"):
        return INDEX_SERVER
    return domain


def login_domain(server: str | None) -> str:
    """The registry `docker login SERVER` means: scheme and path dropped; Docker Hub's names → docker.io."""
    if not server:
        return "docker.io"
    for prefix in ("https://", "http://"):
        if server.startswith(prefix):
            server = server[len(prefix) :]
    server = server.split("/", 1)[0]
    return "docker.io" if server in ("index.docker.io", "registry-1.docker.io") else server


def convert_to_hostname(key: str) -> str:
    """Strip a scheme and path from a legacy key such as `https://host:5000/v1/`."""
    for prefix in ("http://", "https://"):
        if key.startswith(prefix):
            key = key[len(prefix) :]
            break
    return key.split("/", 1)[0]


def load_config(path: Path) -> dict:
    """The config file as a dict; an absent file is an empty config."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise CredentialsError(f"loading config file: {exc}") from exc
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CredentialsError(f"loading config file: {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise CredentialsError(f"loading config file: {path}: not a JSON object")
    return data


def decode_auth(value: str) -> tuple[str, str]:
    """`auth` field → (user, password): std base64, split at the first ':', NULs trimmed."""
    try:
        raw = base64.b64decode(value, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise CredentialsError("invalid auth configuration file") from exc
    user, sep, password = raw.partition(":")
    if not sep or not user:
        raise CredentialsError("invalid auth configuration file")
    return user, password.strip("\x00")


def encode_auth(username: str, password: str) -> str:
    return base64.b64encode(f"{username}:{password}".encode()).decode()


def _helper_get(helper: str, server: str, env: Mapping[str, str] | None) -> AuthConfig:
    """Run `docker-credential-<helper> get` with the server address on stdin."""
    prog = f"docker-credential-{helper}"
    try:
        proc = subprocess.run(
            [prog, "get"],
            input=server.encode(),
            capture_output=True,
            env=None if env is None else dict(env),
            timeout=30,
        )
    except FileNotFoundError as exc:
        raise CredentialsError(
            f'error getting credentials - err: exec: "{prog}": executable file not found in $PATH, out: ``'
        ) from exc
    out = proc.stdout.decode(errors="replace").strip()
    if proc.returncode != 0:
        if "credentials not found" in out.lower():
            return AuthConfig(server_address=server)
        raise CredentialsError(f"error getting credentials - err: exit status {proc.returncode}, out: `{out}`")
    try:
        data = json.loads(out)
    except json.JSONDecodeError as exc:
        raise CredentialsError(f"error getting credentials - err: {exc}, out: `{out}`") from exc
    user, secret = data.get("Username", ""), data.get("Secret", "")
    if user == TOKEN_USERNAME:
        return AuthConfig(identitytoken=secret, server_address=server)
    return AuthConfig(username=user, password=secret, server_address=server)


def _helper_store(helper: str, auth: AuthConfig, env: Mapping[str, str] | None) -> None:
    prog = f"docker-credential-{helper}"
    user, secret = (TOKEN_USERNAME, auth.identitytoken) if auth.identitytoken else (auth.username, auth.password)
    payload = json.dumps({"ServerURL": auth.server_address, "Username": user, "Secret": secret}).encode()
    try:
        proc = subprocess.run(
            [prog, "store"], input=payload, capture_output=True, env=None if env is None else dict(env), timeout=30
        )
    except FileNotFoundError as exc:
        raise CredentialsError(
            f'error storing credentials - err: exec: "{prog}": executable file not found in $PATH, out: ``'
        ) from exc
    if proc.returncode != 0:
        out = proc.stdout.decode(errors="replace").strip()
        raise CredentialsError(f"error storing credentials - err: exit status {proc.returncode}, out: `{out}`")


def _from_auths(auths: dict, key: str) -> AuthConfig | None:
    entry = auths.get(key)
    if entry is None:  # legacy keys such as "http://host:5000/v1/"
        for k, v in auths.items():
            if convert_to_hostname(k) == convert_to_hostname(key):
                entry, key = v, k
                break
    if not isinstance(entry, dict):
        return None
    user, password = entry.get("username", ""), entry.get("password", "")
    if entry.get("auth"):
        user, password = decode_auth(entry["auth"])
    return AuthConfig(
        username=user, password=password, identitytoken=entry.get("identitytoken", ""), server_address=key
    )


def get_auth(domain: str, env: Mapping[str, str] | None = None, path: Path | None = None) -> AuthConfig:
    """The credentials for `domain` (empty AuthConfig if there are none)."""
    path = path or config_path(env)
    config = load_config(path)
    key = auth_key(domain)
    helper = (config.get("credHelpers") or {}).get(key) or config.get("credsStore")
    if helper:
        found = _helper_get(helper, key, env)
        if not found.empty:
            return found
    return _from_auths(config.get("auths") or {}, key) or AuthConfig(server_address=key)


def store_auth(domain: str, auth: AuthConfig, env: Mapping[str, str] | None = None, path: Path | None = None) -> Path:
    """Save credentials as `docker login` does; returns the config file written.

    With a credential helper the secret goes to the helper and `auths` keeps an empty entry;
    otherwise `auths[key].auth` holds base64(user:pass). The file is written to a temporary
    name and renamed into place, mode 0600, tab-indented like docker's MarshalIndent.
    """
    path = path or config_path(env)
    config = load_config(path)
    key = auth_key(domain)
    auth = AuthConfig(auth.username, auth.password, auth.identitytoken, key)
    auths = config.setdefault("auths", {})
    helper = (config.get("credHelpers") or {}).get(key) or config.get("credsStore")
    if helper:
        _helper_store(helper, auth, env)
        auths[key] = {}
    else:
        entry: dict[str, str] = {}
        if auth.username or auth.password:
            entry["auth"] = encode_auth(auth.username, auth.password)
        if auth.identitytoken:
            entry["identitytoken"] = auth.identitytoken
        auths[key] = entry
    write_config(path, config)
    return path


def write_config(path: Path, config: dict) -> None:
    """Atomically replace the config file (temporary name, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with atomic_file(path, 0o600, prefix=".config.json.") as f:
        f.write(json.dumps(config, indent="\t").encode())
