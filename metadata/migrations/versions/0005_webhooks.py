"""Webhooks: registered receivers and their delivery queue (issue 14).

Placeholder reserved for the webhook tables; it changes nothing yet.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
