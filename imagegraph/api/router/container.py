"""The container router (moby api/server/router/container).

Here the routes of containers as things on disk (create, list, inspect, diff, commit, export,
archive, rename, rm, prune); the routes of running containers (start, stop, kill, restart,
wait, resize, attach, logs, top, exec) are the handlers of `container_run.ContainerRunRoutes`,
which this router is too. A hijacking handler (attach, exec start) calls `w.hijack()` and
then speaks on `r.connection`.
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING, Any

from ..httputils import (
    BadRequest,
    Request,
    ResponseWriter,
    bool_value,
    check_for_json,
    filters_from_json,
    int_value,
    read_json,
    repo_tag_reference,
    write_json,
)
from . import Router, new_delete_route, new_get_route, new_head_route, new_post_route, new_put_route
from .container_run import ContainerRunRoutes

if TYPE_CHECKING:
    from ...daemon import Daemon


def _archive_form(r: Request) -> tuple[str, str]:
    """httputils.ArchiveFormValues: the container and `path`, both required."""
    name, path = r.vars.get("name", ""), r.get("path")
    if not name:
        raise BadRequest("bad parameter: name cannot be empty")
    if not path:
        raise BadRequest("bad parameter: path cannot be empty")
    return name, path


def _negotiate_encoding(accept: str) -> str:
    """gzip or deflate when the client asks for them (writeCompressedResponse), else identity."""
    offered = {part.split(";", 1)[0].strip().lower() for part in accept.split(",") if part.strip()}
    for enc in ("gzip", "deflate"):
        if enc in offered:
            return enc
    return ""


class ContainerRouter(ContainerRunRoutes, Router):
    def __init__(self, daemon: Daemon) -> None:
        self.backend = daemon
        super().__init__()

    def init_routes(self) -> None:
        self.routes = [
            # HEAD
            new_head_route("/containers/{name:.*}/archive", self.headContainersArchive),
            # GET
            new_get_route("/containers/json", self.getContainersJSON),
            new_get_route("/containers/{name:.*}/export", self.getContainersExport),
            new_get_route("/containers/{name:.*}/changes", self.getContainersChanges),
            new_get_route("/containers/{name:.*}/json", self.getContainersByName),
            new_get_route("/containers/{name:.*}/archive", self.getContainersArchive),
            # POST
            new_post_route("/containers/create", self.postContainersCreate),
            new_post_route("/containers/{name:.*}/rename", self.postContainerRename),
            new_post_route("/containers/prune", self.postContainersPrune),
            new_post_route("/commit", self.postCommit),
            # PUT
            new_put_route("/containers/{name:.*}/archive", self.putContainersArchive),
            # DELETE
            new_delete_route("/containers/{name:.*}", self.deleteContainers),
            # Running containers: start, stop, kill, restart, wait, resize, attach, logs, top,
            # exec and /exec/{id}/… (container_run.py). Routes match by method, so the catch-all
            # DELETE above takes none of them.
            *self.run_routes(),
        ]

    # ---- create, list, inspect ---------------------------------------------------------------------

    def postContainersCreate(self, w: ResponseWriter, r: Request) -> None:
        check_for_json(r)
        body = read_json(r)
        if body is None:
            raise BadRequest("invalid JSON: got EOF while reading request body")
        if not isinstance(body, dict):
            raise BadRequest("invalid JSON: json: cannot unmarshal into Go value of type container.CreateRequest")
        host_config = body.get("HostConfig")
        config: dict[str, Any] = {k: v for k, v in body.items() if k not in ("HostConfig", "NetworkingConfig")}
        for key, kind in (("Cmd", list), ("Entrypoint", list), ("Env", list), ("Labels", dict)):
            value = config.get(key)
            if isinstance(value, str) and key in ("Cmd", "Entrypoint"):
                config[key] = [value]  # strslice: a string is a one-element list
            elif value is not None and not isinstance(value, kind):
                raise BadRequest(f"invalid JSON: {key} has the wrong type")
        name = r.get("name")
        self.backend.flow.call("postContainersCreate", "ContainerCreate", f"{name or '-'}, {config.get('Image')}")
        container_id = self.backend.containers.container_create(
            name, config, host_config if isinstance(host_config, dict) else None
        )
        write_json(w, 201, {"Id": container_id, "Warnings": []})

    def getContainersJSON(self, w: ResponseWriter, r: Request) -> None:
        filters = filters_from_json(r.get("filters"))
        result = self.backend.containers.containers(
            bool_value(r, "all"),
            filters,
            size=bool_value(r, "size"),
            limit=int_value(r, "limit", 0),
            since=r.get("since"),
            before=r.get("before"),
        )
        write_json(w, 200, result)

    def getContainersByName(self, w: ResponseWriter, r: Request) -> None:
        write_json(w, 200, self.backend.containers.container_inspect(r.vars["name"], bool_value(r, "size")))

    def getContainersChanges(self, w: ResponseWriter, r: Request) -> None:
        write_json(w, 200, self.backend.containers.container_changes(r.vars["name"]))

    # ---- commit ------------------------------------------------------------------------------------------

    def postCommit(self, w: ResponseWriter, r: Request) -> None:
        config = read_json(r)
        if config is not None and not isinstance(config, dict):
            raise BadRequest("invalid JSON: the body must be a container config")
        ref = repo_tag_reference(r.get("repo"), r.get("tag"))
        container = r.get("container")
        self.backend.flow.call("postCommit", "CreateImageFromContainer", f"{container}, {ref or '-'}")
        image_id = self.backend.containers.create_image_from_container(
            container,
            ref,
            r.get("author"),
            r.get("comment"),
            r.values("changes"),
            config,  # `pause` is not honoured: a running container is not frozen while its layer is read
        )
        write_json(w, 201, {"Id": image_id})

    # ---- export and archive ------------------------------------------------------------------------------

    def getContainersExport(self, w: ResponseWriter, r: Request) -> None:
        c, stream = self.backend.containers.container_export(r.vars["name"])
        w.set_header("Content-Type", "application/x-tar")
        for chunk in stream:
            w.write(chunk)
        self.backend.containers.exported(c)

    def headContainersArchive(self, w: ResponseWriter, r: Request) -> None:
        name, path = _archive_form(r)
        st = self.backend.containers.container_stat_path(name, path)
        w.set_header("X-Docker-Container-Path-Stat", st.header())

    def getContainersArchive(self, w: ResponseWriter, r: Request) -> None:
        name, path = _archive_form(r)
        st, stream, c = self.backend.containers.container_archive_path(name, path)
        w.set_header("X-Docker-Container-Path-Stat", st.header())
        w.set_header("Content-Type", "application/x-tar")
        encoding = _negotiate_encoding(r.header("Accept-Encoding"))
        if encoding:
            w.set_header("Content-Encoding", encoding)
        compressor: Any = None
        if encoding == "gzip":
            compressor = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            compressor = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
        for chunk in stream:
            w.write(compressor.compress(chunk) if compressor else chunk)
        if compressor:
            w.write(compressor.flush())
        self.backend.containers.log_container_event(c, "archive-path")

    def putContainersArchive(self, w: ResponseWriter, r: Request) -> None:
        name, path = _archive_form(r)
        self.backend.flow.call("putContainersArchive", "ContainerExtractToDir", f"{name}, {path}")
        self.backend.containers.container_extract_to_dir(name, path, bool_value(r, "noOverwriteDirNonDir"), r.stream)

    # ---- rename, remove, prune ---------------------------------------------------------------------------

    def postContainerRename(self, w: ResponseWriter, r: Request) -> None:
        self.backend.containers.container_rename(r.vars["name"], r.get("name"))
        w.write_header(204)

    def deleteContainers(self, w: ResponseWriter, r: Request) -> None:
        name = r.vars["name"]
        self.backend.flow.call("deleteContainers", "ContainerRm", name)
        self.backend.containers.container_rm(name, bool_value(r, "force"), bool_value(r, "link"))
        w.write_header(204)

    def postContainersPrune(self, w: ResponseWriter, r: Request) -> None:
        filters = filters_from_json(r.get("filters"))
        write_json(w, 200, self.backend.containers.containers_prune(filters))
