"""SQLAlchemy tables of the metadata repository: nodes, tags, relations, history, API tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

ID_LENGTH = 160


class Base(DeclarativeBase):
    """Declarative base of the repository's tables."""


class NodeRow(Base):
    """One catalog node; ``attributes`` is only filled for data entities."""

    __tablename__ = "nodes"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    key: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    tags: Mapped[list[str]] = mapped_column(JSON)
    lifecycle: Mapped[str] = mapped_column(String(16), index=True)
    owner_id: Mapped[str | None] = mapped_column(
        String(ID_LENGTH), ForeignKey("nodes.id"), index=True
    )
    properties: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    attributes: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    # Listings by kind read this index in id order (migration 0003).
    __table_args__ = (Index("ix_nodes_kind_id", "kind", "id"),)


class NodeTagRow(Base):
    """A node's tag, one row each, so tag filters and facets use an index."""

    __tablename__ = "node_tags"

    node_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("nodes.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(200), primary_key=True, index=True)


class RelationRow(Base):
    """A typed, directed relation; (from_id, type, to_id) is unique."""

    __tablename__ = "relations"
    __table_args__ = (
        UniqueConstraint("from_id", "type", "to_id", name="uq_relation"),
        Index("ix_relations_to", "to_id", "type"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    from_id: Mapped[str] = mapped_column(String(ID_LENGTH), ForeignKey("nodes.id"))
    type: Mapped[str] = mapped_column(String(20))
    to_id: Mapped[str] = mapped_column(String(ID_LENGTH), ForeignKey("nodes.id"))
    properties: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class HistoryRow(Base):
    """One recorded change of a node or relation; its id orders the change log."""

    __tablename__ = "history"
    __table_args__ = (
        Index("ix_history_target", "target_id", "id"),
        Index("ix_history_actor", "actor", "id"),
        # An instant resolves to a change id through this index (migration 0006).
        Index("ix_history_at", "at", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    target: Mapped[str] = mapped_column(String(10))  # "node" | "relation"
    target_id: Mapped[str] = mapped_column(String(3 * ID_LENGTH))
    op: Mapped[str] = mapped_column(String(10))  # "create" | "update" | "delete"
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Who made the change and in which request (migration 0004; None before it).
    actor: Mapped[str | None] = mapped_column(String(200))
    request_id: Mapped[str | None] = mapped_column(String(64))


class ApiTokenRow(Base):
    """A hub-issued API token of a machine; only the sha256 of its text is stored.

    Revoked tokens keep their row (``revoked_at`` set), so a name is never issued twice and
    ``token:NAME`` in history always means one token.
    """

    __tablename__ = "api_tokens"
    __table_args__ = (UniqueConstraint("token_hash", name="uq_api_tokens_token_hash"),)

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64))  # sha256 hex of the token text
    role: Mapped[str] = mapped_column(String(16))
    teams: Mapped[list[str]] = mapped_column(JSON)
    rights: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class HistorySnapshotRow(Base):
    """The whole catalog as it stood after change ``change_id``: zlib-compressed JSON of every
    node's history image and every relation (``catalog.changes.snapshots``, migration 0006)."""

    __tablename__ = "history_snapshots"

    change_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    nodes: Mapped[int] = mapped_column(Integer)
    relations: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class WebhookRow(Base):
    """A registered webhook receiver (migration 0005); ``cursor`` is the last change id the
    dispatcher has considered for it (later changes wait in history)."""

    __tablename__ = "webhooks"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    kinds: Mapped[list[str]] = mapped_column(JSON)
    ids: Mapped[list[str]] = mapped_column(JSON)
    types: Mapped[list[str]] = mapped_column(JSON)
    operations: Mapped[list[str]] = mapped_column(JSON)
    secret: Mapped[str] = mapped_column(Text)  # "plain:whsec_..." or "fernet:<token>"
    status: Mapped[str] = mapped_column(String(16))  # "active" | "paused"
    cursor: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(String(200))


class WebhookDeliveryRow(Base):
    """One event queued for one webhook: its exact body, its attempts, its lease."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("webhook_id", "change_id", name="uq_webhook_delivery"),
        Index("ix_webhook_deliveries_due", "status", "webhook_id", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    webhook_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("webhooks.id", ondelete="CASCADE")
    )
    change_id: Mapped[int] = mapped_column(Integer)
    event_id: Mapped[str] = mapped_column(String(80))
    event_type: Mapped[str] = mapped_column(String(40))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))  # "pending" | "delivered" | "failed"
    attempts: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    first_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


nodes: Table = NodeRow.__table__  # type: ignore[assignment]
node_tags: Table = NodeTagRow.__table__  # type: ignore[assignment]
relations: Table = RelationRow.__table__  # type: ignore[assignment]
history: Table = HistoryRow.__table__  # type: ignore[assignment]
api_tokens: Table = ApiTokenRow.__table__  # type: ignore[assignment]
webhooks: Table = WebhookRow.__table__  # type: ignore[assignment]
webhook_deliveries: Table = WebhookDeliveryRow.__table__  # type: ignore[assignment]
history_snapshots: Table = HistorySnapshotRow.__table__  # type: ignore[assignment]

__all__ = [
    "ApiTokenRow",
    "Base",
    "HistoryRow",
    "HistorySnapshotRow",
    "NodeRow",
    "NodeTagRow",
    "RelationRow",
    "WebhookDeliveryRow",
    "WebhookRow",
    "api_tokens",
    "history",
    "history_snapshots",
    "nodes",
    "webhook_deliveries",
    "webhooks",
]
