"""`commit`: a container's top layer (never its init layer) becomes a new image (spec §4).

Follows moby's CreateImageFromContainer: the `-c` changes are Dockerfile instructions applied
to the container's config (BuildFromConfig, then merge), the top layer is tarred with OCI
whiteouts whatever the disk encoding and registered on the image's top ChainID, and the new
config is the parent's plus one diff_id and one history entry (or an `empty_layer` entry when
nothing changed). The parent link is store metadata, never part of the config.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shlex
import time
from dataclasses import dataclass
from typing import Any

from . import archive
from .container import Container, ContainerStore, full_config, merge_create_config
from .digest import EMPTY_LAYER_DIFF_ID, canonical_config_json
from .imagestore import Image, ImageStore, format_time
from .layerstore import LayerStore

VALID_COMMIT_COMMANDS = (
    "cmd",
    "entrypoint",
    "healthcheck",
    "env",
    "expose",
    "label",
    "onbuild",
    "stopsignal",
    "user",
    "volume",
    "workdir",
)
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_NS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}


class ChangeError(ValueError):
    """A `-c` change Docker would refuse; str() is Docker's text."""


def go_arch() -> str:
    m = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386", "i386": "386"}.get(m, m)


def created_now(override: float | None = None) -> float:
    """The created time: an explicit value, else $SOURCE_DATE_EPOCH (reproducible builds), else now."""
    if override is not None:
        return override
    sde = os.environ.get("SOURCE_DATE_EPOCH")
    if sde:
        try:
            return float(sde)
        except ValueError:
            pass
    return time.time()


# ---- Dockerfile instructions for -c ----------------------------------------------------


def _json_array(rest: str) -> list[str] | None:
    if not rest.startswith("["):
        return None
    try:
        v = json.loads(rest)
    except ValueError:
        return None
    if isinstance(v, list) and all(isinstance(x, str) for x in v):
        return v
    return None


def _cmd_form(rest: str) -> list[str]:
    arr = _json_array(rest)
    return arr if arr is not None else ["/bin/sh", "-c", rest]


def _words(rest: str) -> list[str]:
    try:
        return shlex.split(rest, posix=True)
    except ValueError as exc:
        raise ChangeError(str(exc)) from None


def _name_values(instr: str, rest: str) -> list[tuple[str, str]]:
    """ENV/LABEL: `k=v k2="v 2"`, or the old one-pair form `k v w`."""
    words = _words(rest)
    if not words:
        raise ChangeError(f"{instr.upper()} requires at least one argument")
    if "=" not in words[0]:
        if instr == "label":
            raise ChangeError("LABEL requires at least one argument")
        parts = rest.strip().split(None, 1)
        if len(parts) < 2:
            raise ChangeError(f"{instr.upper()} must have two arguments")
        return [(parts[0], parts[1])]
    out = []
    for w in words:
        if "=" not in w:
            raise ChangeError(f'Syntax error - can\'t find = in "{w}". Must be of the form: name=value')
        k, v = w.split("=", 1)
        if not k:
            raise ChangeError(f"{instr.upper()} names can not be blank")
        out.append((k, v))
    return out


def _duration_ns(s: str) -> int:
    if s in ("0", ""):
        return 0
    pos, total = 0, 0.0
    for m in _DURATION.finditer(s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT_NS[m.group(2)]
        pos = m.end()
    if pos != len(s):
        raise ChangeError(f'time: invalid duration "{s}"')
    return int(total)


def _healthcheck(rest: str) -> dict[str, Any]:
    words = rest.split()
    flags: dict[str, str] = {}
    while words and words[0].startswith("--"):
        k, _, v = words.pop(0)[2:].partition("=")
        if k not in ("interval", "timeout", "start-period", "start-interval", "retries"):
            raise ChangeError(f"Unknown flag: {k}")
        flags[k] = v
    remaining = rest.split(None, len(flags))[-1] if flags else rest
    kind, _, args = remaining.strip().partition(" ")
    kind = kind.upper()
    if kind == "NONE":
        if args.strip() or flags:
            raise ChangeError("HEALTHCHECK NONE takes no arguments")
        return {"Test": ["NONE"]}
    if kind != "CMD":
        raise ChangeError(f'Unknown type "{kind}" in HEALTHCHECK (try CMD)')
    args = args.strip()
    arr = _json_array(args)
    hc: dict[str, Any] = {"Test": ["CMD"] + arr if arr is not None else ["CMD-SHELL", args]}
    for key, field in (
        ("interval", "Interval"),
        ("timeout", "Timeout"),
        ("start-period", "StartPeriod"),
        ("start-interval", "StartInterval"),
    ):
        if key in flags:
            hc[field] = _duration_ns(flags[key])
    if "retries" in flags:
        try:
            hc["Retries"] = int(flags["retries"])
        except ValueError:
            raise ChangeError(f'strconv.ParseInt: parsing "{flags["retries"]}": invalid syntax') from None
    return hc


def apply_changes(config: dict[str, Any], changes: list[str]) -> dict[str, Any]:
    """moby BuildFromConfig: each change is one Dockerfile line run against `config` (a copy is returned)."""
    cfg = json.loads(json.dumps(config))
    cmd_set = False
    for instr, rest in _parse_changes(changes):
        if instr == "cmd":
            cfg["Cmd"] = _cmd_form(rest)
            cmd_set = True
        elif instr == "entrypoint":
            cfg["Entrypoint"] = _cmd_form(rest) if rest else None
            if not cmd_set:
                cfg["Cmd"] = None  # an ENTRYPOINT resets CMD unless a CMD came first (moby dispatchEntrypoint)
        elif instr == "env":
            env = list(cfg.get("Env") or [])
            for k, v in _name_values(instr, rest):
                env = [e for e in env if e.split("=", 1)[0] != k] + [f"{k}={v}"]
            cfg["Env"] = env
        elif instr == "label":
            labels = dict(cfg.get("Labels") or {})
            labels.update(_name_values(instr, rest))
            cfg["Labels"] = labels
        elif instr == "expose":
            cfg["ExposedPorts"] = _exposed_ports(dict(cfg.get("ExposedPorts") or {}), rest)
        elif instr == "user":
            if not rest:
                raise ChangeError("USER requires exactly one argument")
            cfg["User"] = rest
        elif instr == "volume":
            cfg["Volumes"] = _volumes(dict(cfg.get("Volumes") or {}), rest)
        elif instr == "workdir":
            if not rest:
                raise ChangeError("WORKDIR requires exactly one argument")
            cur = cfg.get("WorkingDir") or "/"
            cfg["WorkingDir"] = os.path.normpath(os.path.join(cur, rest))
        elif instr == "stopsignal":
            if not rest:
                raise ChangeError("STOPSIGNAL requires exactly one argument")
            cfg["StopSignal"] = rest
        elif instr == "onbuild":
            trigger = rest.split(None, 1)[0].upper() if rest else ""
            if trigger in ("ONBUILD", "FROM", "MAINTAINER"):
                raise ChangeError(f"{trigger} isn't allowed as an ONBUILD trigger")
            cfg["OnBuild"] = list(cfg.get("OnBuild") or []) + [trigger + rest[len(trigger) :]]
        elif instr == "healthcheck":
            cfg["Healthcheck"] = _healthcheck(rest)
    return cfg


def _parse_changes(changes: list[str]) -> list[tuple[str, str]]:
    """(instruction in lower case, its arguments) per line; every line is checked before any runs."""
    parsed = []
    for line in changes:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instr, _, rest = line.partition(" ")
        instr = instr.lower()
        if instr not in VALID_COMMIT_COMMANDS:
            raise ChangeError(f"{instr} is not a valid change command")
        parsed.append((instr, rest.strip()))
    return parsed


def _exposed_ports(ports: dict[str, Any], rest: str) -> dict[str, Any]:
    """EXPOSE 80 443/udp 8000-8002: every port of a range, tcp unless said."""
    for p in rest.split():
        port, _, proto = p.partition("/")
        proto = (proto or "tcp").lower()
        lo, _, hi = port.partition("-")
        if not lo.isdigit() or (hi and not hi.isdigit()):
            raise ChangeError(f"invalid containerPort: {port}")
        for n in range(int(lo), int(hi or lo) + 1):
            ports[f"{n}/{proto}"] = {}
    return ports


def _volumes(volumes: dict[str, Any], rest: str) -> dict[str, Any]:
    """VOLUME /a /b, or its JSON form VOLUME ["/a", "/b"]."""
    arr = _json_array(rest)
    for v in arr if arr is not None else rest.split():
        if not v.strip():
            raise ChangeError("VOLUME specified can not be an empty string")
        volumes[v] = {}
    return volumes


def merge_config(user: dict[str, Any], container: dict[str, Any]) -> dict[str, Any]:
    """moby daemon.merge: fields the changes left empty come from the container's config
    (the same merge as create's, `container.merge_create_config`)."""
    return merge_create_config(user, container)


@dataclass(frozen=True)
class CommitResult:
    image_id: str
    diff_id: str
    empty: bool


def commit(
    containers: ContainerStore,
    images: ImageStore,
    layers: LayerStore,
    c: Container,
    author: str = "",
    message: str = "",
    changes: list[str] | None = None,
    created: float | None = None,
) -> CommitResult:
    """Turn the container's top layer into a new image whose parent is the container's image."""
    parent = images.get(c.image_id)
    # moby: with no config in the request the container's own config is the base, the changes
    # run on it (BuildFromConfig), and merge() fills what they emptied.
    new_cfg = full_config(merge_config(apply_changes(c.config, changes or []), c.config))
    diff_id, diff_ids = register_top_layer(containers, layers, c, parent)
    empty = diff_id == EMPTY_LAYER_DIFF_ID
    config = _image_config(parent, c, new_cfg, diff_ids, format_time(created_now(created)), author, message, empty)
    image_id = images.create(canonical_config_json(config))
    images.set_built_locally(image_id)
    images.set_parent(image_id, parent.id)
    images.set_last_updated(image_id)
    return CommitResult(image_id, diff_id, empty)


def register_top_layer(
    containers: ContainerStore, layers: LayerStore, c: Container, parent: Image | None
) -> tuple[str, list[str]]:
    """The container's top layer as a layer tar, registered on the parent's layers unless it
    is empty: (its DiffID, the new image's diff_ids)."""
    mount = containers.mount_layer(c)
    top_dir = containers.layout.layer_dir(mount.mount_id) / "diff"
    diff_ids = list(parent.diff_ids) if parent is not None else []
    if archive.is_empty_layer(top_dir):
        return EMPTY_LAYER_DIFF_ID, diff_ids
    parent_chain = (parent.top_chain_id if parent is not None else "") or None
    layer, _ = layers.register_dir(top_dir, parent_chain)  # copied straight in, its tar hashed on the way
    diff_ids.append(layer.diff_id)
    return layer.diff_id, diff_ids


@dataclass(frozen=True)
class BuildStep:
    """What one Dockerfile step commits (moby backend.CommitConfig as the builder fills it)."""

    config: dict[str, Any]  # the image's config: the build's state after the step
    container_config: dict[str, Any]  # what the step ran: its Cmd becomes the history's created_by
    author: str = ""  # MAINTAINER
    record_container: bool = True  # COPY/ADD commit a bare RW layer: no `container` in the config


def commit_build_step(
    containers: ContainerStore,
    images: ImageStore,
    layers: LayerStore,
    c: Container,
    step: BuildStep,
    created: float | None = None,
) -> str:
    """moby CommitBuildStep/exportImage: the container's top layer over its image (or over
    nothing, FROM scratch) as the next image of the build's chain; its parent is the image."""
    parent = images.get(c.image_id) if c.image_id else None
    diff_id, diff_ids = register_top_layer(containers, layers, c, parent)
    empty = diff_id == EMPTY_LAYER_DIFF_ID
    ts = format_time(created_now(created))
    entry: dict[str, Any] = {"created": ts}
    if step.author:
        entry["author"] = step.author
    created_by = " ".join(step.container_config.get("Cmd") or [])
    if created_by:
        entry["created_by"] = created_by
    if empty:
        entry["empty_layer"] = True
    base = parent.config if parent is not None else {}
    config: dict[str, Any] = {
        "architecture": base.get("architecture") or go_arch(),
        "config": full_config(step.config),
        "container_config": full_config(step.container_config),
        "created": ts,
        "history": list(base.get("history") or []) + [entry],
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }
    if step.record_container:
        config["container"] = c.id
    if step.author:
        config["author"] = step.author
    for key in ("variant", "os.version", "os.features"):
        if base.get(key):
            config[key] = base[key]
    image_id = images.create(canonical_config_json(config))
    images.set_built_locally(image_id)
    if parent is not None:
        images.set_parent(image_id, parent.id)
    return image_id


def _image_config(
    parent: Image,
    c: Container,
    new_cfg: dict[str, Any],
    diff_ids: list[str],
    ts: str,
    author: str,
    message: str,
    empty: bool,
) -> dict[str, Any]:
    """The new image's config as moby's CommitImage writes it: the parent's history plus one
    entry (`empty_layer` when the top layer had no change)."""
    entry: dict[str, Any] = {"created": ts}
    if author:
        entry["author"] = author
    if c.cmd_string:
        entry["created_by"] = c.cmd_string
    if message:
        entry["comment"] = message
    if empty:
        entry["empty_layer"] = True
    cfg = parent.config
    config: dict[str, Any] = {
        "architecture": cfg.get("architecture") or go_arch(),
        "config": new_cfg,
        "container": c.id,
        "container_config": full_config(c.config),
        "created": ts,
        "history": list(cfg.get("history") or []) + [entry],
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }
    if author:
        config["author"] = author
    if message:
        config["comment"] = message
    for key in ("variant", "os.version", "os.features"):
        if cfg.get(key):
            config[key] = cfg[key]
    return config


__all__ = [
    "commit",
    "commit_build_step",
    "BuildStep",
    "register_top_layer",
    "apply_changes",
    "merge_config",
    "ChangeError",
    "CommitResult",
    "created_now",
    "go_arch",
]
