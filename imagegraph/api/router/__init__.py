"""Routes and routers (moby api/server/router): a route is a method, a path pattern and a handler.

Patterns are moby's: `/images/{name:.*}/json` matches `/images/127.0.0.1:5000/app:1.0/json`
with `name` = `127.0.0.1:5000/app:1.0`. A handler is `handler(w, r)`; it raises for an error,
and the server turns the error into dockerd's JSON answer. The handler's `__name__` is moby's
(`postImagesCreate`), which is what the flow log prints.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from ..httputils import Request, ResponseWriter

Handler = Callable[[ResponseWriter, Request], None]

_VAR = re.compile(r"\{(\w+)(?::([^{}]*))?\}")


def compile_path(pattern: str) -> re.Pattern[str]:
    """`/containers/{name:.*}/json` → `^/containers/(?P<name>.*)/json$` (a bare `{id}` is `[^/]+`)."""
    out, pos = [], 0
    for m in _VAR.finditer(pattern):
        out.append(re.escape(pattern[pos : m.start()]))
        out.append(f"(?P<{m.group(1)}>{m.group(2) or '[^/]+'})")
        pos = m.end()
    out.append(re.escape(pattern[pos:]))
    return re.compile("^" + "".join(out) + "$", re.DOTALL)


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    regex: re.Pattern[str] = field(compare=False, repr=False)

    def match(self, path: str) -> dict[str, str] | None:
        m = self.regex.match(path)
        return m.groupdict() if m else None


def _route(method: str) -> Callable[[str, Handler], Route]:
    def make(path: str, handler: Handler) -> Route:
        return Route(method, path, handler, compile_path(path))

    return make


new_get_route = _route("GET")
new_head_route = _route("HEAD")
new_post_route = _route("POST")
new_put_route = _route("PUT")
new_delete_route = _route("DELETE")
new_options_route = _route("OPTIONS")


class Router:
    """A group of routes (moby router.Router); subclasses fill `self.routes` in `init_routes`."""

    routes: list[Route]

    def __init__(self) -> None:
        self.routes = []
        self.init_routes()

    def init_routes(self) -> None:
        raise NotImplementedError

    def add_routes(self, routes: list[Route]) -> None:
        """For routers that grow (the running-container routes join the container router)."""
        self.routes.extend(routes)
