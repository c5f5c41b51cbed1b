"""The registry side of imagegraph: talking to an OCI distribution registry.

Modelled on moby's daemon/internal/distribution and docker/distribution's registry client:

- `credentials` reads and writes `~/.docker/config.json` (and credential helpers);
- `auth` answers the registry's 401 challenge (Basic, or Bearer tokens per scope);
- `client` speaks the HTTP API (manifests, blobs, uploads, mounts);
- `manifest` knows the media types, parses and builds manifests and indexes, matches platforms;
- `progress` renders Docker's per-layer progress lines on a terminal or a pipe;
- `errors` holds the registry errors, in Docker's words.
- `pgzip` compresses a layer for push in parallel blocks (pigz's way); `unpack` turns a
  downloading blob into a tar file in one pass (gunzip, DiffID, the scan of its headers).

Those know nothing of the local image store. `localstore` is the slice of it (layers, images,
references, the lock, and the v2 metadata kept by `metadata`) that `pull` and `push` join to
the registry, and that `tarexport`'s save and load use too.
"""

from __future__ import annotations

from .errors import RegistryError

__all__ = ["RegistryError"]
