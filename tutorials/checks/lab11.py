"""Lab 11 (a Dockerfile is a chain of commits): the built images form a chain of parents, each
step's layer holds what the step did, and the image made by hand holds the same files."""

from __future__ import annotations

import os

from . import Checker
from .store import Store, sha_hex, store_or_problem

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


# -- exercises: each in ~/layerlab/lab11-exK, a store of its own with busybox, the context in app/ --
ENV_STEP = "/bin/sh -c #(nop)  ENV GREETING=hi"
FALSE_CMD = ["/bin/sh", "-c", "false"]


def _exercise_store(folder: str) -> tuple[Checker, Store | None, str | None]:
    """The exercise folder's store and its busybox; where one is missing, a problem says so."""
    c = Checker(folder)
    store = store_or_problem(c, folder, "export IMAGEGRAPH_ROOT=$PWD/store; python -m tutorials.images busybox")
    if store is None:
        return c, None, None
    busybox = store.image_id("busybox")
    if busybox is None:
        c.problem("no image tagged busybox:latest here: python -m tutorials.images busybox, in this folder's store")
    return c, store, busybox


def _steps(store: Store, image: str) -> list[str]:
    """What each build step recorded (`created_by` of the image's history, base image's first)."""
    return [h.get("created_by", "") for h in store.config(image).get("history", [])]


def _below_busybox(store: Store, image: str, busybox: str) -> str | None:
    """The ancestor of `image` whose parent is busybox: the image of the build's first step."""
    seen: set[str] = set()
    while image not in seen:
        seen.add(image)
        parent = store.parent(image)
        if not parent:
            return None
        if sha_hex(parent) == sha_hex(busybox):
            return image
        image = parent
    return None


def exercise_1(folder: str) -> list[str]:
    """ENV before COPY: its image is busybox's child with no layer of its own, marked empty_layer,
    and the build without it is there to compare."""
    c, store, busybox = _exercise_store(folder)
    if store is None or busybox is None:
        return c.problems
    tags = store.tags()
    with_env = [t for t, i in tags.items() if "GREETING=hi" in (store.config(i).get("config", {}).get("Env") or [])]
    without = [t for t, i in tags.items() if t not in with_env and any("COPY file:" in s for s in _steps(store, i))]
    if not without:
        c.problem("no image built from the lab's Dockerfile without ENV: build it first, then add the ENV step")
    if not with_env:
        c.problem("no tagged image has GREETING=hi in its Env: add ENV GREETING=hi before COPY and build again")
        return c.problems
    image = tags[with_env[0]]
    env_img = _below_busybox(store, image, busybox)
    if env_img is None or not _steps(store, env_img)[-1:] == [ENV_STEP]:
        c.problem(f"{with_env[0]}'s first step after FROM is not ENV GREETING=hi: put the ENV line before COPY")
        return c.problems
    entry = store.config(env_img).get("history", [])[-1]
    if entry.get("empty_layer") is not True:
        c.problem(f"{with_env[0]}'s ENV step is not marked empty_layer in its history: ENV adds no layer")
    if store.diff_dirs(env_img) != store.diff_dirs(busybox):
        c.problem(f"{with_env[0]}'s ENV step added a layer: a metadata step commits no new layer")
    return c.problems


def exercise_2(folder: str) -> list[str]:
    """hello:3 built --no-cache from hello:2's Dockerfile: the same steps, no image in common,
    and a different `created` and `container` in the configuration."""
    c, store, busybox = _exercise_store(folder)
    if store is None or busybox is None:
        return c.problems
    ids = {t: store.image_id(t) for t in ("hello:2", "hello:3")}
    for tag, image in ids.items():
        if image is None:
            how = "imagegraph build --no-cache -t hello:3 ." if tag == "hello:3" else "imagegraph build -t hello:2 ."
            c.problem(f"no image tagged {tag} here: {how}")
    two, three = ids["hello:2"], ids["hello:3"]
    if two is None or three is None:
        return c.problems
    if _steps(store, two) != _steps(store, three) or len(_steps(store, two)) < 2:
        c.problem("hello:2 and hello:3 were not built from the same Dockerfile: build both from the lab's")
        return c.problems
    common = set(_chain(store, two, 10)) & set(_chain(store, three, 10)) - {busybox}
    if common:
        c.problem(f"hello:2 and hello:3 share {len(common)} image(s): build hello:3 with --no-cache")
    a, b = store.config(two), store.config(three)
    for key in ("created", "container"):
        if a.get(key) == b.get(key):
            c.problem(f"hello:2 and hello:3 have the same {key!r}: two builds commit at different times and containers")
    return c.problems


def exercise_3(folder: str) -> list[str]:
    """A failed RUN step: its container (exit 1) and COPY's image stay; --force-rm removed the
    second build's container, as force-rm.txt says."""
    c, store, busybox = _exercise_store(folder)
    if store is None or busybox is None:
        return c.problems
    failed = [x for x in store.containers() if (x.get("Config", {}).get("Cmd") or []) == FALSE_CMD]
    if not failed:
        c.problem("no build container of RUN false is left: build the Dockerfile with RUN false (without --force-rm)")
    elif any(x.get("State", {}).get("ExitCode") != 1 or x.get("State", {}).get("Running") for x in failed):
        c.problem("the RUN false container did not exit with 1: the failing step's container stays, exited")
    elif len(failed) > 1:
        c.problem(f"{len(failed)} RUN false containers are left: the build with --force-rm removes its own")
    else:
        base = failed[0].get("Image", "")
        if not base or sha_hex(store.parent(base) or "") != sha_hex(busybox):
            c.problem("the RUN false container was not made from COPY's image, a child of busybox")
    if c.need_file("force-rm.txt", "imagegraph build --force-rm -t broken:2 . > ../force-rm.txt 2>&1, in app/"):
        with open(c.path("force-rm.txt"), encoding="utf-8", errors="replace") as f:
            text = f.read()
        removed = [line.rsplit(" ", 1)[-1] for line in text.splitlines() if "Removed intermediate container" in line]
        kept = {x.get("ID", "")[:12] for x in store.containers()}
        if "returned a non-zero code: 1" not in text or not removed:
            c.problem("force-rm.txt does not show RUN false failing and its container removed: use --force-rm")
        elif any(r[:12] in kept for r in removed):
            c.problem("the container force-rm.txt says was removed is still in the store")
    return c.problems


def exercise_4(folder: str) -> list[str]:
    """COPY . /ctx/ copies secret.txt before the .dockerignore (ctx:all) and not after (ctx:ignored)."""
    c, store, busybox = _exercise_store(folder)
    if store is None or busybox is None:
        return c.problems
    c.need_file("app/secret.txt", "put secret.txt in the build context, app/")
    if c.need_file("app/.dockerignore", "echo secret.txt > app/.dockerignore"):
        with open(c.path("app/.dockerignore"), encoding="utf-8", errors="replace") as f:
            if "secret.txt" not in f.read().split():
                c.problem("app/.dockerignore does not name secret.txt")
    for tag, secret in (("ctx:all", True), ("ctx:ignored", False)):
        image = store.image_id(tag)
        if image is None:
            when = "before writing" if secret else "after writing"
            c.problem(f"no image tagged {tag}: build it with COPY . /ctx/ {when} the .dockerignore")
            continue
        top = os.path.relpath(store.diff_dirs(image)[-1], c.folder)
        c.need_file(top + "/ctx/hello.txt", f"{tag}'s COPY . /ctx/ layer holds the context's hello.txt")
        if secret:
            c.need_file(top + "/ctx/secret.txt", "without a .dockerignore, COPY . copies secret.txt")
        else:
            c.need_absent(top + "/ctx/secret.txt", "a file the .dockerignore names never reaches the builder")
    return c.problems


def exercise_5(folder: str) -> list[str]:
    """docker build without DOCKER_BUILDKIT=0 fell back to the classic builder: the client's
    notice, one POST /build in the flow log, and hello:bk is hello:1 from the cache."""
    c, store, busybox = _exercise_store(folder)
    if store is None or busybox is None:
        return c.problems
    one, bk = store.image_id("hello:1"), store.image_id("hello:bk")
    if one is None:
        c.problem("no image tagged hello:1 here: imagegraph build -t hello:1 . in app/, before the daemon")
    if bk is None:
        c.problem("no image tagged hello:bk here: docker build -t hello:bk . through the daemon")
    elif one is not None and bk != one:
        c.problem("hello:bk is not hello:1: the classic builder through the daemon finds every step in the cache")
    if c.need_file("client.txt", "docker build -t hello:bk . 2> ../client.txt, in app/"):
        with open(c.path("client.txt"), encoding="utf-8", errors="replace") as f:
            if "legacy builder is deprecated" not in f.read():
                c.problem(
                    "client.txt has no notice that the legacy builder is deprecated: build without DOCKER_BUILDKIT"
                )
    if c.need_file("flow.log", "imagegraph daemon -H $DOCKER_HOST --flow ../flow.log"):
        with open(c.path("flow.log"), encoding="utf-8", errors="replace") as f:
            lines = [x for x in f.read().splitlines() if x.startswith("client → daemon")]
        if not any("/build?" in x and "t=hello:bk" in x for x in lines):
            c.problem("flow.log has no POST /build for hello:bk: run docker build through this daemon")
    return c.problems


EXERCISES = {1: exercise_1, 2: exercise_2, 3: exercise_3, 4: exercise_4, 5: exercise_5}
