"""GraphQL enums over the metamodel's enums."""

from __future__ import annotations

import strawberry

from metadata import model

Kind = strawberry.enum(model.Kind, name="Kind", description="The kinds of catalog node.")
RelationType = strawberry.enum(
    model.RelationType, name="RelationType", description="Typed edges between nodes."
)
Lifecycle = strawberry.enum(
    model.Lifecycle, name="Lifecycle", description="Stage of a node's life."
)
Direction = strawberry.enum(
    model.Direction, name="Direction", description="Which relations of a node to follow."
)

__all__ = ["Direction", "Kind", "Lifecycle", "RelationType"]
