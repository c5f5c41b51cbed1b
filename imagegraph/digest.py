"""Digests and Docker-compatible JSON: the arithmetic behind every ID in the store.

Docker names everything by content: a layer by the sha256 of its uncompressed tar
(DiffID), a stack of layers by a ChainID, an image by the sha256 of its config bytes.
The last one only matches Docker if the bytes match, so this module also writes JSON
exactly as Go's encoding/json does (spec §2.5, §3.2).
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from decimal import Decimal
from typing import Any, BinaryIO

#: DiffID of an empty layer: Go's archive/tar writes an empty archive as 1024 zero bytes.
EMPTY_LAYER_DIFF_ID = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"

#: Algorithms go-digest accepts when the Go binary links them, with their hex length.
#: Docker links sha256, sha384 and sha512.
ALGORITHM_HEX_LENGTH = {"sha256": 64, "sha384": 96, "sha512": 128}

# go-digest error texts (opencontainers/go-digest v1.0.0); `docker` prints them verbatim.
ERR_DIGEST_INVALID_FORMAT = "invalid checksum digest format"
ERR_DIGEST_INVALID_LENGTH = "invalid checksum digest length"
ERR_DIGEST_UNSUPPORTED = "unsupported digest algorithm"

# go-digest's DigestRegexpAnchored: decides "unsupported" versus "invalid format"
# for an algorithm it does not know.
_DIGEST_SHAPE = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+", re.ASCII)
_LOWER_HEX = re.compile(r"[a-f0-9]+", re.ASCII)

_CHUNK = 1 << 20


class InvalidDigest(ValueError):
    """A digest string that go-digest would refuse; str() is go-digest's text."""


def validate_digest(s: str) -> str:
    """Return `s` if it is a valid digest, else raise InvalidDigest, in go-digest's order of checks."""
    i = s.find(":")
    if i <= 0 or i + 1 == len(s):
        raise InvalidDigest(ERR_DIGEST_INVALID_FORMAT)
    algorithm, encoded = s[:i], s[i + 1 :]
    length = ALGORITHM_HEX_LENGTH.get(algorithm)
    if length is None:
        if _DIGEST_SHAPE.fullmatch(s) is None:
            raise InvalidDigest(ERR_DIGEST_INVALID_FORMAT)
        raise InvalidDigest(ERR_DIGEST_UNSUPPORTED)
    if len(encoded) != length:
        raise InvalidDigest(ERR_DIGEST_INVALID_LENGTH)
    if _LOWER_HEX.fullmatch(encoded) is None:
        raise InvalidDigest(ERR_DIGEST_INVALID_FORMAT)
    return s


def sha256_digest(data: bytes) -> str:
    """The digest of `data`, as Docker writes it: "sha256:<64 hex>"."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Digester:
    """Incremental sha256 for streams (a layer tar being written), counting the bytes too.

    Counting here saves a second pass: layerdb needs both the DiffID and the size.
    """

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self.size = 0

    def update(self, data: bytes) -> None:
        self._hash.update(data)
        self.size += len(data)

    def write(self, data: bytes) -> int:
        """File-like alias of update(), so a Digester can be the target of a copy or a tee."""
        self.update(data)
        return len(data)

    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()


def sha256_stream(stream: BinaryIO) -> str:
    """Digest a binary stream without holding it in memory."""
    d = Digester()
    while chunk := stream.read(_CHUNK):
        d.update(chunk)
    return d.digest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Digest a file in chunks, so a multi-gigabyte layer never sits in memory."""
    with open(path, "rb") as f:
        return sha256_stream(f)


def chain_ids(diff_ids: list[str]) -> list[str]:
    """The ChainID of every prefix of `diff_ids` (base first): layerdb's directory names."""
    out: list[str] = []
    for diff_id in diff_ids:
        validate_digest(diff_id)
        out.append(diff_id if not out else sha256_digest(f"{out[-1]} {diff_id}".encode()))
    return out


def chain_id(diff_ids: list[str]) -> str:
    """OCI ChainID of a layer stack: ChainID(L0)=DiffID(L0), then sha256(parent + " " + DiffID).

    An empty stack has no ChainID; like Docker's RootFS.ChainID() this returns "".
    """
    ids = chain_ids(diff_ids)
    return ids[-1] if ids else ""


# --- Go's encoding/json --------------------------------------------------------------

_GO_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\b": "\\b",  # Go >= 1.22 writes \b and \f; older Go wrote \u0008, \u000c
    "\f": "\\f",
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}
_NEEDS_ESCAPE = re.compile('["\\\\\x00-\x1f<>&\u2028\u2029\ud800-\udfff]')
_NEEDS_ESCAPE_NO_HTML = re.compile('["\\\\\x00-\x1f\u2028\u2029\ud800-\udfff]')


def _escape_char(m: re.Match[str]) -> str:
    c = m.group(0)
    if c in _GO_ESCAPES:
        return _GO_ESCAPES[c]
    if "\ud800" <= c <= "\udfff":
        return "\ufffd"  # Go replaces invalid UTF-8 (here: a lone surrogate) with U+FFFD
    return f"\\u{ord(c):04x}"


def _go_string(s: str, escape_html: bool = True) -> str:
    pattern = _NEEDS_ESCAPE if escape_html else _NEEDS_ESCAPE_NO_HTML
    return '"' + pattern.sub(_escape_char, s) + '"'


def _go_float(f: float) -> str:
    """A float as encoding/json writes it: shortest digits, 'e' form below 1e-6 or from 1e21."""
    if math.isnan(f) or math.isinf(f):
        raise ValueError(f"json: unsupported value: {f!r}")
    sign, digits_t, exp = Decimal(repr(f)).as_tuple()
    assert isinstance(exp, int)  # a finite number: not 'n', 'N' or 'F'
    digits = "".join(map(str, digits_t)).lstrip("0") or "0"
    exp += len(digits_t) - len(digits) if digits != "0" else 0
    if digits != "0":  # drop trailing zeros into the exponent: shortest form
        stripped = digits.rstrip("0")
        exp += len(digits) - len(stripped)
        digits = stripped
    neg = "-" if sign else ""
    a = abs(f)
    if a != 0 and (a < 1e-6 or a >= 1e21):
        point_exp = exp + len(digits) - 1  # exponent with one digit before the point
        mant = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        e_sign = "-" if point_exp < 0 else "+"
        e_digits = str(abs(point_exp))
        if e_sign == "+" and len(e_digits) < 2:
            e_digits = e_digits.zfill(2)  # Go cleans e-07 to e-7 but keeps e+21
        return f"{neg}{mant}e{e_sign}{e_digits}"
    if digits == "0":
        return neg + "0"
    if exp >= 0:
        return neg + digits + "0" * exp
    point = len(digits) + exp
    if point > 0:
        return neg + digits[:point] + "." + digits[point:]
    return neg + "0." + "0" * (-point) + digits


def _go_encode(obj: Any, out: list[str], html: bool, sort_keys: bool) -> None:
    if obj is None:
        out.append("null")
    elif obj is True:
        out.append("true")
    elif obj is False:
        out.append("false")
    elif isinstance(obj, str):
        out.append(_go_string(obj, html))
    elif isinstance(obj, int):
        out.append(str(obj))
    elif isinstance(obj, float):
        out.append(_go_float(obj))
    elif isinstance(obj, dict):
        out.append("{")
        items = sorted(obj.items()) if sort_keys else obj.items()
        for i, (k, v) in enumerate(items):
            if not isinstance(k, str):
                raise TypeError(f"json: map keys must be strings, not {type(k).__name__}")
            if i:
                out.append(",")
            out.append(_go_string(k, html))
            out.append(":")
            _go_encode(v, out, html, sort_keys)
        out.append("}")
    elif isinstance(obj, (list, tuple)):
        out.append("[")
        for i, v in enumerate(obj):
            if i:
                out.append(",")
            _go_encode(v, out, html, sort_keys)
        out.append("]")
    else:
        raise TypeError(f"json: unsupported type: {type(obj).__name__}")


def go_json(obj: Any, *, escape_html: bool = True, sort_keys: bool = False) -> bytes:
    """JSON bytes exactly as Go's json.Marshal writes them.

    No whitespace; `<`, `>`, `&`, U+2028, U+2029 escaped as \\u003c…; other non-ASCII kept
    as UTF-8; dict order kept as given (a Go struct's field order is the caller's job).
    `escape_html=False` is an Encoder with SetEscapeHTML(false) (the CLI's `{{json .}}`);
    `sort_keys=True` treats every dict as a Go map.
    """
    out: list[str] = []
    _go_encode(obj, out, escape_html, sort_keys)
    return "".join(out).encode("utf-8")


# --- Docker's image config ------------------------------------------------------------

# Go field order of the structs nested in a Docker image config (moby api/types/container
# Config and HealthConfig, image.History, image.RootFS). Go writes struct fields in this
# order and map keys sorted; a dict built in any order is put back into Docker's.
_CONTAINER_CONFIG_ORDER = (
    "Hostname",
    "Domainname",
    "User",
    "AttachStdin",
    "AttachStdout",
    "AttachStderr",
    "ExposedPorts",
    "Tty",
    "OpenStdin",
    "StdinOnce",
    "Env",
    "Cmd",
    "Healthcheck",
    "ArgsEscaped",
    "Image",
    "Volumes",
    "WorkingDir",
    "Entrypoint",
    "NetworkDisabled",
    "MacAddress",
    "OnBuild",
    "Labels",
    "StopSignal",
    "StopTimeout",
    "Shell",
)
_CONTAINER_CONFIG_MAPS = ("ExposedPorts", "Volumes", "Labels")
_HEALTHCHECK_ORDER = ("Test", "Interval", "Timeout", "StartPeriod", "StartInterval", "Retries")
_HISTORY_ORDER = ("created", "author", "created_by", "comment", "empty_layer")
_ROOTFS_ORDER = ("type", "diff_ids")


def _ordered(d: dict[str, Any], order: tuple[str, ...]) -> dict[str, Any]:
    """Known fields in Go order, unknown ones after them in the order given."""
    out = {k: d[k] for k in order if k in d}
    out.update((k, v) for k, v in d.items() if k not in out)
    return out


def _container_config(c: Any) -> Any:
    if not isinstance(c, dict):
        return c
    c = _ordered(c, _CONTAINER_CONFIG_ORDER)
    for key in _CONTAINER_CONFIG_MAPS:
        if isinstance(c.get(key), dict):
            c[key] = dict(sorted(c[key].items()))
    if isinstance(c.get("Healthcheck"), dict):
        c["Healthcheck"] = _ordered(c["Healthcheck"], _HEALTHCHECK_ORDER)
    return c


def canonical_config_json(config: dict[str, Any]) -> bytes:
    """Docker's image config bytes (moby Image.MarshalJSON): the input to the image ID.

    Top-level keys sorted (Docker re-marshals through a map); the nested structs Docker
    knows (config, container_config, history, rootfs) in Go field order, with their
    map fields (Labels, Volumes, ExposedPorts) sorted; anything else nested is kept as
    given. Round-trips real Docker configs byte for byte (see the tests).
    """
    top = dict(sorted(config.items()))
    for key in ("config", "container_config"):
        if key in top:
            top[key] = _container_config(top[key])
    if isinstance(top.get("rootfs"), dict):
        top["rootfs"] = _ordered(top["rootfs"], _ROOTFS_ORDER)
    if isinstance(top.get("history"), list):
        top["history"] = [_ordered(h, _HISTORY_ORDER) if isinstance(h, dict) else h for h in top["history"]]
    return go_json(top)


def image_id(config_bytes: bytes) -> str:
    """An image's ID: the digest of its exact config bytes."""
    return sha256_digest(config_bytes)
