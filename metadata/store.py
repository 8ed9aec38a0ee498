"""The async store: connections, migrations, batched reads and recorded writes."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import orjson
from sqlalchemy import (
    Connection,
    Dialect,
    String,
    Table,
    and_,
    any_,
    bindparam,
    delete,
    event,
    func,
    insert,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.sql.elements import ColumnElement

from metadata.errors import UnavailableError
from metadata.model import Kind, Lifecycle, NodeRecord, RelationRecord, RelationType
from metadata.tables import history, node_tags, nodes, relations

#: Seconds a write waits for the write lock (another writer) before it is refused as
#: ``UnavailableError``; the server passes its ``write_wait`` setting.
DEFAULT_WRITE_WAIT = 5.0

#: A safe size for a plain ``IN (...)`` list (SQLite allows 32766 bound parameters); most
#: lookups here use ``one_of`` instead, which needs no chunking.
CHUNK = 900


def normalize_url(url: str) -> str:
    """Map plain SQLAlchemy URLs to their async drivers (``sqlite://`` -> ``sqlite+aiosqlite://``)."""
    u = make_url(url)
    driver = u.drivername
    if driver == "sqlite":
        u = u.set(drivername="sqlite+aiosqlite")
    elif driver in ("postgresql", "postgres", "postgresql+psycopg2", "postgresql+psycopg"):
        u = u.set(drivername="postgresql+asyncpg")
    return u.render_as_string(hide_password=False)


@dataclass(frozen=True, slots=True)
class Change:
    """One committed change, as recorded in history; ``id`` orders the change log."""

    id: int
    target: str  # "node" | "relation"
    target_id: str
    op: str  # "create" | "update" | "delete"
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    at: datetime | None = None
    #: Who made the change (``token:NAME``, ``user:SUB``, ``local:USER``; None before 0004).
    actor: str | None = None
    request_id: str | None = None

    @classmethod
    def from_row(cls, row: Any) -> Change:
        """The change a ``history`` row records."""
        return cls(
            row.id,
            row.target,
            row.target_id,
            row.op,
            row.before,
            row.after,
            _aware(row.at),
            row.actor,
            row.request_id,
        )


@dataclass(frozen=True, slots=True)
class NodeFilter:
    """Filters of a node listing; empty means no filter."""

    kinds: Sequence[Kind] = ()
    tags: Sequence[str] = ()
    lifecycle: Sequence[Lifecycle] = ()

    def clauses(self) -> list[ColumnElement[bool]]:
        """The SQL conditions for this filter."""
        out: list[ColumnElement[bool]] = []
        if self.kinds:
            out.append(nodes.c.kind.in_([k.value for k in self.kinds]))
        if self.lifecycle:
            out.append(nodes.c.lifecycle.in_([lc.value for lc in self.lifecycle]))
        if self.tags:
            tagged = select(node_tags.c.node_id).where(node_tags.c.tag.in_(list(self.tags)))
            out.append(nodes.c.id.in_(tagged))
        return out


def _json_text(value: Any) -> str:
    """JSON columns are written with orjson (the standard library's encoder was a fifth of a
    large apply); keys that are not strings become strings, as ``json.dumps`` makes them."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


#: Enum members by value: a dict lookup instead of an ``Enum(value)`` call per row (a tenth of
#: reading 50,000 relations).
_KINDS: dict[str, Kind] = {k.value: k for k in Kind}
_LIFECYCLES: dict[str, Lifecycle] = {lc.value: lc for lc in Lifecycle}
_RELATION_TYPES: dict[str, RelationType] = {t.value: t for t in RelationType}


def node_from_row(row: Any) -> NodeRecord:
    """Build a ``NodeRecord`` from a row of the nodes table."""
    return NodeRecord(
        id=row.id,
        kind=_KINDS.get(row.kind) or Kind(row.kind),
        key=row.key,
        name=row.name,
        description=row.description,
        tags=tuple(row.tags or ()),
        lifecycle=_LIFECYCLES.get(row.lifecycle) or Lifecycle(row.lifecycle),
        owner=row.owner_id,
        properties=row.properties,
        attributes=tuple(row.attributes or ()),
        version=row.version,
        created_at=_aware(row.created_at),
        updated_at=_aware(row.updated_at),
    )


def relation_from_row(row: Any) -> RelationRecord:
    """Build a ``RelationRecord`` from a row of the relations table."""
    rtype = _RELATION_TYPES.get(row.type) or RelationType(row.type)
    return RelationRecord(row.from_id, rtype, row.to_id, row.properties)


def node_snapshot(rec: NodeRecord) -> dict[str, Any]:
    """A JSON-ready image of a node for history and change events."""
    out = rec.content()
    out.update(
        kind=rec.kind.value,
        version=rec.version,
        createdAt=rec.created_at.isoformat(),
        updatedAt=rec.updated_at.isoformat(),
    )
    return out


def _node_values(rec: NodeRecord) -> dict[str, Any]:
    return {
        "id": rec.id,
        "kind": rec.kind.value,
        "key": rec.key,
        "name": rec.name,
        "description": rec.description,
        "tags": list(rec.tags),
        "lifecycle": rec.lifecycle.value,
        "owner_id": rec.owner,
        "properties": rec.properties,
        "attributes": [dict(a) for a in rec.attributes],
        "version": rec.version,
        "created_at": rec.created_at,
        "updated_at": rec.updated_at,
    }


def one_of(col: Any, ids: Sequence[str], dialect: str) -> ColumnElement[bool]:
    """``col IN ids`` as one statement whatever the number of ids (no bound-parameter limit).

    SQLite reads the ids from one JSON parameter (``json_each``); PostgreSQL from one array.
    """
    if dialect == "sqlite":
        values = func.json_each(orjson.dumps(list(ids)).decode()).table_valued("value")
        clause: ColumnElement[bool] = col.in_(select(values.c.value))
    elif dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import ARRAY  # a tenth of a second to import

        clause = col == any_(literal(list(ids), type_=ARRAY(String)))
    else:  # pragma: no cover - other databases are not supported yet
        clause = col.in_(list(ids))
    return clause  # pragma: no cover - other databases are not supported yet


class Reader:
    """Batched reads on one connection; every method is one SQL statement whatever the keys."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    @property
    def dialect(self) -> str:
        """The database dialect's name: ``sqlite`` or ``postgresql``."""
        return str(self.conn.dialect.name)

    def _in(self, col: Any, ids: Sequence[str]) -> ColumnElement[bool]:
        return one_of(col, list(dict.fromkeys(ids)), self.dialect)

    async def get_nodes(self, ids: Sequence[str]) -> dict[str, NodeRecord]:
        """Load the nodes with these ids; missing ids are simply absent from the result."""
        if not ids:
            return {}
        result = await self.conn.execute(select(nodes).where(self._in(nodes.c.id, ids)))
        return {row.id: node_from_row(row) for row in result}

    async def list_nodes(
        self, flt: NodeFilter, *, after: str | None, limit: int
    ) -> list[NodeRecord]:
        """List nodes ordered by id, starting after the id ``after``."""
        stmt = select(nodes).where(*flt.clauses()).order_by(nodes.c.id).limit(limit)
        if after is not None:
            stmt = stmt.where(nodes.c.id > after)
        return [node_from_row(r) for r in await self.conn.execute(stmt)]

    async def list_node_ids(self, flt: NodeFilter, *, after: str | None, limit: int) -> list[str]:
        """Ids of ``list_nodes``, without the rest of the rows."""
        stmt = select(nodes.c.id).where(*flt.clauses()).order_by(nodes.c.id).limit(limit)
        if after is not None:
            stmt = stmt.where(nodes.c.id > after)
        return list((await self.conn.execute(stmt)).scalars())

    async def count_nodes(self, flt: NodeFilter) -> int:
        """Count the nodes that match a filter."""
        stmt = select(func.count()).select_from(nodes).where(*flt.clauses())
        return int((await self.conn.execute(stmt)).scalar_one())

    async def relations_from(
        self, ids: Sequence[str], *, types: Sequence[RelationType] | None = None
    ) -> list[RelationRecord]:
        """Relations whose source is one of ``ids`` (of these ``types`` only, when given)."""
        cond = self._in(relations.c.from_id, ids)
        if types is not None:
            cond = and_(cond, relations.c.type.in_([t.value for t in types]))
        return await self._relations(cond, ids)

    async def relations_to(self, ids: Sequence[str]) -> list[RelationRecord]:
        """Relations whose target is one of ``ids``."""
        return await self._relations(self._in(relations.c.to_id, ids), ids)

    async def relations_touching(self, ids: Sequence[str]) -> list[RelationRecord]:
        """Relations whose source or target is one of ``ids``."""
        # The ids of both index searches, then the rows: on SQLite a third faster than
        # ``from_id IN ... OR to_id IN ...`` (its multi-index OR), for 10 ids as for 10,000.
        r = relations.c
        matched = (
            select(r.id)
            .where(self._in(r.from_id, ids))
            .union_all(select(r.id).where(self._in(r.to_id, ids)))
        )
        return await self._relations(r.id.in_(matched), ids)

    async def _relations(
        self, cond: ColumnElement[bool], ids: Sequence[str]
    ) -> list[RelationRecord]:
        if not ids:
            return []
        r = relations.c
        stmt = select(r.from_id, r.type, r.to_id, r.properties).where(cond).order_by(r.id)
        types = _RELATION_TYPES
        return [
            RelationRecord(src, types.get(rtype) or RelationType(rtype), dst, props)
            for src, rtype, dst, props in await self.conn.execute(stmt)
        ]

    async def get_relations(
        self, keys: Sequence[tuple[str, str, str]]
    ) -> dict[tuple[str, str, str], RelationRecord]:
        """Load relations by (from, type, to); absent ones are missing from the result."""
        out: dict[tuple[str, str, str], RelationRecord] = {}
        if not keys:
            return out
        if self.dialect not in ("sqlite", "postgresql"):  # pragma: no cover - not supported
            froms = list(dict.fromkeys(k[0] for k in keys))
            wanted = set(keys)
            for rel in await self.relations_from(froms):
                if rel.key in wanted:
                    out[rel.key] = rel
            return out
        # The keys themselves, looked up in the unique index: what a part of a bulk apply
        # costs then depends on the part, not on how many relations its sources have.
        r = relations.c
        if self.dialect == "sqlite":
            sql = text(
                "SELECT from_id, type, to_id, properties FROM relations "
                "WHERE (from_id, type, to_id) IN (SELECT json_extract(value, '$[0]'), "
                "json_extract(value, '$[1]'), json_extract(value, '$[2]') "
                "FROM json_each(:keys))"
            ).columns(r.from_id, r.type, r.to_id, r.properties)
            params: dict[str, Any] = {"keys": orjson.dumps([list(k) for k in keys]).decode()}
        else:
            sql = text(
                "SELECT from_id, type, to_id, properties FROM relations "
                "WHERE (from_id, type, to_id) IN "
                "(SELECT * FROM unnest(CAST(:a AS text[]), CAST(:b AS text[]), CAST(:c AS text[])))"
            ).columns(r.from_id, r.type, r.to_id, r.properties)
            params = {
                "a": [k[0] for k in keys],
                "b": [k[1] for k in keys],
                "c": [k[2] for k in keys],
            }
        types = _RELATION_TYPES
        for src, rtype, dst, props in await self.conn.execute(sql, params):
            rel = RelationRecord(src, types.get(rtype) or RelationType(rtype), dst, props)
            out[rel.key] = rel
        return out

    async def nodes_owned_by(self, team_ids: Sequence[str]) -> list[NodeRecord]:
        """Nodes whose owner is one of ``team_ids``."""
        if not team_ids:
            return []
        stmt = select(nodes).where(self._in(nodes.c.owner_id, team_ids)).order_by(nodes.c.id)
        return [node_from_row(r) for r in await self.conn.execute(stmt)]

    async def all_nodes(self) -> list[NodeRecord]:
        """Every node, ordered by id."""
        result = await self.conn.execute(select(nodes).order_by(nodes.c.id))
        return [node_from_row(r) for r in result]

    async def all_relations(self) -> list[RelationRecord]:
        """Every relation, in insertion order."""
        result = await self.conn.execute(select(relations).order_by(relations.c.id))
        return [relation_from_row(r) for r in result]

    async def history_of(self, target_id: str, *, limit: int) -> list[Change]:
        """The latest recorded changes of one node or relation, newest first."""
        stmt = (
            select(history)
            .where(history.c.target_id == target_id)
            .order_by(history.c.id.desc())
            .limit(limit)
        )
        return [Change.from_row(r) for r in await self.conn.execute(stmt)]

    async def audit_log(
        self,
        *,
        actor: str | None = None,
        since: datetime | None = None,
        before_id: int | None = None,
        limit: int,
    ) -> list[Change]:
        """Recorded changes, newest first: by ``actor`` when given, at or after ``since``,
        older than ``before_id`` (keyset paging on the change log's id)."""
        stmt = select(history).order_by(history.c.id.desc()).limit(limit)
        if actor is not None:
            stmt = stmt.where(history.c.actor == actor)
        if since is not None:
            stmt = stmt.where(history.c.at >= since)
        if before_id is not None:
            stmt = stmt.where(history.c.id < before_id)
        return [Change.from_row(r) for r in await self.conn.execute(stmt)]

    async def last_change_id(self) -> int:
        """The id of the newest history row (0 for an empty catalog)."""
        value = (await self.conn.execute(select(func.max(history.c.id)))).scalar()
        return int(value or 0)

    async def changes_since(self, change_id: int, *, limit: int = 10_000) -> list[Change]:
        """Committed changes after ``change_id``, oldest first."""
        stmt = select(history).where(history.c.id > change_id).order_by(history.c.id).limit(limit)
        return [Change.from_row(r) for r in await self.conn.execute(stmt)]


@dataclass(slots=True)
class PendingChange:
    """A change made in an open transaction, recorded in history on commit."""

    target: str
    target_id: str
    op: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


@dataclass
class Writer(Reader):
    """Reads plus recorded writes inside one transaction; nothing is visible before commit."""

    conn: AsyncConnection
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    pending: list[PendingChange] = field(default_factory=list)
    actor: str | None = None
    request_id: str | None = None
    #: What transaction hooks that take changes in parts (``PartialHook``) keep between
    #: flushes of this transaction, by hook.
    scratch: dict[object, Any] = field(default_factory=dict)
    #: Changes already written to history by ``flush`` (kept only for listeners).
    flushed: list[Change] = field(default_factory=list)
    #: The id of the last history row ``flush`` wrote (0: none yet).
    flushed_last: int = 0
    _flusher: Callable[[], Awaitable[None]] | None = field(default=None, repr=False)

    async def flush(self) -> None:
        """Write the pending changes' history rows now and let go of them (a bulk write's
        memory then stays bounded by its parts); still all or nothing, in this transaction.

        Does nothing unless every transaction hook takes changes in parts (``PartialHook``).
        """
        if self._flusher is not None and self.pending:
            await self._flusher()

    async def insert_rows(self, table: Table, rows: Sequence[dict[str, Any]]) -> None:
        """Insert rows (dicts with the same keys, Python values) in one driver ``executemany``.

        The values go through the dialect's own bind processors (JSON, DATETIME), so the stored
        values are those of ``conn.execute(insert(table), rows)``; what is skipped is
        SQLAlchemy's per-row parameter handling, which was most of a large apply's inserts.
        """
        if not rows:
            return
        sql, names, processors = _insert_plan(table, tuple(rows[0]), self.conn.dialect)
        columns = []
        for name, proc in zip(names, processors, strict=True):
            values = [row[name] for row in rows]
            columns.append(values if proc is None else _processed(values, proc))
        params = list(zip(*columns, strict=True))
        await self.conn.exec_driver_sql(sql, params)

    async def insert_nodes(self, recs: Sequence[NodeRecord]) -> None:
        """Insert new nodes (and their tags), recording each creation."""
        if not recs:
            return
        await self.insert_rows(nodes, [_node_values(r) for r in recs])
        await self._insert_tags(recs)
        self.pending.extend(
            PendingChange("node", r.id, "create", None, node_snapshot(r)) for r in recs
        )

    async def update_nodes(self, pairs: Sequence[tuple[NodeRecord, NodeRecord]]) -> None:
        """Replace nodes (before, after), recording each change."""
        if pairs:
            # One executemany, not a statement per node (a re-applied part updates thousands).
            rows = []
            for _, after in pairs:
                values = _node_values(after)
                del values["created_at"]
                values["b_id"] = values.pop("id")
                rows.append(values)
            stmt = update(nodes).where(nodes.c.id == bindparam("b_id"))
            await self.conn.execute(stmt, rows)
        changed_tags = [a for b, a in pairs if b.tags != a.tags]
        if changed_tags:
            ids = [a.id for a in changed_tags]
            dialect = self.conn.dialect.name
            await self.conn.execute(
                delete(node_tags).where(one_of(node_tags.c.node_id, ids, dialect))
            )
        await self._insert_tags(changed_tags)
        self.pending.extend(
            PendingChange("node", a.id, "update", node_snapshot(b), node_snapshot(a))
            for b, a in pairs
        )

    async def _insert_tags(self, recs: Sequence[NodeRecord]) -> None:
        rows = [{"node_id": r.id, "tag": t} for r in recs for t in dict.fromkeys(r.tags)]
        if rows:
            await self.insert_rows(node_tags, rows)

    async def insert_relations(self, rels: Sequence[RelationRecord]) -> None:
        """Insert new relations, recording each."""
        if not rels:
            return
        rows = [
            {
                "from_id": r.from_id,
                "type": r.type.value,
                "to_id": r.to_id,
                "properties": r.properties,
            }
            for r in rels
        ]
        await self.insert_rows(relations, rows)
        self.pending.extend(
            PendingChange("relation", _rel_id(r), "create", None, r.content()) for r in rels
        )

    async def update_relations(
        self, pairs: Sequence[tuple[RelationRecord, RelationRecord]]
    ) -> None:
        """Replace the properties of relations (before, after), recording each."""
        for before, after in pairs:
            await self.conn.execute(
                update(relations).where(_rel_match(after)).values(properties=after.properties)
            )
            self.pending.append(
                PendingChange(
                    "relation", _rel_id(after), "update", before.content(), after.content()
                )
            )

    async def delete_relations(self, rels: Sequence[RelationRecord]) -> None:
        """Delete relations, recording each (the history row keeps what was removed)."""
        for rel in rels:
            await self.conn.execute(delete(relations).where(_rel_match(rel)))
            self.pending.append(
                PendingChange("relation", _rel_id(rel), "delete", rel.content(), None)
            )


_InsertPlan = tuple[str, tuple[str, ...], tuple[Callable[[Any], Any] | None, ...]]


@functools.lru_cache(maxsize=64)
def _insert_plan(table: Table, columns: tuple[str, ...], dialect: Dialect) -> _InsertPlan:
    """The driver-level INSERT of ``columns`` into ``table`` for ``dialect``: its SQL, the
    order of its parameters and each one's bind processor (None: passed as is)."""
    compiled = insert(table).compile(dialect=dialect, column_keys=list(columns))
    names = tuple(compiled.positiontup or ())
    if sorted(names) != sorted(columns):  # pragma: no cover - every supported dialect is positional
        raise NotImplementedError(f"no positional INSERT for the {dialect.name} dialect")
    processors = tuple(
        table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names
    )
    return str(compiled), names, processors


def _processed(values: list[Any], proc: Callable[[Any], Any]) -> list[Any]:
    """``[proc(v) for v in values]``, calling ``proc`` once for a run of the same object
    (a transaction's timestamp on every row, None in most JSON columns of history)."""
    out: list[Any] = []
    append = out.append
    last: Any = out  # no value is this list
    done: Any = None
    for value in values:
        if value is not last:
            done = proc(value)
            last = value
        append(done)
    return out


def _rel_id(rel: RelationRecord) -> str:
    return f"{rel.from_id}|{rel.type.value}|{rel.to_id}"


def _rel_match(rel: RelationRecord) -> ColumnElement[bool]:
    return and_(
        relations.c.from_id == rel.from_id,
        relations.c.type == rel.type.value,
        relations.c.to_id == rel.to_id,
    )


Listener = Callable[[Sequence[Change]], None]
#: Runs inside a write transaction just before commit (e.g. to update an index in step).
TransactionHook = Callable[["Writer"], Awaitable[None]]


@runtime_checkable
class PartialHook(Protocol):
    """A transaction hook that takes a transaction's changes in parts, so that a bulk write
    can let go of them as it goes (``Writer.flush``)."""

    async def collect(self, writer: Writer, changes: Sequence[PendingChange]) -> None:
        """Take note of ``changes`` (written to history next, then dropped)."""

    async def finish(self, writer: Writer) -> None:
        """Do the hook's work for every change collected, just before commit."""

    async def __call__(self, writer: Writer) -> None:
        """The whole hook for a transaction that never flushed: collect, then finish."""


_MIGRATIONS = Path(__file__).with_name("migrations")


_REVISION = re.compile(r"^revision\s*(?::[^=\n]*)?=\s*[\"']([^\"']+)[\"']\s*$", re.MULTILINE)
_DOWN_REVISION = re.compile(
    r"^down_revision\s*(?::[^=\n]*)?=\s*(?:None|[\"']([^\"']+)[\"'])\s*$", re.MULTILINE
)


@functools.lru_cache(maxsize=1)
def _head_revision() -> str | None:
    """The newest migration, read from the files of ``migrations/versions``; None unless the
    history is one plain line (then alembic decides)."""
    revisions: dict[str, str | None] = {}
    for path in sorted((_MIGRATIONS / "versions").glob("*.py")):
        source = path.read_text(encoding="utf-8")
        rev, down = _REVISION.findall(source), _DOWN_REVISION.findall(source)
        if len(rev) != 1 or len(down) != 1 or rev[0] in revisions:
            return None
        revisions[rev[0]] = down[0] or None
    parents = set(revisions.values())
    heads = [r for r in revisions if r not in parents]
    return heads[0] if len(heads) == 1 and None in parents else None


def _at_head(sync_conn: Connection) -> bool:
    """True when the database is at the newest migration, so there is nothing to upgrade."""
    head = _head_revision()
    if head is None or not sync_conn.dialect.has_table(sync_conn, "alembic_version"):
        return False
    versions = sync_conn.exec_driver_sql("SELECT version_num FROM alembic_version").all()
    return [row[0] for row in versions] == [head]


def _migrate(sync_conn: Connection) -> None:
    # At head (every start but the first after an upgrade) alembic has nothing to do, and
    # importing it was a fifth of a second of every command's start.
    if _at_head(sync_conn):
        return
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.attributes["connection"] = sync_conn
    command.upgrade(cfg, "head")


#: A request's list of the change ids its write transactions committed (the last of each),
#: when the caller set one: the hub states the newest in ``extensions.catalogVersion``. A list
#: (not a value) so that a write in a task the request started is seen by the request too.
COMMITTED: ContextVar[list[int] | None] = ContextVar("capahub_committed", default=None)


class Store:
    """The metadata repository's persistence: one engine, serialized writers, change listeners."""

    def __init__(self, engine: AsyncEngine, *, write_wait: float = DEFAULT_WRITE_WAIT) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self.write_wait = write_wait
        self._write_lock = asyncio.Lock()
        self._listeners: list[Listener] = []
        self._hooks: list[TransactionHook | PartialHook] = []
        self._probe: sqlite3.Connection | None = None
        #: The time every write transaction stamps on its rows and history (tests set it to
        #: write history at known instants; always UTC-aware).
        self.clock: Callable[[], datetime] = _utc_now
        path = engine.url.database if self.dialect == "sqlite" else None
        self._probe_path = path if path and path != ":memory:" else None

    @classmethod
    async def open(
        cls, url: str, *, migrate: bool = True, write_wait: float = DEFAULT_WRITE_WAIT
    ) -> Store:
        """Connect to ``url`` (any SQLAlchemy URL), tune the connection and apply migrations.

        A write waits at most ``write_wait`` seconds for the write lock, then is refused with
        ``UnavailableError`` (a retry hint), never left to queue without bound.
        """
        url = normalize_url(url)
        kwargs: dict[str, Any] = {}
        if url.startswith("sqlite"):
            path = make_url(url).database
            if path and path != ":memory:":
                Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        else:
            kwargs.update(pool_size=10, max_overflow=10, pool_pre_ping=True)
        # orjson decodes the JSON columns (tags, properties, attributes) several times faster.
        engine = create_async_engine(
            url, json_serializer=_json_text, json_deserializer=orjson.loads, **kwargs
        )
        if engine.dialect.name == "sqlite":
            _tune_sqlite(engine, write_wait)
        store = cls(engine, write_wait=write_wait)
        if migrate:
            async with engine.begin() as conn:
                await conn.run_sync(_migrate)
        return store

    async def close(self) -> None:
        """Dispose of the engine's connections."""
        if self._probe is not None:
            self._probe.close()
            self._probe = None
        await self.engine.dispose()

    def last_change_id_now(self) -> int | None:
        """The newest change id, read synchronously, or None where that is not possible.

        A SQLite file answers ``max(id)`` from the history index in microseconds on a
        read-only connection of its own; through the async driver the same question takes
        several thread hand-offs, each waiting for the busy event loop (hundreds of ms under
        load). Lets a request tell at once that nothing changed. Other databases: None.
        """
        if self._probe_path is None:
            return None
        if self._probe is None:
            uri = f"{Path(self._probe_path).expanduser().resolve().as_uri()}?mode=ro"
            self._probe = sqlite3.connect(uri, uri=True, isolation_level=None)
        row = self._probe.execute("SELECT max(id) FROM history").fetchone()
        return int(row[0] or 0)

    def listen(self, notified: Callable[[int | None], None]) -> ChangeNotifications | None:
        """On PostgreSQL, call ``notified(last_id)`` whenever any process commits a change
        (LISTEN on a connection of its own; ``notified(None)`` after that connection was lost
        and made again, as changes may have been missed meanwhile). None on other databases.
        """
        if self.dialect != "postgresql":
            return None
        return ChangeNotifications(self.engine.url, notified)

    def subscribe(self, listener: Listener) -> None:
        """Call ``listener`` with the changes of every transaction this process commits."""
        self._listeners.append(listener)

    def add_transaction_hook(self, hook: TransactionHook | PartialHook) -> None:
        """Run ``hook(writer)`` inside every write transaction, just before it commits (a
        ``PartialHook`` is given the changes of each ``Writer.flush`` too)."""
        self._hooks.append(hook)

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[Reader]:
        """A connection for reads."""
        async with self.engine.connect() as conn:
            yield Reader(conn)

    @contextlib.asynccontextmanager
    async def transaction(
        self, *, actor: str | None = None, request_id: str | None = None
    ) -> AsyncIterator[Writer]:
        """One all-or-nothing write transaction; listeners hear of it after commit.

        ``actor`` and ``request_id`` are recorded on every history row it writes. Waiting for
        the write lock (this process's writers, then the database's: another process such as
        ``capahub apply``) takes at most ``write_wait`` seconds in all; then ``UnavailableError``.
        """
        deadline = time.monotonic() + self.write_wait
        try:
            async with asyncio.timeout(self.write_wait):
                await self._write_lock.acquire()
        except TimeoutError:
            raise self.busy() from None
        try:
            async with self.engine.connect() as conn:
                conn = await conn.execution_options(capahub_write=True, capahub_deadline=deadline)
                async with conn.begin():
                    if self.dialect == "postgresql":
                        # Serialize writers across replicas, as the in-process lock does
                        # locally; lock_timeout bounds the wait for it (and for row locks).
                        wait_ms = max(1, int((deadline - time.monotonic()) * 1000))
                        await conn.execute(
                            text("SELECT set_config('lock_timeout', :ms, true)"),
                            {"ms": f"{wait_ms}ms"},
                        )
                        await conn.execute(text("SELECT pg_advisory_xact_lock(7412)"))
                    writer = Writer(conn, self.clock(), actor=actor, request_id=request_id)
                    if all(isinstance(h, PartialHook) for h in self._hooks):
                        writer._flusher = functools.partial(self._flush, writer)
                    yield writer
                    if writer.flushed_last:
                        await self._flush(writer)
                        for hook in self._hooks:
                            await hook.finish(writer)  # type: ignore[union-attr]
                    elif writer.pending:
                        for hook in self._hooks:
                            await hook(writer)
                    ids = await self._record_history(writer)
                    if writer.flushed_last and not ids:
                        ids = [writer.flushed_last]
                    if ids and self.dialect == "postgresql":
                        # Delivered at commit, never for a rollback: the change feeds and
                        # projections of other processes wake at once instead of at a poll.
                        await conn.execute(
                            text("SELECT pg_notify(:channel, :last)"),
                            {"channel": NOTIFY_CHANNEL, "last": str(ids[-1])},
                        )
        except DBAPIError as err:
            if is_lock_timeout(err):
                raise self.busy() from None
            raise
        finally:
            self._write_lock.release()
        if ids and self._listeners:
            committed = writer.flushed + [
                Change(
                    i, p.target, p.target_id, p.op, p.before, p.after, writer.now, actor, request_id
                )
                for i, p in zip(ids, writer.pending, strict=False)
            ]
            for listener in self._listeners:
                listener(committed)
        if ids:
            box = COMMITTED.get()
            if box is not None:
                box.append(ids[-1])

    def busy(self) -> UnavailableError:
        """The refusal of a write that waited ``write_wait`` seconds for the write lock."""
        return busy_error(self.write_wait)

    async def _flush(self, writer: Writer) -> None:
        """``Writer.flush``: hand the pending changes to the hooks, write their history rows,
        drop them (kept as ``Change`` only when a listener will want them after commit)."""
        if not writer.pending:
            return
        for hook in self._hooks:
            await hook.collect(writer, writer.pending)  # type: ignore[union-attr]
        ids = await self._record_history(writer)
        if self._listeners:
            writer.flushed.extend(
                Change(
                    i,
                    p.target,
                    p.target_id,
                    p.op,
                    p.before,
                    p.after,
                    writer.now,
                    writer.actor,
                    writer.request_id,
                )
                for i, p in zip(ids, writer.pending, strict=True)
            )
        writer.flushed_last = ids[-1]
        writer.pending = []

    async def _record_history(self, writer: Writer) -> list[int]:
        """Write one history row per pending change; returns their ids, in order."""
        if not writer.pending:
            return []
        ids = await self._history_ids(writer.conn, len(writer.pending))
        rows = [
            {
                "id": i,
                "at": writer.now,
                "target": p.target,
                "target_id": p.target_id,
                "op": p.op,
                "before": p.before,
                "after": p.after,
                "actor": writer.actor,
                "request_id": writer.request_id,
            }
            for i, p in zip(ids, writer.pending, strict=True)
        ]
        await writer.insert_rows(history, rows)
        return ids

    async def _history_ids(self, conn: AsyncConnection, count: int) -> list[int]:
        """Ids for ``count`` new history rows, rising, as the database would have given them.

        Writers are serialized (BEGIN IMMEDIATE on SQLite, an advisory lock on PostgreSQL), so
        on SQLite they are ``max(id) + 1 ...`` (what an INTEGER PRIMARY KEY assigns); on
        PostgreSQL they come from the column's own sequence. Knowing them up front lets the
        rows go in with one ``executemany`` instead of an ``INSERT ... RETURNING`` per batch.
        """
        if self.dialect == "postgresql":
            result = await conn.execute(
                text(
                    "SELECT nextval(pg_get_serial_sequence('history', 'id')) "
                    "FROM generate_series(1, :n)"
                ),
                {"n": count},
            )
            return sorted(int(v) for v in result.scalars())
        last = (await conn.execute(select(func.max(history.c.id)))).scalar()
        start = int(last or 0) + 1
        return list(range(start, start + count))


#: The PostgreSQL channel every write transaction notifies with its last change id.
NOTIFY_CHANNEL = "capahub_changes"


class ChangeNotifications:
    """A LISTEN connection of its own (asyncpg) that reports other processes' commits.

    It reconnects after a loss (1 s, doubling to 30 s) and then reports ``None``: whatever was
    committed while it was away is in the change log, which the listener's owner reads.
    """

    def __init__(self, url: Any, notified: Callable[[int | None], None]) -> None:
        self._dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._notified = notified
        self._task: asyncio.Task[None] | None = None
        self._lost = asyncio.Event()
        #: Whether the connection is up (while it is not, owners poll the change log).
        self.connected = False

    def start(self) -> None:
        """Connect (in the background) and keep listening until ``close``."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        import asyncpg  # type: ignore[import-untyped]

        log = logging.getLogger("capahub.store")
        pause = 1.0
        first = True
        while True:
            conn: Any = None
            try:
                conn = await asyncpg.connect(self._dsn, timeout=10)
                self._lost.clear()
                conn.add_termination_listener(lambda _conn: self._lost.set())
                await conn.add_listener(NOTIFY_CHANNEL, self._on_notify)
                self.connected, pause = True, 1.0
                if not first:
                    self._notified(None)  # changes may have come while the connection was away
                first = False
                await self._lost.wait()
                log.warning("the LISTEN connection to the database was lost; reconnecting")
            except asyncio.CancelledError:
                raise
            except Exception as err:  # keep trying: a restarting database must not stop it
                log.warning("LISTEN %s failed (%s); retrying in %g s", NOTIFY_CHANNEL, err, pause)
            finally:
                self.connected = False
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(conn.close(), 5)
            await asyncio.sleep(pause)
            pause = min(pause * 2, 30.0)

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        self._notified(int(payload) if payload.isdigit() else None)

    async def close(self) -> None:
        """Stop listening and close the connection."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


def busy_error(write_wait: float) -> UnavailableError:
    """``UnavailableError`` for a write that waited ``write_wait`` seconds for the write lock."""
    retry = max(1, math.ceil(write_wait))
    return UnavailableError(
        "the catalog database is busy with another write (another request, capahub apply, a "
        f"harvest or a replica); waited {write_wait:g} s; retry in {retry} s",
        retry_after=retry,
    )


#: SQLite's result codes for a lock held elsewhere (the low byte of extended codes).
_SQLITE_BUSY, _SQLITE_LOCKED = 5, 6
#: PostgreSQL's SQLSTATE for lock_timeout (lock_not_available).
_PG_LOCK_NOT_AVAILABLE = "55P03"


def is_lock_timeout(err: BaseException) -> bool:
    """True when ``err`` (a driver error, wrapped or not) says a lock wait ran out."""
    orig = getattr(err, "orig", None) or err
    if isinstance(orig, sqlite3.OperationalError):
        code = getattr(orig, "sqlite_errorcode", None)
        if isinstance(code, int):
            return code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)
        return "database is locked" in str(orig) or "database table is locked" in str(orig)
    return getattr(orig, "sqlstate", None) == _PG_LOCK_NOT_AVAILABLE


#: KiB of page cache a SQLite write connection may use.
WRITER_CACHE_KB = 256 * 1024


def _tune_sqlite(engine: AsyncEngine, write_wait: float) -> None:
    """WAL for concurrent readers, enforced foreign keys, and BEGIN IMMEDIATE for writers."""
    default_ms = max(1, int(write_wait * 1000))

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (see _on_begin)
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={default_ms}")
        cur.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # A writer takes the lock up front so it never fails to upgrade a read lock, waiting
        # for it what is left of its time (Store.transaction's deadline), or write_wait.
        options = conn.get_execution_options()
        if not options.get("capahub_write"):
            conn.exec_driver_sql("BEGIN")
            return
        # A writer's page cache: SQLite's default (2 MB) made every index of a bulk write
        # (relations, history: a few each) read its pages again per row once the catalog
        # outgrew it. Pages are only taken as they are used; a small write uses a few.
        conn.exec_driver_sql(f"PRAGMA cache_size=-{WRITER_CACHE_KB}")
        deadline = options.get("capahub_deadline")
        left_ms = default_ms
        if deadline is not None:
            left_ms = min(default_ms, max(1, int((deadline - time.monotonic()) * 1000)))
        # The connection's own timeout is write_wait: changed (and put back) only for a writer
        # that already spent a noticeable part of it waiting in this process.
        shortened = left_ms < default_ms - 100
        try:
            if shortened:
                conn.exec_driver_sql(f"PRAGMA busy_timeout={left_ms}")
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except DBAPIError as err:
            # Every writer, the store's transactions and any other BEGIN IMMEDIATE alike.
            if is_lock_timeout(err):
                raise busy_error(write_wait) from None
            raise
        finally:
            if shortened:
                conn.exec_driver_sql(f"PRAGMA busy_timeout={default_ms}")


__all__ = [
    "COMMITTED",
    "DEFAULT_WRITE_WAIT",
    "NOTIFY_CHANNEL",
    "Change",
    "ChangeNotifications",
    "NodeFilter",
    "PendingChange",
    "Reader",
    "Store",
    "TransactionHook",
    "PartialHook",
    "Writer",
    "busy_error",
    "is_lock_timeout",
    "normalize_url",
]
