"""Webhooks through the API: register, list, pause, resume, delete, and the delivery log
(admin only, docs/security.md; docs/webhooks.md)."""

from __future__ import annotations

import enum
from datetime import datetime

import strawberry

from catalog.changes.webhooks import (
    DeliveryRecord,
    DeliveryStatus,
    WebhookRecord,
    delivery_cursor,
)
from metadata import model
from resolvers._fields import field, mutation
from resolvers.context import CatalogInfo
from resolvers.enums import Kind, RelationType
from resolvers.paging import PageInfo


@strawberry.enum(description="Which changes a webhook receives, by what was done.")
class WebhookOperation(enum.Enum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


@strawberry.enum(description="Whether a webhook is sent its events.")
class WebhookStatus(enum.Enum):
    ACTIVE = "active"
    PAUSED = "paused"


# strawberry.enum puts the definition on the change log's enum and returns it: one class.
strawberry.enum(
    DeliveryStatus,
    name="WebhookDeliveryStatus",
    description="PENDING (queued or being retried), DELIVERED, FAILED (retry window passed).",
)
WebhookDeliveryStatus = DeliveryStatus


@strawberry.type(description="A registered webhook (its secret is shown only at registration).")
class Webhook:
    id: strawberry.ID
    url: str
    description: str | None
    kinds: list[Kind]
    ids: list[strawberry.ID]
    types: list[RelationType]
    operations: list[WebhookOperation]
    status: WebhookStatus
    created_at: datetime
    created_by: str
    pending_deliveries: int = strawberry.field(
        description="Events queued and not delivered yet (more may wait in the change log "
        "when the queue is full)."
    )
    queued_through: int = strawberry.field(
        description="The last change id the dispatcher has considered for this webhook."
    )

    @classmethod
    def from_model(cls, rec: WebhookRecord) -> Webhook:
        """Map a stored webhook."""
        f = rec.filter
        return cls(
            id=strawberry.ID(rec.id),
            url=rec.url,
            description=rec.description,
            kinds=[model.Kind(k) for k in sorted(f.kinds)],
            ids=[strawberry.ID(i) for i in sorted(f.ids)],
            types=[model.RelationType(t) for t in sorted(f.types)],
            operations=[WebhookOperation(o) for o in sorted(f.operations)],
            status=WebhookStatus(rec.status),
            created_at=rec.created_at,
            created_by=rec.created_by,
            pending_deliveries=rec.pending,
            queued_through=rec.cursor,
        )


@strawberry.type(description="A new webhook and its secret, shown this once.")
class RegisteredWebhook:
    secret: str = strawberry.field(
        description="The Standard Webhooks secret (`whsec_...`) the receiver verifies with."
    )
    webhook: Webhook


@strawberry.input(description="A webhook to register; empty filters let every change through.")
class WebhookInput:
    url: str = strawberry.field(description="http(s) URL the events are POSTed to.")
    kinds: list[Kind] | None = strawberry.field(
        default=None, description="Node kinds (a relation matches by either end)."
    )
    ids: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Node ids, at most 100 (a relation matches by either end)."
    )
    types: list[RelationType] | None = strawberry.field(
        default=None, description="Relation types (given: only relation events)."
    )
    operations: list[WebhookOperation] | None = None
    secret: str | None = strawberry.field(
        default=None, description="`whsec_` + base64 of 24-64 bytes; left out, the hub makes one."
    )
    description: str | None = None


@strawberry.type(description="One event queued for a webhook and how its delivery went.")
class WebhookDelivery:
    id: strawberry.ID = strawberry.field(description="The `webhook-id` header: same on retries.")
    change_id: int
    event_type: str = strawberry.field(description="`node.updated`, `relation.created` ...")
    status: WebhookDeliveryStatus
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_status_code: int | None = strawberry.field(description="The receiver's HTTP status.")
    last_error: str | None

    @classmethod
    def from_model(cls, rec: DeliveryRecord) -> WebhookDelivery:
        """Map a stored delivery."""
        return cls(
            id=strawberry.ID(rec.event_id),
            change_id=rec.change_id,
            event_type=rec.event_type,
            status=DeliveryStatus(rec.status),
            attempts=rec.attempts,
            created_at=rec.created_at,
            next_attempt_at=rec.next_attempt_at,
            last_attempt_at=rec.last_attempt_at,
            last_status_code=rec.last_status,
            last_error=rec.last_error,
        )


@strawberry.type
class WebhookDeliveryEdge:
    cursor: str
    node: WebhookDelivery


@strawberry.type(description="A page of a webhook's delivery log, newest first.")
class WebhookDeliveryConnection:
    edges: list[WebhookDeliveryEdge]
    page_info: PageInfo


@strawberry.type
class WebhookQuery:
    """Registered webhooks and their delivery log."""

    @field(description="Every registered webhook, oldest first.")
    async def webhooks(self, info: CatalogInfo) -> list[Webhook]:
        return [Webhook.from_model(r) for r in await info.context.services.webhooks.list()]

    @field(description="One webhook's deliveries, newest first.")
    async def webhook_deliveries(
        self,
        info: CatalogInfo,
        webhook: strawberry.ID,
        status: list[WebhookDeliveryStatus] | None = None,
        first: int | None = 50,
        after: str | None = None,
    ) -> WebhookDeliveryConnection:
        recs, more = await info.context.services.webhooks.deliveries(
            str(webhook), statuses=status or (), first=50 if first is None else first, after=after
        )
        edges = [
            WebhookDeliveryEdge(cursor=delivery_cursor(r), node=WebhookDelivery.from_model(r))
            for r in recs
        ]
        return WebhookDeliveryConnection(
            edges=edges,
            page_info=PageInfo(
                has_next_page=more,
                has_previous_page=after is not None,
                start_cursor=edges[0].cursor if edges else None,
                end_cursor=edges[-1].cursor if edges else None,
            ),
        )


@strawberry.type
class WebhookMutation:
    """Register and manage webhooks."""

    @mutation(description="Register a webhook; the answer holds its secret, once.")
    async def register_webhook(self, info: CatalogInfo, input: WebhookInput) -> RegisteredWebhook:
        rec, secret = await info.context.services.webhooks.register(
            input.url,
            kinds=input.kinds or (),
            ids=[str(i) for i in input.ids or ()],
            types=input.types or (),
            operations=[o.value for o in input.operations or ()],
            secret=input.secret,
            description=input.description,
            created_by=info.context.principal.actor,
        )
        return RegisteredWebhook(secret=secret, webhook=Webhook.from_model(rec))

    @mutation(description="Pause a webhook: its events are queued and wait.")
    async def pause_webhook(self, info: CatalogInfo, id: strawberry.ID) -> Webhook:
        return Webhook.from_model(
            await info.context.services.webhooks.set_status(str(id), "paused")
        )

    @mutation(description="Resume a paused webhook: its queue is delivered in order.")
    async def resume_webhook(self, info: CatalogInfo, id: strawberry.ID) -> Webhook:
        return Webhook.from_model(
            await info.context.services.webhooks.set_status(str(id), "active")
        )

    @mutation(description="Delete a webhook with its queue and delivery log.")
    async def delete_webhook(self, info: CatalogInfo, id: strawberry.ID) -> bool:
        return await info.context.services.webhooks.delete(str(id))


__all__ = ["WebhookMutation", "WebhookQuery"]
