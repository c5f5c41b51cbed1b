"""Lab 10 (a container runs): what the processes did is in the top layer, the /etc files beside it."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from imagegraph.runtime.state import monitor_alive

from . import Checker
from .store import INIT_FILES, Store, container_dirs, container_named

ADMIN = "admin:x:1000:1000::/home/admin:/bin/sh\n"


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


def _logged(path: str, line: str) -> bool:
    try:
        with open(path, encoding="utf-8") as f:
            return any(json.loads(x).get("log") == line for x in f if x.strip())
    except (OSError, ValueError):
        return False
