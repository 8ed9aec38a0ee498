"""GraphQL enums over the metamodel's enums.

``strawberry.enum`` puts the GraphQL definition on the metamodel's enum itself and returns that
class, so each name here is the model's enum: one class, and a type to mypy.
"""

from __future__ import annotations

import strawberry

from metadata import model

strawberry.enum(model.Kind, name="Kind", description="The kinds of catalog node.")
strawberry.enum(model.RelationType, name="RelationType", description="Typed edges between nodes.")
strawberry.enum(model.Lifecycle, name="Lifecycle", description="Stage of a node's life.")
strawberry.enum(
    model.Direction, name="Direction", description="Which relations of a node to follow."
)

Kind = model.Kind
RelationType = model.RelationType
Lifecycle = model.Lifecycle
Direction = model.Direction

__all__ = ["Direction", "Kind", "Lifecycle", "RelationType"]
