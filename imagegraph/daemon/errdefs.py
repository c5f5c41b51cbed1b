"""The daemon's error kinds beyond the service layer's (moby errdefs): each kind is one HTTP
status in `imagegraph.api.httpstatus`. str() is always dockerd's text."""

from __future__ import annotations

from ..service import Conflict, DaemonError, InvalidParameter, NotFound


class Unauthorized(DaemonError):
    """401: the registry refused the credentials (the CLI then asks for a login)."""


class Forbidden(DaemonError):
    """403."""


class Unavailable(DaemonError):
    """503: e.g. search without a registry to search."""


class System(DaemonError):
    """500: anything else, with dockerd's text."""


__all__ = [
    "Conflict",
    "DaemonError",
    "Forbidden",
    "InvalidParameter",
    "NotFound",
    "System",
    "Unauthorized",
    "Unavailable",
]
