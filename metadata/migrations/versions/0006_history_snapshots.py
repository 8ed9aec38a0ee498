"""Time travel: periodic catalog snapshots beside the change log (issue 14).

Placeholder reserved for the snapshot tables; it changes nothing yet.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
