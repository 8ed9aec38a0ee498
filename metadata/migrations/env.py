"""Alembic environment: runs on the connection the store hands over (see metadata.store)."""

from __future__ import annotations

from alembic import context

from metadata.tables import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - the store always passes a connection
    raise RuntimeError("capahub runs its migrations through metadata.store.migrate()")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
