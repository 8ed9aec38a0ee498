"""SQLite backend: FTS5 (``search_fts``, rowid = ``search_docs.doc_id``) ranked by bm25."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from metadata.search.index import (
    DOC_COLUMNS,
    DOC_VALUES,
    Matches,
    Relevance,
    SearchIndex,
    delete_chunked,
    id_array,
)
from metadata.search.query import ParsedQuery, fts5_match
from metadata.store import Reader


def _ids(joined: str | None) -> Any:
    """The ids of a ``group_concat`` (one row holding every id: a row per match costs more
    than the match itself)."""
    if not joined:
        return id_array(())
    return np.fromstring(joined, dtype=np.int64, sep=",")


class SqliteSearchIndex(SearchIndex):
    """FTS5: ``search_fts`` holds the words (rowid = ``search_docs.doc_id``), bm25 ranks them."""

    #: bm25 column weights: name, key, tags, body (description), attributes, related names.
    WEIGHTS = (10.0, 5.0, 4.0, 1.0, 3.0, 2.0)

    @staticmethod
    def _match(q: ParsedQuery, part: str) -> str:
        """The MATCH expression of every word ("all") or every word in the name column."""
        full = fts5_match(q)
        return full if part == "all" else f"{{name}} : ({full})"

    async def match(self, reader: Reader, q: ParsedQuery) -> Matches:
        """Rowids of the FTS5 matches (rowid = doc_id), anywhere and in the name column."""
        row = (
            await reader.conn.execute(
                text(
                    "SELECT (SELECT group_concat(rowid) FROM search_fts "
                    "WHERE search_fts MATCH :all), (SELECT group_concat(rowid) FROM search_fts "
                    "WHERE search_fts MATCH :name)"
                ),
                {"all": self._match(q, "all"), "name": self._match(q, "name")},
            )
        ).one()
        return Matches(_ids(row[0]), _ids(row[1]))

    async def relevance(
        self, reader: Reader, q: ParsedQuery, part: str, limit: int | None
    ) -> Relevance:
        """-bm25 with the column weights; for "name", of the query restricted to the name
        column (the words' frequency there and how rare they are in names)."""
        weights = ", ".join(str(w) for w in self.WEIGHTS)
        sql = (
            f"SELECT rowid, -bm25(search_fts, {weights}) AS x FROM search_fts "
            "WHERE search_fts MATCH :match"
        )
        params: dict[str, Any] = {"match": self._match(q, part)}
        return await self.scored(reader, sql, params, limit)

    async def write_rows(self, conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
        """Insert into search_docs and search_fts (rowid = doc_id)."""
        await conn.execute(
            text(f"INSERT INTO search_docs ({DOC_COLUMNS}) VALUES ({DOC_VALUES})"), rows
        )
        await conn.execute(
            text(
                "INSERT INTO search_fts (rowid, name, key, tags, body, attributes, related) "
                "VALUES (:doc_id, :name, :key, :tag_words, :body, :attributes, :related)"
            ),
            rows,
        )

    async def delete_docs(self, conn: AsyncConnection, node_ids: Sequence[str] | None) -> None:
        """Delete from the three tables (everything when ``node_ids`` is None)."""
        if node_ids is None:
            for table in ("search_fts", "search_docs", "search_domains"):
                await conn.execute(text(f"DELETE FROM {table}"))
            return
        await delete_chunked(
            conn,
            node_ids,
            "DELETE FROM search_fts WHERE rowid IN "
            "(SELECT doc_id FROM search_docs WHERE node_id IN :ids)",
            "DELETE FROM search_docs WHERE node_id IN :ids",
            "DELETE FROM search_domains WHERE node_id IN :ids",
        )

    async def optimize(self, conn: AsyncConnection) -> None:
        """Merge the FTS5 segments into one (faster queries after a bulk load)."""
        await conn.execute(text("INSERT INTO search_fts (search_fts) VALUES ('optimize')"))


__all__ = ["SqliteSearchIndex"]
