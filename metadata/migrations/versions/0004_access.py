"""Access control: the hub's API tokens, and who made each recorded change.

``api_tokens`` keeps one row per token the hub issued (only the sha256 of its text); history
gains ``actor`` and ``request_id``, None for the changes recorded before.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("teams", sa.JSON(), nullable=False),
        sa.Column("rights", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("token_hash", name="uq_api_tokens_token_hash"),
    )
    # Nullable columns: a plain ALTER TABLE ... ADD COLUMN, on SQLite too (no table rebuild).
    op.add_column("history", sa.Column("actor", sa.String(200), nullable=True))
    op.add_column("history", sa.Column("request_id", sa.String(64), nullable=True))
    # The audit log pages one actor's changes newest first.
    op.create_index("ix_history_actor", "history", ["actor", "id"])


def downgrade() -> None:
    op.drop_index("ix_history_actor", table_name="history")
    with op.batch_alter_table("history") as batch:
        batch.drop_column("request_id")
        batch.drop_column("actor")
    op.drop_table("api_tokens")
