"""Errors from talking to a registry, worded as Docker words them.

Every error carries the one line the command prints. The texts follow docker/distribution's
client (`<Method> "<url>": <code>: <message>`) and moby's pull (`manifest for X not found: …`).
"""

from __future__ import annotations


class RegistryError(Exception):
    """Any failure talking to a registry; str() is the one line to print."""


class Unreachable(RegistryError):
    """The registry did not answer (refused, timed out, DNS)."""


class Unauthorized(RegistryError):
    """The registry (or its token server) refused our credentials."""


class NotFound(RegistryError):
    """The repository, tag, manifest or blob does not exist (HTTP 404)."""

    def __init__(self, message: str, code: str = ""):
        super().__init__(message)
        self.code = code


class DigestMismatch(RegistryError):
    """What arrived does not hash to the digest that was asked for."""


class ManifestError(RegistryError):
    """A manifest or index we cannot use (unknown media type, no matching platform, bad JSON)."""
