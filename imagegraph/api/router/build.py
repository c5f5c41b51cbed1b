"""The build router (moby api/server/router/build): `POST /build` with the classic builder.

The query is what `DOCKER_BUILDKIT=0 docker build` and docker-py send (t, dockerfile,
buildargs, nocache, rm, forcerm, labels, q, target, pull, platform, networkmode); the body is
the context tar. The answer streams as moby's: `{"stream": …}` per piece of output (a RUN's
stderr in red), `{"aux": {"ID": …}}` per stage (API 1.30+), and an error as `errorDetail`
(with a failed RUN's exit code, which the CLI exits with). An error before anything was sent
is an HTTP error. This daemon has no BuildKit: `_ping` says `Builder-Version: 1`, /session and
/grpc do not exist, and `version=2` is refused with the reason.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ...builder.internals import BuildError, BuildOptions
from ...builder.output import BufferedOutput, BuildOutput, JSONStreamOutput
from ...daemon.build import decode_auth_configs
from ...service import InvalidParameter
from .. import version_less
from ..httputils import Request, ResponseWriter, bool_value, write_json
from ..httputils.streamformatter import JSONProgressOutput
from . import Router, new_post_route

if TYPE_CHECKING:
    from ...daemon import Daemon

NO_BUILDKIT = (
    "BuildKit is not supported by this daemon (layerlab has the classic builder only): build with DOCKER_BUILDKIT=0"
)


def _json_form(r: Request, key: str, what: str) -> Any:
    raw = r.get(key)
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise InvalidParameter(f"error reading {what}: {exc}") from None


def build_options(r: Request) -> BuildOptions:
    """newImageBuildOptions: the classic builder's part of the query."""
    if r.get("version") not in ("", "1"):
        if r.get("version") == "2":
            raise InvalidParameter(NO_BUILDKIT)
        raise InvalidParameter(f'invalid version "{r.get("version")}"')
    if r.get("remote"):
        raise InvalidParameter(f"remote context {r.get('remote')}: layerlab builds offline")
    if r.values("securityopt"):
        raise InvalidParameter("security options are not supported on linux")
    if bool_value(r, "squash"):
        raise InvalidParameter("squash is only supported with experimental mode")
    build_args = _json_form(r, "buildargs", "build args") or {}
    labels = _json_form(r, "labels", "labels") or {}
    if not isinstance(build_args, dict) or not isinstance(labels, dict):
        raise InvalidParameter("error reading build args: not a JSON object")
    force_rm = bool_value(r, "forcerm")
    remove = True if force_rm or not r.has("rm") or r.get("rm") == "" else bool_value(r, "rm")
    return BuildOptions(
        tags=[t for t in r.values("t") if t],
        dockerfile=r.get("dockerfile"),
        build_args={str(k): (None if v is None else str(v)) for k, v in build_args.items()},
        labels={str(k): str(v) for k, v in labels.items()},
        no_cache=bool_value(r, "nocache"),
        remove=remove,
        force_remove=force_rm,
        pull=bool_value(r, "pull"),
        target=r.get("target"),
        platform="" if version_less(r.version, "1.32") else r.get("platform"),
        network_mode=r.get("networkmode"),
    )


class BuildRouter(Router):
    def __init__(self, daemon: Daemon) -> None:
        self.backend = daemon
        super().__init__()

    def init_routes(self) -> None:
        self.routes = [
            new_post_route("/build", self.postBuild),
            new_post_route("/build/prune", self.postPrune),
        ]

    def postPrune(self, w: ResponseWriter, r: Request) -> None:
        """`docker builder prune`: the classic builder keeps no cache outside the images."""
        write_json(w, 200, {"CachesDeleted": None, "SpaceReclaimed": 0})

    def postBuild(self, w: ResponseWriter, r: Request) -> None:
        options = build_options(r)
        quiet = bool_value(r, "q")
        w.set_header("Content-Type", "application/json")

        def send(data: bytes) -> None:
            w.write(data)
            w.flush()

        stream = JSONStreamOutput(send, aux=not version_less(r.version, "1.30"))
        out: BuildOutput = BufferedOutput() if quiet else stream
        progress = JSONProgressOutput(w, cancel=self.backend.cancel)
        puller = self.backend.build.puller(decode_auth_configs(r.header("X-Registry-Config")), progress)
        self.backend.flow.call("postBuild", "Build", f"{', '.join(options.tags) or '-'}, nocache={options.no_cache}")
        try:
            image_id = self.backend.build.build(options, r.stream, out, puller)
        except BuildError as exc:
            if isinstance(out, BufferedOutput) and out.text:
                stream.stdout(out.text)
            if not w.flushed:
                raise InvalidParameter(str(exc)) from None
            stream.error(str(exc), exc.code)
            w.flow_detail = f"stream ended with error: {exc}"
            return
        if quiet:
            stream.stdout(image_id + "\n")
        w.flow_detail = f"stream ended: built {image_id[:19]}"


__all__ = ["BuildRouter", "build_options", "NO_BUILDKIT"]
