"""A build from start to end (moby daemon/builder/backend: backend.go, tag.go; BuildManager.Build).

The context tar is unpacked and its Dockerfile parsed, the Dockerfile is built step by step,
then `Successfully built <id>` and one `Successfully tagged <name>` per `-t`. The same function
serves `imagegraph build` and the daemon's `POST /build`; only the output differs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import IO

from ..distribution import manifest as M
from ..distribution.errors import RegistryError
from ..distribution.localstore import local_store
from ..distribution.progress import ProgressWriter
from ..distribution.pull import PullOptions, pull
from ..formatting import short_id
from ..reference import InvalidReference, Reference, familiar_string, parse_normalized_named, tag_name_only
from ..service import Services
from .evaluator import Builder
from .imagecontext import ImageSourceError, ImageSources, Puller
from .internals import BuildError, BuildOptions, build_arch
from .output import BuildOutput
from .remotecontext import ContextError, detect


def sanitize_tags(names: list[str]) -> list[Reference]:
    """sanitizeRepoAndTags: each `-t` as name:tag (`:latest` if bare), no digests, no repeats."""
    out: list[Reference] = []
    seen: set[str] = set()
    for name in names:
        if not name:
            continue
        try:
            ref = parse_normalized_named(name)
        except InvalidReference as exc:
            raise BuildError(str(exc)) from None
        if ref.digest is not None:
            raise BuildError("build tag cannot contain a digest")
        ref = tag_name_only(ref)
        if str(ref) not in seen:
            seen.add(str(ref))
            out.append(ref)
    return out


class _TextSink:
    """A text stream that hands what the pull prints to the build's output."""

    def __init__(self, write: Callable[[str], None]) -> None:
        self.write_text = write

    def write(self, s: str) -> int:
        self.write_text(s)
        return len(s)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def registry_puller(svc: Services, out: BuildOutput) -> Puller:
    """Pull a base image the store lacks, its progress in the build's output (moby pullForBuilder)."""

    def pull_image(name: str, platform: str) -> str:
        try:
            ref = tag_name_only(parse_normalized_named(name))
        except InvalidReference as exc:
            raise ImageSourceError(str(exc)) from None
        try:
            daemon = json.loads((svc.layout.root / "daemon.json").read_text())
            insecure = tuple(str(x) for x in daemon.get("insecure-registries") or [])
        except (OSError, ValueError, AttributeError):
            insecure = ()
        options = PullOptions(platform=M.parse_platform(platform) if platform else None, insecure_registries=insecure)
        writer = ProgressWriter(_TextSink(out.stdout), tty=False)  # type: ignore[arg-type]  # a TextIO in all it uses
        try:
            return pull(local_store(svc), ref, writer, options).image_id
        except RegistryError as exc:
            raise ImageSourceError(str(exc)) from None

    return pull_image


def build(
    svc: Services,
    options: BuildOptions,
    context: IO[bytes],
    out: BuildOutput,
    puller: Puller | None = None,
) -> str:
    """Build the context's Dockerfile; returns the image ID (tags applied)."""
    tags = sanitize_tags(options.tags)
    arch = build_arch(options.platform)
    try:
        source, dockerfile = detect(context, options.dockerfile, svc.layers.tmp_dir)
    except ContextError as exc:
        raise BuildError(str(exc)) from None
    try:
        sources = ImageSources(
            svc, puller or registry_puller(svc, out), force_pull=options.pull, platform=options.platform
        )
        state = Builder(svc, options, out, source, sources, arch).build(dockerfile)
    finally:
        source.close()
    image_id = state.image_id
    out.stdout(f"Successfully built {short_id(image_id)}\n")
    for ref in tags:
        with svc.lock.held():
            svc.refs.reload()
            svc.refs.add_tag(ref, image_id, force=True)
            svc.images.set_last_updated(image_id)
        out.stdout(f"Successfully tagged {familiar_string(ref)}\n")
    return image_id


__all__ = ["build", "sanitize_tags", "registry_puller", "BuildOptions", "BuildError"]
