"""The daemon's image and container services, without a daemon (moby daemon/images, daemon/commit.go).

The CLI calls these and only formats what they return. They hold Docker's algorithms that
span several stores: finding an image by name, ID or prefix (GetImage), rmi's untag and
delete rules (ImageDelete), prune, history's ID walk, image list filters, import, and the
container lifecycle. Errors carry Docker's daemon texts; the CLI adds "Error response from
daemon: ".
"""

from __future__ import annotations

import gzip
import io
import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from . import archive
from .commit import ChangeError, CommitResult, apply_changes, created_now, go_arch
from .commit import commit as commit_container
from .container import Container, ContainerError, ContainerNotFound, ContainerStore, full_config
from .digest import canonical_config_json, chain_ids
from .formatting import short_id
from .graph import GraphImage
from .imagestore import AmbiguousImage, Image, ImageError, ImageNotFound, ImageStore, format_time, parse_time
from .layerstore import Layer, LayerError, LayerStore, next_chain_id
from .reference import (
    InvalidReference,
    Reference,
    familiar_match,
    familiar_string,
    parse_any_reference,
    parse_normalized_named,
    tag_name_only,
)
from .refstore import RefError, RefNotFound, RefStore
from .store import Layout, StoreLock, clean_leftovers, clean_scratch, hex_of, prepare_root, writable

if TYPE_CHECKING:
    from .runtime.manager import Runtime


class DaemonError(Exception):
    """An error the daemon would answer with; str() is the daemon's text."""


class ClientError(Exception):
    """An error docker's CLI raises before asking the daemon: printed without the daemon prefix."""


class NotFound(DaemonError):
    pass


class Conflict(DaemonError):
    pass


class InvalidParameter(DaemonError):
    pass


@dataclass
class DeleteConflict:
    image_id: str
    message: str
    hard: bool = False
    used: bool = False

    def __str__(self) -> str:
        force = "cannot be forced" if self.hard else "must be forced"
        return f"conflict: unable to delete {short_id(self.image_id)} ({force}) - {self.message}"


def is_image_id_prefix(image_id: str, possible: str) -> bool:
    if image_id.startswith(possible):
        return True
    return hex_of(image_id).startswith(possible)


def is_single_reference(refs: list[Reference]) -> bool:
    """moby isSingleReference: at most one tag, and every reference in one repository."""
    if len(refs) <= 1:
        return len(refs) == 1
    single = None
    canonical: set[str] = set()
    for r in refs:
        if r.digest is not None:
            canonical.add(r.name)
        elif single is None:
            single = r
        else:
            return False
    if single is None:
        single = refs[0]
    return len(canonical) == 1 and single.name in canonical


@dataclass
class Services:
    """The stores of one root, wired together, plus Docker's cross-store algorithms."""

    layout: Layout
    layers: LayerStore
    images: ImageStore
    refs: RefStore
    containers: ContainerStore
    lock: StoreLock

    @classmethod
    def wire(cls, root: str | os.PathLike[str], encoding: str | None = None, create: bool = True) -> Services:
        """The stores of `root`, its folders made (unless `create` is False), without taking the
        lock or cleaning up. Without `create`, a root that does not exist reads as an empty
        store and nothing is made on disk.

        The layer store asks the image store which ChainIDs images hold (its reference counts),
        so the image store is handed to it once both exist.
        """
        layout = Layout(Path(root))
        prepare_root(layout, create)
        holder: dict[str, ImageStore] = {}
        layers = LayerStore(layout, encoding, image_tops=lambda: holder["images"].top_chain_ids())
        images = ImageStore(layout, layers)
        holder["images"] = images
        return cls(
            layout, layers, images, RefStore(layout), ContainerStore(layout, layers), StoreLock(layout.lock_file)
        )

    @classmethod
    def open(
        cls, root: str | os.PathLike[str], encoding: str | None = None, clean: bool = True, create: bool = True
    ) -> Services:
        """`wire`, then, under the lock, remove what interrupted writes left (when the store
        exists and this process may change it)."""
        svc = cls.wire(root, encoding, create)
        if clean and svc.layout.root.is_dir() and writable(svc.layout.root):
            with svc.lock.held():
                svc.containers.clean()
                svc.images.clean()
                svc.layers.clean()
                clean_leftovers(svc.layout)
                clean_scratch(svc.layout)
                # Containers whose monitor died: Exited (255). Only one marked running can have
                # lost it, and only then is the runtime (~25 ms of imports) loaded.
                if any(c.state.get("Running") for c in svc.containers.containers()):
                    svc.runtime.reconcile_all()
        return svc

    @property
    def runtime(self) -> Runtime:
        """Running containers: start, stop, kill, wait, attach, logs, exec, top."""
        from .runtime.manager import Runtime

        return Runtime(self)

    # ---- lookups -------------------------------------------------------------------------

    def get_image(self, ref_or_id: str) -> Image:
        """moby GetImage: a digest/ID, else a tag, else an ID prefix."""
        try:
            ref = parse_any_reference(ref_or_id)
        except InvalidReference as exc:
            raise InvalidParameter(str(exc)) from None
        if not ref.is_named:
            try:
                return self.images.get(ref.digest or "")
            except ImageNotFound:
                raise NotFound(f"No such image: {ref.digest}") from None
        try:
            return self.images.get(self.refs.get(ref))
        except (RefNotFound, ImageNotFound):
            pass
        try:
            return self.images.get(self.images.search(ref_or_id))
        except AmbiguousImage as exc:
            raise NotFound(f"{exc}: {ref_or_id}") from None
        except ImageError:
            pass
        shown = tag_name_only(ref) if ref.digest is None else ref
        raise NotFound(f"No such image: {familiar_string(shown)}")

    def get_container(self, ref: str) -> Container:
        try:
            return self.containers.get(ref)
        except ContainerNotFound as exc:
            raise NotFound(str(exc)) from None
        except ContainerError as exc:
            raise InvalidParameter(str(exc)) from None

    def container_size(self, c: Container) -> tuple[int, int]:
        """docker's SizeRw and SizeRootFs: the top layer, and it with the image's layers (the
        top layer alone if the image is gone)."""
        rw = self.containers.size_rw(c)
        try:
            return rw, rw + self.images.size(self.images.get(c.image_id))
        except (ImageNotFound, LayerError):
            return rw, rw

    def repo_tags(self, image_id: str) -> list[str]:
        return [familiar_string(r) for r in self.refs.references(image_id) if r.digest is None]

    def repo_digests(self, image_id: str) -> list[str]:
        return [familiar_string(r) for r in self.refs.references(image_id) if r.digest is not None]

    # ---- import and tag ----------------------------------------------------------------

    def _parse_repo_tag(self, repo_tag: str, digest_error: Exception | None = None) -> Reference:
        """The name:tag a new image gets (`:latest` if bare); a digest reference raises
        `digest_error` (import's daemon error unless the caller, like commit, has docker's own)."""
        try:
            ref = parse_normalized_named(repo_tag)
        except InvalidReference as exc:
            raise InvalidParameter(str(exc)) from None
        if ref.digest is not None:
            raise digest_error or InvalidParameter("cannot import digest reference")
        return tag_name_only(ref)

    def import_image(
        self,
        source: str | BinaryIO,
        repo_tag: str | None = None,
        changes: list[str] | None = None,
        message: str = "",
        created: float | None = None,
    ) -> str:
        """`docker import`: one layer from a directory or a tar (plain or gzip), one history entry."""
        new_ref = self._parse_repo_tag(repo_tag) if repo_tag else None
        try:
            config = apply_changes(full_config({}), changes or [])
        except ChangeError as exc:
            raise InvalidParameter(str(exc)) from None
        with self.lock.held():
            if isinstance(source, (str, os.PathLike)) and os.path.isdir(source):
                layer, _ = self.layers.register_dir(source)
            else:
                layer, _ = self._register_tar(source)
            ts = format_time(created_now(created))
            history: dict[str, Any] = {"created": ts}
            if message:
                history["comment"] = message
            img: dict[str, Any] = {
                "architecture": go_arch(),
                "config": config,
                "created": ts,
                "history": [history],
                "os": "linux",
                "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]},
            }
            if message:
                img["comment"] = message
            image_id = self.images.create(canonical_config_json(img))
            self.images.set_last_updated(image_id)
            if new_ref is not None:
                self.refs.reload()
                self.refs.add_tag(new_ref, image_id, force=True)
            self.layers.release(layer.chain_id)  # no-op when the image holds it
        return image_id

    def _register_tar(self, source: str | BinaryIO) -> tuple[Layer, bool]:
        if isinstance(source, (str, os.PathLike)):
            try:
                f: BinaryIO = open(source, "rb")
            except OSError as exc:
                raise InvalidParameter(f"open {source}: {exc.strerror.lower() if exc.strerror else exc}") from None
        else:
            f = source
        try:
            buffered = f if isinstance(f, io.BufferedReader) else io.BufferedReader(f)  # type: ignore[type-var]  # any stream with readinto
            magic = buffered.peek(2)[:2]
            stream: archive.ByteStream = (
                gzip.GzipFile(fileobj=buffered, mode="rb") if magic == b"\x1f\x8b" else buffered
            )
            return self.layers.register(stream)
        except archive.ArchiveError as exc:
            raise InvalidParameter(str(exc)) from None
        except OSError as exc:
            raise InvalidParameter(f"failed to read the archive: {archive.os_error_text(exc)}") from None
        except (EOFError, zlib.error) as exc:
            raise InvalidParameter(f"failed to read the archive: {exc}") from None
        finally:
            if isinstance(source, (str, os.PathLike)):
                f.close()

    def tag(self, source: str, target: str) -> None:
        """`docker tag`: the CLI's checks, then the daemon's."""
        try:
            parse_any_reference(source)
        except InvalidReference as exc:
            raise ClientError(f'Error parsing reference: "{source}" is not a valid repository/tag: {exc}') from None
        try:
            ref = parse_normalized_named(target)
        except InvalidReference as exc:
            raise ClientError(f'Error parsing reference: "{target}" is not a valid repository/tag: {exc}') from None
        if ref.digest is not None:
            raise ClientError("refusing to create a tag with a digest reference")
        with self.lock.held():
            self.refs.reload()
            img = self.get_image(source)
            try:
                self.refs.add_tag(tag_name_only(ref), img.id, force=True)
            except RefError as exc:
                raise InvalidParameter(str(exc)) from None
            self.images.set_last_updated(img.id)

    # ---- rmi -----------------------------------------------------------------------------

    def _is_dangling(self, image_id: str) -> bool:
        return not (self.refs.references(image_id) or self.images.children(image_id))

    def _check_conflict(self, image_id: str, hard_only: bool, skip_active_ref: bool = False) -> DeleteConflict | None:
        if self.images.children(image_id):
            return DeleteConflict(image_id, "image has dependent child images", hard=True)
        if hard_only:
            return None
        if not skip_active_ref and self.refs.references(image_id):
            return DeleteConflict(image_id, "image is referenced in multiple repositories")
        users = self.containers.using_image(image_id)
        if users:
            return DeleteConflict(image_id, f"image is being used by stopped container {users[0].short_id}", used=True)
        return None

    def _delete_helper(
        self, image_id: str, records: list[dict[str, str]], force: bool, prune: bool, quiet: bool
    ) -> None:
        conflict = self._check_conflict(image_id, hard_only=force)
        if conflict is not None:
            if quiet and (not self._is_dangling(image_id) or conflict.used):
                return
            raise Conflict(str(conflict))
        parent = self.images.get_parent(image_id)
        for r in self.refs.references(image_id):
            self.refs.delete(r)
            records.append({"Untagged": familiar_string(r)})
        removed = self.images.delete(image_id)
        records.append({"Deleted": image_id})
        records.extend({"Deleted": layer.chain_id} for layer in removed)
        if prune and parent and self.images.exists(parent):
            self._delete_helper(parent, records, force=False, prune=True, quiet=True)

    def image_delete(self, ref_or_id: str, force: bool = False, prune: bool = True) -> list[dict[str, str]]:
        """moby ImageDelete: Untagged and Deleted records, in Docker's order."""
        with self.lock.held():
            self.refs.reload()
            img = self.get_image(ref_or_id)
            records: list[dict[str, str]] = []
            repo_refs = self.refs.references(img.id)
            quiet = False
            if not is_image_id_prefix(img.id, ref_or_id):
                if not force and is_single_reference(repo_refs):
                    users = self.containers.using_image(img.id)
                    if users:
                        raise Conflict(
                            f'conflict: unable to remove repository reference "{ref_or_id}" (must force) '
                            f"- container {users[0].short_id} is using its referenced image "
                            f"{short_id(img.id)}"
                        )
                parsed = parse_normalized_named(ref_or_id)
                parsed = tag_name_only(parsed) if parsed.digest is None else parsed
                try:
                    self.refs.delete(parsed)
                except RefNotFound:
                    pass
                records.append({"Untagged": familiar_string(parsed)})
                repo_refs = self.refs.references(img.id)
                if parsed.digest is None and not any(r.digest is None and r.name == parsed.name for r in repo_refs):
                    remaining = []
                    for r in repo_refs:
                        if r.digest is not None and r.name == parsed.name:
                            self.refs.delete(r)
                            records.append({"Untagged": familiar_string(r)})
                        else:
                            remaining.append(r)
                    repo_refs = remaining
                if repo_refs:
                    return records
                quiet = True
            elif is_single_reference(repo_refs):
                conflict = self._check_conflict(img.id, hard_only=force, skip_active_ref=True)
                if conflict is not None:
                    raise Conflict(str(conflict))
                for r in repo_refs:
                    self.refs.delete(r)
                    records.append({"Untagged": familiar_string(r)})
            self._delete_helper(img.id, records, force, prune, quiet)
            return records

    def image_prune(
        self, all_: bool = False, admit: Callable[[Image], bool] | None = None
    ) -> tuple[list[dict[str, str]], int]:
        """moby ImagesPrune: dangling images (or, with all_, every image no container uses),
        those `admit` lets go (the request's until and label filters)."""
        with self.lock.held():
            self.refs.reload()
            sizes = {layer.chain_id: layer.size for layer in self.layers.layers()}
            candidates = self.images.ids() if all_ else self.images.heads()
            records: list[dict[str, str]] = []
            for image_id in candidates:
                if not self.images.exists(image_id):
                    continue
                if admit is not None and not admit(self.images.get(image_id)):
                    continue
                refs = self.refs.references(image_id)
                if not refs and self.images.children(image_id):
                    continue
                targets: list[str]
                if refs:
                    if not all_ and any(r.digest is None for r in refs):
                        continue
                    targets = [str(r) for r in refs]
                else:
                    targets = [hex_of(image_id)]
                for t in targets:
                    try:
                        records.extend(self.image_delete(t, prune=True))
                    except DaemonError:
                        continue
            reclaimed = sum(sizes.get(r["Deleted"], 0) for r in records if "Deleted" in r)
            return records, reclaimed

    # ---- listing, history, inspect ---------------------------------------------------------

    def list_images(self, all_: bool = False, filters: dict[str, list[str]] | None = None) -> list[dict[str, Any]]:
        """GET /images/json: ImageSummary objects, newest first."""
        return [summary for _, summary in self.list_image_rows(all_, filters)]

    def list_image_rows(
        self, all_: bool = False, filters: dict[str, list[str]] | None = None
    ) -> list[tuple[Image, dict[str, Any]]]:
        """`list_images` with each summary's Image beside it (the daemon reads more of it).

        The store is read once for the whole listing: every image's parent, config, containers
        and layer chain once, not once per image (children, sizes and container counts asked
        image by image made a listing of 200 images read 40,000 files)."""
        filters = filters or {}
        for key in filters:
            if key not in ("dangling", "reference", "before", "since", "label", "until"):
                raise InvalidParameter(f"invalid filter '{key}'")
        dangling = None
        if "dangling" in filters:
            v = filters["dangling"][-1].lower()
            if v not in ("true", "false", "1", "0"):
                raise InvalidParameter(f"invalid filter 'dangling={filters['dangling'][-1]}'")
            dangling = v in ("true", "1")
        before = min((self.get_image(b).created_ts for b in filters.get("before", [])), default=None)
        since = max((self.get_image(s).created_ts for s in filters.get("since", [])), default=None)
        parents = self.images.parents()
        with_children = set(parents.values())
        ids = [i for i in parents if not dangling or i not in with_children]
        used: dict[str, int] = {}
        for c in self.containers.containers():
            used[c.image_id] = used.get(c.image_id, 0) + 1
        sizes: dict[str, int] = {}
        out = []
        for image_id in ids:
            try:
                img = self.images.get(image_id)
            except ImageNotFound:
                continue  # deleted since the listing was read
            refs = self.refs.references(image_id)
            if not all_ and not refs and image_id in with_children and dangling is None:
                continue
            if dangling is True and refs:
                continue
            if dangling is False and not refs:
                continue
            if before is not None and not img.created_ts < before:
                continue
            if since is not None and not img.created_ts > since:
                continue
            labels = img.container_config.get("Labels") or {}
            if not all(_label_match(labels, spec) for spec in filters.get("label", [])):
                continue
            if "reference" in filters:  # only the matching references are listed (moby Images)
                refs = [r for r in refs if any(familiar_match(p, r) for p in filters["reference"])]
                if not refs:
                    continue
            tags = [familiar_string(r) for r in refs if r.digest is None]
            digests = [familiar_string(r) for r in refs if r.digest is not None]
            summary = {
                "Containers": used.get(image_id, 0),
                "Created": int(img.created_ts),
                "Id": image_id,
                "Labels": labels,
                "ParentId": img.parent or "",
                "RepoDigests": digests,
                "RepoTags": tags,
                "SharedSize": -1,
                "Size": self.images.size(img, sizes),
            }
            out.append((img, summary))
        out.sort(key=lambda row: (row[1]["Created"], row[1]["Id"]), reverse=True)
        return out

    def history(self, ref: str) -> list[dict[str, Any]]:
        """GET /images/{name}/history: newest first; IDs walk the parent chain, the rest `<missing>`."""
        img = self.get_image(ref)
        rows: list[dict[str, Any]] = []
        diff_ids = img.diff_ids
        n = 0
        chain: str | None = None
        for h in img.history:
            size = 0
            if not h.get("empty_layer"):
                if n < len(diff_ids):
                    chain = next_chain_id(chain, diff_ids[n])
                    try:
                        size = self.layers.get(chain).size
                    except LayerError:
                        size = 0
                n += 1
            rows.insert(
                0,
                {
                    "Id": "<missing>",
                    "Created": int(parse_time(h.get("created", ""))),
                    "CreatedBy": h.get("created_by", ""),
                    "Tags": None,
                    "Size": size,
                    "Comment": h.get("comment", ""),
                },
            )
        cur: Image | None = img
        for row in rows:
            if cur is None:
                break
            row["Id"] = cur.id
            row["Tags"] = self.repo_tags(cur.id) or None
            parent = cur.parent
            cur = self.images.get(parent) if parent and self.images.exists(parent) else None
        return rows

    def graph_driver_data(self, img: Image) -> dict[str, str]:
        top = self.images.top_layer(img)
        if top is None:
            return {}
        chain = self.layers.chain(top.chain_id)
        d = self.layout.layer_dir(top.cache_id)
        data = {"MergedDir": str(d / "merged"), "UpperDir": str(d / "diff"), "WorkDir": str(d / "work")}
        if len(chain) > 1:
            data = {"LowerDir": ":".join(str(self.layers.diff_dir(layer)) for layer in chain[1:]), **data}
        return data

    def inspect_image(self, img: Image) -> dict[str, Any]:
        """The Engine API's ImageInspect."""
        cfg = img.config
        out: dict[str, Any] = {
            "Id": img.id,
            "RepoTags": self.repo_tags(img.id),
            "RepoDigests": self.repo_digests(img.id),
            "Parent": img.parent or "",
            "Comment": cfg.get("comment", ""),
            "Created": cfg.get("created", ""),
        }
        if cfg.get("docker_version"):
            out["DockerVersion"] = cfg["docker_version"]
        out.update(
            {
                "Author": cfg.get("author", ""),
                "Config": cfg.get("config") or {},
                "Architecture": cfg.get("architecture", ""),
            }
        )
        if cfg.get("variant"):
            out["Variant"] = cfg["variant"]
        out.update(
            {
                "Os": cfg.get("os", ""),
                "Size": self.images.size(img),
                "GraphDriver": {"Data": self.graph_driver_data(img) or None, "Name": "layerfs"},
                "RootFS": {"Type": "layers", "Layers": img.diff_ids},
                "Metadata": {"LastTagTime": self.images.last_updated(img.id) or "0001-01-01T00:00:00Z"},
            }
        )
        return out

    def inspect_container(self, c: Container) -> dict[str, Any]:
        """The Engine API's ContainerJSON, its fields in Docker's order."""
        from .runtime.state import inspect_state

        d = self.runtime.refresh(c).data
        return {
            "Id": c.id,
            "Created": d.get("Created"),
            "Path": d.get("Path"),
            "Args": d.get("Args"),
            "State": inspect_state(d.get("State") or {}),
            "Image": c.image_id,
            "ResolvConfPath": d.get("ResolvConfPath"),
            "HostnamePath": d.get("HostnamePath"),
            "HostsPath": d.get("HostsPath"),
            "LogPath": d.get("LogPath", ""),
            "Name": d.get("Name"),
            "RestartCount": d.get("RestartCount", 0),
            "Driver": d.get("Driver"),
            "Platform": "linux",
            "MountLabel": "",
            "ProcessLabel": "",
            "AppArmorProfile": "",
            "ExecIDs": None,
            "HostConfig": c.host_config,
            "GraphDriver": {"Data": self.containers.graph_driver_data(c), "Name": "layerfs"},
            "Mounts": [],
            "Config": c.config,
            "NetworkSettings": {"Networks": {}},
        }

    def graph_images(self) -> list[GraphImage]:
        out = []
        for img in self.images.images():
            history = img.history
            out.append(
                GraphImage(
                    id=img.id,
                    parent=img.parent,
                    tags=self.repo_tags(img.id),
                    layers=chain_ids(img.diff_ids),
                    created_by=(history[-1].get("created_by", "") if history else ""),
                )
            )
        return out

    # ---- containers ------------------------------------------------------------------------

    def create_container(
        self,
        image_ref: str,
        cmd: list[str] | None = None,
        name: str | None = None,
        now: float | None = None,
        config: dict[str, Any] | None = None,
        host_config: dict[str, Any] | None = None,
    ) -> Container:
        """`docker create`: `config` and `host_config` are the request's container.Config and HostConfig."""
        with self.lock.held():
            self.refs.reload()
            img = self.get_image(image_ref)
            try:
                sde = os.environ.get("SOURCE_DATE_EPOCH")
                seed = f"{sde}\0{img.id}\0{image_ref}\0{name}\0{cmd}" if sde else None
                if now is None and sde:
                    now = created_now(None)
                return self.containers.create(
                    img, image_ref, cmd, name, now, seed=seed, config=config, host_config=host_config
                )
            except ContainerError as exc:
                raise Conflict(str(exc)) if "Conflict." in str(exc) else InvalidParameter(str(exc)) from None

    def remove_container(self, ref: str, force: bool = False) -> None:
        """`docker rm`: a running container only with force, killed first (moby ContainerRm)."""
        c = self.runtime.refresh(self.get_container(ref))
        if c.state.get("Running"):
            if not force:
                raise Conflict(
                    f'cannot remove container "{c.data["Name"]}": container is running: '
                    "stop the container before removing or force remove"
                )
            from .runtime.state import INIT_PID, signal_pid_file

            signal_pid_file(self.layout.container_dir(c.id) / INIT_PID, 9)
            self.runtime.wait_exit(c, None)
        with self.lock.held():
            c = self.get_container(ref)
            try:
                self.containers.remove(c)
            except ContainerError as exc:
                raise DaemonError(f'cannot remove container "{c.data["Name"]}": {exc}') from None

    def rename_container(self, ref: str, new_name: str) -> tuple[Container, str]:
        """`docker rename`: returns the renamed container and its old name."""
        if not ref or not new_name:
            raise InvalidParameter("Neither old nor new names may be empty")
        with self.lock.held():
            c = self.get_container(ref)
            try:
                return self.containers.rename(c, new_name), c.name
            except ContainerError as exc:
                raise Conflict(str(exc)) if "Conflict." in str(exc) else InvalidParameter(str(exc)) from None

    def commit(
        self,
        ref: str,
        repo_tag: str | None = None,
        author: str = "",
        message: str = "",
        changes: list[str] | None = None,
        created: float | None = None,
    ) -> CommitResult:
        new_ref = (
            self._parse_repo_tag(repo_tag, ClientError("refusing to create a tag with a digest reference"))
            if repo_tag
            else None
        )
        with self.lock.held():
            c = self.get_container(ref)
            try:
                result = commit_container(
                    self.containers, self.images, self.layers, c, author, message, changes, created
                )
            except ChangeError as exc:
                raise InvalidParameter(str(exc)) from None
            if new_ref is not None:
                self.refs.reload()
                self.refs.add_tag(new_ref, result.image_id, force=True)
            return result


def _label_match(labels: dict[str, str], spec: str) -> bool:
    if "=" in spec:
        k, v = spec.split("=", 1)
        return labels.get(k) == v
    return spec in labels


__all__ = ["Services", "DaemonError", "ClientError", "NotFound", "Conflict", "InvalidParameter", "is_single_reference"]
