"""``capahub schema``: print the SDL."""

from __future__ import annotations

import typer


def schema() -> None:
    """Print the served GraphQL schema as SDL (the content of schema.graphql)."""
    from resolvers import print_sdl  # imported here: the other commands do without strawberry

    typer.echo(print_sdl(), nl=False)
