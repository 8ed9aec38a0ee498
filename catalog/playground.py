"""The GraphiQL playground page (stub: serves strawberry's page until offline assets land)."""

from __future__ import annotations

from starlette.routing import BaseRoute


def playground_html(default_html: str) -> str:
    """The playground page served on a browser GET of /graphql."""
    return default_html


def playground_routes() -> list[BaseRoute]:
    """Routes serving the playground's own assets."""
    return []


__all__ = ["playground_html", "playground_routes"]
