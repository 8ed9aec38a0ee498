"""The search index of one database: keeping it in step with writes, and the reads a search makes.

Documents are written inside the write transaction that changed the node (``SearchIndex.update``
is a store transaction hook), so a search sees every committed change. A document never
changes: a change writes a new one with a new ``doc_id`` (ids rise and are never reused), which
lets a process keep a projection of the documents in step by reading the ids above the last one
it saw (``metadata.search.projection``). Every transaction that changes the index also moves
``search_state.next_doc_id``, the index's version: a cache keyed on it is never stale.

A search asks the backend (``SqliteSearchIndex``, ``PostgresSearchIndex``) for three things: the
ids of the matches (``match``), the relevance of the matches of a ranking stage
(``relevance``), and the rows of a page of hits (``page_rows``); ranking is done by
``metadata.search.ranking``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from sqlalchemy import bindparam, column, select, table, text
from sqlalchemy.ext.asyncio import AsyncConnection

from metadata.model import Kind, Lifecycle, NodeRecord, RelationRecord, RelationType
from metadata.search.documents import (
    HIERARCHICAL,
    MAX_HIERARCHY_DEPTH,
    NAME_FROM_SOURCE,
    NAME_FROM_TARGET,
    DocRow,
    SearchDoc,
    build_doc,
    domains_of,
    kind_of,
    related_ids,
    split_list,
)
from metadata.search.query import ParsedQuery
from metadata.store import CHUNK, Reader, Writer, node_from_row
from metadata.tables import nodes

Progress = Callable[[int, int], None]
IdArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

_search_docs = table("search_docs", column("doc_id"), column("node_id"), column("related_names"))


@dataclass(frozen=True, slots=True)
class SearchFilter:
    """Restrictions of a search; empty means none. ``domain``: PART_OF that domain."""

    kinds: Sequence[Kind] = ()
    tags: Sequence[str] = ()
    lifecycle: Sequence[Lifecycle] = ()
    domain: str | None = None


@dataclass(frozen=True, slots=True)
class Matches:
    """The documents matching a query: every word anywhere (``all``), and those with every word
    in the name part (``name``, a subset). Ids in no particular order."""

    all: IdArray
    name: IdArray


@dataclass(frozen=True, slots=True)
class Relevance:
    """The backend's relevance ``x`` (>= 0, higher is better) of matching documents.

    ``complete``: every match is here; otherwise these are the ones with the highest ``x``
    (every match left out has an ``x`` no higher than the lowest here).
    """

    ids: IdArray
    x: FloatArray
    complete: bool


class RelevanceSource(Protocol):
    """What ranking asks for: the index itself, or a cache in front of it."""

    async def relevance(
        self, reader: Reader, q: ParsedQuery, part: str, limit: int | None
    ) -> Relevance:
        """See ``SearchIndex.relevance``."""
        ...


def id_array(values: Sequence[int] | None) -> IdArray:
    """Document ids as an array."""
    return np.asarray(values if values is not None else (), dtype=np.int64)


class SearchIndex:
    """The search index of one database; choose the backend with ``for_dialect``."""

    @staticmethod
    def for_dialect(dialect: str) -> SearchIndex:
        """The index implementation for a SQLAlchemy dialect name."""
        if dialect == "postgresql":
            from metadata.search.postgres import PostgresSearchIndex

            return PostgresSearchIndex()
        if dialect == "sqlite":
            from metadata.search.sqlite import SqliteSearchIndex

            return SqliteSearchIndex()
        raise NotImplementedError(f"no search index for the {dialect} dialect")

    # backend hooks ----------------------------------------------------------------------------

    async def match(self, reader: Reader, q: ParsedQuery) -> Matches:
        """Ids of the documents matching ``q`` (anywhere, and in the name part), in one
        statement."""
        raise NotImplementedError

    async def relevance(
        self, reader: Reader, q: ParsedQuery, part: str, limit: int | None
    ) -> Relevance:
        """Relevance of the matches of ``q``: ``part`` "name" (every name match, ranked on
        what the backend's ranking stage 1 uses) or "all" (the ``limit`` matches with the
        highest relevance, all when None)."""
        raise NotImplementedError

    @staticmethod
    async def scored(
        reader: Reader, sql: str, params: dict[str, Any], limit: int | None
    ) -> Relevance:
        """Run a backend's ``SELECT doc_id, score`` (best ``limit`` first when given) and
        return it as a ``Relevance``."""
        if limit is not None:
            sql += " ORDER BY x DESC LIMIT :limit"
            params = {**params, "limit": limit}
        rows = (await reader.conn.execute(text(sql), params)).all()
        ids = id_array([r[0] for r in rows])
        x = np.fromiter((r[1] for r in rows), dtype=np.float64, count=len(rows))
        return Relevance(ids, x, limit is None or len(rows) < limit)

    async def write_rows(self, conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
        """Insert documents (their ``doc_id`` set) into the backend's tables."""
        raise NotImplementedError

    async def delete_docs(self, conn: AsyncConnection, node_ids: Sequence[str] | None) -> None:
        """Remove the documents of these nodes (of all nodes when None)."""
        raise NotImplementedError

    async def optimize(self, conn: AsyncConnection) -> None:
        """Compact the index after a rebuild."""

    async def begin_search(self, reader: Reader) -> None:
        """Make the statements of one search see one snapshot."""

    # keeping in step --------------------------------------------------------------------------

    async def update(self, writer: Writer) -> None:
        """Transaction hook: re-index every node the pending changes touch, before commit."""
        changed: set[str] = set()
        renamed: set[str] = set()
        moved: set[str] = set()
        for p in writer.pending:
            if p.target == "node":
                changed.add(p.target_id)
                if p.op == "update" and (p.before or {}).get("name") != (p.after or {}).get("name"):
                    renamed.add(p.target_id)
            elif p.op != "update":  # a relation's properties are not indexed
                src, rtype, dst = p.target_id.split("|", 2)
                changed.update((src, dst))
                if rtype == RelationType.PART_OF.value:
                    moved.add(src)
        if renamed:
            changed.update(await _name_dependents(writer, renamed))
        if moved:
            changed.update(await _descendants(writer, moved))
        await self.index_nodes(writer, sorted(changed))

    async def index_nodes(self, reader: Reader, ids: Sequence[str]) -> int:
        """(Re)write the documents of these nodes from the store; returns how many."""
        if not ids:
            return 0
        recs = await reader.get_nodes(ids)
        rels = await reader.relations_touching(list(recs))
        parents: dict[str, list[str]] = defaultdict(list)
        for r in rels:
            if r.type is RelationType.PART_OF and r.from_id in recs:
                parents[r.from_id].append(r.to_id)
        await _load_ancestors(reader, parents, [i for i in recs if kind_of(i) in HIERARCHICAL])
        rel_by_node: dict[str, list[RelationRecord]] = defaultdict(list)
        for r in rels:
            rel_by_node[r.from_id].append(r)
            if r.to_id != r.from_id:
                rel_by_node[r.to_id].append(r)
        neighbours = {i: related_ids(i, rel_by_node[i]) for i in recs}
        names = {i: rec.name for i, rec in recs.items()}
        missing = sorted({n for ns in neighbours.values() for n in ns} - set(names))
        names.update((i, rec.name) for i, rec in (await reader.get_nodes(missing)).items())
        docs = [
            build_doc(
                rec,
                sorted({names[n] for n in neighbours[i] if n in names}),
                domains_of(i, parents),
            )
            for i, rec in recs.items()
        ]
        # Deleted nodes are in ``ids`` but not in ``recs``: their documents go too.
        await self.delete_docs(reader.conn, list(ids))
        await self.write_docs(reader.conn, docs)
        return len(docs)

    async def write_docs(self, conn: AsyncConnection, docs: Sequence[SearchDoc]) -> None:
        """Insert documents under fresh ids (``search_state`` hands them out, rising).

        Moves the index's version even without documents (a change that only deleted some).
        """
        result = await conn.execute(
            text(
                "UPDATE search_state SET next_doc_id = next_doc_id + :n WHERE id = 1 "
                "RETURNING next_doc_id"
            ),
            {"n": max(len(docs), 1)},
        )
        start = int(result.scalar_one()) - max(len(docs), 1)
        if not docs:
            return
        rows = [dict(d.row(), doc_id=start + i) for i, d in enumerate(docs)]
        await self.write_rows(conn, rows)
        domains = [{"node_id": d.node_id, "domain_id": dom} for d in docs for dom in d.domains]
        if domains:
            await conn.execute(
                text(
                    "INSERT INTO search_domains (node_id, domain_id) VALUES (:node_id, :domain_id)"
                ),
                domains,
            )

    async def rebuild(self, writer: Writer, progress: Progress | None = None) -> int:
        """Drop every document and index all nodes again; returns how many were indexed."""
        all_nodes = await writer.all_nodes()
        all_rels = await writer.all_relations()
        total = len(all_nodes)
        if progress:
            progress(0, total)
        names = {n.id: n.name for n in all_nodes}
        parents: dict[str, list[str]] = defaultdict(list)
        rel_by_node: dict[str, list[RelationRecord]] = defaultdict(list)
        for r in all_rels:
            if r.type is RelationType.PART_OF:
                parents[r.from_id].append(r.to_id)
            if r.type in NAME_FROM_TARGET or r.type in NAME_FROM_SOURCE:
                rel_by_node[r.from_id].append(r)
                rel_by_node[r.to_id].append(r)
        await self.delete_docs(writer.conn, None)
        batch: list[SearchDoc] = []
        if not all_nodes:
            await self.write_docs(writer.conn, batch)  # the version moves all the same
        for done, rec in enumerate(all_nodes, 1):
            related = sorted({names[n] for n in related_ids(rec.id, rel_by_node[rec.id])})
            batch.append(build_doc(rec, related, domains_of(rec.id, parents)))
            if len(batch) == 2000 or done == total:
                await self.write_docs(writer.conn, batch)
                batch = []
                if progress:
                    progress(done, total)
        await self.optimize(writer.conn)
        return total

    async def is_stale(self, reader: Reader) -> bool:
        """True when some node has no document (e.g. a database from before the index existed)."""
        result = await reader.conn.execute(
            text("SELECT (SELECT count(*) FROM nodes) - (SELECT count(*) FROM search_docs)")
        )
        return int(result.scalar_one()) != 0

    # reading ----------------------------------------------------------------------------------

    async def version(self, reader: Reader) -> int:
        """The index's version: moves with every transaction that changes a document."""
        result = await reader.conn.execute(
            text("SELECT next_doc_id FROM search_state WHERE id = 1")
        )
        return int(result.scalar_one())

    async def doc_rows(self, reader: Reader, after: int) -> list[DocRow]:
        """What the projection keeps of the documents with an id above ``after``, by id."""
        result = await reader.conn.execute(
            text(
                "SELECT doc_id, node_id, kind, lifecycle, owner_id, tag_list, domain_list, "
                "name_norm, key_norm, leaf_norm FROM search_docs WHERE doc_id > :after "
                "ORDER BY doc_id"
            ),
            {"after": after},
        )
        return [
            DocRow(int(r[0]), r[1], r[2], r[3], r[4], split_list(r[5]), split_list(r[6]), *r[7:])
            for r in result
        ]

    async def count_docs(self, reader: Reader) -> int:
        """How many documents the index holds."""
        result = await reader.conn.execute(text("SELECT count(*) FROM search_docs"))
        return int(result.scalar_one())

    async def page_rows(
        self, reader: Reader, doc_ids: Sequence[int]
    ) -> dict[int, tuple[NodeRecord, str]]:
        """The node and the related names of these documents (missing ones left out)."""
        if not doc_ids:
            return {}
        result = await reader.conn.execute(PAGE_ROWS, {"ids": list(doc_ids)})
        return page_of(result)


_d = _search_docs
#: The rows of a page: nodes and related names by document id.
PAGE_ROWS = (
    select(nodes, _d.c.doc_id.label("search_doc_id"), _d.c.related_names.label("search_rel"))
    .join_from(_d, nodes, _d.c.node_id == nodes.c.id)
    .where(_d.c.doc_id.in_(bindparam("ids", expanding=True)))
)


def page_of(rows: Iterable[Any]) -> dict[int, tuple[NodeRecord, str]]:
    """``PAGE_ROWS``' rows by document id."""
    return {int(r.search_doc_id): (node_from_row(r), r.search_rel) for r in rows}


async def _load_ancestors(reader: Reader, parents: dict[str, list[str]], start: list[str]) -> None:
    """Fill ``parents`` up the PART_OF chains of capabilities and systems (a query per level)."""
    seen = set(start)
    frontier = {p for n in start for p in parents.get(n, ()) if kind_of(p) == kind_of(n)}
    for _ in range(MAX_HIERARCHY_DEPTH):
        frontier -= seen
        if not frontier:
            return
        seen |= frontier
        found = await reader.relations_from(sorted(frontier))
        nxt: set[str] = set()
        for r in found:
            if r.type is RelationType.PART_OF:
                parents[r.from_id].append(r.to_id)
                if kind_of(r.to_id) == kind_of(r.from_id):
                    nxt.add(r.to_id)
        frontier = nxt


async def _name_dependents(reader: Reader, renamed: set[str]) -> set[str]:
    """Nodes whose documents carry the name of one of ``renamed``."""
    out: set[str] = set()
    for r in await reader.relations_touching(sorted(renamed)):
        if r.to_id in renamed and r.type in NAME_FROM_TARGET:
            out.add(r.from_id)
        if r.from_id in renamed and r.type in NAME_FROM_SOURCE:
            out.add(r.to_id)
    return out


async def _descendants(reader: Reader, roots: set[str]) -> set[str]:
    """Capabilities and systems below ``roots`` in the PART_OF hierarchy (their domain may move)."""
    out: set[str] = set()
    frontier = {r for r in roots if kind_of(r) in HIERARCHICAL}
    for _ in range(MAX_HIERARCHY_DEPTH):
        if not frontier:
            break
        found = await reader.relations_to(sorted(frontier))
        nxt = {
            r.from_id
            for r in found
            if r.type is RelationType.PART_OF and kind_of(r.from_id) == kind_of(r.to_id)
        }
        frontier = nxt - out
        out |= frontier
    return out


async def delete_chunked(conn: AsyncConnection, node_ids: Sequence[str], *sqls: str) -> None:
    """Run DELETE statements with an ``:ids`` list, in chunks the databases accept."""
    for i in range(0, len(node_ids), CHUNK):
        part = list(node_ids[i : i + CHUNK])
        for sql in sqls:
            stmt = text(sql).bindparams(bindparam("ids", expanding=True))
            await conn.execute(stmt, {"ids": part})


#: Columns of ``search_docs`` both backends write.
DOC_COLUMNS = (
    "doc_id, node_id, kind, lifecycle, owner_id, name_norm, key_norm, leaf_norm, related_names, "
    "tag_list, domain_list"
)
DOC_VALUES = (
    ":doc_id, :node_id, :kind, :lifecycle, :owner_id, :name_norm, :key_norm, :leaf_norm, "
    ":related_names, :tag_list, :domain_list"
)

__all__ = [
    "DOC_COLUMNS",
    "DOC_VALUES",
    "FloatArray",
    "IdArray",
    "Matches",
    "PAGE_ROWS",
    "Progress",
    "Relevance",
    "RelevanceSource",
    "SearchFilter",
    "SearchIndex",
    "delete_chunked",
    "id_array",
    "page_of",
]
