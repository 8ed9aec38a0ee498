"""SQLite backend: FTS5 (``search_fts``, rowid = ``search_docs.doc_id``) ranked by bm25."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from metadata.search import bm25
from metadata.search.bm25 import COLUMNS, INSTANCES_SQL, FtsStats, Tokenizer
from metadata.search.index import (
    DOC_COLUMNS,
    DOC_VALUES,
    PAGE_ROWS,
    Matches,
    Relevance,
    SearchIndex,
    delete_chunked,
    id_array,
    page_of,
)
from metadata.search.query import ParsedQuery, fts5_match
from metadata.store import Reader


def _ids(joined: str | None) -> Any:
    """The ids of a ``group_concat`` (one row holding every id: a row per match costs more
    than the match itself)."""
    if not joined:
        return id_array(())
    return np.fromstring(joined, dtype=np.int64, sep=",")


#: The index's version and FTS5's averages record (documents, words per column).
STATS_SQL = (
    "SELECT s.next_doc_id, (SELECT block FROM search_fts_data WHERE id = 1) "
    "FROM search_state s WHERE s.id = 1"
)
#: How long ``read_now`` waits for a lock (it runs in the event loop's thread; WAL readers
#: rarely wait at all); beyond it the search takes the async path.
NOW_BUSY_MS = 50


class SqliteSearchIndex(SearchIndex):
    """FTS5: ``search_fts`` holds the words (rowid = ``search_docs.doc_id``), bm25 ranks them."""

    #: bm25 column weights: name, key, tags, body (description), attributes, related names.
    WEIGHTS = bm25.WEIGHTS

    def __init__(self) -> None:
        self._tokenizer: Tokenizer | None = None
        self._now: Engine | None = None

    @property
    def tokenizer(self) -> Tokenizer:
        """FTS5's tokenizer in memory: the projection of the index (``metadata.search.bm25``)
        tokenizes queries and new documents with it (made on first use)."""
        if self._tokenizer is None:
            self._tokenizer = Tokenizer()
        return self._tokenizer

    def open_now(self, path: str) -> None:
        """Let ``read_now`` read the SQLite file at ``path`` (read-only connections)."""
        uri = f"{Path(path).expanduser().resolve().as_uri()}?mode=ro"

        def connect() -> sqlite3.Connection:
            conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {NOW_BUSY_MS}")
            return conn

        self._now = create_engine("sqlite://", creator=connect, pool_size=2)

    def close_now(self) -> None:
        """Close ``read_now``'s connections."""
        if self._now is not None:
            self._now.dispose()
            self._now = None

    @contextlib.contextmanager
    def read_now(self) -> Iterator[Connection | None]:
        """A read transaction run synchronously, in this thread (None: no file to read so).

        Through the async driver every statement is a hand-off to its thread and back, each
        waiting for the busy event loop (a few ms under load); a search answered from the
        projection asks two small questions (the index's version, a page of rows), so it
        asks them here, in microseconds, in one snapshot.
        """
        if self._now is None:
            yield None
            return
        try:
            conn = self._now.connect()
        except DBAPIError:  # e.g. a file this process may not open read-only: async path
            yield None
            return
        with conn:
            try:
                conn.exec_driver_sql("BEGIN")
            except DBAPIError:
                yield None
                return
            yield conn  # closing the connection rolls the read transaction back

    @staticmethod
    def stats_now(conn: Connection) -> tuple[int, FtsStats | None]:
        """``stats`` on a ``read_now`` connection."""
        row = conn.exec_driver_sql(STATS_SQL).one()
        return int(row[0]), FtsStats.parse(row[1])

    @staticmethod
    def page_rows_now(conn: Connection, doc_ids: Sequence[int]) -> dict[int, tuple[Any, str]]:
        """``page_rows`` on a ``read_now`` connection."""
        if not doc_ids:
            return {}
        return page_of(conn.execute(PAGE_ROWS, {"ids": list(doc_ids)}))

    async def stats(self, reader: Reader) -> tuple[int, FtsStats | None]:
        """The index's version and FTS5's totals (documents, words per column), in one
        statement (so of one snapshot)."""
        row = (await reader.conn.execute(text(STATS_SQL))).one()
        return int(row[0]), FtsStats.parse(row[1])

    async def instances(self, reader: Reader, after: int | None) -> list[tuple[str, str]]:
        """Every occurrence of every word in the documents with an id above ``after`` (all
        when None), one row per word: (word, "doc_id*8+column,...")."""
        if after is None:
            await reader.conn.execute(
                text(
                    "CREATE VIRTUAL TABLE IF NOT EXISTS temp.search_fts_instances "
                    "USING fts5vocab(main, search_fts, instance)"
                )
            )
            sql = INSTANCES_SQL.format(table="temp.search_fts_instances")
            return [(str(t), str(v)) for t, v in await reader.conn.execute(text(sql))]
        result = await reader.conn.execute(
            text(f"SELECT rowid, {', '.join(COLUMNS)} FROM search_fts WHERE rowid > :after"),
            {"after": after},
        )
        return self.tokenizer.instances(result.all())

    async def live_ids(self, reader: Reader) -> Any:
        """The ids of every document in FTS5."""
        row = (
            await reader.conn.execute(text("SELECT group_concat(id) FROM search_fts_docsize"))
        ).one()
        return _ids(row[0])

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
