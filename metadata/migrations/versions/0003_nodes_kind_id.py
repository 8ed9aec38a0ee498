"""Listings by kind read the index in id order: ``ix_nodes_kind`` becomes (kind, id).

A page of one kind (``capabilities(first: 100)``) then reads 101 index entries instead of
sorting every node of the kind, and the kind's count reads the index alone.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_nodes_kind_id", "nodes", ["kind", "id"])
    op.drop_index("ix_nodes_kind", table_name="nodes")


def downgrade() -> None:
    op.create_index("ix_nodes_kind", "nodes", ["kind"])
    op.drop_index("ix_nodes_kind_id", table_name="nodes")
