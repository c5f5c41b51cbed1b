"""The classic builder's cache (moby daemon/images/cache.go, daemon/internal/image/cache).

A step is reused when the store holds an image that was built here, whose parent is the
current image, whose platform is the build's, and whose `container_config` equals the
configuration the step would commit: same Cmd (for a metadata step `#(nop)` and the
instruction, for COPY the sources' checksums, for RUN the command with its build args), same
Env, Labels, WorkingDir, User, … (moby's compare). Of several, the newest wins. The first miss
turns the cache off for the rest of the stage, as moby's imageProber does.
"""

from __future__ import annotations

from typing import Any

from ..imagestore import Image, ImageError, ImageStore

_LIST_FIELDS = ("Env", "Cmd", "Entrypoint", "Shell", "OnBuild")
_SCALARS = (
    "AttachStdin",
    "AttachStdout",
    "AttachStderr",
    "NetworkDisabled",
    "Tty",
    "OpenStdin",
    "StdinOnce",
    "ArgsEscaped",
    "User",
    "WorkingDir",
    "StopSignal",
)
_DEFAULTS: dict[str, Any] = {"User": "", "WorkingDir": "", "StopSignal": ""}
_HEALTH_FIELDS = ("Interval", "StartInterval", "StartPeriod", "Timeout", "Retries")


def compare(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    """moby cache.compare: two container.Configs alike but for Image, Hostname, Domainname, MacAddress."""
    if a is None or b is None:
        return False
    for key in _LIST_FIELDS:
        if list(a.get(key) or []) != list(b.get(key) or []):
            return False
    for key in ("ExposedPorts", "Volumes"):
        ka, kb = a.get(key) or {}, b.get(key) or {}
        if len(ka) != len(kb) or any(k not in kb for k in ka):
            return False
    la, lb = a.get("Labels") or {}, b.get("Labels") or {}
    if len(la) != len(lb) or any(lb.get(k) != v for k, v in la.items()):
        return False
    for key in _SCALARS:
        if a.get(key, _DEFAULTS.get(key, False)) != b.get(key, _DEFAULTS.get(key, False)):
            return False
    if a.get("StopTimeout") != b.get("StopTimeout"):
        return False
    ha, hb = a.get("Healthcheck"), b.get("Healthcheck")
    if (ha is None) != (hb is None):
        return False
    if ha is not None and hb is not None:
        if any(ha.get(k, 0) != hb.get(k, 0) for k in _HEALTH_FIELDS):
            return False
        if list(ha.get("Test") or []) != list(hb.get("Test") or []):
            return False
    return True


class ImageCache:
    """LocalImageCache behind moby's imageProber: probe, and stop probing after a miss."""

    def __init__(self, images: ImageStore, enabled: bool = True) -> None:
        self.images = images
        self.enabled = enabled
        self.busted = False

    def reset(self) -> None:
        """A new stage (FROM): probe again."""
        self.busted = False

    def probe(self, parent_id: str, config: dict[str, Any], os_name: str, arch: str) -> str | None:
        """The cached image for this step, or None (and no more probing in this stage)."""
        if not self.enabled or self.busted:
            return None
        match = self.local_cached_image(parent_id, config, os_name, arch)
        if match is None:
            self.busted = True
            return None
        return match.id

    def _candidates(self, parent_id: str) -> list[str]:
        if parent_id:
            return self.images.children(parent_id)
        return [i for i in self.images.ids() if not self.images.get_parent(i)]  # FROM scratch

    def local_cached_image(self, parent_id: str, config: dict[str, Any], os_name: str, arch: str) -> Image | None:
        """getLocalCachedImage: the newest child of `parent_id`, built here, with this config."""
        match: Image | None = None
        for image_id in self._candidates(parent_id):
            if not self.images.built_locally(image_id):
                continue
            try:
                img = self.images.get(image_id)
            except ImageError:
                continue
            cfg = img.config
            if not cfg.get("os") and not cfg.get("architecture"):
                continue
            if cfg.get("os") != os_name or (arch and cfg.get("architecture") != arch):
                continue
            if not compare(cfg.get("container_config"), config):
                continue
            if match is None or img.created_ts > match.created_ts:
                match = img
        return match
