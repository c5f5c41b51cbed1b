"""The system service (moby daemon/info.go, disk_usage.go, auth.go): `/info`, `/version`,
`/system/df` and `POST /auth`."""

from __future__ import annotations

import os
import platform
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import archive
from ..api import DEFAULT_VERSION, MIN_VERSION
from ..commit import go_arch
from ..distribution.credentials import AuthConfig, login_domain
from ..distribution.errors import RegistryError, Unauthorized
from . import errdefs

if TYPE_CHECKING:
    from . import Daemon

SERVER_VERSION = "0.1.0"  # layerlab's version: `docker version` shows it as the Engine's
PLATFORM_NAME = "layerlab imagegraph (a teaching daemon)"
INDEX_SERVER = "https://index.docker.io/v1/"


def kernel_version() -> str:
    return platform.release()


def operating_system() -> str:
    """PRETTY_NAME from os-release, as dockerd's operatingsystem.GetOperatingSystem."""
    for path in ("/etc/os-release", "/usr/lib/os-release"):
        try:
            for line in Path(path).read_text().splitlines():
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
        except OSError:
            continue
    return "<unknown>"


def mem_total() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def cgroup_version() -> str:
    return "2" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "1"


@dataclass
class SystemService:
    daemon: Daemon

    def system_version(self) -> dict[str, Any]:
        """GET /version (types.Version): the Engine component, and the storage driver's."""
        arch = go_arch()
        py = f"python{platform.python_version()}"
        details = {
            "ApiVersion": DEFAULT_VERSION,
            "Arch": arch,
            "BuildTime": "",
            "Experimental": "false",
            "GitCommit": "layerlab",
            "GoVersion": py,
            "KernelVersion": kernel_version(),
            "MinAPIVersion": MIN_VERSION,
            "Os": "linux",
        }
        return {
            "Platform": {"Name": PLATFORM_NAME},
            "Components": [
                {"Name": "Engine", "Version": SERVER_VERSION, "Details": details},
                {"Name": "layerfs", "Version": SERVER_VERSION, "Details": {"StorageDriver": "layerfs (FUSE)"}},
            ],
            "Version": SERVER_VERSION,
            "ApiVersion": DEFAULT_VERSION,
            "MinAPIVersion": MIN_VERSION,
            "GitCommit": "layerlab",
            "GoVersion": py,
            "Os": "linux",
            "Arch": arch,
            "KernelVersion": kernel_version(),
        }

    def system_info(self) -> dict[str, Any]:
        """GET /info (system.Info), the fields `docker info` prints."""
        cfg = self.daemon.config
        svc = self.daemon.services()
        with svc.lock.held(shared=True):
            n_images = len(svc.images.ids())
            n_containers = len(svc.containers.containers())
        index_configs: dict[str, Any] = {
            "docker.io": {"Name": "docker.io", "Mirrors": [], "Secure": True, "Official": True}
        }
        for name in cfg.insecure_registries:
            if "/" not in name:  # a CIDR goes to InsecureRegistryCIDRs
                index_configs[name] = {"Name": name, "Mirrors": [], "Secure": False, "Official": False}
        cidrs = ["::1/128", "127.0.0.0/8"] + [n for n in cfg.insecure_registries if "/" in n]
        return {
            "ID": self.daemon.id,
            "Containers": n_containers,
            "ContainersRunning": 0,
            "ContainersPaused": 0,
            "ContainersStopped": n_containers,
            "Images": n_images,
            "Driver": "layerfs",
            "DriverStatus": [
                ["Root Dir", str(cfg.root / "layerfs")],
                ["Whiteouts", cfg.encoding or archive.default_encoding()],
                ["Mount program", "layerfs (FUSE), or the kernel's overlay"],
            ],
            "Plugins": {"Volume": [], "Network": [], "Authorization": None, "Log": ["json-file"]},
            "MemoryLimit": False,
            "SwapLimit": False,
            "CpuCfsPeriod": False,
            "CpuCfsQuota": False,
            "CPUShares": False,
            "CPUSet": False,
            "PidsLimit": False,
            "IPv4Forwarding": False,
            "Debug": cfg.debug,
            "NFd": _open_fds(),
            "OomKillDisable": False,
            "NGoroutines": threading.active_count(),
            "SystemTime": go_time_rfc3339nano(time.time_ns()),
            "LoggingDriver": "json-file",
            "CgroupDriver": "none",
            "CgroupVersion": cgroup_version(),
            "NEventsListener": self.daemon.events.listeners,
            "KernelVersion": kernel_version(),
            "OperatingSystem": operating_system(),
            "OSVersion": "",
            "OSType": "linux",
            "Architecture": platform.machine(),
            "IndexServerAddress": INDEX_SERVER,
            "RegistryConfig": {
                "InsecureRegistryCIDRs": cidrs,
                "IndexConfigs": index_configs,
                "Mirrors": None,
            },
            "NCPU": os.cpu_count() or 1,
            "MemTotal": mem_total(),
            "GenericResources": None,
            "DockerRootDir": str(cfg.root),
            "HttpProxy": os.environ.get("HTTP_PROXY", ""),
            "HttpsProxy": os.environ.get("HTTPS_PROXY", ""),
            "NoProxy": os.environ.get("NO_PROXY", ""),
            "Name": socket.gethostname(),
            "Labels": [],
            "ExperimentalBuild": False,
            "ServerVersion": SERVER_VERSION,
            "Runtimes": {},
            "DefaultRuntime": "",
            "Swarm": {
                "NodeID": "",
                "NodeAddr": "",
                "LocalNodeState": "inactive",
                "ControlAvailable": False,
                "Error": "",
                "RemoteManagers": None,
            },
            "LiveRestoreEnabled": False,
            "Isolation": "",
            "InitBinary": "",
            "ContainerdCommit": {"ID": ""},
            "RuncCommit": {"ID": ""},
            "InitCommit": {"ID": ""},
            "SecurityOptions": [],
            "CDISpecDirs": [],
            "Warnings": None,
        }

    def system_disk_usage(self, images: bool = True, containers: bool = True) -> dict[str, Any]:
        """GET /system/df (types.DiskUsage): layers, images with shared sizes and container counts,
        containers with their top layer's size."""
        out: dict[str, Any] = {"LayersSize": 0, "Images": None, "Containers": None, "Volumes": None}
        if images:
            svc = self.daemon.services()
            with svc.lock.held(shared=True):
                out["LayersSize"] = sum(layer.size for layer in svc.layers.layers())
            out["Images"] = self.daemon.images.images(all_=True, shared_size=True, container_count=True)
        if containers:
            out["Containers"] = self.daemon.containers.containers(all_=True, size=True)
        if images or containers:
            out["Volumes"] = []
        out["BuildCache"] = None
        out["BuilderSize"] = 0
        return out

    def authenticate_to_registry(self, auth: AuthConfig) -> dict[str, str]:
        """POST /auth (AuthenticateToRegistry): `GET /v2/` with the credentials, as docker login."""
        domain = login_domain(auth.server_address)
        client = self.daemon.registry_client(domain, auth)
        try:
            client.check_login()
        except Unauthorized as exc:
            raise errdefs.Unauthorized(str(exc)) from None
        except RegistryError as exc:
            raise errdefs.System(str(exc)) from None
        return {"IdentityToken": "", "Status": "Login Succeeded"}


def go_time_rfc3339nano(ns: int) -> str:
    """Go's time.Now().Format(time.RFC3339Nano) in local time: trailing zeros of the fraction dropped."""
    t = time.localtime(ns // 1_000_000_000)
    frac = f"{ns % 1_000_000_000:09d}".rstrip("0")
    off = t.tm_gmtoff
    zone = "Z" if off == 0 else f"{'+' if off > 0 else '-'}{abs(off) // 3600:02d}:{abs(off) % 3600 // 60:02d}"
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + (f".{frac}" if frac else "") + zone


def _open_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 0


__all__ = ["SystemService"]
