"""Search index: search_docs, search_domains, search_state; FTS5 (SQLite) or tsvector + GIN (PG).

The tables start empty; the hub fills them on its next start (``Search.ensure_built``) or
``capahub reindex`` does.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

ID = 160


def _doc_columns() -> list[sa.Column[Any]]:
    return [
        # Rising, never reused (search_state hands them out): a document never changes.
        sa.Column(
            "doc_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=False,
        ),
        sa.Column("node_id", sa.String(ID), nullable=False, unique=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("lifecycle", sa.String(16), nullable=False),
        sa.Column("owner_id", sa.String(ID), nullable=True),
        sa.Column("name_norm", sa.Text(), nullable=False),
        sa.Column("key_norm", sa.Text(), nullable=False),
        sa.Column("leaf_norm", sa.Text(), nullable=False),
        sa.Column("related_names", sa.Text(), nullable=False),
        sa.Column("tag_list", sa.Text(), nullable=False),  # tags joined by U+001F
        sa.Column("domain_list", sa.Text(), nullable=False),  # domain ids joined by U+001F
    ]


def upgrade() -> None:
    bind = op.get_bind()
    op.create_table(
        "search_state",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("next_doc_id", sa.BigInteger(), nullable=False),
    )
    op.execute("INSERT INTO search_state (id, next_doc_id) VALUES (1, 1)")
    op.create_table(
        "search_domains",
        sa.Column("node_id", sa.String(ID), primary_key=True),
        sa.Column("domain_id", sa.String(ID), primary_key=True),
    )
    op.create_index("ix_search_domains_domain", "search_domains", ["domain_id"])
    if bind.dialect.name == "postgresql":
        # Stemming without stop words, so that every word of a query counts, as in SQLite.
        op.execute(
            "CREATE TEXT SEARCH DICTIONARY capahub_stem (TEMPLATE = snowball, Language = english)"
        )
        op.execute("CREATE TEXT SEARCH CONFIGURATION capahub (COPY = simple)")
        op.execute(
            "ALTER TEXT SEARCH CONFIGURATION capahub ALTER MAPPING FOR asciiword, word, "
            "hword_asciipart, hword_part, asciihword, hword WITH capahub_stem"
        )
        op.create_table(
            "search_docs",
            *_doc_columns(),
            sa.Column("tsv", postgresql.TSVECTOR(), nullable=False),
        )
        op.create_index("ix_search_docs_tsv", "search_docs", ["tsv"], postgresql_using="gin")
    else:
        op.create_table("search_docs", *_doc_columns())
        # Words only (the documents are tokenized by metadata.search); porter stems them.
        op.execute(
            "CREATE VIRTUAL TABLE search_fts USING fts5("
            "name, key, tags, body, attributes, related, "
            "tokenize = 'porter unicode61 remove_diacritics 2', prefix = '2 3')"
        )


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.drop_table("search_docs")
        op.execute("DROP TEXT SEARCH CONFIGURATION capahub")
        op.execute("DROP TEXT SEARCH DICTIONARY capahub_stem")
    else:
        op.execute("DROP TABLE search_fts")
        op.drop_table("search_docs")
    op.drop_table("search_domains")
    op.drop_table("search_state")
