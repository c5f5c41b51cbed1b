"""Lab 11 (a Dockerfile is a chain of commits): the built images form a chain of parents, each
step's layer holds what the step did, and the image made by hand holds the same files."""

from __future__ import annotations

import os

from . import Checker
from .store import Store

HELLO_1 = "hello, layers\n"
HELLO_2 = "hello again, layers\n"
RUN = "/bin/sh -c wc -c < /srv/hello.txt > /srv/size && rm /bin/vi"
CMD = ["cat", "/srv/hello.txt"]


def check(folder: str) -> list[str]:
    c = Checker(folder)
    store = Store.find(folder)
    if store is None:
        c.problem("store/ is missing: step 1 sets IMAGEGRAPH_ROOT=~/layerlab/lab11/store before building busybox")
        return c.problems
    busybox = store.image_id("busybox")
    if busybox is None:
        c.problem("no image tagged busybox:latest: step 1 builds it with python -m tutorials.images busybox")
        return c.problems
    for tag, text in (("hello:1", HELLO_1), ("hello:2", HELLO_2)):
        image = store.image_id(tag)
        if image is None:
            step = 2 if tag == "hello:1" else 6
            c.problem(f"no image tagged {tag}: step {step} builds it with imagegraph build -t {tag} .")
            continue
        _check_built(c, store, tag, image, busybox, text)
    built = store.image_id("hello:2")
    docker = store.image_id("hello:docker")
    if docker is None:
        c.problem(
            "no image tagged hello:docker: step 8 builds it with DOCKER_BUILDKIT=0 docker build -t hello:docker ."
        )
    elif built is not None and docker != built:
        c.problem("hello:docker is not hello:2: step 8's docker build finds every step in the cache step 6 filled")
    byhand = store.image_id("byhand:4")
    if byhand is None:
        c.problem("no image tagged byhand:4: step 7 commits container step4 as byhand:4")
    elif built is not None:
        _compare_by_hand(c, store, byhand, built, busybox)
    _check_kept_containers(c, store)
    return c.problems


def _chain(store: Store, image: str, length: int) -> list[str]:
    """The image and its ancestors, newest first, up to `length` of them."""
    out = [image]
    while len(out) < length:
        parent = store.parent(out[-1])
        if not parent:
            break
        out.append(parent)
    return out


def _check_built(c: Checker, store: Store, tag: str, image: str, busybox: str, text: str) -> None:
    """Three steps, three new images: COPY (a layer), RUN (a layer), CMD (no layer), each the
    child of the one before, the first a child of busybox."""
    chain = _chain(store, image, 4)
    if len(chain) < 4 or chain[3] != busybox:
        c.problem(f"{tag} is not three parent links above busybox: each build step's image is the next one's parent")
        return
    cmd_img, run_img, copy_img = chain[0], chain[1], chain[2]
    history = [h.get("created_by", "") for h in store.config(image).get("history", [])]
    expected_prefixes = ["/bin/sh -c #(nop) COPY file:", RUN, '/bin/sh -c #(nop)  CMD ["cat" "/srv/hello.txt"]']
    for got, want in zip(history[-3:], expected_prefixes, strict=False):
        if not got.startswith(want):
            c.problem(f"{tag}'s history has {got!r} where the classic builder writes {want!r}…")
    config = store.config(image).get("config", {})
    if config.get("Cmd") != CMD:
        c.problem(f"{tag}'s Cmd is {config.get('Cmd')}, expected {CMD}: the CMD step sets it")
    copy_top = store.diff_dirs(copy_img)[-1]
    rel = os.path.relpath
    c.need_file(rel(copy_top + "/srv/hello.txt", c.folder), f"{tag}'s COPY layer holds the copied file", text)
    run_top = store.diff_dirs(run_img)[-1]
    size = f"{len(text)}\n"
    c.need_file(rel(run_top + "/srv/size", c.folder), f"{tag}'s RUN layer holds what the command wrote", size)
    c.need_whiteout(rel(run_top, c.folder), "bin/vi", f"{tag}'s RUN step deleted /bin/vi: a whiteout in its layer")
    if store.diff_dirs(cmd_img) != store.diff_dirs(run_img):
        c.problem(f"{tag}'s CMD step added a layer: a metadata step commits an empty top layer (no new layer)")


def _compare_by_hand(c: Checker, store: Store, byhand: str, built: str, busybox: str) -> None:
    chain = _chain(store, byhand, 4)
    if len(chain) < 4 or chain[3] != busybox:
        c.problem("byhand:4 is not three commits above busybox: step 7 commits step2, step3 and step4 in turn")
        return
    if store.config(byhand).get("config", {}).get("Cmd") != CMD:
        c.problem(f'byhand:4\'s Cmd is not {CMD}: step 7 commits step4 with -c \'CMD ["cat", "/srv/hello.txt"]\'')
    mine, theirs = store.diff_dirs(byhand), store.diff_dirs(built)
    if len(mine) != len(theirs):
        c.problem(f"byhand:4 has {len(mine)} layers and hello:2 {len(theirs)}: the same steps make the same layers")
        return
    for a, b in zip(mine[-2:], theirs[-2:], strict=True):
        if _files(a) != _files(b):
            c.problem(
                f"{os.path.relpath(a, c.folder)}/ holds {sorted(_files(a))}, the built layer "
                f"{sorted(_files(b))}: made by hand, the same step leaves the same files"
            )


def _files(layer: str) -> set[str]:
    out = set()
    for dirpath, dirnames, filenames in os.walk(layer):
        for n in dirnames + filenames:
            out.add(os.path.relpath(os.path.join(dirpath, n), layer))
    return out


def _check_kept_containers(c: Checker, store: Store) -> None:
    """--rm=false kept the RUN and CMD containers of the first build; the RUN one ran and exited 0."""
    nops = [x for x in store.containers() if "#(nop)" in " ".join(x.get("Config", {}).get("Cmd") or [])]
    runs = [x for x in store.containers() if (x.get("Config", {}).get("Cmd") or [])[-1:] == [RUN.split(" -c ", 1)[1]]]
    if not nops:
        c.problem("no build container with a #(nop) command is left: step 2 builds with --rm=false")
    ran = [x for x in runs if not x.get("Name", "").lstrip("/").startswith("step")]
    if not ran:
        c.problem("no build container of the RUN step is left: step 2 builds with --rm=false")
    elif not any(x.get("State", {}).get("ExitCode") == 0 and not x.get("State", {}).get("Running") for x in ran):
        c.problem("the RUN step's container did not exit 0: a build step that fails stops the build")
