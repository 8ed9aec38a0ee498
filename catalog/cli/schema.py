"""``capahub schema``: print the SDL."""

from __future__ import annotations

import typer

from resolvers import print_sdl


def schema() -> None:
    """Print the served GraphQL schema as SDL (the content of schema.graphql)."""
    typer.echo(print_sdl(), nl=False)
