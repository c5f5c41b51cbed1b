"""The build service (moby daemon/builder/backend): `POST /build` runs the classic builder.

The same builder as `imagegraph build` (`imagegraph.builder`), reading the context tar from the
request's body and writing its output as the Engine API's JSON stream. A base image the store
lacks is pulled with the credentials the client sent in `X-Registry-Config`, its progress in
the same stream (moby pullForBuilder). Each tag the build applies is an image event, as dockerd
logs it.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import IO, TYPE_CHECKING

from ..builder.backend import build
from ..builder.imagecontext import ImageSourceError, Puller
from ..builder.internals import BuildOptions
from ..builder.output import BuildOutput
from ..distribution import manifest as M
from ..distribution.credentials import INDEX_SERVER, AuthConfig
from ..reference import InvalidReference, familiar_string, parse_normalized_named, tag_name_only
from ..service import DaemonError

if TYPE_CHECKING:
    from ..api.httputils.streamformatter import JSONProgressOutput
    from . import Daemon


def decode_auth_configs(encoded: str) -> dict[str, AuthConfig]:
    """X-Registry-Config: base64url JSON, registry → AuthConfig; unreadable counts as none (moby)."""
    if not encoded:
        return {}
    try:
        data = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return {}
    if not isinstance(data, dict):
        return {}
    out = {}
    for server, v in data.items():
        if isinstance(v, dict):
            out[str(server)] = AuthConfig(
                str(v.get("username") or ""),
                str(v.get("password") or ""),
                str(v.get("identitytoken") or ""),
                str(v.get("serveraddress") or server),
            )
    return out


def resolve_auth(configs: dict[str, AuthConfig], domain: str) -> AuthConfig:
    """registry.ResolveAuthConfig: the entry for the registry (Docker Hub's under its index URL)."""
    key = INDEX_SERVER if domain == "docker.io" else domain
    for server, auth in configs.items():
        host = server.removeprefix("https://").removeprefix("http://").split("/", 1)[0]
        if server == key or host == domain or (domain == "docker.io" and host == "index.docker.io"):
            return auth
    return AuthConfig()


class BuildService:
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    def puller(self, auth_configs: dict[str, AuthConfig], progress: JSONProgressOutput) -> Puller:
        def pull_image(name: str, platform: str) -> str:
            try:
                ref = tag_name_only(parse_normalized_named(name))
                plat = M.parse_platform(platform) if platform else None
            except (InvalidReference, ValueError, M.ManifestError) as exc:
                raise ImageSourceError(str(exc)) from None
            try:
                self.daemon.images.pull_image(ref, plat, resolve_auth(auth_configs, ref.domain), progress)
            except DaemonError as exc:
                raise ImageSourceError(str(exc)) from None
            svc = self.daemon.services()
            with svc.lock.held(shared=True):
                svc.refs.reload()
                return svc.get_image(str(ref)).id

        return pull_image

    def build(self, options: BuildOptions, body: IO[bytes], out: BuildOutput, puller: Puller) -> str:
        """Backend.Build: the image ID, each tag logged as an event."""
        svc = self.daemon.services()
        image_id = build(svc, options, body, out, puller)
        for tag in options.tags:
            ref = tag_name_only(parse_normalized_named(tag))
            self.daemon.images.log_image_event(svc, image_id, familiar_string(ref), "tag")
            self.daemon.flow.graph(f"tagged {familiar_string(ref)} → {image_id[:19]}")
        return image_id


__all__ = ["BuildService", "decode_auth_configs", "resolve_auth"]
