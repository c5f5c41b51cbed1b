"""The image service (moby daemon/images): what the image routes call.

The algorithms themselves (rmi's rules, prune, the image list, history, import) are the
service layer's (`imagegraph.service.Services`), shared with the `imagegraph` command; pull,
push, save and load are `imagegraph.distribution` and `imagegraph.tarexport`'s. This module
adds what only a daemon has: events, the flow log, credentials that come with the request
(X-Registry-Auth) rather than from config.json, and answers shaped as the Engine API's types.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol, cast

from ..commit import ChangeError, apply_changes
from ..container import full_config
from ..digest import _CONTAINER_CONFIG_ORDER, _ordered, chain_ids
from ..distribution import manifest as M
from ..distribution.client import RegistryClient
from ..distribution.credentials import AuthConfig
from ..distribution.errors import RegistryError
from ..distribution.pull import PullOptions, PullResult, pull, pull_all_tags
from ..distribution.push import PushResult, push, push_all_tags
from ..imagestore import Image
from ..reference import (
    Reference,
    familiar_name,
    familiar_string,
    parse_normalized_named,
    tag_name_only,
)
from ..refstore import RefError
from ..service import DaemonError, InvalidParameter, NotFound, Services
from ..tarexport import TarExportError, load, save
from . import errdefs
from .prune_filters import PruneFilters

if TYPE_CHECKING:
    from . import Daemon


class ProgressOutput(Protocol):
    """What pull, push, load and import report to (the terminal writer or the JSON stream)."""

    def message(self, status: str, id: str = "") -> None: ...

    def update(self, id: str, status: str) -> None: ...

    def progress(self, id: str, status: str, current: int, total: int, start: float = 0.0) -> None: ...


#: The fields of an image's config that the Engine API shows in ImageInspect.Config (API 1.50+:
#: dockerspec.DockerOCIImageConfig, every field omitted when empty), in Go's order.
_OCI_CONFIG_FIELDS = (
    "User",
    "ExposedPorts",
    "Env",
    "Entrypoint",
    "Cmd",
    "Volumes",
    "WorkingDir",
    "Labels",
    "StopSignal",
    "ArgsEscaped",
    "Healthcheck",
    "OnBuild",
    "Shell",
)


def oci_image_config(cfg: dict[str, Any] | None) -> dict[str, Any]:
    """containerConfigToDockerOCIImageConfig, as JSON: the image-relevant fields, empty ones left out."""
    cfg = cfg or {}
    return {k: cfg[k] for k in _OCI_CONFIG_FIELDS if cfg.get(k)}


def legacy_image_config(cfg: dict[str, Any] | None) -> dict[str, Any]:
    """dockerOCIImageConfigToContainerConfig (API < 1.50): the same fields in a container.Config."""
    kept = oci_image_config(cfg)
    return _ordered(full_config(kept), _CONTAINER_CONFIG_ORDER)


@dataclass
class ImageService:
    daemon: Daemon

    # ---- events ---------------------------------------------------------------------------------

    def log_image_event(self, svc: Services | None, image_id: str, ref_name: str, action: str) -> None:
        """LogImageEvent: the image's labels (while it still exists) and `name`."""
        attributes: dict[str, str] = {}
        if svc is not None:
            try:
                attributes.update(svc.images.get(image_id).container_config.get("Labels") or {})
            except Exception:
                pass  # deleted already, or not an image ID (pull and push log the reference)
        if ref_name:
            attributes["name"] = ref_name
        self.daemon.events.log(action, "image", image_id, attributes)

    def _log_delete_records(
        self, svc: Services, records: list[dict[str, str]], before: tuple[dict[str, str], set[str]]
    ) -> None:
        """untag and delete events for ImageDelete's records; `before` is (each reference as the
        records show it → its image, the image IDs), read before the delete."""
        owner, image_ids = before
        for rec in records:
            if "Untagged" in rec:
                image_id = owner.get(rec["Untagged"], "")
                self.log_image_event(svc, image_id, image_id, "untag")
            elif rec.get("Deleted", "") in image_ids:
                self.log_image_event(None, rec["Deleted"], rec["Deleted"], "delete")

    # ---- reading --------------------------------------------------------------------------------

    def get_image(self, svc: Services, name: str) -> Image:
        return svc.get_image(name)

    def images(
        self,
        all_: bool = False,
        filters: dict[str, list[str]] | None = None,
        shared_size: bool = False,
        container_count: bool = False,
    ) -> list[dict[str, Any]]:
        """GET /images/json: ImageSummary objects, newest first (moby Images)."""
        svc = self.daemon.services()
        with svc.lock.held(shared=True):
            rows = svc.list_image_rows(all_, filters)
            layers = {layer.chain_id: layer for layer in svc.layers.layers()} if shared_size else {}
            refcount: dict[str, int] = {}
            if shared_size:
                for img in svc.images.images():
                    for chain in chain_ids(img.diff_ids):
                        refcount[chain] = refcount.get(chain, 0) + 1
            out = []
            for img, s in rows:
                shared = -1
                if shared_size:
                    shared = sum(
                        layers[c].size for c in chain_ids(img.diff_ids) if refcount.get(c, 0) > 1 and c in layers
                    )
                out.append(
                    {
                        "Containers": s["Containers"] if container_count else -1,
                        "Created": s["Created"],
                        "Id": s["Id"],
                        "Labels": img.container_config.get("Labels"),
                        "ParentId": s["ParentId"],
                        "RepoDigests": s["RepoDigests"],
                        "RepoTags": s["RepoTags"],
                        "SharedSize": shared,
                        "Size": s["Size"],
                    }
                )
        return out

    def image_inspect(self, name: str) -> dict[str, Any]:
        """GET /images/{name}/json as API 1.50 shapes it (the router adapts older versions)."""
        svc = self.daemon.services()
        with svc.lock.held(shared=True):
            img = svc.get_image(name)
            base = svc.inspect_image(img)
        cfg = img.config
        comment = cfg.get("comment") or ""
        if not comment and img.history:
            comment = img.history[-1].get("comment", "")
        out: dict[str, Any] = {
            "Id": base["Id"],
            "RepoTags": base["RepoTags"],
            "RepoDigests": base["RepoDigests"],
            "Parent": base["Parent"],
            "Comment": comment,
        }
        if base.get("Created"):
            out["Created"] = base["Created"]
        if cfg.get("container"):
            out["Container"] = cfg["container"]
        if cfg.get("container_config"):
            out["ContainerConfig"] = _ordered(full_config(cfg["container_config"]), _CONTAINER_CONFIG_ORDER)
        out["DockerVersion"] = cfg.get("docker_version", "")
        out["Author"] = base["Author"]
        out["Config"] = oci_image_config(cfg.get("config"))
        out["Architecture"] = base["Architecture"]
        if cfg.get("variant"):
            out["Variant"] = cfg["variant"]
        out["Os"] = base["Os"]
        if cfg.get("os.version"):
            out["OsVersion"] = cfg["os.version"]
        out["Size"] = base["Size"]
        out["GraphDriver"] = base["GraphDriver"]
        out["RootFS"] = {"Type": "layers", "Layers": img.diff_ids} if img.diff_ids else {"Type": "layers"}
        out["Metadata"] = base["Metadata"]
        return out

    def image_history(self, name: str) -> list[dict[str, Any]]:
        """GET /images/{name}/history: HistoryResponseItem objects, newest first."""
        svc = self.daemon.services()
        with svc.lock.held(shared=True):
            rows = svc.history(name)
        return [
            {
                "Comment": r["Comment"],
                "Created": r["Created"],
                "CreatedBy": r["CreatedBy"],
                "Id": r["Id"],
                "Size": r["Size"],
                "Tags": r["Tags"],
            }
            for r in rows
        ]

    # ---- tag, delete, prune ---------------------------------------------------------------------

    def tag_image(self, name: str, ref: Reference) -> None:
        """POST /images/{name}/tag (TagImage): the image by name, ID or prefix, then the tag."""
        svc = self.daemon.services()
        with svc.lock.held():
            svc.refs.reload()
            try:
                img = svc.get_image(name)
            except InvalidParameter as exc:
                raise NotFound(str(exc)) from None
            try:
                svc.refs.add_tag(tag_name_only(ref), img.id, force=True)
            except RefError as exc:
                raise InvalidParameter(str(exc)) from None
            svc.images.set_last_updated(img.id)
            self.log_image_event(svc, img.id, familiar_string(tag_name_only(ref)), "tag")

    @staticmethod
    def _before_delete(svc: Services) -> tuple[dict[str, str], set[str]]:
        svc.refs.reload()
        return {familiar_string(r): image_id for r, image_id in svc.refs.all()}, set(svc.images.ids())

    def image_delete(self, name: str, force: bool, prune: bool) -> list[dict[str, str]]:
        """DELETE /images/{name} (ImageDelete): Untagged and Deleted records."""
        svc = self.daemon.services()
        with svc.lock.held():
            before = self._before_delete(svc)
            records = svc.image_delete(name, force, prune)
            self._log_delete_records(svc, records, before)
        return records

    def images_prune(self, filters: dict[str, list[str]]) -> dict[str, Any]:
        """POST /images/prune (ImagesPrune): `dangling=false` prunes every unused image."""
        prune = PruneFilters.parse(filters, also=("dangling",))
        dangling = filters.get("dangling", ["true"])[-1].lower()
        if dangling not in ("true", "false", "1", "0"):
            raise InvalidParameter(f"invalid filter 'dangling={dangling}'")

        def admit(image: Image) -> bool:  # moby: the image's created time and its config's labels
            return prune.admit(image.created_ts, image.container_config.get("Labels") or {})

        svc = self.daemon.services()
        with svc.lock.held():
            before = self._before_delete(svc)
            records, reclaimed = svc.image_prune(all_=dangling in ("false", "0"), admit=admit)
            self._log_delete_records(svc, records, before)
        self.daemon.events.log("prune", "image", "", {"reclaimed": str(reclaimed)})
        return {"ImagesDeleted": records or None, "SpaceReclaimed": reclaimed}

    # ---- pull and push (the seed's PullImage) ---------------------------------------------------

    def _options(self, auth: AuthConfig, platform: M.Platform | None = None) -> PullOptions:
        return PullOptions(
            platform=platform,
            insecure_registries=self.daemon.config.insecure_registries,
            client_factory=lambda domain: self.daemon.registry_client(domain, auth),
            max_concurrent_downloads=self.daemon.config.max_concurrent_downloads,
            max_concurrent_uploads=self.daemon.config.max_concurrent_uploads,
        )

    def pull_image(
        self, ref: Reference, platform: M.Platform | None, auth: AuthConfig, out: ProgressOutput, all_tags: bool = False
    ) -> None:
        """PullImage: from the registry into the graph, with the credentials the client sent;
        with `all_tags` (a bare name, `docker pull -a`) every tag the registry lists."""
        store = self.daemon.local_store()
        options = self._options(auth, platform)
        try:
            if all_tags:
                results = pull_all_tags(store, ref, out, options)  # type: ignore[arg-type]
            else:
                results = [pull(store, ref, out, options)]  # type: ignore[arg-type]
        except RegistryError as exc:
            raise translate_pull_error(exc, ref) from None
        for result in results:
            self._flow_pulled(result)
            self.log_image_event(None, familiar_string(result.reference), familiar_name(ref), "pull")

    def _flow_pulled(self, result: PullResult) -> None:
        """Where each layer went in the graph (layerdb by ChainID, files under its cache-id)."""
        flow = self.daemon.flow
        if not flow.enabled:
            return
        svc = self.daemon.services()
        img = svc.images.get(result.image_id)
        downloaded = set(result.downloaded)
        n = len(img.diff_ids)
        for i, (diff_id, chain) in enumerate(zip(img.diff_ids, chain_ids(img.diff_ids), strict=True), 1):
            blob = result.layer_blobs[i - 1] if i <= len(result.layer_blobs) else ""
            layer = svc.layers.get(chain)
            how = "downloaded" if blob in downloaded else "already there"
            flow.graph(
                f"layer {i}/{n} blob {blob[7:19]} ({how}) → layerdb/sha256/{chain[7:]}/ "
                f"diff {diff_id[:19]}… cache-id {layer.cache_id[:12]}… (files in layerfs/{layer.cache_id[:12]}…/diff)"
            )
        flow.graph(
            f"image {result.image_id[:19]}… (imagedb/content/sha256/{result.image_id[7:19]}…) "
            f"← {familiar_string(result.reference)}, RepoDigest {result.manifest_digest[:19]}…"
        )

    def push_image(self, ref: Reference, auth: AuthConfig, out: JSONProgressLike, all_tags: bool = False) -> None:
        """PushImage: the tag's layers, config and manifest to the registry; aux {Tag, Digest,
        Size} for each tag pushed (with `all_tags`, a bare name: `docker push -a`, every tag)."""
        store = self.daemon.local_store()
        store.refs.reload()
        name_ref = parse_normalized_named(ref.name)
        if not store.refs.references_by_name(name_ref):
            out.message(f"The push refers to repository [{ref.name}]")
            raise DaemonError(f"An image does not exist locally with the tag: {familiar_name(ref)}")

        def pushed(tag_ref: Reference, result: PushResult) -> None:
            out.aux({"Tag": tag_ref.tag or "latest", "Digest": result.digest, "Size": result.size})
            self.log_image_event(None, familiar_string(tag_ref), familiar_name(tag_ref), "push")

        try:
            if all_tags:
                push_all_tags(store, ref, out, self._options(auth), each=pushed)  # type: ignore[arg-type]
            else:
                pushed(ref, push(store, ref, out, self._options(auth)))  # type: ignore[arg-type]
        except RegistryError as exc:
            raise translate_pull_error(exc, ref) from None

    # ---- import, load, save ---------------------------------------------------------------------

    def import_image(
        self,
        src: str,
        body: BinaryIO,
        ref: Reference | None,
        message: str,
        changes: list[str],
        out: ProgressOutput,
    ) -> str:
        """ImportImage: one layer from the request body (`fromSrc=-`) or an http(s) URL."""
        try:
            apply_changes({}, changes)
        except ChangeError as exc:
            raise InvalidParameter(str(exc)) from None
        stream: BinaryIO = body
        response = None
        if src != "-":
            url = src if "://" in src else "http://" + src
            if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
                raise InvalidParameter(f"unsupported URL scheme: {url}")
            try:
                response = urllib.request.urlopen(url, timeout=30)
            except OSError as exc:
                raise DaemonError(f'Get "{url}": {exc}') from None
            out.message(f"Downloading from {url}")
            total = int(response.headers.get("Content-Length") or 0)
            stream = _Reporting(response, lambda n: out.progress("", "Importing", n, total))  # type: ignore[assignment]
        try:
            svc = self.daemon.services()
            image_id = svc.import_image(stream, str(ref) if ref else None, changes, message)
        finally:
            if response is not None:
                response.close()
        self.log_image_event(svc, image_id, image_id, "import")
        if ref is not None:
            self.log_image_event(svc, image_id, familiar_string(ref), "tag")
        return image_id

    def load_image(self, body: BinaryIO, out: ProgressOutput) -> None:
        """LoadImage: every image of a `docker save` tar (or an OCI layout)."""
        store = self.daemon.local_store()
        try:
            lines = load(store, body, out)  # type: ignore[arg-type]
        except TarExportError as exc:
            raise InvalidParameter(str(exc)) from None
        svc = self.daemon.services()
        for line in lines:
            name = line.split(": ", 1)[1]
            try:
                image_id = svc.get_image(name).id
            except DaemonError:
                continue
            self.log_image_event(svc, image_id, image_id, "load")

    def export_image(self, names: list[str], out: Writable) -> None:
        """ExportImage: the images as one tar, in Docker 25's layout, streamed as it is made."""
        store = self.daemon.local_store()
        svc = self.daemon.services()
        ids = []
        for name in names:
            try:
                ids.append(svc.get_image(name).id)
            except NotFound as exc:
                raise NotFound(str(exc)) from None
        try:
            save(store, names, cast(BinaryIO, out))  # tarfile only calls write()
        except TarExportError as exc:
            raise NotFound(str(exc)) if "No such image" in str(exc) else DaemonError(str(exc)) from None
        for image_id in ids:
            self.log_image_event(svc, image_id, image_id, "save")

    # ---- search -----------------------------------------------------------------------------------

    def search(self, term: str, limit: int, filters: dict[str, list[str]], auth: AuthConfig) -> list[dict[str, Any]]:
        """No Docker Hub here: the catalogs (`/v2/_catalog`) of the registries named in the term
        (`127.0.0.1:5000/hello`) or in daemon.json, as Docker Hub's search answers."""
        for key in filters:
            if key not in ("is-automated", "is-official", "stars"):
                raise InvalidParameter(f"invalid filter '{key}'")
        if "://" in term:
            raise InvalidParameter(f"invalid repository name: repository name ({term}) should not have a scheme")
        registries, remote = self._search_targets(term)
        if not registries:
            raise errdefs.Unavailable(
                "search needs a registry to search: there is no Docker Hub here. Name the registry in the "
                'term (docker search 127.0.0.1:5000/hello), or list it under "search-registries" in '
                f"{self.daemon.config.root / 'daemon.json'}"
            )
        wanted_official = filters.get("is-official", [""])[-1].lower() in ("true", "1")
        if filters.get("is-automated", [""])[-1].lower() in ("true", "1") or wanted_official:
            return []  # nothing in a private registry is official, nothing is automated
        limit = limit or 25
        results: list[dict[str, Any]] = []
        for domain in registries:
            client = self.daemon.registry_client(domain, auth)
            try:
                names = catalog(client)
            except RegistryError as exc:
                raise errdefs.System(str(exc)) from None
            for repo in names:
                if remote and remote not in repo:
                    continue
                try:
                    tags = client.tags(repo)
                except RegistryError:
                    tags = []
                results.append(
                    {
                        "star_count": 0,
                        "is_official": False,
                        "name": f"{domain}/{repo}",
                        "is_automated": False,
                        "description": ("tags: " + ", ".join(sorted(tags))) if tags else "",
                    }
                )
                if len(results) >= limit:
                    return results
        return results

    def _search_targets(self, term: str) -> tuple[list[str], str]:
        first, sep, rest = term.partition("/")
        if sep and ("." in first or ":" in first or first == "localhost"):
            return [first], rest
        cfg = self.daemon.config
        named = list(cfg.search_registries) + [r for r in cfg.insecure_registries if "/" not in r]
        return list(dict.fromkeys(named)), term.removeprefix("library/") if term else term


class Writable(Protocol):
    def write(self, data: bytes) -> int: ...


class JSONProgressLike(ProgressOutput, Protocol):
    def aux(self, value: Any, id: str = "") -> None: ...


class _Reporting:
    """A response body that reports how much has been read (import's "Importing" progress)."""

    def __init__(self, raw: Any, report: Callable[[int], None]) -> None:
        self.raw, self.report, self.done = raw, report, 0

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.done += len(data)
        self.report(self.done)
        return data


def catalog(client: RegistryClient) -> list[str]:
    """`GET /v2/_catalog`, following `Link: <…>; rel="next"` pages."""
    url = "/v2/_catalog?n=1000"
    names: list[str] = []
    for _ in range(100):
        resp = client.request("GET", url, ("registry:catalog:*",))
        client._raise_for(resp)
        names += list(json.loads(resp.body or b"{}").get("repositories") or [])
        link = resp.header("Link")
        if 'rel="next"' not in link:
            break
        url = link.split(";", 1)[0].strip().strip("<>")
    return names


def translate_pull_error(exc: RegistryError, ref: Reference) -> Exception:
    """moby translatePullError: what the registry said, as the daemon's error kind."""
    from ..distribution.errors import NotFound as RegistryNotFound

    cause = exc.__cause__ if isinstance(exc.__cause__, RegistryError) else exc
    text = str(exc)
    if isinstance(exc, RegistryNotFound) or isinstance(cause, RegistryNotFound):
        return NotFound(text)
    if "denied:" in text:
        detail = text[text.index("denied:") :]
        return NotFound(
            f"pull access denied for {familiar_name(ref)}, repository does not exist or may require "
            f"'docker login': {detail}"
        )
    return exc
