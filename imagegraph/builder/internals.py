"""How a step becomes an image (moby builder/dockerfile/internals.go, containerbackend.go).

Every step goes through a container, as the seed says: a metadata step creates one whose Cmd
is `#(nop)` and the instruction (never started) and commits its empty top layer; RUN creates
one from the current image, runs it and commits what it wrote; COPY and ADD write into one's
top layer and commit it. Before each, the cache is probed with the configuration the step
would commit. Each commit's parent is the image the step started from, so the intermediate
images form the seed's chain of parents.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from typing import Any

from unionfs.super import Cred
from unionfs.union import Union

from ..commit import BuildStep, commit_build_step, go_arch
from ..container import Container, ContainerError
from ..distribution import manifest as M
from ..distribution.errors import RegistryError
from ..formatting import short_id
from ..imagestore import Image
from ..runtime.manager import AttachOptions, ContainerRuntimeError
from ..runtime.terminal import Relay
from ..service import DaemonError, Services
from .buildargs import BuildArgs
from .cache import ImageCache
from .output import BuildOutput

DEFAULT_SHELL = ["/bin/sh", "-c"]
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
ROOT = Cred(0, 0)


class BuildError(Exception):
    """A failed build; str() is moby's text, `code` the exit status the docker CLI exits with."""

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class BuildOptions:
    """The build's settings (moby buildbackend.BuildOptions, the ones the classic builder uses)."""

    tags: list[str] = field(default_factory=list)
    dockerfile: str = ""
    build_args: dict[str, str | None] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    no_cache: bool = False
    remove: bool = True
    force_remove: bool = False
    pull: bool = False
    target: str = ""
    platform: str = ""
    network_mode: str = ""


@dataclass
class DispatchState:
    """moby dispatchState: the configuration being built, and the current image."""

    build_args: BuildArgs
    run_config: dict[str, Any] = field(default_factory=dict)
    maintainer: str = ""
    cmd_set: bool = False
    image_id: str = ""
    base_image: Image | None = None
    stage_name: str = ""
    os: str = "linux"

    def has_from_image(self) -> bool:
        return bool(self.image_id) or (self.base_image is not None and self.base_image.id == "")

    def update_run_config(self) -> None:
        self.run_config["Image"] = self.image_id


def build_arch(platform: str) -> str:
    """The architecture of `--platform` (or FROM's), which the cache matches images on; the host's if none."""
    if not platform:
        return go_arch()
    try:
        return M.parse_platform(platform).architecture or go_arch()
    except (ValueError, RegistryError) as exc:
        raise BuildError(f"failed to parse platform {platform}: {exc}") from None


def copy_run_config(cfg: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """copyRunConfig: a deep copy with some fields replaced."""
    out = copy.deepcopy(cfg)
    out.update(copy.deepcopy(changes))
    return out


def get_shell(cfg: dict[str, Any]) -> list[str]:
    return list(cfg.get("Shell") or DEFAULT_SHELL)


def with_cmd_comment(cfg: dict[str, Any], comment: str) -> dict[str, Any]:
    """The two-argument `#(nop) ` form most metadata steps commit (`/bin/sh -c #(nop)  ENV A=b`)."""
    return copy_run_config(cfg, Cmd=[*get_shell(cfg), "#(nop) ", comment])


def with_cmd_comment_string(cfg: dict[str, Any], comment: str) -> dict[str, Any]:
    """The one-argument form of COPY, ADD and WORKDIR (`/bin/sh -c #(nop) COPY file:… in /dst `)."""
    return copy_run_config(cfg, Cmd=[*get_shell(cfg), "#(nop) " + comment])


def set_default_path(cfg: dict[str, Any]) -> None:
    env = list(cfg.get("Env") or [])
    if not any(e.split("=", 1)[0] == "PATH" for e in env):
        env.append("PATH=" + DEFAULT_PATH)
    cfg["Env"] = env


class Internals:
    """The daemon-side half of a build: cache probes, containers, commits."""

    def __init__(self, svc: Services, options: BuildOptions, out: BuildOutput, cache: ImageCache, arch: str) -> None:
        self.svc = svc
        self.options = options
        self.out = out
        self.cache = cache
        self.arch = arch
        self.tmp_containers: list[str] = []
        self.disable_commit = False
        self.epoch = source_date_epoch(options)

    # ---- cache -------------------------------------------------------------------------------

    def probe_cache(self, state: DispatchState, config: dict[str, Any]) -> bool:
        cached = self.cache.probe(state.image_id, config, state.os, self.arch)
        if cached is None:
            return False
        self.out.stdout(" ---> Using cache\n")
        state.image_id = cached
        return True

    # ---- containers --------------------------------------------------------------------------

    def create(self, state: DispatchState, config: dict[str, Any], announce: bool = True) -> Container:
        """A container of the current image with `config` (moby containerManager.Create)."""
        image = state.base_image if not state.image_id and state.base_image is not None else None
        host = {"NetworkMode": self.options.network_mode or "none", "LogConfig": {"Type": "none", "Config": {}}}
        try:
            with self.svc.lock.held():
                img = image if image is not None else self.svc.images.get(state.image_id)
                seed = None
                sde = os.environ.get("SOURCE_DATE_EPOCH")
                if sde:
                    seed = f"build\0{sde}\0{img.id}\0{config.get('Cmd')}\0{len(self.tmp_containers)}"
                c = self.svc.containers.create(img, img.id, None, None, seed=seed, config=config, host_config=host)
        except (ContainerError, DaemonError) as exc:
            raise BuildError(str(exc)) from None
        self.tmp_containers.append(c.id)
        if announce:
            self.out.stdout(f" ---> Running in {c.short_id}\n")
        return c

    def run(self, c: Container) -> int:
        """Start the container, relay its output into the build's, and wait (containerManager.Run)."""
        runtime = self.svc.runtime
        try:
            socks = runtime.start(c.id, AttachOptions(stdin=False, stdout=True, stderr=True))
        except ContainerRuntimeError as exc:
            raise BuildError(str(exc), exc.code) from None
        if not socks:
            raise BuildError(f"container {c.short_id} was already running")
        sock = socks[0]

        def text(data: bytes) -> str:
            return data.decode("utf-8", "replace")

        code = Relay(sock, lambda b: self.out.stdout(text(b)), lambda b: self.out.stderr(text(b))).run()
        sock.close()
        if code is None:
            fresh = runtime.get(c.id)
            code = int(fresh.state.get("ExitCode") or 0)
        return code

    def remove_all(self) -> None:
        """RemoveAll: every container the build made since the last call."""
        for cid in list(self.tmp_containers):
            try:
                self.svc.remove_container(cid, force=True)
            except DaemonError as exc:
                self.out.stdout(f"Removing intermediate container {short_id(cid)}: {exc}\n")
                continue
            self.tmp_containers.remove(cid)
            self.out.stdout(f" ---> Removed intermediate container {short_id(cid)}\n")

    def forget(self, c: Container) -> None:
        """A container the builder removes itself, silently (COPY's, which moby never shows)."""
        try:
            self.svc.remove_container(c.id, force=True)
        except DaemonError:
            return
        if c.id in self.tmp_containers:
            self.tmp_containers.remove(c.id)

    def union(self, c: Container) -> Union:
        """The container's layers as the union core sees them, to write into its top layer."""
        return Union.from_options(self.svc.containers.union_options(c))

    # ---- commits --------------------------------------------------------------------------------

    def commit(self, state: DispatchState, comment: str) -> None:
        """A metadata step: probe, else a container with the `#(nop)` Cmd, committed."""
        if self.disable_commit:
            return
        if not state.has_from_image():
            raise BuildError("Please provide a source image with `from` prior to commit")
        config = with_cmd_comment(state.run_config, comment)
        if self.probe_cache(state, config):
            return
        c = self.create(state, config)
        self.commit_container(state, c, config)

    def commit_container(
        self, state: DispatchState, c: Container, container_config: dict[str, Any], record_container: bool = True
    ) -> None:
        """CommitBuildStep: the next image of the chain, its parent the current one."""
        if self.disable_commit:
            return
        step = BuildStep(
            config=copy.deepcopy(state.run_config),
            container_config=container_config,
            author=state.maintainer,
            record_container=record_container,
        )
        with self.svc.lock.held():
            fresh = self.svc.containers.load(c.id) or c
            if self.epoch is not None:
                top = self.svc.layout.layer_dir(self.svc.containers.mount_layer(fresh).mount_id) / "diff"
                clamp_mtimes(str(top), self.epoch)
            state.image_id = commit_build_step(
                self.svc.containers, self.svc.images, self.svc.layers, fresh, step, created=self.epoch
            )


def source_date_epoch(options: BuildOptions) -> int | None:
    """SOURCE_DATE_EPOCH, as a build arg (buildkit's convention) or in the builder's environment:
    the time every image of the build is created at, and the latest mtime its new layers hold."""
    value = options.build_args.get("SOURCE_DATE_EPOCH") or os.environ.get("SOURCE_DATE_EPOCH")
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise BuildError(f"invalid SOURCE_DATE_EPOCH: {value}") from None


def clamp_mtimes(top: str, epoch: int) -> None:
    """buildkit's rewrite-timestamp: no file of a new layer is newer than the epoch, so the same
    Dockerfile and context give the same layers (DiffIDs) whenever they are built."""
    limit = epoch * 1_000_000_000
    stack = [top]
    while stack:
        d = stack.pop()
        for entry in os.scandir(d):
            st = entry.stat(follow_symlinks=False)
            if entry.is_dir(follow_symlinks=False):
                stack.append(entry.path)
            if st.st_mtime_ns > limit:
                os.utime(entry.path, ns=(min(st.st_atime_ns, limit), limit), follow_symlinks=False)


__all__ = [
    "BuildError",
    "BuildOptions",
    "DispatchState",
    "Internals",
    "copy_run_config",
    "get_shell",
    "with_cmd_comment",
    "with_cmd_comment_string",
    "set_default_path",
    "build_arch",
    "source_date_epoch",
    "clamp_mtimes",
    "DEFAULT_SHELL",
    "ROOT",
]
