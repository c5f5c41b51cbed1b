"""Lab 10 (a container runs): what the processes did is in the top layer, the /etc files beside it."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from imagegraph.runtime.state import monitor_alive

from . import Checker
from .store import INIT_FILES, Store, container_dirs, container_named, store_or_problem

ADMIN = "admin:x:1000:1000::/home/admin:/bin/sh\n"
#: CapEff of a container's root with Docker's default capabilities (moby oci/caps/defaults.go).
DOCKER_DEFAULT_CAPS = "00000000a80425fb"


def check(folder: str) -> list[str]:
    c = Checker(folder)
    store = Store.find(folder)
    if store is None:
        c.problem("store/ is missing: step 1 sets IMAGEGRAPH_ROOT=~/layerlab/lab10/store before building busybox")
        return c.problems
    rel = lambda p: os.path.relpath(p, folder)  # noqa: E731
    busybox = store.image_id("busybox")
    if busybox is None:
        c.problem("no image tagged busybox:latest: step 1 builds it with python -m tutorials.images busybox")
    containers = os.path.join(store.root, "containers")
    for config in store.containers():
        if config.get("State", {}).get("Running") and monitor_alive(Path(_cdir(containers, config))):
            c.problem(f"container {config['Name'].lstrip('/')} is still running: step 7 stops box (imagegraph stop)")

    hello = container_named(store, "hello")
    if hello is None:
        c.problem("no container named hello: step 2 runs it with imagegraph run --name hello busybox echo …")
    else:
        state = hello.get("State", {})
        if str(state.get("StartedAt", "0001")).startswith("0001"):
            c.problem("hello was created but never ran: step 2 runs it with imagegraph run")
        elif state.get("ExitCode") != 0:
            c.problem(f"hello exited with {state.get('ExitCode')}, expected 0: echo succeeds")
        log = os.path.join(_cdir(containers, hello), f"{hello['ID']}-json.log")
        if not _logged(log, "hello from busybox\n"):
            c.problem(f"{rel(log)} has no line 'hello from busybox': the container's output goes to its json log")

    box = container_named(store, "box")
    if box is None:
        c.problem("no container named box: step 4 runs it with imagegraph run -dit --name box busybox sh")
        return c.problems
    cdir = _cdir(containers, box)
    dirs = container_dirs(store, box["ID"])
    if dirs is None:
        c.problem("the store has no init-id/mount-id for box in layerdb/mounts: the container's layers are lost")
        return c.problems
    init, upper = dirs
    for name in INIT_FILES:
        c.need_file(
            rel(init + name), "the init layer (初始化层) keeps its empty placeholder while the container runs", ""
        )
    hosts = os.path.join(cdir, "hosts")
    try:
        with open(hosts, encoding="utf-8") as f:
            last = f.read().splitlines()[-1:]
    except OSError:
        last = []
    if last != ["10.0.0.2 db"]:
        c.problem(f"{rel(hosts)} does not end with '10.0.0.2 db': step 5 appends it from inside, to the bound file")
    c.need_absent(rel(upper + "/etc/hosts"), "a write to /etc/hosts goes to the bind-mounted file, not the top layer")
    passwd = upper + "/etc/passwd"
    if c.need_file(rel(passwd), "appending to /etc/passwd in the container copies it up into the top layer (读写层)"):
        with open(passwd, encoding="utf-8", errors="replace") as f:
            if not f.read().endswith(ADMIN):
                c.problem(f"{rel(passwd)} does not end with the admin line: step 6 appends it from inside")
    c.need_whiteout(rel(upper), "bin/vi", "step 6 deletes /bin/vi inside the container")
    c.need_file(rel(upper + "/root/notes.txt"), "step 6 writes it inside the container", "remember the milk\n")
    merged = os.path.join(os.path.dirname(upper), "merged")
    if os.path.ismount(merged):
        c.problem(f"{rel(merged)} is still mounted: a stopped container's layers are unmounted (imagegraph stop box)")

    admin = store.image_id("busybox-admin")
    if admin is None:
        c.problem("no image tagged busybox-admin:latest: step 7 commits box as busybox-admin")
        return c.problems
    if busybox is not None and store.parent(admin) != busybox:
        c.problem("busybox-admin's parent is not busybox: commit the container box, made from busybox")
    top = store.diff_dirs(admin)[-1]
    c.need_file(rel(top + "/root/notes.txt"), "the note written in the container is in the committed layer")
    c.need_whiteout(rel(top), "bin/vi", "the delete in the container is committed as a whiteout")
    for name in INIT_FILES:
        c.need_absent(rel(top + name), "init layer (初始化层) files belong to one container and are never committed")
    return c.problems


def _cdir(containers: str, config: dict[str, Any]) -> str:
    return os.path.join(containers, config["ID"])


def _host_config(store: Store, config: dict[str, Any]) -> dict[str, Any]:
    """The container's hostconfig.json, as Docker keeps it beside config.v2.json."""
    path = os.path.join(_cdir(os.path.join(store.root, "containers"), config), "hostconfig.json")
    try:
        with open(path, encoding="utf-8") as f:
            found = json.load(f)
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def _logged(path: str, line: str) -> bool:
    try:
        with open(path, encoding="utf-8") as f:
            return any(json.loads(x).get("log") == line for x in f if x.strip())
    except (OSError, ValueError):
        return False


# -- exercises: each in ~/layerlab/lab10-exK, a store of its own with busybox --------------------
def _exercise(folder: str, name: str, how: str) -> tuple[Checker, Store | None, dict[str, Any] | None]:
    """The exercise folder's store and its container `name` (run with `how`), stopped; where
    one is missing, the checker's problems say so."""
    c = Checker(folder)
    store = store_or_problem(c, folder, "export IMAGEGRAPH_ROOT=$PWD/store; python -m tutorials.images busybox")
    if store is None:
        return c, None, None
    if store.image_id("busybox") is None:
        c.problem("no image tagged busybox:latest here: python -m tutorials.images busybox, in this folder's store")
    config = container_named(store, name)
    if config is None:
        c.problem(f"no container named {name}: {how}")
        return c, store, None
    state = config.get("State", {})
    if state.get("Running") and monitor_alive(Path(_cdir(os.path.join(store.root, "containers"), config))):
        c.problem(f"container {name} is still running: stop it before the check (imagegraph stop -t 1 {name})")
    elif str(state.get("StartedAt", "0001")).startswith("0001"):
        c.problem(f"{name} was created but never ran: {how}")
    return c, store, config


def _upper(c: Checker, store: Store, config: dict[str, Any]) -> str | None:
    dirs = container_dirs(store, config["ID"])
    if dirs is None:
        c.problem(f"the store has no init-id/mount-id for {config['Name'].lstrip('/')} in layerdb/mounts")
        return None
    return os.path.relpath(dirs[1], c.folder)


def exercise_1(folder: str) -> list[str]:
    """A shell changed its top layer from inside: /tmp/x added, /bin/ls whited out."""
    c, store, config = _exercise(folder, "shell", "imagegraph run -it --name shell busybox sh (or -dit, then exec)")
    if store is None or config is None:
        return c.problems
    upper = _upper(c, store, config)
    if upper is not None:
        c.need_file(upper + "/tmp/x", "touch /tmp/x in the container creates it in the top layer (读写层)", "")
        c.need_whiteout(upper, "bin/ls", "rm /bin/ls in the container leaves a whiteout in the top layer")
    return c.problems


def exercise_2(folder: str) -> list[str]:
    """A read-only container: its write failed (exit 1, EROFS) and its top layer stayed empty."""
    c, store, config = _exercise(folder, "ro", "imagegraph run --name ro --read-only busybox touch /x")
    if store is None or config is None:
        return c.problems
    if not _host_config(store, config).get("ReadonlyRootfs"):
        c.problem("ro was not run with --read-only: its root file system was writable")
    if config.get("State", {}).get("ExitCode") != 1:
        c.problem(f"ro exited with {config.get('State', {}).get('ExitCode')}, expected 1: touch fails on /x")
    log = os.path.join(_cdir(os.path.join(store.root, "containers"), config), f"{config['ID']}-json.log")
    if not _logged(log, "touch: /x: Read-only file system\n"):
        c.problem(f"{os.path.relpath(log, folder)} has no 'touch: /x: Read-only file system': run touch /x in ro")
    upper = _upper(c, store, config)
    if upper is not None:
        c.need_absent(upper + "/x", "a read-only container writes nothing into its top layer")
    return c.problems


def exercise_3(folder: str) -> list[str]:
    """The monitor killed: the container is recorded as exited with 255, and nothing is left mounted."""
    c, store, config = _exercise(folder, "box", "imagegraph run -dit --name box busybox sh, then kill -9 its monitor")
    if store is None or config is None:
        return c.problems
    state = config.get("State", {})
    if state.get("Running"):
        c.problem("box is still recorded as running: run imagegraph ps -a once its monitor is killed")
    elif state.get("ExitCode") != 255:
        c.problem(f"box exited with {state.get('ExitCode')}, expected 255: kill -9 its monitor, not the shell")
    upper = _upper(c, store, config)
    if upper is not None:
        merged = os.path.join(os.path.dirname(c.path(upper)), "merged")
        if os.path.ismount(merged):
            c.problem(f"{os.path.relpath(merged, folder)} is still mounted: a dead container's layers are unmounted")
    return c.problems


def exercise_4(folder: str) -> list[str]:
    """With --whiteouts aufs, the delete in the container is a .wh.vi file in the top layer."""
    c, store, config = _exercise(folder, "aufsbox", "imagegraph --whiteouts aufs run --name aufsbox busybox rm /bin/vi")
    if store is None or config is None:
        return c.problems
    upper = _upper(c, store, config)
    if upper is not None:
        c.need_read_only_whiteout(upper + "/bin/.wh.vi", "--whiteouts aufs writes the delete as a .wh. file (lab 04)")
        c.need_absent(upper + "/bin/vi", "in the aufs encoding no 0/0 device stands for vi")
    return c.problems


def exercise_5(folder: str) -> list[str]:
    """A container's capabilities, saved: Docker's default set."""
    c = Checker(folder)
    if c.need_file("caps.txt", "imagegraph run --rm busybox grep Cap /proc/self/status > caps.txt"):
        with open(c.path("caps.txt"), encoding="utf-8", errors="replace") as f:
            lines = dict(line.split(":", 1) for line in f.read().splitlines() if ":" in line)
        for field in ("CapEff", "CapBnd"):
            have = lines.get(field, "").strip()
            if have != DOCKER_DEFAULT_CAPS:
                c.problem(
                    f"caps.txt's {field} is {have or 'missing'}, expected {DOCKER_DEFAULT_CAPS}: Docker's default set"
                )
    return c.problems


EXERCISES = {1: exercise_1, 2: exercise_2, 3: exercise_3, 4: exercise_4, 5: exercise_5}
