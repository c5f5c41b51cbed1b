"""Image references as Docker reads them: distribution/reference v0.6.0, in Python.

Why a port and not a simpler parser: students type `ubuntu`, `localhost:5000/app:v1`,
`Foo/bar`, or a 64-hex ID, and the answers (`docker.io/library/ubuntu:latest`, which part
is the registry, which error) must be Docker's own. The functions mirror the Go API in
snake case (spec §1); the regular expressions are the Go ones, with `[[:xdigit:]]`
spelt out and `re.ASCII` so that `\\w` means what it means in Go.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from imagegraph.digest import InvalidDigest, validate_digest

DEFAULT_TAG = "latest"
DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
LOCALHOST = "localhost"
REPOSITORY_NAME_TOTAL_LENGTH_MAX = 255

# --- error texts (reference.go, normalize.go) --------------------------------------------
ERR_REFERENCE_INVALID_FORMAT = "invalid reference format"
ERR_TAG_INVALID_FORMAT = "invalid tag format"
ERR_DIGEST_INVALID_FORMAT = "invalid digest format"
ERR_NAME_CONTAINS_UPPERCASE = "repository name must be lowercase"
ERR_NAME_EMPTY = "repository name must have at least one component"
ERR_NAME_TOO_LONG = f"repository name must not be more than {REPOSITORY_NAME_TOTAL_LENGTH_MAX} characters"
ERR_NAME_NOT_CANONICAL = "repository name must be canonical"


class InvalidReference(ValueError):
    """A reference Docker refuses; str() is Docker's exact message."""


# --- regexp.go -----------------------------------------------------------------------------
ALPHANUMERIC = r"[a-z0-9]+"
SEPARATOR = r"(?:[._]|__|[-]+)"
DOMAIN_NAME_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
OPTIONAL_PORT = r"(?::[0-9]+)?"
TAG = r"[\w][\w.-]{0,127}"
DIGEST_PAT = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9A-Fa-f]{32,}"
IDENTIFIER = r"([a-f0-9]{64})"
IPV6_ADDRESS = r"\[(?:[a-fA-F0-9:]+)\]"
DOMAIN_NAME = DOMAIN_NAME_COMPONENT + r"(?:\." + DOMAIN_NAME_COMPONENT + r")*"
HOST = r"(?:" + DOMAIN_NAME + r"|" + IPV6_ADDRESS + r")"
DOMAIN_AND_PORT = HOST + OPTIONAL_PORT
PATH_COMPONENT = ALPHANUMERIC + r"(?:" + SEPARATOR + ALPHANUMERIC + r")*"
REMOTE_NAME = PATH_COMPONENT + r"(?:/" + PATH_COMPONENT + r")*"
NAME_PAT = r"(?:" + DOMAIN_AND_PORT + r"/)?" + REMOTE_NAME
ANCHORED_NAME_PAT = r"^(?:(" + DOMAIN_AND_PORT + r")/)?(" + REMOTE_NAME + r")$"
REFERENCE_PAT = r"^(" + NAME_PAT + r")(?::(" + TAG + r"))?(?:@(" + DIGEST_PAT + r"))?$"

# fullmatch everywhere: Python's `$` also matches before a trailing newline, Go's does not.
_reference_re = re.compile(REFERENCE_PAT, re.ASCII)
_anchored_name_re = re.compile(ANCHORED_NAME_PAT, re.ASCII)
_anchored_tag_re = re.compile(TAG, re.ASCII)
_anchored_digest_re = re.compile(DIGEST_PAT, re.ASCII)
_anchored_identifier_re = re.compile(IDENTIFIER, re.ASCII)
_domain_and_port_re = re.compile(DOMAIN_AND_PORT, re.ASCII)


@dataclass(frozen=True)
class Reference:
    """One parsed reference. `name` is the full name (`docker.io/library/ubuntu`), or ""
    for a bare digest (what parse_any_reference returns for an image ID).

    The Go package has five types (repository, tagged, canonical, both, digest-only);
    here they are one class whose None fields say which parts are present.
    """

    name: str
    tag: str | None = None
    digest: str | None = None

    def __str__(self) -> str:
        s = self.name
        if self.tag is not None:
            s += ":" + self.tag
        if self.digest is not None:
            s = s + "@" + self.digest if s else self.digest
        return s

    @property
    def domain(self) -> str:
        return split_hostname(self)[0]

    @property
    def path(self) -> str:
        return split_hostname(self)[1]

    @property
    def is_named(self) -> bool:
        return bool(self.name)

    @property
    def is_name_only(self) -> bool:
        """Neither tag nor digest: what TagNameOnly completes with `:latest`."""
        return self.tag is None and self.digest is None


def _split_domain(name: str) -> tuple[str, str]:
    m = _anchored_name_re.fullmatch(name)
    if m is None:
        return "", name
    return m.group(1) or "", m.group(2)


def _parse_digest(d: str) -> str:
    try:
        return validate_digest(d)
    except InvalidDigest as exc:
        raise InvalidReference(str(exc)) from exc


def parse(s: str) -> Reference:
    """Parse with no normalisation (Go `Parse`): `ubuntu` stays `ubuntu`."""
    if s == "":
        raise InvalidReference(ERR_NAME_EMPTY)
    m = _reference_re.fullmatch(s)
    if m is None:
        lower = s.lower()
        if lower != s and _reference_re.fullmatch(lower) is not None:
            raise InvalidReference(ERR_NAME_CONTAINS_UPPERCASE)
        raise InvalidReference(ERR_REFERENCE_INVALID_FORMAT)
    name, tag, dgst = m.group(1), m.group(2), m.group(3)
    _domain, path_ = _split_domain(name)
    if len(path_) > REPOSITORY_NAME_TOTAL_LENGTH_MAX:
        raise InvalidReference(ERR_NAME_TOO_LONG)
    if dgst is not None:
        dgst = _parse_digest(dgst)
    if not name and dgst is None:
        raise InvalidReference(ERR_NAME_EMPTY)
    return Reference(name, tag, dgst)


def _split_docker_domain(name: str) -> tuple[str, str]:
    """Docker's guess at the registry part of a familiar name (normalize.go)."""
    first, sep, rest = name.partition("/")
    if not sep:
        return DEFAULT_DOMAIN, OFFICIAL_REPO_PREFIX + name
    if first == LOCALHOST:
        domain, remote = first, rest
    elif first == LEGACY_DEFAULT_DOMAIN:
        domain, remote = DEFAULT_DOMAIN, rest
    elif "." in first or ":" in first:
        domain, remote = first, rest
    elif first.lower() != first:
        domain, remote = first, rest
    else:
        domain, remote = DEFAULT_DOMAIN, name
    if domain == DEFAULT_DOMAIN and "/" not in remote:
        remote = OFFICIAL_REPO_PREFIX + remote
    return domain, remote


def parse_normalized_named(s: str) -> Reference:
    """What `docker` does with a name a user typed: `ubuntu` → `docker.io/library/ubuntu`."""
    if _anchored_identifier_re.fullmatch(s):
        raise InvalidReference(f"invalid repository name ({s}), cannot specify 64-byte hexadecimal strings")
    domain, remainder = _split_docker_domain(s)
    remote = remainder.split(":", 1)[0]
    if remote.lower() != remote:
        raise InvalidReference(f"{ERR_REFERENCE_INVALID_FORMAT}: repository name ({remote}) must be lowercase")
    ref = parse(domain + "/" + remainder)
    if not ref.is_named:
        raise InvalidReference(f"reference {ref} has no name")
    return ref


def parse_any_reference(s: str) -> Reference:
    """An image ID, a digest, or a familiar name: how the daemon reads `docker rmi X`."""
    if _anchored_identifier_re.fullmatch(s):
        return Reference("", None, "sha256:" + s)
    try:
        return Reference("", None, validate_digest(s))
    except InvalidDigest:
        pass
    return parse_normalized_named(s)


def parse_docker_ref(s: str) -> Reference:
    """Normalise and complete: a tag and a digest keep only the digest; no tag gets `latest`."""
    ref = parse_normalized_named(s)
    if ref.tag is not None and ref.digest is not None:
        return with_digest(with_name(ref.name), ref.digest)
    return tag_name_only(ref)


def parse_named(s: str) -> Reference:
    """Accept only a name already in canonical form (`docker.io/library/foo`, not `foo`)."""
    ref = parse_normalized_named(s)
    if str(ref) != s:
        raise InvalidReference(ERR_NAME_NOT_CANONICAL)
    return ref


def _familiarize(name: str) -> str:
    domain, path_ = _split_domain(name)
    if domain != DEFAULT_DOMAIN:
        return name
    if path_.startswith(OFFICIAL_REPO_PREFIX):
        rest = path_[len(OFFICIAL_REPO_PREFIX) :]
        if "/" not in rest:
            return rest
    return path_


def familiar_name(ref: Reference) -> str:
    """The name as `docker images` shows it: `ubuntu`, `fooo/bar`, `localhost/x`."""
    return _familiarize(ref.name)


def familiar_string(ref: Reference) -> str:
    """The whole reference in familiar form, tag and digest kept: `busybox:latest@sha256:…`."""
    if not ref.is_named:
        return str(ref)
    return str(Reference(_familiarize(ref.name), ref.tag, ref.digest))


def familiar_match(pattern: str, ref: Reference) -> bool:
    """`docker images --filter reference=PATTERN`: Go path.Match on the familiar string,
    then on the familiar name (`*` does not cross `/`)."""
    if _path_match(pattern, familiar_string(ref)):
        return True
    return ref.is_named and _path_match(pattern, familiar_name(ref))


def _path_match(pattern: str, s: str) -> bool:
    """Go's path.Match: `*` and `?` never cross `/`; `[^…]` negates; a bad pattern raises."""
    return re.fullmatch(_go_pattern_to_regex(pattern), s, re.DOTALL) is not None


def _go_pattern_to_regex(pattern: str) -> str:
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        i += 1
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "\\":
            if i >= n:
                raise InvalidReference("syntax error in pattern")
            out.append(re.escape(pattern[i]))
            i += 1
        elif c == "[":
            negate = i < n and pattern[i] == "^"
            if negate:
                i += 1
            ranges: list[str] = []
            first = True
            while True:
                if i >= n:
                    raise InvalidReference("syntax error in pattern")
                if pattern[i] == "]" and not first:
                    i += 1
                    break
                lo, i = _class_char(pattern, i)
                hi = lo
                if i < n and pattern[i] == "-":
                    hi, i = _class_char(pattern, i + 1)
                ranges.append(re.escape(lo) + ("-" + re.escape(hi) if hi != lo else ""))
                first = False
            body = "".join(ranges)
            out.append(f"(?![/])[^{body}]" if negate else f"(?![/])[{body}]")
        else:
            out.append(re.escape(c))
    return "".join(out)


def _class_char(pattern: str, i: int) -> tuple[str, int]:
    """One character inside [...]; Go refuses `-`, `]` and end of pattern here unescaped."""
    if i >= len(pattern) or pattern[i] in "-]":
        raise InvalidReference("syntax error in pattern")
    if pattern[i] == "\\":
        i += 1
        if i >= len(pattern):
            raise InvalidReference("syntax error in pattern")
    return pattern[i], i + 1


def tag_name_only(ref: Reference) -> Reference:
    """Add `:latest` to a bare name; anything with a tag or digest is left alone."""
    return with_tag(ref, DEFAULT_TAG) if ref.is_name_only else ref


def trim_named(ref: Reference) -> Reference:
    """The name alone, tag and digest removed."""
    return Reference(ref.name)


def with_name(name: str) -> Reference:
    """A name-only reference, validated but not normalised."""
    m = _anchored_name_re.fullmatch(name)
    if m is None:
        raise InvalidReference(ERR_REFERENCE_INVALID_FORMAT)
    if len(m.group(2)) > REPOSITORY_NAME_TOTAL_LENGTH_MAX:
        raise InvalidReference(ERR_NAME_TOO_LONG)
    return Reference(name)


def with_tag(ref: Reference, tag: str) -> Reference:
    """Set the tag (a digest, if any, is kept)."""
    if _anchored_tag_re.fullmatch(tag) is None:
        raise InvalidReference(ERR_TAG_INVALID_FORMAT)
    return Reference(ref.name, tag, ref.digest)


def with_digest(ref: Reference, digest: str) -> Reference:
    """Set the digest (a tag, if any, is kept). Checks the shape only, as Go does."""
    if _anchored_digest_re.fullmatch(digest) is None:
        raise InvalidReference(ERR_DIGEST_INVALID_FORMAT)
    return Reference(ref.name, ref.tag, digest)


def split_hostname(ref: Reference) -> tuple[str, str]:
    """(domain, path) of a name: ("docker.io", "library/ubuntu")."""
    return _split_domain(ref.name)


def domain(ref: Reference) -> str:
    return split_hostname(ref)[0]


def path(ref: Reference) -> str:
    return split_hostname(ref)[1]


def is_identifier(s: str) -> bool:
    """True for a bare 64-hex image ID, which Docker refuses as a repository name."""
    return _anchored_identifier_re.fullmatch(s) is not None
