"""The daemon's backend: what the API's handlers call (moby's daemon/ and daemon/images/).

`Daemon` holds what lives as long as the daemon (its configuration, the event log, the flow
log, the shutdown signal) and three services cut as moby cuts them:

- `images.ImageService`: pull, push, import, load, save, list, inspect, history, tag, rmi,
  prune, search (daemon/images, distribution/);
- `containers.ContainerService`: create, list, inspect, changes, commit, export, archive,
  rename, rm, prune (daemon/create.go, commit.go, archive.go, …);
- `system.SystemService`: info, version, disk usage, registry login (daemon/info.go, …).

They work through `imagegraph.service.Services`, the same service layer the `imagegraph`
command uses, opened afresh for each call (each request runs in its own thread; the store's
lock is per open file, so threads exclude each other as processes do).
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..distribution.client import RegistryClient
from ..distribution.credentials import AuthConfig
from ..distribution.localstore import LocalStore, open_local_store
from ..service import Services
from ..store import atomic_write
from .events import Events
from .flow import Flow


@dataclass
class DaemonConfig:
    """What `imagegraph daemon` was started with, and `<root>/daemon.json` (dockerd's file)."""

    root: Path
    encoding: str | None = None
    insecure_registries: tuple[str, ...] = ()
    search_registries: tuple[str, ...] = ()
    hosts: tuple[str, ...] = ()
    debug: bool = False
    shutdown_timeout: float = 10.0

    @classmethod
    def load(
        cls,
        root: Path,
        encoding: str | None = None,
        insecure_registries: tuple[str, ...] = (),
        hosts: tuple[str, ...] = (),
        debug: bool = False,
    ) -> DaemonConfig:
        """Add daemon.json: `insecure-registries` (as dockerd) and `search-registries` (ours: the
        registries whose catalog `docker search` reads; the insecure ones are searched too)."""
        path = root / "daemon.json"
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            data = {}
        except (OSError, ValueError) as exc:
            raise ValueError(f"unable to configure the Docker daemon with file {path}: {exc}") from None
        if not isinstance(data, dict):
            raise ValueError(f"unable to configure the Docker daemon with file {path}: not a JSON object")
        insecure = [str(x) for x in data.get("insecure-registries") or []] + list(insecure_registries)
        search = [str(x) for x in data.get("search-registries") or []]
        return cls(root, encoding, tuple(insecure), tuple(search), tuple(hosts), debug)


@dataclass
class Daemon:
    config: DaemonConfig
    flow: Flow = field(default_factory=Flow)
    events: Events = field(default_factory=Events)
    stopping: threading.Event = field(default_factory=threading.Event)  # set at SIGTERM: streams end
    cancel: threading.Event = field(default_factory=threading.Event)  # set after the grace: operations stop
    id: str = ""

    def __post_init__(self) -> None:
        from .containers import ContainerService
        from .images import ImageService
        from .runtime import RuntimeService
        from .system import SystemService

        Services.open(self.config.root, self.config.encoding)  # folders made, crash leftovers gone
        self.id = self.id or self._engine_id()
        self.images = ImageService(self)
        self.containers = ContainerService(self)
        self.runtime = RuntimeService(self)
        self.system = SystemService(self)

    def _engine_id(self) -> str:
        """dockerd's engine ID: made once, kept in the root (`engine-id`)."""
        path = self.config.root / "engine-id"
        try:
            value = path.read_text().strip()
            if value:
                return value
        except OSError:
            pass
        value = str(uuid.uuid4())
        atomic_write(path, value + "\n")
        return value

    def services(self) -> Services:
        """The store's services for one call (no cleaning: other processes may be at work)."""
        return Services.wire(self.config.root, self.config.encoding)

    def local_store(self) -> LocalStore:
        return open_local_store(self.config.root, self.config.encoding)

    def registry_client(self, domain: str, auth: AuthConfig) -> RegistryClient:
        """A registry client with the request's credentials (never config.json: the client
        resolved those, as the seed's AuthResolver shows), reporting each exchange to the flow."""
        return RegistryClient(domain, auth, self.config.insecure_registries, observer=self._observe)

    def _observe(
        self, method: str, url: str, status: int, reason: str, sent: Mapping[str, str], got: Mapping[str, str]
    ) -> None:
        self.flow.registry_request(method, url, status, reason, sent, got)
