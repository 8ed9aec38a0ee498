"""The full-text index of the catalog: SQLite FTS5 or PostgreSQL tsvector, kept in the database.

- ``query``: reading a user's query (words, phrases, prefixes) and the backends' query syntax;
- ``documents``: what a node's search document holds;
- ``index``: keeping the index in step with every write, and the reads a search makes;
- ``sqlite``, ``postgres``: the backends;
- ``projection``: the documents' facet values, filters and tier inputs, in memory;
- ``bm25``: the FTS5 index in memory: matches and FTS5's bm25 for queries of words (SQLite);
- ``ranking``: ranking in stages (name matches, other matches, retired ones last);
- ``cache``: the index's answers to recent queries, per index version.
"""

from __future__ import annotations

from metadata.search.cache import CachedSource, SearchCache
from metadata.search.documents import DocRow, SearchDoc, build_doc
from metadata.search.index import Matches, Progress, Relevance, SearchFilter, SearchIndex
from metadata.search.postgres import PostgresSearchIndex
from metadata.search.projection import (
    FACETS,
    MAX_FACET_VALUES,
    DocProjection,
    ProjectionState,
    Selection,
)
from metadata.search.query import (
    MAX_QUERY_LENGTH,
    MAX_QUERY_TERMS,
    ParsedQuery,
    Term,
    fts5_match,
    normalize,
    parse_query,
    pg_tsquery,
    words,
)
from metadata.search.ranking import STAGES, rank
from metadata.search.sqlite import SqliteSearchIndex

__all__ = [
    "FACETS",
    "MAX_FACET_VALUES",
    "MAX_QUERY_LENGTH",
    "MAX_QUERY_TERMS",
    "STAGES",
    "CachedSource",
    "DocProjection",
    "DocRow",
    "Matches",
    "ParsedQuery",
    "PostgresSearchIndex",
    "Progress",
    "ProjectionState",
    "Relevance",
    "SearchCache",
    "SearchDoc",
    "SearchFilter",
    "SearchIndex",
    "Selection",
    "SqliteSearchIndex",
    "Term",
    "build_doc",
    "fts5_match",
    "normalize",
    "parse_query",
    "pg_tsquery",
    "rank",
    "words",
]
