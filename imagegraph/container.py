"""Containers without processes: the init layer, the writable top layer, mount, diff, remove.

`create` does what Docker's daemon does before a container starts (spec §3.3): it asks the
layer store for an RW layer on the image's top layer, fills the `<mount-id>-init` layer
(moby daemon/initlayer) and writes `containers/<id>/config.v2.json`. `diff` lists the top
layer's changes against everything below it, as `docker diff` prints them (spec §4.4).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import stat
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unionfs.mountinfo import mount_at

from . import archive, fstree
from .digest import go_json
from .imagestore import Image, format_time, parse_time
from .layerstore import LayerNotFound, LayerStore, MountLayer
from .runtime import network
from .store import Layout, atomic_write, listdir, remove_dir_atomically

VALID_NAME = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")

# moby's namesgenerator, abridged: `docker create` without --name gets adjective_surname.
_LEFT = (
    "admiring",
    "affectionate",
    "amazing",
    "angry",
    "awesome",
    "blissful",
    "bold",
    "brave",
    "clever",
    "cool",
    "dazzling",
    "eager",
    "ecstatic",
    "elegant",
    "epic",
    "focused",
    "friendly",
    "gallant",
    "happy",
    "hopeful",
    "jolly",
    "keen",
    "kind",
    "laughing",
    "loving",
    "modest",
    "nifty",
    "peaceful",
    "quirky",
    "relaxed",
    "serene",
    "sharp",
    "stoic",
    "sweet",
    "tender",
    "vibrant",
    "wizardly",
    "zen",
)
_RIGHT = (
    "albattani",
    "archimedes",
    "babbage",
    "bardeen",
    "curie",
    "darwin",
    "dijkstra",
    "einstein",
    "euclid",
    "fermat",
    "feynman",
    "galileo",
    "hopper",
    "hypatia",
    "kepler",
    "knuth",
    "lamarr",
    "lovelace",
    "mayer",
    "meitner",
    "newton",
    "noether",
    "pascal",
    "ritchie",
    "shannon",
    "thompson",
    "torvalds",
    "turing",
    "wozniak",
    "yonath",
)


class ContainerError(Exception):
    """A container failure; str() is Docker's daemon text."""


class ContainerNotFound(ContainerError):
    pass


@dataclass
class Container:
    """What config.v2.json holds (Docker's container record), plus hostconfig.json beside it."""

    data: dict[str, Any]
    host_config: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.data["ID"]

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def name(self) -> str:
        return self.data["Name"].lstrip("/")

    @property
    def image_id(self) -> str:
        return self.data["Image"]

    @property
    def config(self) -> dict[str, Any]:
        return self.data["Config"]

    @property
    def state(self) -> dict[str, Any]:
        return self.data.setdefault("State", {})

    @property
    def created(self) -> float:
        return parse_time(self.data.get("Created", ""))

    @property
    def command(self) -> str:
        """docker ps COMMAND: path and args joined by spaces."""
        return " ".join([self.data.get("Path", "")] + list(self.data.get("Args") or [])).strip()

    @property
    def cmd_string(self) -> str:
        """What commit records as created_by: Config.Cmd joined by spaces."""
        return " ".join(self.config.get("Cmd") or [])


#: moby daemon/initlayer: what every container's init layer holds, as empty placeholders.
#: The real hostname, hosts and resolv.conf live in containers/<id>/ and are bind-mounted over
#: the placeholders when the container starts; proc, sys, dev/pts and dev/shm are mount points.
INIT_LAYER = (
    ("/dev/pts", "dir"),
    ("/dev/shm", "dir"),
    ("/proc", "dir"),
    ("/sys", "dir"),
    ("/.dockerenv", "file"),
    ("/etc/resolv.conf", "file"),
    ("/etc/hosts", "file"),
    ("/etc/hostname", "file"),
    ("/dev/console", "file"),
    ("/etc/mtab", "/proc/mounts"),
)


def init_layer_files(diff: Path) -> None:
    """Fill an init layer as moby's initlayer.Setup does: directories 0755, empty files 0755, one symlink."""
    for rel, kind in INIT_LAYER:
        p = diff / rel.lstrip("/")
        p.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        if kind == "dir":
            p.mkdir(mode=0o755, parents=True, exist_ok=True)
        elif kind == "file":
            fd = os.open(p, os.O_CREAT | os.O_WRONLY, 0o755)
            os.close(fd)
        else:
            os.symlink(kind, p)


def _generate_name(taken: set[str]) -> str:
    for _ in range(1000):
        name = f"{secrets.choice(_LEFT)}_{secrets.choice(_RIGHT)}"
        if name not in taken:
            return name
    return f"{secrets.choice(_LEFT)}_{secrets.choice(_RIGHT)}{secrets.randbelow(10)}"


def full_config(c: dict[str, Any]) -> dict[str, Any]:
    """A container.Config with every non-omitempty field Go would write."""
    base: dict[str, Any] = {
        "Hostname": "",
        "Domainname": "",
        "User": "",
        "AttachStdin": False,
        "AttachStdout": False,
        "AttachStderr": False,
        "Tty": False,
        "OpenStdin": False,
        "StdinOnce": False,
        "Env": None,
        "Cmd": None,
        "Image": "",
        "Volumes": None,
        "WorkingDir": "",
        "Entrypoint": None,
        "OnBuild": None,
        "Labels": None,
    }
    base.update(c)
    for key in _OMITEMPTY:
        if key in base and not base[key]:
            del base[key]
    return base


def create_config(user: dict[str, Any], image_conf: dict[str, Any]) -> dict[str, Any]:
    """moby mergeAndVerifyConfig: the config `create` records, the image's with the request's
    fields merged in (`merge_create_config`); `--entrypoint ""` resets; no command is an error.

    Starts from the image's config so that a container made without flags carries it unchanged.
    """
    out = full_config(json.loads(json.dumps(image_conf or {})))
    out["Hostname"] = ""
    merged = merge_create_config(user, image_conf or {})
    out.update(merged)
    out["Cmd"], out["Entrypoint"] = merged.get("Cmd"), merged.get("Entrypoint")  # a request's Entrypoint drops Cmd
    if out.get("Entrypoint") == [""]:
        out["Entrypoint"] = None
    if not out.get("Entrypoint") and not out.get("Cmd"):
        raise ContainerError("no command specified")
    return full_config(out)


def full_host_config(hc: dict[str, Any]) -> dict[str, Any]:
    """HostConfig as hostconfig.json holds it: Docker's defaults, then the request's fields."""
    from .runtime.spec import MASKED_PATHS, READONLY_PATHS

    base: dict[str, Any] = {
        "Binds": None,
        "ContainerIDFile": "",
        "LogConfig": {"Type": "json-file", "Config": {}},
        "NetworkMode": "none",
        "PortBindings": {},
        "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
        "AutoRemove": False,
        "ConsoleSize": [0, 0],
        "CapAdd": None,
        "CapDrop": None,
        "Dns": [],
        "DnsOptions": [],
        "DnsSearch": [],
        "ExtraHosts": None,
        "IpcMode": "private",
        "PidMode": "",
        "Privileged": False,
        "ReadonlyRootfs": False,
        "SecurityOpt": None,
        "UTSMode": "",
        "ShmSize": 67108864,
        "Runtime": "layerlab",
        "Memory": 0,
        "NanoCpus": 0,
        "PidsLimit": None,
        "MaskedPaths": list(MASKED_PATHS),
        "ReadonlyPaths": list(READONLY_PATHS),
    }
    base.update({k: v for k, v in hc.items() if v is not None or k in base})
    if base["NetworkMode"] in ("", "default"):
        base["NetworkMode"] = "none"
    return base


def new_state() -> dict[str, Any]:
    """A created container's State, as config.v2.json holds it."""
    return {
        "Running": False,
        "Paused": False,
        "Restarting": False,
        "OOMKilled": False,
        "RemovalInProgress": False,
        "Dead": False,
        "Pid": 0,
        "ExitCode": 0,
        "Error": "",
        "StartedAt": ZERO_TIME,
        "FinishedAt": ZERO_TIME,
    }


ZERO_TIME = "0001-01-01T00:00:00Z"


# container.Config fields tagged `json:",omitempty"`.
_OMITEMPTY = (
    "ExposedPorts",
    "Healthcheck",
    "ArgsEscaped",
    "NetworkDisabled",
    "MacAddress",
    "StopSignal",
    "StopTimeout",
    "Shell",
)


# ---- changes (docker diff) ------------------------------------------------------------

CHANGE_MODIFY, CHANGE_ADD, CHANGE_DELETE = 0, 1, 2
KIND_LETTER = {CHANGE_MODIFY: "C", CHANGE_ADD: "A", CHANGE_DELETE: "D"}


def merge_create_config(user: dict[str, Any], image: dict[str, Any]) -> dict[str, Any]:
    """moby daemon.merge (create.go and commit.go): what the request leaves empty comes from the
    image. Env and Labels merge key by key (the request's win), ExposedPorts and Volumes add up;
    without an Entrypoint of its own, an empty Cmd takes the image's and the Entrypoint too."""
    out = dict(user)
    for key in ("User", "WorkingDir", "StopSignal"):
        if not out.get(key):
            out[key] = image.get(key, "")
    for key in ("ExposedPorts", "Volumes"):
        merged = dict(image.get(key) or {})
        merged.update(out.get(key) or {})
        out[key] = merged or None
    keys = {e.split("=", 1)[0] for e in out.get("Env") or []}
    env = list(out.get("Env") or []) + [e for e in image.get("Env") or [] if e.split("=", 1)[0] not in keys]
    out["Env"] = env or None  # the request's first, then the image's other keys, as moby appends them
    labels = dict(image.get("Labels") or {})
    labels.update(out.get("Labels") or {})
    out["Labels"] = labels or None
    if not out.get("Entrypoint"):
        if not out.get("Cmd"):
            out["Cmd"] = image.get("Cmd")
        if out.get("Entrypoint") is None:
            out["Entrypoint"] = image.get("Entrypoint")
    if not out.get("Healthcheck") and image.get("Healthcheck"):
        out["Healthcheck"] = image["Healthcheck"]
    return out


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _lstat_at(name: str, dir_fd: int) -> os.stat_result | None:
    try:
        return os.lstat(name, dir_fd=dir_fd)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:  # ".wh." + a 252-byte name
            return None
        raise


def _opaque_at(dir_fd: int, name: str) -> bool:
    """The directory `name` is opaque in either encoding (the overlay xattr, or `.wh..wh..opq` inside)."""
    path = fstree.xattr_path(dir_fd, name)
    return archive.is_opaque_dir(path) or os.path.lexists(f"{path}/{archive.WHITEOUT_OPAQUE}")


def _in_lowers(name: str, lower_fds: list[int | None]) -> os.stat_result | None:
    """What the lower layers show under `name`, top first: the first entry found, unless a
    whiteout (char 0/0, or a `.wh.` file in the aufs encoding) hides it."""
    for fd in lower_fds:
        if fd is None:
            continue
        st = _lstat_at(name, fd)
        if st is not None:
            return None if _is_whiteout(st) else st
        if _lstat_at(archive.WHITEOUT_PREFIX + name, fd) is not None:
            return None
    return None


def _follow_lowers(entry: fstree.Entry, parents: list[int | None]) -> list[int | None]:
    """The lower directories that show through under a directory of the top layer: each lower's
    directory of that name, down to the first one that hides the rest (a whiteout, a file, an
    opaque directory). Under an opaque top directory no lower shows through."""
    out: list[int | None] = [None] * len(parents)
    rw_fd = entry.dir_fd(0)
    assert rw_fd is not None
    if _opaque_at(rw_fd, entry.name):
        return out
    try:
        for i, pfd in enumerate(parents):
            if pfd is None:
                continue
            st = _lstat_at(entry.name, pfd)
            if st is None:
                if _lstat_at(archive.WHITEOUT_PREFIX + entry.name, pfd) is not None:
                    break
                continue
            if not stat.S_ISDIR(st.st_mode):
                break
            out[i] = os.open(entry.name, fstree.O_DIR, dir_fd=pfd)
            if _opaque_at(pfd, entry.name):
                break
    except BaseException:
        for fd in out:
            if fd is not None:
                os.close(fd)
        raise
    return out


def layer_changes(rw: Path, lowers: list[Path]) -> list[tuple[int, str]]:
    """moby archive.changes() with OverlayChanges' rule: walk the top layer; A, C or D per path,
    parents of A/D marked C.

    A whiteout (char 0/0 or `.wh.NAME`) is a deletion. An opaque directory (as layerfs and the
    kernel make every new directory in a merged parent) counts as deleted-and-recreated only
    where the lowers show the same path (moby's overlayDeletedFile); otherwise it is an
    addition. The walk is fstree's: no recursion, no path longer than one name, any depth.
    """
    changes: list[tuple[int, str]] = []
    changed_dirs: set[str] = set()
    if not rw.is_dir():
        return changes
    for ent in fstree.walk(rw, lowers, _follow_lowers):
        name, st = ent.name, ent.st
        if name.startswith(archive.WHITEOUT_META_PREFIX):
            ent.descend = False
            continue
        rw_fd = ent.dir_fd(0)
        assert rw_fd is not None
        lower_fds = [ent.dir_fd(i + 1) for i in range(len(lowers))]
        path = "/" + ent.rel
        is_dir = stat.S_ISDIR(st.st_mode)
        if _is_whiteout(st):
            kind, path_out = CHANGE_DELETE, path
        elif name.startswith(archive.WHITEOUT_PREFIX):
            kind, path_out = CHANGE_DELETE, os.path.join(os.path.dirname(path), name[len(archive.WHITEOUT_PREFIX) :])
        else:
            lower = _in_lowers(name, lower_fds)
            path_out = path
            if lower is None:
                kind = CHANGE_ADD
            elif is_dir and _opaque_at(rw_fd, name):
                kind = CHANGE_DELETE  # deleted and made again: everything below is new
            else:
                if (
                    is_dir
                    and stat.S_ISDIR(lower.st_mode)
                    and lower.st_size == st.st_size
                    and lower.st_mode == st.st_mode
                    and lower.st_mtime_ns == st.st_mtime_ns
                ):
                    continue  # unchanged directory: its contents are still walked
                kind = CHANGE_MODIFY
        if is_dir:
            changed_dirs.add(path)
        if kind in (CHANGE_ADD, CHANGE_DELETE):
            parent = os.path.dirname(path_out)
            if parent not in changed_dirs and parent != "/":
                changes.append((CHANGE_MODIFY, parent))
                changed_dirs.add(parent)
        changes.append((kind, path_out))
    return changes


# ---- the container store ------------------------------------------------------------------


def _mounted(path: Path) -> bool:
    try:
        return mount_at(path) is not None
    except OSError:  # no /proc: nothing can be seen as mounted
        return False


def _check_mount_point(target: Path) -> None:
    """The checks mount(8) and mount.fuse make, for both drivers: a directory, and an empty one
    (the kernel's overlay would hide what is there; layerfs, like FUSE, refuses)."""
    try:
        st = os.stat(target)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise ContainerError(f"mount point {target}: {exc.strerror}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise ContainerError(f"mount point {target} is not a directory")
    with os.scandir(target) as it:
        if next(it, None) is not None:
            raise ContainerError(f"mount point {target} is not empty")


def _layerfs_command() -> list[str]:
    exe = shutil.which("layerfs")
    if exe:
        return [exe]
    sibling = Path(sys.executable).parent / "layerfs"
    if sibling.exists():
        return [str(sibling)]
    return [sys.executable, "-m", "unionfs"]


class ContainerStore:
    def __init__(self, layout: Layout, layers: LayerStore) -> None:
        self.layout = layout
        self.layers = layers

    # ---- reading -----------------------------------------------------------------------

    def containers(self) -> list[Container]:
        out = [c for c in map(self.load, listdir(self.layout.containers)) if c is not None]
        return sorted(out, key=lambda c: c.created, reverse=True)

    def get(self, ref: str) -> Container:
        """By full ID, by name, or by unambiguous ID prefix (moby GetContainer)."""
        if not ref:
            raise ContainerNotFound("No such container: ")
        all_ = self.containers()
        for c in all_:
            if c.id == ref:
                return c
        for c in all_:
            if c.name == ref.lstrip("/"):
                return c
        found = [c for c in all_ if c.id.startswith(ref)]
        if len(found) > 1:
            raise ContainerError(f"multiple IDs found with provided prefix: {ref}")
        if not found:
            raise ContainerNotFound(f"No such container: {ref}")
        return found[0]

    def using_image(self, image_id: str) -> list[Container]:
        return [c for c in self.containers() if c.image_id == image_id]

    def mount_layer(self, c: Container) -> MountLayer:
        return self.layers.get_mount(c.id)

    def size_rw(self, c: Container) -> int:
        """What the container's top layer holds (docker's SizeRw)."""
        return dir_size(self.layout.layer_dir(self.mount_layer(c).mount_id) / "diff")

    def graph_driver_data(self, c: Container) -> dict[str, str]:
        """docker inspect's GraphDriver.Data for a container (overlay2 keys)."""
        m = self.mount_layer(c)
        top = self.layout.layer_dir(m.mount_id)
        lowers = [str(self.layout.layer_dir(m.init_id) / "diff")] + [str(p) for p in self.layers.lower_dirs(m.parent)]
        return {
            "LowerDir": ":".join(lowers),
            "MergedDir": str(top / "merged"),
            "UpperDir": str(top / "diff"),
            "WorkDir": str(top / "work"),
        }

    def changes(self, c: Container) -> list[tuple[int, str]]:
        m = self.mount_layer(c)
        lowers = [self.layout.layer_dir(m.init_id) / "diff"] + self.layers.lower_dirs(m.parent)
        return layer_changes(self.layout.layer_dir(m.mount_id) / "diff", lowers)

    # ---- writing -----------------------------------------------------------------------

    def create(
        self,
        image: Image,
        image_ref: str,
        cmd: list[str] | None = None,
        name: str | None = None,
        now: float | None = None,
        host_resolv: str = "/etc/resolv.conf",
        seed: str | None = None,
        config: dict[str, Any] | None = None,
        host_config: dict[str, Any] | None = None,
    ) -> Container:
        """`docker create`: the init layer, the empty top layer and the container's record.

        `config` holds the request's container.Config fields (what `run`'s flags set), merged
        with the image's as moby does; `host_config` its HostConfig. `seed` makes the ID
        reproducible (SOURCE_DATE_EPOCH mode): commits then give stable image IDs.
        """
        taken = {c.name for c in self.containers()}
        if name is not None:
            if not VALID_NAME.match(name):
                raise ContainerError(f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
            name = name.lstrip("/")
            if name in taken:
                other = next(c for c in self.containers() if c.name == name)
                raise ContainerError(
                    f'Conflict. The container name "/{name}" is already in use by container '
                    f'"{other.id}". You have to remove (or rename) that container to be able '
                    "to reuse that name."
                )
        else:
            name = _generate_name(taken)
        user = dict(config or {})
        if cmd and not user.get("Cmd"):
            user["Cmd"] = list(cmd)
        merged = create_config(user, image.container_config)
        hc = full_host_config(host_config or {})
        mode = hc["NetworkMode"]
        if mode not in network.NETWORK_MODES:
            raise ContainerError(
                f"network {mode} not found: this runtime has no bridge; "
                "containers get --network none (the default) or host"
            )
        cid = self._new_id(seed, {c.id for c in self.containers()})
        if merged.get("Hostname"):
            hostname = merged["Hostname"]
        elif network.is_host_network(mode):
            hostname = socket.gethostname()
        else:
            hostname = cid[:12]
        merged["Hostname"] = hostname
        merged["Image"] = image_ref
        if network.is_host_network(mode):
            hosts = network.read_host_file("/etc/hosts")
        else:
            hosts = network.hosts_file(hostname)
        resolv = network.resolv_conf(network.read_host_file(host_resolv), host_resolv, mode)
        argv = list(merged.get("Entrypoint") or []) + list(merged.get("Cmd") or [])
        cdir = self.layout.container_dir(cid)
        data = {
            "State": new_state(),
            "ID": cid,
            "Created": format_time(time.time() if now is None else now),
            "Path": argv[0],
            "Args": argv[1:],
            "Config": merged,
            "Image": image.id,
            "Name": "/" + name,
            "Driver": "layerfs",
            "OS": "linux",
            "HostnamePath": str(cdir / "hostname"),
            "HostsPath": str(cdir / "hosts"),
            "ResolvConfPath": str(cdir / "resolv.conf"),
            "LogPath": "",
            "RestartCount": 0,
        }
        self.layers.create_rw_layer(cid, image.top_chain_id or None, init_layer_files)
        try:
            atomic_write(cdir / "hostname", network.hostname_file(hostname))
            atomic_write(cdir / "hosts", hosts)
            atomic_write(cdir / "resolv.conf", resolv)
            atomic_write(cdir / "hostconfig.json", go_json(hc), 0o600)
            atomic_write(cdir / "config.v2.json", go_json(data), 0o600)  # the commit point
        except BaseException:
            self.layers.release_rw_layer(cid)
            fstree.remove_quietly(cdir)
            raise
        return Container(data, hc)

    def save(self, c: Container) -> None:
        """Write config.v2.json again (its State changed); the caller holds the store lock."""
        atomic_write(self.layout.container_dir(c.id) / "config.v2.json", go_json(c.data), 0o600)

    def reload(self, c: Container) -> Container:
        """The record as it is on disk now (a monitor may have written it)."""
        return self.load(c.id) or c

    def load(self, cid: str) -> Container | None:
        cdir = self.layout.container_dir(cid)
        try:
            data = json.loads((cdir / "config.v2.json").read_bytes())
        except (OSError, ValueError):
            return None  # a crash leftover without its config, or removed meanwhile
        try:
            hc = json.loads((cdir / "hostconfig.json").read_bytes())
        except (OSError, ValueError):
            hc = full_host_config({})  # made before hostconfig.json existed
        return Container(data, hc)

    @staticmethod
    def _new_id(seed: str | None, taken: set[str]) -> str:
        if seed is None:
            return secrets.token_hex(32)
        n = 0
        while True:
            cid = hashlib.sha256(f"{seed}\0{n}".encode()).hexdigest()
            if cid not in taken:
                return cid
            n += 1

    def remove(self, c: Container) -> None:
        """Unmount if mounted, drop the RW layers, then the container's folder.

        Removing the config is the commit point: after it the container is gone, and what
        could not be removed (say a mount below its layer) is said in one line and left to
        `clean`, which retries at the next command.
        """
        if self.mountpoint(c) is not None:
            self.umount(c)
        (self.layout.container_dir(c.id) / "config.v2.json").unlink(missing_ok=True)  # the commit point
        try:
            self.layers.release_rw_layer(c.id)
        except LayerNotFound:
            pass  # a create that crashed before its layers were made
        except OSError as exc:
            raise ContainerError(f"unable to remove filesystem for {c.id}: {exc.strerror or exc}") from None
        remove_dir_atomically(self.layout.container_dir(c.id))

    def rename(self, c: Container, new_name: str) -> Container:
        """moby ContainerRename: a valid name no other container has; config.v2.json rewritten whole."""
        if not VALID_NAME.match(new_name):
            raise ContainerError(f"Invalid container name ({new_name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
        new_name = new_name.lstrip("/")
        if new_name == c.name:
            raise ContainerError("Renaming a container with the same name as its current name")
        other = next((o for o in self.containers() if o.name == new_name), None)
        if other is not None:
            raise ContainerError(
                f'Error when allocating new name: Conflict. The container name "/{new_name}" is already in use '
                f'by container "{other.id}". You have to remove (or rename) that container to be able to reuse '
                "that name."
            )
        data = dict(c.data, Name="/" + new_name)
        atomic_write(self.layout.container_dir(c.id) / "config.v2.json", go_json(data), 0o600)
        return Container(data)

    def clean(self) -> None:
        """Containers whose config never landed are crash leftovers: drop their layers too.

        Never raises: a leftover that cannot go now is tried again next time.
        """
        for cid in listdir(self.layout.containers):
            if not (self.layout.container_dir(cid) / "config.v2.json").exists():
                try:
                    self.layers.release_rw_layer(cid)
                except (LayerNotFound, OSError):
                    pass
                fstree.remove_quietly(self.layout.container_dir(cid))
        ids = set(listdir(self.layout.containers))
        for m in self.layers.mounts():
            if m.container_id not in ids:
                try:
                    self.layers.release_rw_layer(m.container_id)
                except (LayerNotFound, OSError):
                    pass

    # ---- mounting ----------------------------------------------------------------------

    def _mount_record(self, c: Container) -> Path:
        return self.layout.container_dir(c.id) / "mount.json"

    def mountpoint(self, c: Container) -> Path | None:
        try:
            rec = json.loads(self._mount_record(c).read_text())
        except (OSError, ValueError):
            return None
        p = Path(rec["path"])
        return p if _mounted(p) else None

    def mount_command(
        self, c: Container, target: Path, driver: str = "layerfs", trace: Path | None = None
    ) -> list[str]:
        m = self.mount_layer(c)
        top = self.layout.layer_dir(m.mount_id)
        init = self.layout.layer_dir(m.init_id) / "diff"
        lowers = [str(p) for p in self.layers.lower_dirs(m.parent)]
        if driver == "overlay":
            opts = f"lowerdir={':'.join([str(init)] + lowers)},upperdir={top / 'diff'},workdir={top / 'work'}"
            return ["mount", "-t", "overlay", "overlay", "-o", opts, str(target)]
        options = self.union_options(c)
        if trace is not None:
            options += f",trace={trace}"
        return _layerfs_command() + ["mount", "-o", options, str(target)]

    def union_options(self, c: Container) -> str:
        """The container's layers as layerfs options: what `mount` passes to layerfs, and what
        the builder opens in-process (unionfs.union.Union) to write COPY into the top layer."""
        m = self.mount_layer(c)
        top = self.layout.layer_dir(m.mount_id)
        init = self.layout.layer_dir(m.init_id) / "diff"
        lowers = [str(p) for p in self.layers.lower_dirs(m.parent)]
        # FROM scratch: no image layer, the init layer is the only one below the top layer
        parts = [f"lowerdir={':'.join(lowers)}" if lowers else f"lowerdir={init}"]
        parts += [f"upperdir={top / 'diff'}", f"workdir={top / 'work'}"]
        if lowers:
            parts.append(f"initdir={init}")
        parts.append(f"whiteout={self.layers.encoding}")  # the store's encoding for the top layer too
        return ",".join(parts)

    def mount(
        self, c: Container, target: Path | None = None, driver: str = "layerfs", trace: Path | None = None
    ) -> Path:
        """Mount the container's layers (layerfs, or the kernel's overlay); `trace` records
        layerfs's copy-ups and whiteouts as JSON lines."""
        current = self.mountpoint(c)
        if current is not None:
            return current
        m = self.mount_layer(c)
        target = Path(target) if target else self.layout.layer_dir(m.mount_id) / "merged"
        _check_mount_point(target)
        target.mkdir(parents=True, exist_ok=True)
        cmd = self.mount_command(c, target, driver, trace)
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            msg = (res.stderr or res.stdout).strip().splitlines()
            raise ContainerError(
                f"mounting {c.short_id} failed: {msg[-1] if msg else 'exit status ' + str(res.returncode)}"
            )
        atomic_write(self._mount_record(c), json.dumps({"path": str(target.absolute()), "driver": driver}))
        return target

    def umount(self, c: Container) -> None:
        try:
            rec = json.loads(self._mount_record(c).read_text())
        except (OSError, ValueError):
            return
        path = rec["path"]
        if _mounted(Path(path)):
            if rec.get("driver") == "overlay":
                cmds = [["umount", path]]
            else:
                cmds = [_layerfs_command() + ["umount", path], ["fusermount3", "-u", path], ["umount", path]]
            last = ""
            for cmd in cmds:
                try:
                    res = subprocess.run(cmd, capture_output=True, text=True)
                except FileNotFoundError:
                    continue
                if res.returncode == 0 or not _mounted(Path(path)):
                    break
                last = (res.stderr or res.stdout).strip()
            if _mounted(Path(path)):
                raise ContainerError(f"unmounting {c.short_id} failed: {last}")
        self._mount_record(c).unlink(missing_ok=True)


def dir_size(path: Path) -> int:
    """What a directory's files take (moby directory.Size): regular files' sizes, hard links once."""
    total = 0
    seen: set[tuple[int, int]] = set()
    stack = [str(path)]
    while stack:
        d = stack.pop()
        try:
            entries = list(os.scandir(d))
        except OSError:
            continue
        for e in entries:
            try:
                st = e.stat(follow_symlinks=False)
            except OSError:
                continue
            if e.is_dir(follow_symlinks=False):
                stack.append(e.path)
                continue
            if st.st_nlink > 1:
                key = (st.st_dev, st.st_ino)
                if key in seen:
                    continue
                seen.add(key)
            total += st.st_size
    return total
