"""The Docker Engine API over a socket: what `imagegraph daemon` serves, laid out as moby's api/server.

- `server`: listeners (unix socket, loopback TCP), the HTTP/1.1 connection handling (keep-alive,
  chunked bodies both ways, a hijackable socket), the route table, version negotiation and
  the `{"message": …}` error answers;
- `router/`: one module per moby router (`image`, `container`, `system`), each a class with an
  `init_routes` table and thin handlers named as moby names them (`postImagesCreate`…): parse
  the request, call the backend (`imagegraph.daemon`), format the answer;
- `httputils/`: the request and response objects, form helpers, and `streamformatter` (the
  JSON progress messages of pull, push, load and import);
- `httpstatus`: which error is which HTTP status.
"""

from __future__ import annotations

#: The newest API version served (docker 28.2's), the default for unversioned paths.
DEFAULT_VERSION = "1.50"
#: Requests for older versions get a 400 (dockerd's hard floor is 1.24; what changed before
#: 1.40 is not reproduced here).
MIN_VERSION = "1.40"


def version_tuple(v: str) -> tuple[int, ...]:
    """`1.9` < `1.10`: API versions compare numerically, part by part (moby api/types/versions)."""
    out = []
    for part in v.split("."):
        try:
            out.append(int(part))
        except ValueError:
            out.append(0)
    return tuple(out)


def version_less(a: str, b: str) -> bool:
    ta, tb = version_tuple(a), version_tuple(b)
    n = max(len(ta), len(tb))
    return ta + (0,) * (n - len(ta)) < tb + (0,) * (n - len(tb))
