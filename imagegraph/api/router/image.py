"""The image router (moby api/server/router/image): the twelve routes of the seed's `initRoutes`.

Each handler parses the request, calls the image service (`imagegraph.daemon.images`) and
formats the answer, as moby's `image_routes.go` does; the flow log shows the handler's name
and the backend call it makes (`postImagesCreate → PullImage`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...daemon import errdefs
from ...distribution import manifest as M
from ...reference import (
    InvalidReference,
    Reference,
    familiar_name,
    parse_normalized_named,
    trim_named,
    with_digest,
    with_tag,
)
from .. import httpstatus, version_less
from ..httputils import (
    BadRequest,
    Request,
    ResponseWriter,
    bool_value,
    bool_value_or_default,
    decode_auth_config,
    filters_from_json,
    int_value,
    read_json,
    repo_tag_reference,
    write_json,
)
from ..httputils.streamformatter import JSONProgressOutput
from . import Router, new_delete_route, new_get_route, new_post_route

if TYPE_CHECKING:
    from ...daemon import Daemon

NO_BASE_IMAGE = "scratch"


def parse_platform(text: str) -> M.Platform | None:
    """`os[/arch[/variant]]` (platforms.Parse); a bad one is a 400."""
    if not text:
        return None
    try:
        return M.parse_platform(text)
    except (ValueError, M.ManifestError) as exc:
        raise BadRequest(str(exc)) from None


def pull_reference(image: str, tag: str) -> Reference:
    """fromImage + tag (which may be a digest) → the reference to pull (postImagesCreate)."""
    name = image[:-1] if image.endswith(":") else image  # "pull -a" may send a trailing ":"
    try:
        ref = parse_normalized_named(name)
        if tag:
            if ":" in tag:  # a digest: sha256:…
                ref = with_digest(trim_named(ref), tag)
            else:
                ref = with_tag(ref, tag)
    except InvalidReference as exc:
        raise BadRequest(str(exc)) from None
    if familiar_name(ref) == NO_BASE_IMAGE:
        raise errdefs.Forbidden(f"'{NO_BASE_IMAGE}' is a reserved name")
    return ref


class ImageRouter(Router):
    def __init__(self, daemon: Daemon) -> None:
        self.backend = daemon
        super().__init__()

    def init_routes(self) -> None:
        self.routes = [
            # GET
            new_get_route("/images/json", self.getImagesJSON),
            new_get_route("/images/search", self.getImagesSearch),
            new_get_route("/images/get", self.getImagesGet),
            new_get_route("/images/{name:.*}/get", self.getImagesGet),
            new_get_route("/images/{name:.*}/history", self.getImagesHistory),
            new_get_route("/images/{name:.*}/json", self.getImagesByName),
            # POST
            new_post_route("/images/load", self.postImagesLoad),
            new_post_route("/images/create", self.postImagesCreate),
            new_post_route("/images/{name:.*}/push", self.postImagesPush),
            new_post_route("/images/{name:.*}/tag", self.postImagesTag),
            new_post_route("/images/prune", self.postImagesPrune),
            # DELETE
            new_delete_route("/images/{name:.*}", self.deleteImages),
        ]

    def _output(self, w: ResponseWriter, **kwargs: Any) -> JSONProgressOutput:
        w.set_header("Content-Type", "application/json")
        return JSONProgressOutput(w, cancel=self.backend.cancel, **kwargs)

    @staticmethod
    def _stream_failed(w: ResponseWriter, out: JSONProgressOutput, exc: Exception) -> None:
        """moby: an error before anything was sent is an HTTP error; after, it joins the stream."""
        if not w.flushed:
            raise exc
        message = httpstatus.error_message(exc)
        out.error(message)
        w.flow_detail = f"stream ended with error: {message}"

    # ---- POST ------------------------------------------------------------------------------------

    def postImagesCreate(self, w: ResponseWriter, r: Request) -> None:
        """Pull (`fromImage`, `tag`) or import (`fromSrc`, `repo`, `tag`, `message`, `changes`)."""
        image, repo, tag, comment = r.get("fromImage"), r.get("repo"), r.get("tag"), r.get("message")
        platform = parse_platform(r.get("platform"))
        if image:  # pull
            ref = pull_reference(image, tag)
            all_tags = not tag and ref.tag is None and ref.digest is None  # docker pull -a
            auth = decode_auth_config(r.header("X-Registry-Auth"))
            out = self._output(w)
            self.backend.flow.call("postImagesCreate", "PullImage", f"{ref}, platform={platform or '-'}")
            try:
                self.backend.images.pull_image(ref, platform, auth, out, all_tags=all_tags)
            except Exception as exc:
                self._stream_failed(w, out, exc)
                return
        else:  # import
            src = r.get("fromSrc")
            tag_ref = repo_tag_reference(repo, tag)
            if not comment:
                comment = "Imported from " + src
            out = self._output(w)
            self.backend.flow.call("postImagesCreate", "ImportImage", f"{src}, {tag_ref or '-'}")
            try:
                image_id = self.backend.images.import_image(src, r.stream, tag_ref, comment, r.values("changes"), out)
            except Exception as exc:
                self._stream_failed(w, out, exc)
                return
            out.message(image_id)
        w.flow_detail = f"stream ended: {out.last_status}"

    def postImagesPush(self, w: ResponseWriter, r: Request) -> None:
        encoded = r.header("X-Registry-Auth")
        if encoded:
            auth = decode_auth_config(encoded)
        else:  # the old form: credentials in the body
            body = read_json(r)
            if not isinstance(body, dict):
                raise BadRequest("bad parameters and missing X-Registry-Auth: invalid JSON")
            from ...distribution.credentials import AuthConfig

            auth = AuthConfig(
                str(body.get("username") or ""),
                str(body.get("password") or ""),
                str(body.get("identitytoken") or ""),
                str(body.get("serveraddress") or ""),
            )
        name, tag = r.vars["name"], r.get("tag")
        if tag:
            ref = repo_tag_reference(name, tag)
            assert ref is not None
        else:
            try:
                ref = parse_normalized_named(name)
            except InvalidReference as exc:
                raise BadRequest(str(exc)) from None
        out = self._output(w)
        self.backend.flow.call("postImagesPush", "PushImage", str(ref))
        try:
            self.backend.images.push_image(ref, auth, out, all_tags=ref.is_name_only)
        except Exception as exc:
            self._stream_failed(w, out, exc)
            return
        w.flow_detail = f"stream ended: {out.last_status}"

    def postImagesLoad(self, w: ResponseWriter, r: Request) -> None:
        if len(r.values("platform")) > 1:
            raise BadRequest("multiple platform parameters not supported")
        quiet = bool_value_or_default(r, "quiet", True)
        out = self._output(w, stream_lines=True, quiet=quiet)
        self.backend.flow.call("postImagesLoad", "LoadImage", f"quiet={str(quiet).lower()}")
        try:
            self.backend.images.load_image(r.stream, out)
        except Exception as exc:  # moby writes load's error into the stream, whatever was sent
            message = httpstatus.error_message(exc)
            out.error(message)
            w.flow_detail = f"stream ended with error: {message}"
            return
        w.flow_detail = f"stream ended: {out.last_status}"

    def postImagesTag(self, w: ResponseWriter, r: Request) -> None:
        ref = repo_tag_reference(r.get("repo"), r.get("tag"))
        if ref is None:
            raise BadRequest("repository name must have at least one component")
        if familiar_name(ref) == "sha256":
            raise BadRequest("refusing to create an ambiguous tag using digest algorithm as name")
        self.backend.flow.call("postImagesTag", "TagImage", f"{r.vars['name']}, {ref}")
        self.backend.images.tag_image(r.vars["name"], ref)
        w.write_header(201)

    def postImagesPrune(self, w: ResponseWriter, r: Request) -> None:
        filters = filters_from_json(r.get("filters"))
        self.backend.flow.call("postImagesPrune", "ImagesPrune", str(filters))
        write_json(w, 200, self.backend.images.images_prune(filters))

    # ---- GET -------------------------------------------------------------------------------------

    def getImagesJSON(self, w: ResponseWriter, r: Request) -> None:
        filters = filters_from_json(r.get("filters"))
        if version_less(r.version, "1.41") and r.get("filter"):
            filters.setdefault("reference", []).append(r.get("filter"))
        shared = bool_value(r, "shared-size") and not version_less(r.version, "1.42")
        images = self.backend.images.images(bool_value(r, "all"), filters, shared_size=shared)
        for img in images:
            if version_less(r.version, "1.43") and not img["RepoTags"] and not img["RepoDigests"]:
                img["RepoTags"], img["RepoDigests"] = ["<none>:<none>"], ["<none>@<none>"]
            if version_less(r.version, "1.44"):
                img["VirtualSize"] = img["Size"]
        write_json(w, 200, images)

    def getImagesByName(self, w: ResponseWriter, r: Request) -> None:
        info = self.backend.images.image_inspect(r.vars["name"])
        if version_less(r.version, "1.44"):
            info["VirtualSize"] = info["Size"]
        if not version_less(r.version, "1.45"):
            info.pop("Container", None)
            info.pop("ContainerConfig", None)
        if version_less(r.version, "1.50"):
            from ...daemon.images import legacy_image_config

            info["Config"] = legacy_image_config(info["Config"])
        ordered = {k: info[k] for k in _INSPECT_ORDER if k in info}
        write_json(w, 200, ordered)

    def getImagesHistory(self, w: ResponseWriter, r: Request) -> None:
        write_json(w, 200, self.backend.images.image_history(r.vars["name"]))

    def getImagesGet(self, w: ResponseWriter, r: Request) -> None:
        names = [r.vars["name"]] if "name" in r.vars else r.values("names")
        if len(r.values("platform")) > 1:
            raise BadRequest("multiple platform parameters not supported")
        w.set_header("Content-Type", "application/x-tar")
        self.backend.flow.call("getImagesGet", "ExportImage", ", ".join(names))
        try:
            self.backend.images.export_image(names, w)
        except Exception as exc:
            if not w.flushed:
                w.headers.pop("Content-Type", None)
                raise
            w.close_connection = True  # a broken tar: the client sees the stream end early
            w.flow_detail = f"stream ended with error: {httpstatus.error_message(exc)}"

    def getImagesSearch(self, w: ResponseWriter, r: Request) -> None:
        limit = int_value(r, "limit", 0)
        if limit < 0:
            raise BadRequest("invalid limit specified")
        filters = filters_from_json(r.get("filters"))
        auth = decode_auth_config(r.header("X-Registry-Auth"))
        self.backend.flow.call("getImagesSearch", "SearchRegistryForImages", r.get("term"))
        write_json(w, 200, self.backend.images.search(r.get("term"), limit, filters, auth))

    # ---- DELETE ----------------------------------------------------------------------------------

    def deleteImages(self, w: ResponseWriter, r: Request) -> None:
        name = r.vars["name"]
        if not name.strip():
            raise BadRequest("image name cannot be blank")
        force, prune = bool_value(r, "force"), not bool_value(r, "noprune")
        self.backend.flow.call("deleteImages", "ImageDelete", f"{name}, force={force}, prune={prune}")
        write_json(w, 200, self.backend.images.image_delete(name, force, prune))


_INSPECT_ORDER = (
    "Id",
    "RepoTags",
    "RepoDigests",
    "Parent",
    "Comment",
    "Created",
    "Container",
    "ContainerConfig",
    "DockerVersion",
    "Author",
    "Config",
    "Architecture",
    "Variant",
    "Os",
    "OsVersion",
    "Size",
    "VirtualSize",
    "GraphDriver",
    "RootFS",
    "Metadata",
)
