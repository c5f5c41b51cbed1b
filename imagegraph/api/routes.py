"""Print the daemon's route table as moby's `initRoutes` writes it (`python -m imagegraph.api.routes image`).

The seed shows the image router's `initRoutes`; this prints the same table from the routes
`imagegraph daemon` serves, so the two can be read side by side.
"""

from __future__ import annotations

import sys
from typing import Any

from .router import Router
from .router.container import ContainerRouter
from .router.image import ImageRouter
from .router.system import SystemRouter

ROUTERS: dict[str, type[Router]] = {"image": ImageRouter, "container": ContainerRouter, "system": SystemRouter}
GO_NAMES = {"GET": "Get", "HEAD": "Head", "POST": "Post", "PUT": "Put", "DELETE": "Delete", "OPTIONS": "Options"}


def init_routes(name: str) -> str:
    """The router's routes, one `router.NewXRoute("path", r.handler),` line each, in order."""
    router = ROUTERS[name](_NoBackend())  # type: ignore[call-arg]  # every router takes its backend
    lines = [f"func (r *{name}Router) initRoutes() {{", "\tr.routes = []router.Route{"]
    for route in router.routes:
        handler = getattr(route.handler, "__name__", "?")
        lines.append(f'\t\trouter.New{GO_NAMES[route.method]}Route("{route.path}", r.{handler}),')
    lines += ["\t}", "}"]
    return "\n".join(lines)


class _NoBackend:
    """Listing routes needs no store: the handlers are only named, never called."""

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(name)


def main(argv: list[str] | None = None) -> int:
    names = (argv if argv is not None else sys.argv[1:]) or list(ROUTERS)
    for name in names:
        if name not in ROUTERS:
            sys.stderr.write(f"no router named {name!r}: choose from {', '.join(ROUTERS)}\n")
            return 1
    print("\n\n".join(init_routes(n) for n in names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
