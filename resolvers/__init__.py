"""The GraphQL layer: strawberry types, queries, mutations and dataloaders over the catalog."""

from resolvers.context import Context, make_context
from resolvers.schema import build_schema, print_sdl

__all__ = ["Context", "build_schema", "make_context", "print_sdl"]
