"""Initial schema: nodes, node_tags, relations, history.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ID = 160


def upgrade() -> None:
    op.create_table(
        "nodes",
        sa.Column("id", sa.String(ID), primary_key=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("lifecycle", sa.String(16), nullable=False),
        sa.Column("owner_id", sa.String(ID), sa.ForeignKey("nodes.id"), nullable=True),
        sa.Column("properties", sa.JSON(), nullable=True),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_nodes_kind", "nodes", ["kind"])
    op.create_index("ix_nodes_lifecycle", "nodes", ["lifecycle"])
    op.create_index("ix_nodes_owner_id", "nodes", ["owner_id"])
    op.create_table(
        "node_tags",
        sa.Column(
            "node_id",
            sa.String(ID),
            sa.ForeignKey("nodes.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("tag", sa.String(200), primary_key=True),
    )
    op.create_index("ix_node_tags_tag", "node_tags", ["tag"])
    op.create_table(
        "relations",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("from_id", sa.String(ID), sa.ForeignKey("nodes.id"), nullable=False),
        sa.Column("type", sa.String(20), nullable=False),
        sa.Column("to_id", sa.String(ID), sa.ForeignKey("nodes.id"), nullable=False),
        sa.Column("properties", sa.JSON(), nullable=True),
        sa.UniqueConstraint("from_id", "type", "to_id", name="uq_relation"),
    )
    op.create_index("ix_relations_to", "relations", ["to_id", "type"])
    op.create_table(
        "history",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("target", sa.String(10), nullable=False),
        sa.Column("target_id", sa.String(3 * ID), nullable=False),
        sa.Column("op", sa.String(10), nullable=False),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
    )
    op.create_index("ix_history_target", "history", ["target_id", "id"])


def downgrade() -> None:
    op.drop_table("history")
    op.drop_table("relations")
    op.drop_table("node_tags")
    op.drop_table("nodes")
