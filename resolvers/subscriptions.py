"""GraphQL subscriptions: ``catalogChanged``, the catalog's committed changes, live.

Served over WebSocket (``graphql-transport-ws``) on ``/graphql`` (``catalog.changes.websocket``);
the changes come from the process's change feed (``catalog.changes.feed``).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime

import strawberry
from strawberry.scalars import JSON

from catalog.changes import feed
from catalog.changes.feed import ChangeFilter
from metadata.model import KIND_BY_PREFIX
from metadata.store import Change
from resolvers._fields import subscription
from resolvers.context import CatalogInfo
from resolvers.enums import Kind, RelationType

# strawberry.enum puts the definition on the feed's enum and returns it: one class.
strawberry.enum(
    feed.ChangeOperation,
    name="ChangeOperation",
    description="What a change did; RETIRE is an update that moved a node to RETIRED.",
)
ChangeOperation = feed.ChangeOperation


@strawberry.type(description="One committed change of the catalog, as the change log holds it.")
class CatalogChange:
    version: int = strawberry.field(
        description="The change log id of this change (the catalog version it made): pass the "
        "last one you received as `after` to resume without a gap or a repeat."
    )
    operation: ChangeOperation
    target: str = strawberry.field(description="What changed: `node` or `relation`.")
    target_id: strawberry.ID = strawberry.field(
        description="The node's id, or the relation as `from|TYPE|to`."
    )
    kind: Kind | None = strawberry.field(description="The node's kind (null for relations).")
    relation_type: RelationType | None = strawberry.field(
        description="The relation's type (null for nodes)."
    )
    before: JSON | None = strawberry.field(description="The image before (null: created).")
    after: JSON | None = strawberry.field(description="The image after (null: deleted).")
    truncated: bool = strawberry.field(
        description="True when before and after were left out because together they are "
        "larger than CAPAHUB_SUBSCRIPTION_MAX_MESSAGE_BYTES; read them with "
        "`history(id: targetId)`."
    )
    actor: str | None = strawberry.field(description="Who made the change.")
    request_id: str | None = strawberry.field(description="The request that made it.")
    at: datetime = strawberry.field(description="When it was committed.")

    @classmethod
    def from_model(cls, change: Change, *, truncated: bool = False) -> CatalogChange:
        """Map a committed change."""
        kind = None
        if change.target == "node":
            kind = KIND_BY_PREFIX.get(change.target_id.partition(":")[0])
        assert change.at is not None  # every committed change has its time
        return cls(
            version=change.id,
            operation=feed.operation_of(change),
            target=change.target,
            target_id=strawberry.ID(change.target_id),
            kind=kind,
            relation_type=feed.relation_type_of(change),
            before=None if truncated or change.before is None else JSON(change.before),
            after=None if truncated or change.after is None else JSON(change.after),
            truncated=truncated,
            actor=change.actor,
            request_id=change.request_id,
            at=change.at,
        )


@strawberry.type
class CatalogSubscription:
    @subscription(
        description="Every committed change of the catalog (this process's, `capahub apply`'s "
        "and other replicas'), once each, in commit order. Each given filter must match: "
        "`kinds` (a node of such a kind, or a relation with an end of one), `ids` (that node, "
        "or a relation at it), `types` (relations of these types only). `after`: start after "
        "this version (the `version` of the last change you saw) to get what you missed "
        "first; default: from now."
    )
    async def catalog_changed(
        self,
        info: CatalogInfo,
        kinds: list[Kind] | None = None,
        ids: list[strawberry.ID] | None = None,
        types: list[RelationType] | None = None,
        after: int | None = None,
    ) -> AsyncGenerator[CatalogChange, None]:
        # Arguments are checked and the subscription registered before the stream is returned,
        # so a refusal is the operation's `error` message, not an event.
        flt = ChangeFilter.of(kinds, [str(i) for i in ids or ()], types)
        changes = info.context.services.feed
        subscription = await changes.subscribe(flt, after)
        return _events(changes, subscription)


async def _events(
    changes: feed.ChangeFeed, subscription: feed.Subscription
) -> AsyncGenerator[CatalogChange, None]:
    source = subscription.changes()
    try:
        async for change in source:
            yield CatalogChange.from_model(change, truncated=changes.too_big(change))
    finally:
        await source.aclose()
        subscription.close()


__all__ = ["CatalogChange", "CatalogSubscription", "ChangeOperation"]
