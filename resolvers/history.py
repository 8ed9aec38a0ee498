"""GraphQL types of recorded changes: a node's history and the audit log."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.scalars import JSON

from metadata.store import Change
from resolvers.paging import PageInfo


@strawberry.type(description="One recorded change of a node or relation: before, after, who.")
class ChangeRecord:
    id: int
    operation: str
    at: datetime | None
    before: JSON | None
    after: JSON | None
    target: str = strawberry.field(description="What changed: `node` or `relation`.")
    target_id: str = strawberry.field(
        description="The node's id, or the relation as `from|TYPE|to`."
    )
    actor: str | None = strawberry.field(
        description="Who made the change: `token:NAME` (hub token), `user:SUB` (JWT), "
        "`local:USER` (command line), `anonymous` (auth off); null for changes recorded "
        "before the hub recorded actors."
    )
    request_id: str | None = strawberry.field(
        description="The request that made it (the client's X-Request-Id, or one the hub gave)."
    )

    @classmethod
    def from_model(cls, change: Change) -> ChangeRecord:
        """Map a stored change."""
        return cls(
            id=change.id,
            operation=change.op,
            at=change.at,
            before=None if change.before is None else JSON(change.before),
            after=None if change.after is None else JSON(change.after),
            target=change.target,
            target_id=change.target_id,
            actor=change.actor,
            request_id=change.request_id,
        )


@strawberry.type
class ChangeEdge:
    cursor: str
    node: ChangeRecord


@strawberry.type(description="A page of the audit log, newest change first.")
class ChangeConnection:
    edges: list[ChangeEdge]
    page_info: PageInfo


__all__ = ["ChangeConnection", "ChangeEdge", "ChangeRecord"]
