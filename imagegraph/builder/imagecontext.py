"""The images a build reads (moby builder/dockerfile/imagecontext.go, daemon/images/image_builder.go).

FROM and `COPY --from` name an image by reference or ID, a stage of the same Dockerfile, or
`scratch` (no image at all: an empty root filesystem). An image not in the store is pulled
(`--pull` pulls even one that is); a stage is looked up only locally. `rootfs` gives a
read-only view of an image's files, the union of its layers, for `COPY --from`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from unionfs.union import Union

from ..commit import go_arch
from ..imagestore import Image
from ..service import DaemonError, NotFound, Services

SCRATCH = "scratch"
#: The empty image FROM scratch starts from (moby: an image.Image with only the OS set).
SCRATCH_IMAGE = Image("", json.dumps({"os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}).encode(), None)

#: How the builder fetches an image it lacks: (reference, platform) -> the image's ID.
Puller = Callable[[str, str], str]


class ImageSourceError(Exception):
    """An image a build cannot get; str() is moby's text."""


@dataclass
class ImageSources:
    svc: Services
    pull: Puller | None = None
    force_pull: bool = False
    platform: str = ""

    def get(self, ref_or_id: str, local_only: bool, platform: str | None = None) -> Image:
        """GetImageAndReleasableLayer: the store's image, else (unless local_only) a pull (for
        `platform`: FROM --platform's, else the build's)."""
        if not ref_or_id:
            return SCRATCH_IMAGE
        if not self.force_pull or local_only:
            try:
                with self.svc.lock.held(shared=True):
                    self.svc.refs.reload()
                    return self.svc.get_image(ref_or_id)
            except NotFound as exc:
                if local_only:
                    raise ImageSourceError(str(exc)) from None
            except DaemonError as exc:
                raise ImageSourceError(str(exc)) from None
        if self.pull is None:
            raise ImageSourceError(f"pull access denied for {ref_or_id}: this build cannot pull images")
        image_id = self.pull(ref_or_id, self.platform if platform is None else platform)
        return self.svc.images.get(image_id)


def platform_of(img: Image) -> tuple[str, str]:
    """(os, architecture) of an image; scratch is the host's."""
    cfg = img.config
    return cfg.get("os") or "linux", cfg.get("architecture") or go_arch()


def rootfs(svc: Services, img: Image) -> Union:
    """The image's files as one read-only union of its layers (no mount: the union core)."""
    lowers = [str(p) for p in svc.layers.lower_dirs(img.top_chain_id or None)]
    if not lowers:
        return Union.from_options(f"lowerdir={svc.layout.root / 'empty-rootfs'}")
    return Union.from_options("lowerdir=" + ":".join(_escape(p) for p in lowers))


def _escape(path: str) -> str:
    return path.replace("\\", "\\\\").replace(":", "\\:").replace(",", "\\,")


__all__ = ["ImageSources", "ImageSourceError", "SCRATCH", "SCRATCH_IMAGE", "platform_of", "rootfs"]
