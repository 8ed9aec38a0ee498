"""The diff a write reports (or a dry run would write): nodes with their fields before ->
after, relations added, updated or removed; one set of types for every writer's report."""

from __future__ import annotations

import enum

import strawberry
from strawberry.scalars import JSON

from catalog import changeset
from resolvers._fields import field
from resolvers.enums import RelationType


@strawberry.enum(description="What a write does to a node or relation.")
class ApplyOperation(enum.Enum):
    ADDED = "added"
    UPDATED = "updated"
    REMOVED = "removed"


@strawberry.type(description="One field of a node before and after the write.")
class ApplyFieldChange:
    field: str
    before: JSON | None = strawberry.field(description="The stored value; null for a new node.")
    after: JSON | None


@strawberry.type(description="A node the write adds or updates, with the fields that change.")
class ApplyNodeChange:
    id: strawberry.ID
    operation: ApplyOperation
    fields: list[ApplyFieldChange]

    @classmethod
    def from_model(cls, change: changeset.NodeChange) -> ApplyNodeChange:
        return cls(
            id=strawberry.ID(change.id),
            operation=ApplyOperation(change.op),
            fields=[
                ApplyFieldChange(field=f.field, before=f.before, after=f.after)
                for f in change.fields
            ],
        )


@strawberry.type(description="A relation the write adds or removes, or whose properties change.")
class ApplyRelationChange:
    operation: ApplyOperation
    from_: strawberry.ID = strawberry.field(name="from")
    type: RelationType
    to: strawberry.ID
    properties: JSON | None = strawberry.field(description="The properties after the write.")
    before: JSON | None = strawberry.field(description="The properties before (updated, removed).")

    @classmethod
    def from_model(cls, change: changeset.RelationChange) -> ApplyRelationChange:
        rel = change.relation
        removed = change.op == "removed"
        return cls(
            operation=ApplyOperation(change.op),
            from_=strawberry.ID(rel.from_id),
            type=rel.type,
            to=strawberry.ID(rel.to_id),
            properties=None if removed or rel.properties is None else JSON(rel.properties),
            before=None if change.before is None else JSON(change.before),
        )


@strawberry.type
class WriteDiff:
    """The diff fields of a write's report (``ApplyReport``, ``HarvestReport``)."""

    report: strawberry.Private[changeset.ChangeReport]

    @field(description="The diff: every node added or updated, with its fields before -> after.")
    def changes(self) -> list[ApplyNodeChange]:
        return [ApplyNodeChange.from_model(c) for c in self.report.node_changes()]

    @field(description="Every relation added, updated (properties) or removed.")
    def relation_changes(self) -> list[ApplyRelationChange]:
        return [ApplyRelationChange.from_model(c) for c in self.report.relation_changes]


__all__ = [
    "ApplyFieldChange",
    "ApplyNodeChange",
    "ApplyOperation",
    "ApplyRelationChange",
    "WriteDiff",
]
