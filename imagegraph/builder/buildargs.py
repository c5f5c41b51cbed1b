"""Build arguments (moby builder/dockerfile/buildargs.go): `--build-arg`, ARG, and the proxy args.

An ARG makes a name usable from the next instruction on; its value is the `--build-arg` one
if given, else the ARG's default, else (for an ARG without one) the value of the same-named
ARG before the first FROM. The proxy variables are predefined: usable without an ARG, passed
to RUN, but kept out of the image's history unless the Dockerfile declares them.
"""

from __future__ import annotations

BUILTIN_ALLOWED = (
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
)
#: Build args the builder itself reads: never reported as unused.
SILENT = ("SOURCE_DATE_EPOCH",)


class BuildArgs:
    def __init__(self, from_options: dict[str, str | None] | None = None) -> None:
        self.allowed: dict[str, str | None] = {}  # ARGs in scope (this stage)
        self.meta: dict[str, str | None] = {}  # ARGs before the first FROM
        self.referenced: set[str] = set()  # every ARG the Dockerfile declared
        self.from_options: dict[str, str | None] = dict(from_options or {})

    def clone(self) -> BuildArgs:
        out = BuildArgs(self.from_options)
        out.allowed = dict(self.allowed)
        out.meta = dict(self.meta)
        out.referenced = set(self.referenced)
        return out

    def reset_allowed(self) -> None:
        """A new stage: no ARG is in scope until the stage declares it again."""
        self.allowed = {}

    def merge_referenced(self, other: BuildArgs) -> None:
        self.referenced |= other.referenced

    def add_meta_arg(self, key: str, value: str | None) -> None:
        self.meta[key] = value

    def add_arg(self, key: str, value: str | None) -> None:
        self.allowed[key] = value
        self.referenced.add(key)

    def is_referenced_or_not_builtin(self, key: str) -> bool:
        return key in self.allowed or key not in BUILTIN_ALLOWED

    def _get(self, key: str, mapping: dict[str, str | None]) -> tuple[str, bool]:
        default = mapping.get(key)
        exists = key in mapping
        override = self.from_options.get(key)
        if key in self.from_options and override is not None:
            return override, True
        if default is None:
            meta = self.meta.get(key)
            if meta is not None:
                return meta, True
            return "", False
        return default, exists

    def _all(self, mapping: dict[str, str | None]) -> dict[str, str]:
        out = {}
        for key in [*mapping, *BUILTIN_ALLOWED]:
            value, ok = self._get(key, mapping)
            if ok:
                out[key] = value
        return out

    def all_allowed(self) -> dict[str, str]:
        return self._all(self.allowed)

    def all_meta(self) -> dict[str, str]:
        return self._all(self.meta)

    def filter_allowed(self, env: list[str] | None) -> list[str]:
        """`K=V` for every allowed arg not already set by an ENV of the same name."""
        keys = {e.split("=", 1)[0] for e in env or []}
        return [f"{k}={v}" for k, v in self.all_allowed().items() if k not in keys]

    def unused_warning(self) -> str | None:
        """moby WarnOnUnusedBuildArgs: the `--build-arg`s no ARG consumed."""
        left = sorted(k for k in self.from_options if k not in self.referenced and k not in (*BUILTIN_ALLOWED, *SILENT))
        if not left:
            return None
        return f"[Warning] One or more build-args [{' '.join(left)}] were not consumed"
