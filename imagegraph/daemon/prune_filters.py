"""The filters `docker container prune` and `docker image prune` send: until, label, label!.

moby reads `until` with timetypes.GetTimestamp: a duration back from now (`24h`, `1h30m`), a
Unix time, or an RFC 3339 date; a label filter is `key` or `key=value`, `label!` its negation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..runtime.jsonlog import parse_time_arg
from ..service import InvalidParameter

KEYS = ("until", "label", "label!")


def label_match(labels: Mapping[str, str], spec: str) -> bool:
    """`key` is there, or `key=value` is (moby's filters.Args.MatchKVList)."""
    if "=" in spec:
        k, v = spec.split("=", 1)
        return labels.get(k) == v
    return spec in labels


@dataclass(frozen=True)
class PruneFilters:
    until: float | None = None
    labels: tuple[str, ...] = ()
    not_labels: tuple[str, ...] = ()

    @classmethod
    def parse(cls, filters: Mapping[str, list[str]], also: tuple[str, ...] = ()) -> PruneFilters:
        """The filters of one prune request; an unknown key or a bad time is the client's error."""
        for key in filters:
            if key not in KEYS + also:
                raise InvalidParameter(f"invalid filter '{key}'")
        until = None
        if len(filters.get("until", [])) > 1:
            raise InvalidParameter("more than one until filter specified")
        for value in filters.get("until", []):
            try:
                until = parse_time_arg(value) / 1e9
            except ValueError:
                raise InvalidParameter(f"invalid filter 'until={value}'") from None
        return cls(until, tuple(filters.get("label", [])), tuple(filters.get("label!", [])))

    def admit(self, created: float, labels: Mapping[str, str]) -> bool:
        """May an object made at `created` with `labels` be pruned?"""
        if self.until is not None and not created < self.until:
            return False
        if not all(label_match(labels, s) for s in self.labels):
            return False
        return not any(label_match(labels, s) for s in self.not_labels)
