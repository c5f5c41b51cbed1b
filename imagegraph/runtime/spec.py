"""What a container gets by default, and the spec of one container (moby oci/defaults.go, oci_linux.go).

`ContainerSpec` is the runtime's whole input, like runc's config.json: everything the monitor
and the container's first process need, built once from the container's record. It is plain
data (JSON round-trips), so an exec helper in another process can be handed one.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_PATH_ENV = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

#: linux/capability.h, by number.
CAPABILITIES = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
)
CAP_NUMBER = {name: i for i, name in enumerate(CAPABILITIES)}

#: moby oci/caps DefaultCapabilities: what a container keeps (CapEff 00000000a80425fb).
DEFAULT_CAPS = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
)

#: oci DefaultLinuxSpec's MaskedPaths (files get /dev/null bound over them, directories an empty
#: read-only tmpfs) and ReadonlyPaths: host information /proc and /sys would otherwise show.
MASKED_PATHS = (
    "/proc/acpi",
    "/proc/asound",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/sys/devices/virtual/powercap",
    "/sys/firmware",
)
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")


@dataclass(frozen=True)
class Mount:
    destination: str
    type: str
    source: str
    options: tuple[str, ...] = ()


#: oci DefaultLinuxSpec's Mounts (with Docker's 64 MiB /dev/shm). /sys/fs/cgroup is left out:
#: on a cgroup v1 host Docker builds a tmpfs of per-controller binds there, which this runtime
#: does not (the container sees an empty directory).
DEFAULT_MOUNTS = (
    Mount("/proc", "proc", "proc", ("nosuid", "noexec", "nodev")),
    Mount("/dev", "tmpfs", "tmpfs", ("nosuid", "strictatime", "mode=755", "size=65536k")),
    Mount("/dev/pts", "devpts", "devpts", ("nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5")),
    Mount("/sys", "sysfs", "sysfs", ("nosuid", "noexec", "nodev", "ro")),
    Mount("/dev/mqueue", "mqueue", "mqueue", ("nosuid", "noexec", "nodev")),
    Mount("/dev/shm", "tmpfs", "shm", ("nosuid", "noexec", "nodev", "mode=1777", "size=67108864")),
)


@dataclass(frozen=True)
class Device:
    path: str
    major: int
    minor: int
    mode: int = 0o666


#: The devices every container gets (OCI runtime spec, "Default Devices"); /dev/ptmx is a link
#: to pts/ptmx and /dev/console the terminal, when there is one.
DEFAULT_DEVICES = (
    Device("/dev/null", 1, 3),
    Device("/dev/zero", 1, 5),
    Device("/dev/full", 1, 7),
    Device("/dev/random", 1, 8),
    Device("/dev/urandom", 1, 9),
    Device("/dev/tty", 5, 0),
)


class SpecError(Exception):
    """A container's settings that cannot become a spec; str() is Docker's daemon text."""


def available_caps() -> set[str]:
    """Capabilities this process can hand on (its bounding set): a sandbox may lack some."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapBnd:"):
                    mask = int(line.split()[1], 16)
                    return {name for i, name in enumerate(CAPABILITIES) if mask >> i & 1}
    except OSError:
        pass
    return set(CAPABILITIES)


def normalize_caps(caps: list[str] | None, available: set[str]) -> list[str]:
    """moby NormalizeLegacyCapabilities: upper case, CAP_ prefix, known and available ones only."""
    out = []
    for c in caps or []:
        c = c.upper()
        if c == "ALL":
            out.append(c)
            continue
        if not c.startswith("CAP_"):
            c = "CAP_" + c
        if c not in CAP_NUMBER:
            raise SpecError(f'unknown capability: "{c}"')
        if c not in available:
            raise SpecError(
                f'capability not supported by your kernel or not available in the current environment: "{c}"'
            )
        out.append(c)
    return out


def tweak_caps(adds: list[str] | None, drops: list[str] | None, privileged: bool = False) -> list[str]:
    """moby TweakCapabilities: the default set, minus --cap-drop, plus --cap-add (ALL for either)."""
    available = available_caps()
    everything = [c for c in CAPABILITIES if c in available]
    if privileged:
        return everything
    if not adds and not drops:
        return list(DEFAULT_CAPS)
    drop = normalize_caps(drops, available)
    add = normalize_caps(adds, available)
    if "ALL" in add:
        return [c for c in everything if c not in drop]
    if "ALL" in drop:
        return list(dict.fromkeys(add))
    return list(dict.fromkeys([c for c in DEFAULT_CAPS if c not in drop] + add))


def no_new_privileges(security_opt: list[str] | None) -> bool:
    """`--security-opt no-new-privileges[:true|=true]`."""
    value = False
    for opt in security_opt or []:
        key, _, v = opt.replace("=", ":", 1).partition(":")
        if key == "no-new-privileges":
            if v and v not in ("true", "false"):
                raise SpecError(f"invalid --security-opt 2: {opt!r}")
            value = v != "false"
    return value


@dataclass
class Resources:
    memory: int = 0  # bytes, 0 = no limit
    pids_limit: int = 0  # 0 = no limit
    nano_cpus: int = 0  # 1e9 = one CPU

    @property
    def any(self) -> bool:
        return bool(self.memory or self.pids_limit or self.nano_cpus)


@dataclass
class ProcessSpec:
    """The process to run: PID 1 of a container, or an exec'd process in it."""

    args: list[str]
    env: list[str]
    cwd: str = "/"
    user: str = ""
    tty: bool = False
    caps: list[str] = field(default_factory=lambda: list(DEFAULT_CAPS))
    no_new_privileges: bool = False


@dataclass
class ContainerSpec:
    """Everything needed to run one container (runc's config.json, in Docker's words)."""

    id: str
    rootfs: str
    hostname: str
    process: ProcessSpec
    network_mode: str = "none"
    readonly_rootfs: bool = False
    etc_binds: list[tuple[str, str]] = field(default_factory=list)  # (host file, path in the container)
    masked_paths: list[str] = field(default_factory=lambda: list(MASKED_PATHS))
    readonly_paths: list[str] = field(default_factory=lambda: list(READONLY_PATHS))
    resources: Resources = field(default_factory=Resources)

    @property
    def new_netns(self) -> bool:
        return self.network_mode != "host"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ContainerSpec:
        d = dict(d)
        d["process"] = ProcessSpec(**d["process"])
        d["resources"] = Resources(**d["resources"])
        d["etc_binds"] = [tuple(b) for b in d["etc_binds"]]
        return cls(**d)


def process_env(env: list[str] | None, hostname: str, tty: bool) -> list[str]:
    """moby CreateDaemonEnvironment: PATH and HOSTNAME first, TERM with a tty, then the config's Env."""
    out = [f"PATH={DEFAULT_PATH_ENV}", f"HOSTNAME={hostname}"]
    if tty:
        out.append("TERM=xterm")
    return replace_env(out, list(env or []))


def replace_env(base: list[str], overrides: list[str]) -> list[str]:
    """Later entries win, per key, keeping the first position (Go's ReplaceOrAppendEnvValues)."""
    order: list[str] = []
    values: dict[str, str] = {}
    for e in base + overrides:
        key = e.split("=", 1)[0]
        if "=" not in e:
            continue  # `-e NAME` with NAME unset on the client: nothing to pass
        if key not in values:
            order.append(key)
        values[key] = e
    return [values[k] for k in order]


def container_spec(
    cid: str, config: dict[str, Any], host_config: dict[str, Any], rootfs: str, container_dir: Path
) -> ContainerSpec:
    """The spec of a container from its record: Docker's defaults plus what its flags changed."""
    argv = list(config.get("Entrypoint") or []) + list(config.get("Cmd") or [])
    if not argv:
        raise SpecError("no command specified")
    tty = bool(config.get("Tty"))
    hostname = config.get("Hostname") or cid[:12]
    caps = tweak_caps(host_config.get("CapAdd"), host_config.get("CapDrop"), bool(host_config.get("Privileged")))
    process = ProcessSpec(
        args=argv,
        env=process_env(config.get("Env"), hostname, tty),
        cwd=config.get("WorkingDir") or "/",
        user=config.get("User") or "",
        tty=tty,
        caps=caps,
        no_new_privileges=no_new_privileges(host_config.get("SecurityOpt")),
    )
    if not os.path.isabs(process.cwd):
        raise SpecError(f"the working directory '{process.cwd}' is invalid, it needs to be an absolute path")
    return ContainerSpec(
        id=cid,
        rootfs=rootfs,
        hostname=hostname,
        process=process,
        network_mode=host_config.get("NetworkMode") or "none",
        readonly_rootfs=bool(host_config.get("ReadonlyRootfs")),
        etc_binds=[
            (str(container_dir / "resolv.conf"), "/etc/resolv.conf"),
            (str(container_dir / "hostname"), "/etc/hostname"),
            (str(container_dir / "hosts"), "/etc/hosts"),
        ],
        masked_paths=list(host_config.get("MaskedPaths") or MASKED_PATHS),
        readonly_paths=list(host_config.get("ReadonlyPaths") or READONLY_PATHS),
        resources=Resources(
            memory=int(host_config.get("Memory") or 0),
            pids_limit=max(0, int(host_config.get("PidsLimit") or 0)),
            nano_cpus=int(host_config.get("NanoCpus") or 0),
        ),
    )


def describe(spec: ContainerSpec) -> str:
    """One line, for logs: what runs."""
    return shlex.join(spec.process.args)
