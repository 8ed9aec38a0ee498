"""The GraphQL-over-HTTP endpoint: strawberry's ASGI view with the hub's context and JSON."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL

from catalog.playground import playground_html


class CatalogGraphQL(GraphQL[Any, None]):
    """``/graphql``: POST and GET, per-request dataloaders, orjson responses."""

    def __init__(self, schema: Any, context_factory: Callable[[Any, Any], Any], **kw: Any) -> None:
        super().__init__(schema, **kw)
        self._context_factory = context_factory

    async def get_context(self, request: Request | WebSocket, response: Response | WebSocket) -> Any:
        """A fresh context, with fresh dataloaders, for every request."""
        return self._context_factory(request, response)

    async def render_graphql_ide(self, request: Request) -> Response:
        """The playground page (served from the hub itself, no CDN)."""
        return HTMLResponse(playground_html(self.graphql_ide_html))

    def encode_json(self, data: object) -> bytes:
        """Encode responses with orjson (several times faster than the standard library)."""
        return orjson.dumps(data)


__all__ = ["CatalogGraphQL"]
