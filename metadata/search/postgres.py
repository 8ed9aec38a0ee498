"""PostgreSQL backend: a weighted ``tsvector`` per document (GIN index), ranked by ts_rank."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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
from metadata.search.query import ParsedQuery, pg_tsquery
from metadata.store import Reader

#: ``||`` continues positions across columns, so a phrase could match across two of them; a
#: separator word after each column, deleted at the end, leaves a gap instead.
_PG_SEP = "zqxjsep"
_PG_COLUMNS = (
    ("name", "A"),
    ("key", "B"),
    ("tag_words", "B"),
    ("attributes", "C"),
    ("related", "C"),
    ("body", "D"),
)
_PG_TSV = (
    "ts_delete("
    + " || ".join(
        f"setweight(to_tsvector('capahub', :{col} || ' {_PG_SEP}'), '{weight}')"
        for col, weight in _PG_COLUMNS
    )
    + f", '{_PG_SEP}')"
)
_MATCH = "d.tsv @@ to_tsquery('capahub', :match)"
_NAME_MATCH = "d.tsv @@ to_tsquery('capahub', :name_match)"


class PostgresSearchIndex(SearchIndex):
    """tsvector: ``search_docs.tsv`` (GIN) with weights A-D, ranked by ts_rank."""

    #: ts_rank weights of D (description), C (attributes, related), B (key, tags), A (name).
    WEIGHTS = "{0.1, 0.3, 0.5, 1.0}"

    async def match(self, reader: Reader, q: ParsedQuery) -> Matches:
        """Ids of the documents whose tsvector matches (name part: lexemes of weight A)."""
        row = (
            await reader.conn.execute(
                text(
                    f"SELECT array_agg(d.doc_id), array_agg(d.doc_id) FILTER (WHERE {_NAME_MATCH}) "
                    f"FROM search_docs d WHERE {_MATCH}"
                ),
                {"match": pg_tsquery(q), "name_match": pg_tsquery(q, "A")},
            )
        ).one()
        return Matches(id_array(row[0]), id_array(row[1]))

    async def relevance(
        self, reader: Reader, q: ParsedQuery, part: str, limit: int | None
    ) -> Relevance:
        """ts_rank against every word (times 10), of the name matches or of all matches."""
        params: dict[str, Any] = {"match": pg_tsquery(q)}
        where = _MATCH
        if part == "name":
            params["name_match"] = pg_tsquery(q, "A")
            where = _NAME_MATCH
        sql = (
            f"SELECT d.doc_id, ts_rank('{self.WEIGHTS}'::float4[], d.tsv, "
            f"to_tsquery('capahub', :match)) * 10.0 AS x FROM search_docs d WHERE {where}"
        )
        return await self.scored(reader, sql, params, limit)

    async def write_rows(self, conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
        """Insert rows with their weighted tsvector."""
        await conn.execute(
            text(f"INSERT INTO search_docs ({DOC_COLUMNS}, tsv) VALUES ({DOC_VALUES}, {_PG_TSV})"),
            rows,
        )

    async def delete_docs(self, conn: AsyncConnection, node_ids: Sequence[str] | None) -> None:
        """Delete documents and domains (everything when ``node_ids`` is None)."""
        if node_ids is None:
            await conn.execute(text("TRUNCATE search_docs, search_domains"))
            return
        await delete_chunked(
            conn,
            node_ids,
            "DELETE FROM search_docs WHERE node_id IN :ids",
            "DELETE FROM search_domains WHERE node_id IN :ids",
        )

    async def begin_search(self, reader: Reader) -> None:
        """One snapshot for all statements of a search (READ COMMITTED would give one each)."""
        await reader.conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))


__all__ = ["PostgresSearchIndex"]
