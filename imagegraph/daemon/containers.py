"""The container service (moby daemon/create.go, list.go, inspect.go, changes.go, commit.go,
export.go, archive.go, rename.go, delete.go, prune.go): containers as records and layers.

A container has its init and top layers and can be changed through `docker cp`, diffed,
committed, exported, renamed and removed, whether or not it runs; its State is the runtime's.
Running it (start, stop, kill, wait, attach, logs, exec, top, …) is `daemon/runtime.py`'s.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO

from ..container import KIND_LETTER, Container, ContainerError
from ..digest import _CONTAINER_CONFIG_ORDER
from ..reference import Reference, familiar_string
from ..runtime.state import status, status_text
from ..service import Conflict, InvalidParameter, NotFound, Services
from . import archive
from .prune_filters import PruneFilters, label_match

if TYPE_CHECKING:
    from . import Daemon

#: container.Config fields a create request may set (the image's name is the daemon's to record).
CREATE_FIELDS = tuple(f for f in _CONTAINER_CONFIG_ORDER if f != "Image")

DEFAULT_HOST_CONFIG: dict[str, Any] = {"NetworkMode": "none", "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0}}


def changes_from_config(cfg: dict[str, Any]) -> list[str]:
    """A commit request's config as Dockerfile instructions (applied before the `changes`)."""
    out: list[str] = []
    if cfg.get("User"):
        out.append(f"USER {cfg['User']}")
    if cfg.get("WorkingDir"):
        out.append(f"WORKDIR {cfg['WorkingDir']}")
    for e in cfg.get("Env") or []:
        k, _, v = str(e).partition("=")
        out.append(f"ENV {k}={json.dumps(v)}")
    for k, v in (cfg.get("Labels") or {}).items():
        out.append(f"LABEL {json.dumps(k)}={json.dumps(v)}")
    for port in cfg.get("ExposedPorts") or {}:
        out.append(f"EXPOSE {port}")
    for vol in cfg.get("Volumes") or {}:
        out.append(f"VOLUME {json.dumps([vol])}")
    if cfg.get("Entrypoint"):
        out.append(f"ENTRYPOINT {json.dumps(cfg['Entrypoint'])}")
    if cfg.get("Cmd"):
        out.append(f"CMD {json.dumps(cfg['Cmd'])}")
    if cfg.get("StopSignal"):
        out.append(f"STOPSIGNAL {cfg['StopSignal']}")
    return out


@dataclass
class ContainerService:
    daemon: Daemon

    # ---- events --------------------------------------------------------------------------------

    def log_container_event(self, c: Container, action: str, extra: dict[str, str] | None = None) -> None:
        """LogContainerEventWithAttributes: labels, image, name, and what the action adds."""
        attributes = dict(extra or {})
        attributes.update(c.config.get("Labels") or {})
        if c.config.get("Image"):
            attributes["image"] = c.config["Image"]
        attributes["name"] = c.name
        self.daemon.events.log(action, "container", c.id, attributes)

    # ---- create, list, inspect, changes ----------------------------------------------------------

    def container_create(self, name: str | None, config: dict[str, Any], host_config: dict[str, Any] | None) -> str:
        """POST /containers/create: the init and top layers on the image's, config.v2.json."""
        image = config.get("Image") or ""
        if not isinstance(image, str) or not image:
            raise InvalidParameter("config cannot be empty in order to create a container")
        user = {k: config[k] for k in CREATE_FIELDS if k in config and config[k] not in (None, "", [], {})}
        svc = self.daemon.services()
        # only what says more than the defaults: the store fills hostconfig.json as `imagegraph create`
        hc = {k: v for k, v in (host_config or {}).items() if _meaningful(k, v)}
        c = svc.create_container(image, user.get("Cmd") or None, name or None, config=user, host_config=hc)
        self.log_container_event(c, "create")
        return c.id

    def host_config(self, c: Container) -> dict[str, Any]:
        return c.host_config or dict(DEFAULT_HOST_CONFIG)

    def _summary(self, svc: Services, c: Container, size: bool) -> dict[str, Any]:
        """types.Container, as `docker ps` reads it."""
        out: dict[str, Any] = {
            "Id": c.id,
            "Names": ["/" + c.name],
            "Image": c.config.get("Image", ""),
            "ImageID": c.image_id,
            "Command": c.command,
            "Created": int(c.created),
            "Ports": [],
        }
        if size:
            out["SizeRw"], out["SizeRootFs"] = svc.container_size(c)
        out.update(
            {
                "Labels": c.config.get("Labels") or {},
                "State": status(c.state),
                "Status": status_text(c.state),
                "HostConfig": {"NetworkMode": self.host_config(c).get("NetworkMode", "none")},
                "NetworkSettings": {"Networks": {}},
                "Mounts": [],
            }
        )
        return out

    def containers(
        self,
        all_: bool = False,
        filters: dict[str, list[str]] | None = None,
        size: bool = False,
        limit: int = 0,
        since: str = "",
        before: str = "",
    ) -> list[dict[str, Any]]:
        """GET /containers/json: the running containers, or with `all` every one."""
        filters = dict(filters or {})
        for key in filters:
            if key not in ("id", "name", "label", "status", "ancestor", "before", "since", "exited"):
                raise InvalidParameter(f"invalid filter '{key}'")
        for wanted in filters.get("status", []):
            if wanted not in ("created", "restarting", "running", "removing", "paused", "exited", "dead"):
                raise InvalidParameter(f"invalid filter 'status={wanted}'")
        svc = self.daemon.services()
        with svc.lock.held():
            svc.runtime.reconcile_all()  # a container whose monitor died is Exited (255)
        with svc.lock.held(shared=True):
            cs = svc.containers.containers()
            if not (all_ or limit > 0 or since or before or "status" in filters):
                cs = [c for c in cs if c.state.get("Running")]
            wanted_ancestors = {svc.get_image(a).id for a in filters.get("ancestor", []) if a}
            out = []
            for c in self._filtered(svc, cs, filters, wanted_ancestors, since, before):
                out.append(self._summary(svc, c, size))
                if limit and len(out) >= limit:
                    break
        return out

    def _filtered(
        self,
        svc: Services,
        cs: list[Container],
        filters: dict[str, list[str]],
        ancestors: set[str],
        since: str,
        before: str,
    ) -> Iterator[Container]:
        since_ts = svc.get_container(since).created if since else None
        before_ts = svc.get_container(before).created if before else None
        for c in cs:
            if filters.get("id") and not any(c.id.startswith(x) for x in filters["id"]):
                continue
            if filters.get("name") and not any(x.lstrip("/") in c.name for x in filters["name"]):
                continue
            if filters.get("status") and status(c.state) not in filters["status"]:
                continue
            if filters.get("exited") and (
                status(c.state) != "exited" or str(c.state.get("ExitCode", 0)) not in filters["exited"]
            ):
                continue
            if ancestors and c.image_id not in ancestors:
                continue
            labels = c.config.get("Labels") or {}
            if not all(label_match(labels, spec) for spec in filters.get("label", [])):
                continue
            if since_ts is not None and not c.created > since_ts:
                continue
            if before_ts is not None and not c.created < before_ts:
                continue
            yield c

    def container_inspect(self, name: str, size: bool = False) -> dict[str, Any]:
        """GET /containers/{name}/json (ContainerJSON)."""
        svc = self.daemon.services()
        with svc.lock.held(shared=True):
            c = svc.get_container(name)
            base = svc.inspect_container(c)
            state = base["State"]
            out: dict[str, Any] = {
                "Id": c.id,
                "Created": base["Created"],
                "Path": base["Path"],
                "Args": base["Args"] or [],
                "State": state,
                "Image": c.image_id,
                "ResolvConfPath": base["ResolvConfPath"],
                "HostnamePath": base["HostnamePath"],
                "HostsPath": base["HostsPath"],
                "LogPath": base["LogPath"],
                "Name": base["Name"],
                "RestartCount": base["RestartCount"],
                "Driver": base["Driver"],
                "Platform": "linux",
                "MountLabel": "",
                "ProcessLabel": "",
                "AppArmorProfile": "",
                "ExecIDs": None,
                "HostConfig": self.host_config(c),
                "GraphDriver": base["GraphDriver"],
            }
            if size:
                out["SizeRw"], out["SizeRootFs"] = svc.container_size(c)
            out.update(
                {
                    "Mounts": [],
                    "Config": c.config,
                    "NetworkSettings": {
                        "Bridge": "",
                        "SandboxID": "",
                        "SandboxKey": "",
                        "Ports": {},
                        "HairpinMode": False,
                        "LinkLocalIPv6Address": "",
                        "LinkLocalIPv6PrefixLen": 0,
                        "SecondaryIPAddresses": None,
                        "SecondaryIPv6Addresses": None,
                        "EndpointID": "",
                        "Gateway": "",
                        "GlobalIPv6Address": "",
                        "GlobalIPv6PrefixLen": 0,
                        "IPAddress": "",
                        "IPPrefixLen": 0,
                        "IPv6Gateway": "",
                        "MacAddress": "",
                        "Networks": {},
                    },
                }
            )
        return out

    def container_changes(self, name: str) -> list[dict[str, Any]]:
        """GET /containers/{name}/changes: [{Kind, Path}], Kind 0 modified, 1 added, 2 deleted."""
        svc = self.daemon.services()
        with svc.lock.held(shared=True):
            c = svc.get_container(name)
            changes = svc.containers.changes(c)
        assert set(KIND_LETTER) == {0, 1, 2}
        return [{"Kind": kind, "Path": path} for kind, path in changes]

    # ---- commit ------------------------------------------------------------------------------------

    def create_image_from_container(
        self,
        name: str,
        ref: Reference | None,
        author: str,
        comment: str,
        changes: list[str],
        config: dict[str, Any] | None,
    ) -> str:
        """POST /commit (CreateImageFromContainer): the top layer as a new image whose parent is
        the container's image; the request's config and changes on top of the container's."""
        svc = self.daemon.services()
        c = svc.get_container(name)
        all_changes = changes_from_config(config or {}) + list(changes)
        result = svc.commit(name, str(ref) if ref else None, author, comment, all_changes)
        images = self.daemon.images
        images.log_image_event(svc, result.image_id, result.image_id, "create")
        if ref is not None:
            images.log_image_event(svc, result.image_id, familiar_string(ref), "tag")
        self.log_container_event(
            c,
            "commit",
            {"comment": comment, "imageID": result.image_id, "imageRef": familiar_string(ref) if ref else ""},
        )
        return result.image_id

    # ---- export and archive ------------------------------------------------------------------------

    def container_export(self, name: str) -> tuple[Container, Iterator[bytes]]:
        """GET /containers/{name}/export: the merged root filesystem as a tar stream."""
        svc = self.daemon.services()
        c = svc.get_container(name)
        union = archive.open_union(svc.containers, c)
        return c, archive.export_stream(union)

    def exported(self, c: Container) -> None:
        self.log_container_event(c, "export")

    def container_stat_path(self, name: str, path: str) -> archive.PathStat:
        """HEAD /containers/{name}/archive."""
        svc = self.daemon.services()
        c = svc.get_container(name)
        _, st = archive.stat_path(archive.open_union(svc.containers, c), c, path)
        return st

    def container_archive_path(self, name: str, path: str) -> tuple[archive.PathStat, Iterator[bytes], Container]:
        """GET /containers/{name}/archive: a tar of the path, named from its base name (docker cp out)."""
        svc = self.daemon.services()
        c = svc.get_container(name)
        union = archive.open_union(svc.containers, c)
        resolved, st = archive.stat_path(union, c, path)
        base = "." if path.endswith("/.") else st.name
        return st, archive.tar_stream(union, resolved, base), c

    def container_extract_to_dir(self, name: str, path: str, no_overwrite_dir_non_dir: bool, body: BinaryIO) -> None:
        """PUT /containers/{name}/archive: unpack a tar into a directory of the container (docker cp in).

        Owners are kept from the tar, with or without copyUIDGID: that flag maps them through
        the container's user namespace, and containers here have none (moby's identity map)."""
        svc = self.daemon.services()
        with svc.lock.held():
            c = svc.get_container(name)
            union = archive.open_union(svc.containers, c, write=True)
            resolved, st = archive.stat_path(union, c, path.rstrip("/") + "/" if path != "/" else "/")
            if not st.mode & archive.GO_MODE_DIR:
                raise InvalidParameter("extraction point is not a directory")
            archive.extract(union, resolved, body, no_overwrite_dir_non_dir, keep_owner=True)
        self.log_container_event(c, "extract-to-dir")

    # ---- rename, remove, prune -----------------------------------------------------------------------

    def container_rename(self, name: str, new_name: str) -> None:
        svc = self.daemon.services()
        c, old = svc.rename_container(name, new_name)
        self.log_container_event(c, "rename", {"oldName": "/" + old})

    def container_rm(self, name: str, force: bool, remove_link: bool) -> None:
        """DELETE /containers/{name} (ContainerRm); containers here have no volumes for `v` to remove."""
        if remove_link:
            raise Conflict("Conflict, cannot remove the default link name of the container")
        svc = self.daemon.services()
        c = svc.get_container(name)
        svc.remove_container(name, force)
        self.log_container_event(c, "destroy")

    def containers_prune(self, filters: dict[str, list[str]]) -> dict[str, Any]:
        """POST /containers/prune: every container that is not running."""
        prune = PruneFilters.parse(filters)
        svc = self.daemon.services()
        deleted: list[str] = []
        reclaimed = 0
        with svc.lock.held():
            for c in svc.containers.containers():
                if c.state.get("Running"):
                    continue
                if not prune.admit(c.created, c.config.get("Labels") or {}):
                    continue
                size = svc.containers.size_rw(c)
                try:
                    svc.remove_container(c.id)
                except (ContainerError, NotFound):
                    continue
                deleted.append(c.id)
                reclaimed += size
                self.log_container_event(c, "destroy")
        self.daemon.events.log("prune", "container", "", {"reclaimed": str(reclaimed)})
        return {"ContainersDeleted": deleted or None, "SpaceReclaimed": reclaimed}


def _meaningful(key: str, value: Any) -> bool:
    """A HostConfig field that says more than the default (the CLI sends every field, mostly zero)."""
    if key == "NetworkMode":
        return value not in ("", "default", "bridge", "none")
    if key == "RestartPolicy":
        return isinstance(value, dict) and value.get("Name") not in ("", "no", None)
    if key == "MemorySwappiness" and value == -1:
        return False
    if isinstance(value, dict):
        return any(_meaningful("", v) for v in value.values())
    if isinstance(value, list):
        return any(_meaningful("", v) for v in value)
    return value not in (None, "", 0, False)
