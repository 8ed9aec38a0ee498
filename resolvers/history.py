"""GraphQL type of a recorded change."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.scalars import JSON

from metadata.store import Change


@strawberry.type(description="One recorded change of a node: what it was before and after.")
class ChangeRecord:
    id: int
    operation: str
    at: datetime | None
    before: JSON | None
    after: JSON | None

    @classmethod
    def from_model(cls, change: Change) -> ChangeRecord:
        """Map a stored change."""
        return cls(
            id=change.id,
            operation=change.op,
            at=change.at,
            before=change.before,
            after=change.after,
        )


__all__ = ["ChangeRecord"]
