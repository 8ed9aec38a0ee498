"""Time travel: periodic catalog snapshots beside the change log (issue 14).

``history_snapshots`` keeps the whole catalog as it stood after one change id (compressed), so a
past state is rebuilt from the nearest snapshot plus the changes after it rather than by
replaying the whole log; ``ix_history_at`` resolves an instant to the change id it stands at.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "history_snapshots",
        sa.Column("change_id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("nodes", sa.Integer(), nullable=False),
        sa.Column("relations", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
    )
    op.create_index("ix_history_at", "history", ["at", "id"])


def downgrade() -> None:
    op.drop_index("ix_history_at", table_name="history")
    op.drop_table("history_snapshots")
