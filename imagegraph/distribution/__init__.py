"""The registry side of imagegraph: talking to an OCI distribution registry.

Modelled on moby's daemon/internal/distribution and docker/distribution's registry client:

- `credentials` reads and writes `~/.docker/config.json` (and credential helpers);
- `auth` answers the registry's 401 challenge (Basic, or Bearer tokens per scope);
- `client` speaks the HTTP API (manifests, blobs, uploads, mounts);
- `manifest` knows the media types, parses and builds manifests and indexes, matches platforms;
- `progress` renders Docker's per-layer progress lines on a terminal or a pipe.

Nothing here touches the local image store; `pull` and `push` join the two.
"""

from __future__ import annotations

from .errors import RegistryError

__all__ = ["RegistryError"]
