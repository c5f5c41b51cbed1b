"""Resource limits (--memory, --pids-limit, --cpus), where the machine lets us set them.

Docker puts a container's processes into a cgroup and writes its limits there. This module
finds what the machine offers, from /proc/self/mountinfo and /proc/self/cgroup:

- cgroup v2 (one unified hierarchy): a `imagegraph/<id>` group below the hierarchy's root,
  its controllers enabled on the way (`cgroup.subtree_control`), when that is writable;
- cgroup v1 (one hierarchy per controller, as on this project's machines): a group per
  controller, nested below this process's own group, so a sandbox's limits still hold.

A container without limits gets no cgroup. A limit that cannot be applied fails the start
with one line naming the flag and the reason; nothing is left behind.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .spec import Resources

#: The flag each controller serves, for error lines.
FLAGS = {"memory": "--memory", "pids": "--pids-limit", "cpu": "--cpus"}
CPU_PERIOD = 100_000


class CgroupError(Exception):
    """A limit that cannot be applied here; one line."""


@dataclass
class Hierarchy:
    version: int  # 1 or 2
    mountpoint: str
    controllers: set[str]


def _unescape(s: str) -> str:
    return s.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")


def hierarchies(mountinfo: str = "/proc/self/mountinfo") -> list[Hierarchy]:
    """Every cgroup hierarchy mounted here, with the controllers it serves."""
    out = []
    try:
        with open(mountinfo) as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    for line in lines:
        left, _, right = line.partition(" - ")
        fields = left.split()
        rfields = right.split()
        if len(fields) < 5 or len(rfields) < 3:
            continue
        fstype, mountpoint = rfields[0], _unescape(fields[4])
        if fstype == "cgroup2":
            try:
                controllers = set(Path(mountpoint, "cgroup.controllers").read_text().split())
            except OSError:
                controllers = set()
            out.append(Hierarchy(2, mountpoint, controllers))
        elif fstype == "cgroup":
            opts = set(rfields[2].split(","))
            out.append(Hierarchy(1, mountpoint, opts & {"memory", "pids", "cpu", "cpuacct", "cpuset", "blkio"}))
    return out


def own_paths(proc_cgroup: str = "/proc/self/cgroup") -> dict[str, str]:
    """This process's group per v1 controller, and under "" its v2 group."""
    out: dict[str, str] = {}
    try:
        with open(proc_cgroup) as f:
            for line in f:
                parts = line.rstrip("\n").split(":", 2)
                if len(parts) != 3:
                    continue
                for c in parts[1].split(",") if parts[1] else [""]:
                    out[c] = parts[2]
    except OSError:
        pass
    return out


def wanted(res: Resources) -> list[str]:
    return [c for c, on in (("memory", res.memory), ("pids", res.pids_limit), ("cpu", res.nano_cpus)) if on]


@dataclass
class Cgroup:
    """The directories of one container's group, per hierarchy (one for v2, one per controller for v1)."""

    version: int
    dirs: dict[str, str] = field(default_factory=dict)  # controller -> directory ("" for v2)

    @property
    def paths(self) -> list[str]:
        return sorted(set(self.dirs.values()))

    def join(self, pid: int = 0) -> None:
        """Move `pid` (0: the caller) into the group."""
        for d in self.paths:
            with open(os.path.join(d, "cgroup.procs"), "w") as f:
                f.write(str(pid))

    def oom_killed(self) -> bool:
        """Did the kernel's OOM killer act in this group (State.OOMKilled)?"""
        d = self.dirs.get("memory")
        if not d:
            return False
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        try:
            for line in Path(d, name).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill" and value.strip().isdigit():
                    return int(value) > 0
        except OSError:
            pass
        return False

    def remove(self) -> None:
        for d in sorted(self.paths, key=len, reverse=True):
            try:
                os.rmdir(d)
            except OSError:
                pass

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version, "dirs": self.dirs}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Cgroup:
        return cls(int(d.get("version", 1)), {str(k): str(v) for k, v in (d.get("dirs") or {}).items()})


def _write(d: str, name: str, value: str) -> None:
    with open(os.path.join(d, name), "w") as f:
        f.write(value)


def create(
    cid: str, res: Resources, found: list[Hierarchy] | None = None, own: dict[str, str] | None = None
) -> Cgroup | None:
    """The container's group with its limits written, or None when it asks for none."""
    need = wanted(res)
    if not need:
        return None
    found = hierarchies() if found is None else found
    own = own_paths() if own is None else own
    v2 = next((h for h in found if h.version == 2 and h.controllers), None)
    v1 = {c: h for h in found if h.version == 1 for c in h.controllers}
    if v2 is not None and all(c in v2.controllers for c in need):
        return _create_v2(cid, res, v2, need)
    missing = [c for c in need if c not in v1]
    if missing:
        c = missing[0]
        detail = (
            f"cgroup v2 at {v2.mountpoint} does not offer the {c} controller"
            if v2
            else f"this machine has neither a cgroup v2 hierarchy with controllers nor a v1 {c} hierarchy mounted"
        )
        raise CgroupError(f"cannot apply {FLAGS[c]}: {detail}")
    return _create_v1(cid, res, {c: v1[c] for c in need}, own)


def _create_v2(cid: str, res: Resources, h: Hierarchy, need: list[str]) -> Cgroup:
    parent = os.path.join(h.mountpoint, "imagegraph")
    group = os.path.join(parent, cid)
    made: list[str] = []
    plus = " ".join("+" + c for c in need)
    try:
        if not _enabled(h.mountpoint, need):
            _write(h.mountpoint, "cgroup.subtree_control", plus)
        if not os.path.isdir(parent):
            try:
                os.mkdir(parent)
                made.append(parent)
            except FileExistsError:
                pass  # a container started at the same moment made it: it is shared
        if not _enabled(parent, need):
            _write(parent, "cgroup.subtree_control", plus)
        os.mkdir(group)
        made.append(group)
        cg = Cgroup(2, dict.fromkeys(need, group))
        if res.memory:
            _write(group, "memory.max", str(res.memory))
        if res.pids_limit:
            _write(group, "pids.max", str(res.pids_limit))
        if res.nano_cpus:
            _write(group, "cpu.max", f"{res.nano_cpus * CPU_PERIOD // 1_000_000_000} {CPU_PERIOD}")
        return cg
    except OSError as exc:
        for d in reversed(made):
            try:
                os.rmdir(d)
            except OSError:
                pass
        flag = FLAGS[need[0]]
        raise CgroupError(
            f"cannot apply {flag}: cgroup v2 is not delegated to this user here ({exc.strerror or exc} "
            f"at {exc.filename or parent})"
        ) from None


def _enabled(d: str, need: list[str]) -> bool:
    try:
        have = set(Path(d, "cgroup.subtree_control").read_text().split())
    except OSError:
        return False
    return all(c in have for c in need)


def _create_v1(cid: str, res: Resources, hs: dict[str, Hierarchy], own: dict[str, str]) -> Cgroup:
    cg = Cgroup(1)
    try:
        for c, h in hs.items():
            base = os.path.join(h.mountpoint, own.get(c, "/").lstrip("/"))
            group = os.path.join(base, "imagegraph", cid)
            os.makedirs(group, exist_ok=True)
            cg.dirs[c] = group
        if res.memory:
            _write(cg.dirs["memory"], "memory.limit_in_bytes", str(res.memory))
        if res.pids_limit:
            _write(cg.dirs["pids"], "pids.max", str(res.pids_limit))
        if res.nano_cpus:
            _write(cg.dirs["cpu"], "cpu.cfs_period_us", str(CPU_PERIOD))
            _write(cg.dirs["cpu"], "cpu.cfs_quota_us", str(res.nano_cpus * CPU_PERIOD // 1_000_000_000))
        return cg
    except OSError as exc:
        cg.remove()
        c = next((c for c, d in cg.dirs.items() if exc.filename and str(exc.filename).startswith(d)), next(iter(hs)))
        raise CgroupError(
            f"cannot apply {FLAGS.get(c, c)}: the v1 {c} cgroup is not writable here "
            f"({exc.strerror or exc} at {exc.filename})"
        ) from None
