"""Which error is which HTTP status (moby api/server/httpstatus.FromError).

The backend raises errors of the service layer and of the stores; their kind decides the
status, never their text. Registry errors follow moby's pull: a registry's own "unauthorized"
is a 401 (the CLI then offers a login), a missing repository or manifest a 404, and anything
else, "no basic auth credentials" included, a 500.
"""

from __future__ import annotations

from ..archive import ArchiveError
from ..commit import ChangeError
from ..container import ContainerError, ContainerNotFound
from ..daemon import errdefs
from ..distribution import errors as registry_errors
from ..imagestore import ImageNotFound
from ..reference import InvalidReference
from ..refstore import RefNotFound
from ..store import os_error_line


def from_error(exc: BaseException) -> int:
    if isinstance(exc, RecursionError):
        return 400  # only input nested deeper than Python's stack (JSON) gets this far
    if isinstance(exc, (errdefs.NotFound, ContainerNotFound, ImageNotFound, RefNotFound, registry_errors.NotFound)):
        return 404
    if isinstance(exc, (errdefs.InvalidParameter, InvalidReference, ChangeError, ArchiveError)):
        return 400
    if isinstance(exc, errdefs.Conflict):
        return 409
    if isinstance(exc, registry_errors.Unauthorized):
        return 500 if "no basic auth credentials" in str(exc) else 401
    if isinstance(exc, errdefs.Unauthorized):
        return 401
    if isinstance(exc, errdefs.Forbidden):
        return 403
    if isinstance(exc, errdefs.Unavailable):
        return 503
    if isinstance(exc, ContainerError) and str(exc).startswith("Conflict."):
        return 409
    return 500


def error_message(exc: BaseException) -> str:
    """The error's text for the client, one line that names the user's object: an OSError
    without Python's `[Errno N]` and without our temporary names (store.os_error_line)."""
    if isinstance(exc, OSError):
        return os_error_line(exc)
    if isinstance(exc, RecursionError):
        return "invalid input: nested too deeply"
    text = str(exc) or type(exc).__name__
    return " ".join(text.splitlines())
