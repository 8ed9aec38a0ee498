"""Webhooks: registering receivers, their filters and secrets, and reading the delivery log.

A webhook is a URL, a filter (node kinds, node ids, relation types, operations) and a
Standard Webhooks secret. Events are not handed over by the process that made a change: the
delivery worker (``catalog.changes.delivery``) moves them from the change log into each
webhook's queue, so changes written by any process or replica reach every webhook. This
module is what the admin API calls; docs/webhooks.md describes the whole.
"""

from __future__ import annotations

import asyncio
import builtins
import enum
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import delete, func, insert, select, update

from catalog.changes.signing import SecretBox, generate_secret, secret_bytes
from catalog.discovery import decode_cursor, encode_cursor
from catalog.harvest.fetch import FetchPolicy, resolve_host
from catalog.settings import Settings
from metadata.errors import (
    CatalogError,
    InvalidInputError,
    NotAllowedError,
    NotFoundError,
)
from metadata.model import Kind, RelationType, parse_id
from metadata.store import Change, Store
from metadata.tables import history, webhook_deliveries, webhooks

MAX_URL = 2048
MAX_DESCRIPTION = 500
MAX_FILTER_IDS = 100
#: Seconds a registration waits for the URL's host to resolve.
RESOLVE_TIMEOUT = 5.0
OPERATIONS = ("create", "update", "delete")


class DeliveryStatus(enum.Enum):
    """Where a delivery stands."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


def _utc(dt: datetime | None) -> datetime | None:
    if dt is None:
        return None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class WebhookFilter:
    """Which changes a webhook receives; an empty list does not filter, given ones all must
    match (AND). Kinds and ids match a node, or either end of a relation; ``types`` matches
    relations only (so a webhook with types gets no node events)."""

    kinds: frozenset[str] = frozenset()
    ids: frozenset[str] = frozenset()
    types: frozenset[str] = frozenset()
    operations: frozenset[str] = frozenset()

    def matches(self, change: Change) -> bool:
        """Whether ``change`` is one of this webhook's events."""
        if self.operations and change.op not in self.operations:
            return False
        if change.target == "relation":
            src, rtype, dst = (change.target_id.split("|") + ["", ""])[:3]
            if self.types and rtype not in self.types:
                return False
            ends: tuple[str, ...] = (src, dst)
        else:
            if self.types:
                return False
            ends = (change.target_id,)
        if self.ids and not any(e in self.ids for e in ends):
            return False
        return not self.kinds or any(e.partition(":")[0] in self.kinds for e in ends)


@dataclass(frozen=True, slots=True)
class WebhookRecord:
    """A registered webhook, as the API shows it (never its secret)."""

    id: str
    url: str
    description: str | None
    filter: WebhookFilter
    status: str
    cursor: int
    created_at: datetime
    created_by: str
    pending: int = 0


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """One queued event of one webhook and how its delivery went."""

    id: int
    webhook_id: str
    change_id: int
    event_id: str
    event_type: str
    status: str
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_status: int | None
    last_error: str | None


def webhook_from_row(row: Any, pending: int = 0) -> WebhookRecord:
    """Build a ``WebhookRecord`` from a row of the webhooks table."""
    return WebhookRecord(
        id=row.id,
        url=row.url,
        description=row.description,
        filter=WebhookFilter(
            frozenset(row.kinds or ()),
            frozenset(row.ids or ()),
            frozenset(row.types or ()),
            frozenset(row.operations or ()),
        ),
        status=row.status,
        cursor=int(row.cursor),
        created_at=_utc(row.created_at) or datetime.now(UTC),
        created_by=row.created_by,
        pending=pending,
    )


def _delivery(row: Any) -> DeliveryRecord:
    return DeliveryRecord(
        id=row.id,
        webhook_id=row.webhook_id,
        change_id=row.change_id,
        event_id=row.event_id,
        event_type=row.event_type,
        status=row.status,
        attempts=row.attempts,
        created_at=_utc(row.created_at) or datetime.now(UTC),
        next_attempt_at=_utc(row.next_attempt_at),
        last_attempt_at=_utc(row.last_attempt_at),
        last_status=row.last_status,
        last_error=row.last_error,
    )


def _names(values: Iterable[str], allowed: Iterable[str], field: str) -> list[str]:
    known = list(allowed)
    out = sorted(set(values))
    for v in out:
        if v not in known:
            raise InvalidInputError(
                f"{field}: unknown value {v[:40]!r}; use one of {', '.join(known)}", field=field
            )
    return out


class WebhookService:
    """Registers, lists, pauses, resumes and deletes webhooks; reads their delivery log."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.policy = FetchPolicy.from_settings(settings, trusted=False)
        self.box = SecretBox(settings.webhook_secret_key.get_secret_value())

    async def check_url(self, url: str) -> str:
        """The URL, if a webhook may be sent there: http(s), a host, no credentials, and a
        public address unless ``CAPAHUB_HARVEST_ALLOWED_HOSTS`` lists the host.

        Raises:
            InvalidInputError: not such a URL.
            NotAllowedError: a loopback, private or link-local address.
        """
        url = url.strip()
        if not url or len(url) > MAX_URL:
            raise InvalidInputError(
                f"url: give an http(s) URL of 1-{MAX_URL} characters", field="url"
            )
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as err:
            raise InvalidInputError(f"url: not a URL ({err})", field="url") from None
        if parts.scheme.lower() not in ("http", "https"):
            raise InvalidInputError(
                f"url: the scheme {parts.scheme[:20]!r} is not allowed; webhooks are sent to "
                "http(s) URLs",
                field="url",
            )
        if not parts.hostname:
            raise InvalidInputError("url: the URL names no host", field="url")
        if parts.username is not None or parts.password is not None:
            raise InvalidInputError(
                "url: credentials in the URL are not accepted; the receiver authenticates "
                "deliveries by their signature",
                field="url",
            )
        if any(ord(c) < 33 or ord(c) == 127 for c in url):
            raise InvalidInputError(
                "url: spaces and control characters are not allowed", field="url"
            )
        default = 443 if parts.scheme.lower() == "https" else 80
        try:
            async with asyncio.timeout(RESOLVE_TIMEOUT):
                await resolve_host(parts.hostname, port or default, self.policy.allowed_hosts)
        except TimeoutError:
            raise InvalidInputError(
                f"url: host {parts.hostname[:100]!r} did not resolve within {RESOLVE_TIMEOUT:g} s",
                field="url",
            ) from None
        except NotAllowedError:
            raise NotAllowedError(
                f"url: host {parts.hostname[:100]!r} resolves to a loopback, private or "
                "link-local address; webhooks reach such hosts only when "
                "CAPAHUB_HARVEST_ALLOWED_HOSTS lists them",
                field="url",
            ) from None
        except CatalogError as err:
            raise InvalidInputError(f"url: {err.message}", field="url") from None
        return url

    async def register(
        self,
        url: str,
        *,
        kinds: Sequence[Kind] = (),
        ids: Sequence[str] = (),
        types: Sequence[RelationType] = (),
        operations: Sequence[str] = (),
        secret: str | None = None,
        description: str | None = None,
        created_by: str,
    ) -> tuple[WebhookRecord, str]:
        """Register a webhook; returns it and its secret (shown this once). It receives the
        changes committed after it is registered.

        Raises:
            InvalidInputError: a bad URL, filter, secret or description, or too many webhooks.
            NotAllowedError: a URL to a forbidden address.
        """
        if description is not None and len(description) > MAX_DESCRIPTION:
            raise InvalidInputError(
                f"description: at most {MAX_DESCRIPTION} characters", field="description"
            )
        if len(ids) > MAX_FILTER_IDS:
            raise InvalidInputError(f"ids: at most {MAX_FILTER_IDS} ids", field="ids")
        for node_id in ids:
            parse_id(node_id, field="ids")
        ops = _names([o.lower() for o in operations], OPERATIONS, "operations")
        if secret is None:
            secret = generate_secret()
        else:
            secret_bytes(secret)
        url = await self.check_url(url)
        webhook_id = "wh_" + secrets.token_hex(8)
        now = datetime.now(UTC)
        async with self.store.transaction() as tx:
            count = (await tx.conn.execute(select(func.count()).select_from(webhooks))).scalar()
            if int(count or 0) >= self.settings.webhook_max_count:
                raise InvalidInputError(
                    f"input: the hub keeps at most {self.settings.webhook_max_count} webhooks "
                    "(CAPAHUB_WEBHOOK_MAX_COUNT); delete one first",
                    field="input",
                )
            cursor = (await tx.conn.execute(select(func.max(history.c.id)))).scalar()
            values = {
                "id": webhook_id,
                "url": url,
                "description": description,
                "kinds": sorted({k.value for k in kinds}),
                "ids": sorted(set(ids)),
                "types": sorted({t.value for t in types}),
                "operations": ops,
                "secret": self.box.seal(secret),
                "status": "active",
                "cursor": int(cursor or 0),
                "created_at": now,
                "created_by": created_by[:200],
            }
            await tx.conn.execute(insert(webhooks).values(**values))
            row = (await tx.conn.execute(select(webhooks).where(webhooks.c.id == webhook_id))).one()
        return webhook_from_row(row), secret

    async def list(self) -> list[WebhookRecord]:
        """Every webhook with its number of pending deliveries (two statements), oldest first."""
        async with self.store.read() as r:
            rows = (await r.conn.execute(select(webhooks).order_by(webhooks.c.created_at))).all()
            counts: dict[str, int] = dict(
                (
                    await r.conn.execute(
                        select(webhook_deliveries.c.webhook_id, func.count())
                        .where(webhook_deliveries.c.status == "pending")
                        .group_by(webhook_deliveries.c.webhook_id)
                    )
                ).all()
            )
        return [webhook_from_row(row, int(counts.get(row.id, 0))) for row in rows]

    async def get(self, webhook_id: str) -> WebhookRecord:
        """One webhook, or ``NotFoundError``."""
        for rec in await self.list():
            if rec.id == webhook_id:
                return rec
        raise NotFoundError(f"id: no webhook {webhook_id[:60]!r}", field="id")

    async def set_status(self, webhook_id: str, status: str) -> WebhookRecord:
        """Pause (events keep being queued, up to the queue bound, and wait) or resume."""
        async with self.store.transaction() as tx:
            done = await tx.conn.execute(
                update(webhooks).where(webhooks.c.id == webhook_id).values(status=status)
            )
            if done.rowcount != 1:
                raise NotFoundError(f"id: no webhook {webhook_id[:60]!r}", field="id")
        return await self.get(webhook_id)

    async def delete(self, webhook_id: str) -> bool:
        """Delete a webhook and its queue and log; undelivered events are dropped with it."""
        async with self.store.transaction() as tx:
            await tx.conn.execute(
                delete(webhook_deliveries).where(webhook_deliveries.c.webhook_id == webhook_id)
            )
            done = await tx.conn.execute(delete(webhooks).where(webhooks.c.id == webhook_id))
            if done.rowcount != 1:
                raise NotFoundError(f"id: no webhook {webhook_id[:60]!r}", field="id")
        return True

    async def deliveries(
        self,
        webhook_id: str,
        *,
        statuses: Sequence[DeliveryStatus] = (),
        first: int = 50,
        after: str | None = None,
    ) -> tuple[builtins.list[DeliveryRecord], bool]:
        """A page of one webhook's delivery log, newest first; and whether more follow."""
        if not 0 <= first <= self.settings.max_page_size:
            raise InvalidInputError(
                f"first: must be between 0 and {self.settings.max_page_size}", field="first"
            )
        d = webhook_deliveries.c
        stmt = select(webhook_deliveries).where(d.webhook_id == webhook_id)
        if statuses:
            stmt = stmt.where(d.status.in_([s.value for s in statuses]))
        if after is not None:
            raw = decode_cursor(after)
            if not raw.startswith("d") or not raw[1:].isdigit() or len(raw) > 20:
                raise InvalidInputError("after: not a cursor of this delivery log", field="after")
            stmt = stmt.where(d.id < int(raw[1:]))
        stmt = stmt.order_by(d.id.desc()).limit(first + 1)
        async with self.store.read() as r:
            exists = (
                await r.conn.execute(select(webhooks.c.id).where(webhooks.c.id == webhook_id))
            ).first()
            if exists is None:
                raise NotFoundError(f"webhook: no webhook {webhook_id[:60]!r}", field="webhook")
            rows = (await r.conn.execute(stmt)).all()
        return [_delivery(row) for row in rows[:first]], len(rows) > first


def delivery_cursor(rec: DeliveryRecord) -> str:
    """The cursor of a delivery in its webhook's log."""
    return encode_cursor(f"d{rec.id}")


__all__ = [
    "DeliveryRecord",
    "DeliveryStatus",
    "WebhookFilter",
    "WebhookRecord",
    "WebhookService",
    "delivery_cursor",
    "webhook_from_row",
]
