"""The full-text index of the catalog: SQLite FTS5 or PostgreSQL tsvector, kept in the database.

Each node has one search document: its name, key, tags, description, the names and
classifications of its attributes, and the names of a few related nodes (a capability carries the
names of the systems that PROVIDE it, see ``NAME_FROM_SOURCE``/``NAME_FROM_TARGET``). Documents
are written inside the write transaction that changed the node (``SearchIndex.update`` is a store
transaction hook), so a search sees every committed change. A document never changes: a change
writes a new one with a new ``doc_id`` (ids rise and are never reused), which lets a process keep
a projection of the documents (facets) in step by reading the ids above the last one it saw.

Both backends serve the same query: the words of a query are tokenized here (never passed raw to
``MATCH`` or ``to_tsquery``), every word must appear (stemmed, the last one as a prefix). Ranking
runs in stages (``STAGES``): documents with every word in the name (or the key's last segment),
ranked by tier then relevance, before the other matches, ranked by relevance (bm25 / ts_rank);
retired nodes after all others. Only the stages a page reaches are ranked.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncConnection

from metadata.errors import InvalidInputError
from metadata.model import KIND_BY_PREFIX, Kind, Lifecycle, NodeRecord, RelationRecord, RelationType
from metadata.store import CHUNK, Reader, Writer

#: Longest query accepted (characters); longer ones are refused, never truncated silently.
MAX_QUERY_LENGTH = 500
#: Most words (and phrases) in one query.
MAX_QUERY_TERMS = 32
#: Deepest PART_OF chain followed to find a node's domain (the hierarchy is a few levels).
MAX_HIERARCHY_DEPTH = 64

#: For a relation ``a -[T]-> b`` with T here, b's name is indexed into a's document.
NAME_FROM_TARGET = frozenset(
    {RelationType.PART_OF, RelationType.REPRESENTS, RelationType.SERVED_BY}
)
#: For a relation ``a -[T]-> b`` with T here, a's name is indexed into b's document.
NAME_FROM_SOURCE = frozenset({RelationType.PROVIDES, RelationType.MASTERS, RelationType.STORES})
#: Kinds whose domain is inherited from their ancestors of the same kind (PART_OF chains).
HIERARCHICAL = frozenset({Kind.CAPABILITY.value, Kind.SYSTEM.value})

#: Ranking stages, in order: (part, retired). "name": every word in the name column (name and
#: the key's last segment); "rest": the other matches.
STAGES = (("name", False), ("rest", False), ("name", True), ("rest", True))

#: Separates the values of a document's multi-valued columns (tags, domains).
SEP = "\x1f"

_WORD = re.compile(r"[^\W_]+")
_OUTSIDE_WORD = re.compile(r"([^\W_]+)(\*?)")
_HUMP = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_ID_QUERY = re.compile(r"\s*([a-z]+):(\S+)\s*")


def normalize(value: str) -> str:
    """Fold case and strip diacritics (``Café`` -> ``cafe``), keeping everything else."""
    if value.isascii():  # the common case, and 20 times faster
        return value.lower()
    decomposed = unicodedata.normalize("NFKD", value)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def words(value: str) -> list[str]:
    """The searchable words of a text: runs of letters and digits after ``normalize``."""
    return _WORD.findall(normalize(value))


def _kind_of(node_id: str) -> str:
    return node_id.split(":", 1)[0]


# -- queries ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Term:
    """One required part of a query: a word, or a quoted phrase of several words."""

    words: tuple[str, ...]
    prefix: bool = False


@dataclass(frozen=True, slots=True)
class ParsedQuery:
    """A query as the index runs it."""

    terms: tuple[Term, ...]

    @property
    def empty(self) -> bool:
        """True when the text had no letters or digits (nothing can match)."""
        return not self.terms

    @property
    def normalized(self) -> str:
        """All words in order, space-separated: what an exact name or key match equals."""
        return " ".join(w for t in self.terms for w in t.words)


def parse_query(value: str, *, field: str = "query") -> ParsedQuery:
    """Read a user's query: words, ``"quoted phrases"``, ``word*`` prefixes, or a node id.

    The last bare word is always a prefix (search while typing). Anything else (operators,
    parentheses, emoji) is only a separator. A node id (``system:crm``) searches its key.

    Raises:
        InvalidInputError: the query is longer than ``MAX_QUERY_LENGTH`` characters or has more
            than ``MAX_QUERY_TERMS`` words.
    """
    if len(value) > MAX_QUERY_LENGTH:
        raise InvalidInputError(
            f"{field}: {len(value)} characters is too long; a search query has at most "
            f"{MAX_QUERY_LENGTH} characters",
            field=field,
        )
    as_id = _ID_QUERY.fullmatch(value)
    if as_id and as_id.group(1) in KIND_BY_PREFIX:
        value = as_id.group(2)
    terms: list[Term] = []
    last_bare = False
    for i, segment in enumerate(normalize(value).split('"')):
        if i % 2:  # inside quotes (an unclosed quote runs to the end)
            phrase = tuple(_WORD.findall(segment))
            if phrase:
                terms.append(Term(phrase))
                last_bare = False
            continue
        for m in _OUTSIDE_WORD.finditer(segment):
            terms.append(Term((m.group(1),), prefix=bool(m.group(2))))
            last_bare = True
    if last_bare:
        terms[-1] = Term(terms[-1].words, prefix=True)
    if len(terms) > MAX_QUERY_TERMS:
        raise InvalidInputError(
            f"{field}: {len(terms)} words is too many; a search query has at most "
            f"{MAX_QUERY_TERMS} words or phrases",
            field=field,
        )
    return ParsedQuery(tuple(terms))


def fts5_match(q: ParsedQuery) -> str:
    """The FTS5 MATCH expression: every term quoted (so never an operator), all required."""
    return " ".join('"' + " ".join(t.words) + '"' + ("*" if t.prefix else "") for t in q.terms)


def pg_tsquery(q: ParsedQuery, weight: str = "") -> str:
    """The ``to_tsquery`` text: quoted lexemes, ``<->`` inside phrases, ``:*`` for prefixes.

    ``weight`` (e.g. ``A``) restricts every lexeme to the columns of that weight.
    """
    parts = []
    for t in q.terms:
        lexemes = [f"'{w}'" + (f":{weight}" if weight else "") for w in t.words]
        if len(lexemes) > 1:
            parts.append("(" + " <-> ".join(lexemes) + ")")
        elif t.prefix:
            parts.append(f"'{t.words[0]}':*{weight}")
        else:
            parts.append(lexemes[0])
    return " & ".join(parts)


# -- documents ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SearchDoc:
    """The indexed form of one node: word lists per column, plus what filters and tiers need."""

    node_id: str
    kind: str
    lifecycle: str
    owner_id: str | None
    name_norm: str
    key_norm: str
    leaf_norm: str
    name: str
    key: str
    tags: tuple[str, ...]
    body: str
    attributes: str
    related: str
    related_names: str
    domains: tuple[str, ...]

    def row(self) -> dict[str, Any]:
        """Bind parameters for the backends' insert statements."""
        return {
            "node_id": self.node_id,
            "kind": self.kind,
            "lifecycle": self.lifecycle,
            "owner_id": self.owner_id,
            "name_norm": self.name_norm,
            "key_norm": self.key_norm,
            "leaf_norm": self.leaf_norm,
            "name": self.name,
            "key": self.key,
            "tag_words": _joined(" ".join(self.tags)),
            "body": self.body,
            "attributes": self.attributes,
            "related": self.related,
            "related_names": self.related_names,
            "tag_list": SEP.join(self.tags),
            "domain_list": SEP.join(self.domains),
        }


def _joined(value: str) -> str:
    return " ".join(words(value))


def attribute_words(attributes: Iterable[dict[str, Any]]) -> str:
    """Attribute names (also split at camelCase humps) and their classifications."""
    out: list[str] = []
    for a in attributes:
        name = str(a.get("name") or "")
        split = _HUMP.sub(" ", name)
        out.append(name if split == name else f"{name} {split}")
        if a.get("classification"):
            out.append(str(a["classification"]))
    return _joined(" ".join(out))


def build_doc(rec: NodeRecord, related_names: Sequence[str], domains: Iterable[str]) -> SearchDoc:
    """The search document of a node, given the names of its related nodes and its domains."""
    leaf = _joined(rec.key.rsplit(".", 1)[-1])
    name = _joined(rec.name)
    return SearchDoc(
        node_id=rec.id,
        kind=rec.kind.value,
        lifecycle=rec.lifecycle.value,
        owner_id=rec.owner,
        name_norm=name,
        key_norm=_joined(rec.key),
        leaf_norm=leaf,
        # The key's last segment counts as part of the name: "crm" finds a "Salesforce" system
        # keyed crm among the name matches.
        name=name if set(leaf.split()) <= set(name.split()) else f"{name} {leaf}",
        key=_joined(rec.key),
        tags=tuple(dict.fromkeys(rec.tags)),
        body=_joined(rec.description or ""),
        attributes=attribute_words(rec.attributes),
        related=_joined(" ".join(related_names)),
        related_names="; ".join(related_names),
        domains=tuple(sorted(set(domains))),
    )


def related_ids(node_id: str, rels: Iterable[RelationRecord]) -> list[str]:
    """Ids of the nodes whose names go into ``node_id``'s document (domains excluded)."""
    out: dict[str, None] = {}
    for r in rels:
        if r.from_id == node_id and r.type in NAME_FROM_TARGET:
            other = r.to_id
        elif r.to_id == node_id and r.type in NAME_FROM_SOURCE:
            other = r.from_id
        else:
            continue
        if _kind_of(other) != Kind.DOMAIN.value and other != node_id:
            out[other] = None
    return list(out)


def domains_of(node_id: str, parents: dict[str, list[str]]) -> set[str]:
    """Domains a node is PART_OF, for capabilities and systems also through their ancestors."""
    kind = _kind_of(node_id)
    found: set[str] = set()
    seen = {node_id}
    frontier = [node_id]
    for _ in range(MAX_HIERARCHY_DEPTH):
        nxt = []
        for n in frontier:
            for p in parents.get(n, ()):
                if _kind_of(p) == Kind.DOMAIN.value:
                    found.add(p)
                elif kind in HIERARCHICAL and _kind_of(p) == kind and p not in seen:
                    seen.add(p)
                    nxt.append(p)
        if not nxt:
            break
        frontier = nxt
    return found


@dataclass(frozen=True, slots=True)
class FacetRow:
    """What a facet projection needs of one document."""

    doc_id: int
    kind: str
    lifecycle: str
    owner_id: str | None
    tags: tuple[str, ...]
    domains: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SearchFilter:
    """Restrictions of a search; empty means none. ``domain``: PART_OF that domain."""

    kinds: Sequence[Kind] = ()
    tags: Sequence[str] = ()
    lifecycle: Sequence[Lifecycle] = ()
    domain: str | None = None


Progress = Callable[[int, int], None]


# -- the index ----------------------------------------------------------------------------------


class SearchIndex:
    """The search index of one database; choose the backend with ``for_dialect``."""

    @staticmethod
    def for_dialect(dialect: str) -> SearchIndex:
        """The index implementation for a SQLAlchemy dialect name."""
        if dialect == "postgresql":
            return PostgresSearchIndex()
        if dialect == "sqlite":
            return SqliteSearchIndex()
        raise NotImplementedError(f"no search index for the {dialect} dialect")

    # backend hooks ----------------------------------------------------------------------------

    def ids_sql(self, q: ParsedQuery, part: str) -> tuple[str, dict[str, Any]]:
        """SELECT of the ids of the documents matching ``q`` ("all" words anywhere, or "name"),
        aggregated in one value (a comma-separated string or an array)."""
        raise NotImplementedError

    def stage_sql(self, q: ParsedQuery, part: str) -> tuple[str, dict[str, Any]]:
        """FROM/WHERE of the documents ``d`` matching ``q`` in a stage's part ("name", "rest"),
        with ``x``, the backend's relevance (>= 0, higher is better)."""
        raise NotImplementedError

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
        await _load_ancestors(reader, parents, [i for i in recs if _kind_of(i) in HIERARCHICAL])
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
        await self.delete_docs(reader.conn, list(recs))
        await self.write_docs(reader.conn, docs)
        return len(docs)

    async def write_docs(self, conn: AsyncConnection, docs: Sequence[SearchDoc]) -> None:
        """Insert documents under fresh ids (``search_state`` hands them out, rising)."""
        if not docs:
            return
        result = await conn.execute(
            text(
                "UPDATE search_state SET next_doc_id = next_doc_id + :n WHERE id = 1 "
                "RETURNING next_doc_id"
            ),
            {"n": len(docs)},
        )
        start = int(result.scalar_one()) - len(docs)
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

    async def match_ids(self, reader: Reader, q: ParsedQuery, part: str = "all") -> list[int]:
        """Ids of the documents matching ``q`` (every word anywhere, or in the name part)."""
        if q.empty:
            return []
        sql, params = self.ids_sql(q, part)
        # One row holding every id: a result row per match costs more than the match itself.
        ids = (await reader.conn.execute(text(sql), params)).scalar()
        if not ids:
            return []
        return list(map(int, ids.split(","))) if isinstance(ids, str) else list(ids)

    async def facet_rows(self, reader: Reader, after: int) -> list[FacetRow]:
        """The facet values of the documents with an id above ``after``, by id."""
        result = await reader.conn.execute(
            text(
                "SELECT doc_id, kind, lifecycle, owner_id, tag_list, domain_list "
                "FROM search_docs WHERE doc_id > :after ORDER BY doc_id"
            ),
            {"after": after},
        )
        return [FacetRow(int(r[0]), r[1], r[2], r[3], _split(r[4]), _split(r[5])) for r in result]

    async def last_doc_id(self, reader: Reader) -> int:
        """The highest document id (0 for an empty index)."""
        result = await reader.conn.execute(text("SELECT max(doc_id) FROM search_docs"))
        return int(result.scalar() or 0)

    async def count_docs(self, reader: Reader) -> int:
        """How many documents the index holds."""
        result = await reader.conn.execute(text("SELECT count(*) FROM search_docs"))
        return int(result.scalar_one())

    async def ranked(
        self,
        reader: Reader,
        q: ParsedQuery,
        flt: SearchFilter,
        *,
        sizes: Sequence[int],
        limit: int,
        offset: int,
    ) -> list[tuple[float, str, str]]:
        """Hits ``offset`` to ``offset + limit`` of the ranking: (score, node id, related names).

        ``sizes`` are how many filtered matches each of ``STAGES`` holds (the caller counts
        them); only the stages the page reaches are ranked.
        """
        out: list[tuple[float, str, str]] = []
        start = 0
        for (part, retired), size in zip(STAGES, sizes, strict=True):
            lo, hi = max(offset - start, 0), min(offset + limit - start, size)
            if hi > lo:
                out += await self._stage(reader, q, flt, part, retired, limit=hi - lo, offset=lo)
            start += size
        return out

    async def _stage(
        self,
        reader: Reader,
        q: ParsedQuery,
        flt: SearchFilter,
        part: str,
        retired: bool,
        *,
        limit: int,
        offset: int,
    ) -> list[tuple[float, str, str]]:
        where, params = self.stage_sql(q, part)
        fsql, fparams = _filter_sql(flt)
        params.update(fparams, q=q.normalized, qlen=len(q.normalized), limit=limit, offset=offset)
        score = _score_sql(part, retired)
        stmt = text(
            f"SELECT d.node_id, {score} AS s, d.related_names {where} AND {fsql} "
            f"AND d.lifecycle {'=' if retired else '<>'} 'RETIRED' "
            "ORDER BY s DESC, d.node_id LIMIT :limit OFFSET :offset"
        )
        for name in ("kinds", "lifecycles", "tags"):
            if name in params:
                stmt = stmt.bindparams(bindparam(name, expanding=True))
        return [(float(r[1]), r[0], r[2]) for r in await reader.conn.execute(stmt, params)]


def _split(value: str | None) -> tuple[str, ...]:
    return tuple(value.split(SEP)) if value else ()


def _score_sql(part: str, retired: bool) -> str:
    """Score = tier + a fraction in [0, 1); a retired node's score is divided by 10.

    Tiers (name stage): 5 the name or the key equals the query; 4 the key's last segment does
    (``change-order`` in ``order-management.order-capture.change-order``); 3 the name starts
    with the query; 2 every word is in the name. Rest stage: 1. The fraction is the backend's
    relevance ``x`` mapped to x/(1+x), in the name stage averaged with how much of the name the
    query covers (``Customer`` before ``Customer Service`` for "cust"). Deprecated nodes get
    half the fraction: they stay in their tier, after the active ones.
    """
    rel = "(d.x / (1.0 + d.x))"
    if part == "name":
        tier = (
            "(CASE WHEN d.name_norm = :q OR d.key_norm = :q THEN 5 WHEN d.leaf_norm = :q THEN 4 "
            "WHEN substr(d.name_norm, 1, :qlen) = :q THEN 3 ELSE 2 END)"
        )
        frac = f"(({rel} + (:qlen + 1.0) / (length(d.name_norm) + 1.0)) / 2.0)"
    else:
        tier, frac = "1", rel
    frac = f"(CASE WHEN d.lifecycle = 'DEPRECATED' THEN {frac} / 2.0 ELSE {frac} END)"
    return f"(({tier} + {frac}) / 10.0)" if retired else f"({tier} + {frac})"


def _filter_sql(flt: SearchFilter) -> tuple[str, dict[str, Any]]:
    conds = ["1 = 1"]
    params: dict[str, Any] = {}
    if flt.kinds:
        conds.append("d.kind IN :kinds")
        params["kinds"] = [k.value for k in flt.kinds]
    if flt.lifecycle:
        conds.append("d.lifecycle IN :lifecycles")
        params["lifecycles"] = [lc.value for lc in flt.lifecycle]
    if flt.tags:
        conds.append("d.node_id IN (SELECT node_id FROM node_tags WHERE tag IN :tags)")
        params["tags"] = list(flt.tags)
    if flt.domain is not None:
        conds.append("d.node_id IN (SELECT node_id FROM search_domains WHERE domain_id = :domain)")
        params["domain"] = flt.domain
    return " AND ".join(conds), params


async def _load_ancestors(reader: Reader, parents: dict[str, list[str]], start: list[str]) -> None:
    """Fill ``parents`` up the PART_OF chains of capabilities and systems (a query per level)."""
    seen = set(start)
    frontier = {p for n in start for p in parents.get(n, ()) if _kind_of(p) == _kind_of(n)}
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
                if _kind_of(r.to_id) == _kind_of(r.from_id):
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
    frontier = {r for r in roots if _kind_of(r) in HIERARCHICAL}
    for _ in range(MAX_HIERARCHY_DEPTH):
        if not frontier:
            break
        found = await reader.relations_to(sorted(frontier))
        nxt = {
            r.from_id
            for r in found
            if r.type is RelationType.PART_OF and _kind_of(r.from_id) == _kind_of(r.to_id)
        }
        frontier = nxt - out
        out |= frontier
    return out


async def _delete_chunked(conn: AsyncConnection, node_ids: Sequence[str], *sqls: str) -> None:
    for i in range(0, len(node_ids), CHUNK):
        part = list(node_ids[i : i + CHUNK])
        for sql in sqls:
            stmt = text(sql).bindparams(bindparam("ids", expanding=True))
            await conn.execute(stmt, {"ids": part})


# -- backends -----------------------------------------------------------------------------------

_DOC_COLUMNS = (
    "doc_id, node_id, kind, lifecycle, owner_id, name_norm, key_norm, leaf_norm, related_names, "
    "tag_list, domain_list"
)
_DOC_VALUES = (
    ":doc_id, :node_id, :kind, :lifecycle, :owner_id, :name_norm, :key_norm, :leaf_norm, "
    ":related_names, :tag_list, :domain_list"
)
_DOC_SELECT = (
    "d.doc_id, d.node_id, d.kind, d.lifecycle, d.owner_id, d.name_norm, d.key_norm, d.leaf_norm, "
    "d.related_names"
)


class SqliteSearchIndex(SearchIndex):
    """FTS5: ``search_fts`` holds the words (rowid = ``search_docs.doc_id``), bm25 ranks them."""

    #: bm25 column weights: name, key, tags, body (description), attributes, related names.
    WEIGHTS = (10.0, 5.0, 4.0, 1.0, 3.0, 2.0)

    @staticmethod
    def _match(q: ParsedQuery, part: str) -> str:
        full = fts5_match(q)
        if part == "all":
            return full
        name = f"{{name}} : ({full})"
        return name if part == "name" else f"({full}) NOT ({name})"

    def ids_sql(self, q: ParsedQuery, part: str) -> tuple[str, dict[str, Any]]:
        """Rowids of the FTS5 matches (rowid = doc_id)."""
        sql = "SELECT group_concat(rowid) FROM search_fts WHERE search_fts MATCH :match"
        return sql, {"match": self._match(q, part)}

    def stage_sql(self, q: ParsedQuery, part: str) -> tuple[str, dict[str, Any]]:
        """Documents matching an FTS5 expression (name part: a column filter), -bm25 as x."""
        weights = ", ".join(str(w) for w in self.WEIGHTS)
        sql = (
            f"FROM (SELECT {_DOC_SELECT}, -bm25(search_fts, {weights}) AS x "
            "FROM search_fts JOIN search_docs d ON d.doc_id = search_fts.rowid "
            "WHERE search_fts MATCH :match) AS d WHERE 1 = 1"
        )
        return sql, {"match": self._match(q, part)}

    async def write_rows(self, conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
        """Insert into search_docs and search_fts (rowid = doc_id)."""
        await conn.execute(
            text(f"INSERT INTO search_docs ({_DOC_COLUMNS}) VALUES ({_DOC_VALUES})"), rows
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
        await _delete_chunked(
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


class PostgresSearchIndex(SearchIndex):
    """tsvector: ``search_docs.tsv`` (GIN) with weights A-D, ranked by ts_rank."""

    #: ts_rank weights of D (description), C (attributes, related), B (key, tags), A (name).
    WEIGHTS = "{0.1, 0.3, 0.5, 1.0}"

    @staticmethod
    def _match(q: ParsedQuery, part: str) -> tuple[str, dict[str, Any]]:
        params = {"match": pg_tsquery(q)}
        cond = "d.tsv @@ to_tsquery('capahub', :match)"
        if part != "all":
            params["name_match"] = pg_tsquery(q, "A")
            name = "d.tsv @@ to_tsquery('capahub', :name_match)"
            cond = name if part == "name" else f"{cond} AND NOT {name}"
        return cond, params

    def ids_sql(self, q: ParsedQuery, part: str) -> tuple[str, dict[str, Any]]:
        """Ids of the documents whose tsvector matches (name part: lexemes of weight A)."""
        cond, params = self._match(q, part)
        return f"SELECT array_agg(d.doc_id) FROM search_docs d WHERE {cond}", params

    def stage_sql(self, q: ParsedQuery, part: str) -> tuple[str, dict[str, Any]]:
        """Matching documents with ts_rank (against every word) as x."""
        cond, params = self._match(q, part)
        sql = (
            f"FROM (SELECT {_DOC_SELECT}, "
            f"ts_rank('{self.WEIGHTS}'::float4[], d.tsv, to_tsquery('capahub', :match)) * 10.0 "
            f"AS x FROM search_docs d WHERE {cond}) AS d WHERE 1 = 1"
        )
        return sql, params

    async def write_rows(self, conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
        """Insert rows with their weighted tsvector."""
        await conn.execute(
            text(
                f"INSERT INTO search_docs ({_DOC_COLUMNS}, tsv) VALUES ({_DOC_VALUES}, {_PG_TSV})"
            ),
            rows,
        )

    async def delete_docs(self, conn: AsyncConnection, node_ids: Sequence[str] | None) -> None:
        """Delete documents and domains (everything when ``node_ids`` is None)."""
        if node_ids is None:
            await conn.execute(text("TRUNCATE search_docs, search_domains"))
            return
        await _delete_chunked(
            conn,
            node_ids,
            "DELETE FROM search_docs WHERE node_id IN :ids",
            "DELETE FROM search_domains WHERE node_id IN :ids",
        )

    async def begin_search(self, reader: Reader) -> None:
        """One snapshot for all statements of a search (READ COMMITTED would give one each)."""
        await reader.conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))


__all__ = [
    "MAX_QUERY_LENGTH",
    "MAX_QUERY_TERMS",
    "STAGES",
    "FacetRow",
    "ParsedQuery",
    "PostgresSearchIndex",
    "SearchDoc",
    "SearchFilter",
    "SearchIndex",
    "SqliteSearchIndex",
    "Term",
    "build_doc",
    "fts5_match",
    "normalize",
    "parse_query",
    "pg_tsquery",
    "words",
]
