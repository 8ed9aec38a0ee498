"""The catalog at any instant, rebuilt from the change log (``history``) and its snapshots.

An instant resolves to a *change id*: the newest change recorded at or before it (index
``ix_history_at``). Everything about the past is then a question about that id:

* one node (or a few): its latest history image at or before the id, one indexed look-up per
  batch (``ix_history_target``: target_id, id), whatever the length of the log;
* the graph (graph questions, listings): the live projection, frozen, with every change after
  the id undone (each history row holds the full before-image, so undoing is "set it back to
  its before-image", newest first), or, where that is longer, the nearest snapshot plus the
  changes between it and the id (``catalog.changes.snapshots``); kept in a count-bounded cache
  keyed by the change id;
* the whole state (search, export, snapshots): the same two ways, from the tables.

See docs/architecture.md, "Change stream: time travel".
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import networkx as nx
from cachetools import LRUCache
from sqlalchemy import func, select

from metadata.errors import InvalidInputError
from metadata.graph import CatalogGraph, GraphView
from metadata.model import Kind, Lifecycle, NodeRecord, RelationRecord, RelationType
from metadata.store import Reader, Store, node_from_row, node_snapshot, one_of
from metadata.tables import history, nodes, relations

#: Past graphs (and states) kept at once, when the caller does not say (``asof_cache_size``).
CACHE_SIZE = 4
#: History rows read per statement while rebuilding a state.
BATCH = 20_000


def _utc_now() -> datetime:
    return datetime.now(UTC)


def check_instant(value: datetime, field_name: str, now: datetime) -> datetime:
    """``value`` in UTC, refused when it has no offset or lies after ``now``.

    Raises:
        InvalidInputError: a naive datetime (no ``Z`` or ``+hh:mm``), or one in the future.
    """
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInputError(
            f"{field_name}: {value.isoformat()} has no timezone offset; give one, e.g. "
            f"{value.isoformat()}Z (UTC) or {value.isoformat()}+02:00 - an instant without "
            "one is ambiguous, so it is not guessed",
            field=field_name,
        )
    at = value.astimezone(UTC)
    if at > now:
        raise InvalidInputError(
            f"{field_name}: {at.isoformat()} is in the future (the hub's clock says "
            f"{now.isoformat()}); the catalog's history ends now",
            field=field_name,
        )
    return at


def parse_instant(text: str, field_name: str) -> datetime:
    """An instant from ISO 8601 text: with an offset, or a bare date (00:00 UTC that day).

    Raises:
        InvalidInputError: not ISO 8601, or a date and time without an offset.
    """
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInputError(
            f"{field_name}: {text[:60]!r} is not an ISO 8601 instant; give e.g. "
            "2026-03-01T00:00:00Z or a date, 2026-03-01",
            field=field_name,
        ) from None
    if len(text.strip()) == 10:  # YYYY-MM-DD: the start of that day in UTC
        value = value.replace(tzinfo=UTC)
    return value


def image_record(image: dict[str, Any]) -> NodeRecord:
    """A ``NodeRecord`` from a node's history image (``metadata.store.node_snapshot``)."""
    node_id = image["id"]
    return NodeRecord(
        id=node_id,
        kind=Kind(image["kind"]),
        key=node_id.split(":", 1)[1],
        name=image["name"],
        description=image.get("description"),
        tags=tuple(image.get("tags") or ()),
        lifecycle=Lifecycle(image["lifecycle"]),
        owner=image.get("owner"),
        properties=image.get("properties") or None,
        attributes=tuple(image.get("attributes") or ()),
        version=image["version"],
        created_at=datetime.fromisoformat(image["createdAt"]),
        updated_at=datetime.fromisoformat(image["updatedAt"]),
    )


def relation_record(content: dict[str, Any]) -> RelationRecord:
    """A ``RelationRecord`` from a relation's history image (``RelationRecord.content``)."""
    return RelationRecord(
        content["from"], RelationType(content["type"]), content["to"], content.get("properties")
    )


def relation_id(rel: RelationRecord) -> str:
    """A relation's ``target_id`` in history: ``from|TYPE|to``."""
    return f"{rel.from_id}|{rel.type.value}|{rel.to_id}"


@dataclass
class CatalogState:
    """Every node (history image) and relation (content) as they stood after ``change_id``."""

    change_id: int
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    relations: dict[str, dict[str, Any]] = field(default_factory=dict)
    _records: dict[str, NodeRecord] = field(default_factory=dict, repr=False)

    def set(self, target: str, target_id: str, image: dict[str, Any] | None) -> None:
        """Make one node or relation what ``image`` says (None: absent)."""
        side = self.nodes if target == "node" else self.relations
        self._records.pop(target_id, None)
        if image is None:
            side.pop(target_id, None)
        else:
            side[target_id] = image

    def record(self, node_id: str) -> NodeRecord | None:
        """The node as a record (made once per state)."""
        rec = self._records.get(node_id)
        if rec is None:
            image = self.nodes.get(node_id)
            if image is None:
                return None
            rec = self._records[node_id] = image_record(image)
        return rec

    def records(self) -> list[NodeRecord]:
        """Every node as a record, by id."""
        out = []
        for node_id in sorted(self.nodes):
            rec = self.record(node_id)
            assert rec is not None
            out.append(rec)
        return out

    def relation_records(self) -> list[RelationRecord]:
        """Every relation as a record, ordered by (from, type, to)."""
        return [relation_record(self.relations[k]) for k in sorted(self.relations)]

    def graph(self) -> GraphView:
        """The projection of this state (what graph questions read)."""
        g: nx.DiGraph = nx.DiGraph()
        g.add_nodes_from(
            (
                i,
                {
                    "kind": Kind(s["kind"]),
                    "lifecycle": Lifecycle(s["lifecycle"]),
                    "owner": s.get("owner"),
                },
            )
            for i, s in self.nodes.items()
        )
        for c in self.relations.values():
            f, t, to = c["from"], RelationType(c["type"]), c["to"]
            if g.has_edge(f, to):
                g.succ[f][to]["rels"][t] = c.get("properties")
            else:
                g.add_edge(f, to, rels={t: c.get("properties")})
        return GraphView(g, past_version(self.change_id))


def past_version(change_id: int) -> int:
    """The ``GraphView.version`` of a past graph: negative, so that no cache keyed by a live
    version (PageRank, list sizes) ever takes it for the present."""
    return -1 - change_id


def rewind(
    view: GraphView, changes: Sequence[tuple[str, str, str, Any]], change_id: int
) -> GraphView:
    """``view`` with ``changes`` (target, target_id, op, before; oldest first) undone.

    ``view`` is an immutable snapshot (``CatalogGraph.snapshot``): its outer dicts are copied
    and every inner dict is copied before it is changed, so the snapshot is left as it was.
    """
    src = view.g
    g: nx.DiGraph = nx.DiGraph()
    node, succ, pred = src._node.copy(), src._succ.copy(), src._pred.copy()
    g._node, g._adj, g._pred = node, succ, pred
    g._succ = succ
    own_s: set[str] = set()
    own_p: set[str] = set()

    def writable(side: dict[str, dict[str, Any]], own: set[str], n: str) -> dict[str, Any]:
        if n not in side:
            side[n] = {}
            own.add(n)
        elif n not in own:
            side[n] = dict(side[n])
            own.add(n)
        return side[n]

    def ensure(n: str) -> None:
        if n not in node:
            node[n] = {"kind": _kind_of(n), "lifecycle": Lifecycle.ACTIVE, "owner": None}
            writable(succ, own_s, n)
            writable(pred, own_p, n)

    for target, target_id, _op, before in reversed(changes):
        if target == "node":
            if before is None:  # undo a creation: its relations were undone before it
                node.pop(target_id, None)
                for m in list(succ.pop(target_id, {})):
                    writable(pred, own_p, m).pop(target_id, None)
                for m in list(pred.pop(target_id, {})):
                    writable(succ, own_s, m).pop(target_id, None)
                own_s.discard(target_id)
                own_p.discard(target_id)
            else:
                if target_id not in succ:
                    writable(succ, own_s, target_id)
                    writable(pred, own_p, target_id)
                node[target_id] = {
                    "kind": Kind(before["kind"]),
                    "lifecycle": Lifecycle(before["lifecycle"]),
                    "owner": before.get("owner"),
                }
            continue
        f, t_name, to = target_id.split("|")
        t = RelationType(t_name)
        old = succ.get(f, {}).get(to)
        rels = dict(old["rels"]) if old else {}
        if before is None:
            rels.pop(t, None)
        else:
            ensure(f)
            ensure(to)
            rels[t] = before.get("properties")
        if rels:
            writable(succ, own_s, f)[to] = writable(pred, own_p, to)[f] = {"rels": rels}
        elif old is not None:
            writable(succ, own_s, f).pop(to, None)
            writable(pred, own_p, to).pop(f, None)
    return GraphView(g, past_version(change_id))


def _kind_of(node_id: str) -> Kind:
    from metadata.model import KIND_BY_PREFIX

    return KIND_BY_PREFIX[node_id.split(":", 1)[0]]


class TimeTravel:
    """Answers about the catalog at a past change id: records, graphs and whole states.

    ``graph`` is the live projection when the process keeps one (the server): past graphs are
    then the live one with the later changes undone. Past graphs and states are kept in an LRU
    of ``cache_size`` entries each, keyed by change id (a state of 100,000 nodes is some
    hundreds of MB, so the bound is a count, set low).
    """

    def __init__(
        self,
        store: Store,
        graph: CatalogGraph | None = None,
        *,
        cache_size: int = CACHE_SIZE,
        snapshot_every: int = 0,
    ) -> None:
        self.store = store
        self.live = graph
        self.snapshot_every = snapshot_every
        self._graphs: LRUCache[int, GraphView] = LRUCache(maxsize=max(1, cache_size))
        # Whole states hold every node's record (hundreds of MB at 100,000 nodes): half as many.
        self._states: LRUCache[int, CatalogState] = LRUCache(maxsize=max(1, cache_size // 2))
        self._building: dict[tuple[str, int], asyncio.Future[Any]] = {}
        #: How past graphs and states were rebuilt, for tests and benchmarks to check.
        self.built: list[tuple[str, int, str]] = []
        self._last_snapshot: int | None = None
        self._snapshotting: asyncio.Task[None] | None = None

    def maintain(self) -> None:
        """Start writing a snapshot of the present in the background when the change log has
        grown by ``snapshot_every`` changes, and by as many as the catalog has nodes, since the
        last one (the serving process calls it after each sync; it costs a comparison)."""
        live = self.live
        if not self.snapshot_every or live is None or self._snapshotting is not None:
            return
        due = max(self.snapshot_every, len(live.g))
        # Until the newest snapshot is known, count from 0: a log shorter than ``due`` needs no
        # look at the snapshots table (so a hub with a short history never reads it).
        if live.last_change - (self._last_snapshot or 0) < due:
            return
        self._snapshotting = asyncio.ensure_future(self._snapshot(live.last_change, due))

    async def _snapshot(self, change_id: int, due: int) -> None:
        from catalog.changes.snapshots import last_snapshot_id, write_snapshot

        try:
            self._last_snapshot = await last_snapshot_id(self.store)
            if change_id - self._last_snapshot >= due:
                state = await self._build_state(change_id, keep=False)
                await write_snapshot(self.store, state)
                self._last_snapshot = change_id
        except Exception:  # a snapshot is an optimisation: never let it break the server
            logging.getLogger("capahub.changes").exception("writing a catalog snapshot failed")
        finally:
            self._snapshotting = None

    def now(self) -> datetime:
        """The hub's clock (the store's: the one its history rows are stamped with)."""
        return self.store.clock()

    async def resolve(self, at: datetime, field_name: str = "asOf") -> int:
        """The change id the catalog stood at at instant ``at``.

        Raises:
            InvalidInputError: naive, in the future, or before the first recorded change.
        """
        when = check_instant(at, field_name, self.now())
        h = history.c
        async with self.store.read() as r:
            stmt = select(h.id).where(h.at <= when).order_by(h.at.desc(), h.id.desc()).limit(1)
            found = (await r.conn.execute(stmt)).scalar()
            if found is None:
                first = (await r.conn.execute(select(func.min(h.at)))).scalar()
        if found is None:
            if first is None:
                raise InvalidInputError(
                    f"{field_name}: the catalog has no recorded change yet, so it has no past "
                    "to answer from",
                    field=field_name,
                )
            first_at = first if first.tzinfo else first.replace(tzinfo=UTC)
            raise InvalidInputError(
                f"{field_name}: {when.isoformat()} is before the first recorded change "
                f"({first_at.isoformat()}); ask about an instant at or after it",
                field=field_name,
            )
        return int(found)

    async def nodes_at(self, ids: Sequence[str], change_id: int) -> dict[str, NodeRecord]:
        """The nodes with these ids as they were after ``change_id`` (absent: not there yet).

        One statement (the latest history row of each id at or before the change id, through
        ``ix_history_target``), whatever the length of the log.
        """
        if not ids:
            return {}
        state = self._states.get(change_id)
        if state is not None:
            return {i: rec for i in ids if (rec := state.record(i)) is not None}
        async with self.store.read() as r:
            return await _images_at(r, ids, change_id)

    async def graph_at(self, change_id: int) -> GraphView:
        """The projection as it was after ``change_id`` (cached)."""
        found = self._graphs.get(change_id)
        if found is not None:
            return found
        view = await self._once("graph", change_id, self._build_graph)
        assert isinstance(view, GraphView)
        return view

    async def state_at(self, change_id: int) -> CatalogState:
        """Every node and relation as they were after ``change_id`` (cached)."""
        found = self._states.get(change_id)
        if found is not None:
            return found
        state = await self._once("state", change_id, self._build_state)
        assert isinstance(state, CatalogState)
        return state

    async def _once(self, what: str, change_id: int, build: Any) -> Any:
        """``build(change_id)``, once however many requests want it at the same time."""
        key = (what, change_id)
        pending = self._building.get(key)
        if pending is None:
            pending = asyncio.ensure_future(build(change_id))
            self._building[key] = pending
            pending.add_done_callback(lambda _f: self._building.pop(key, None))
        return await asyncio.shield(pending)

    async def _build_graph(self, change_id: int) -> GraphView:
        live = self.live
        if live is not None and live.version:
            if live.last_change < change_id:
                await live.sync(self.store)
            frozen = live.snapshot()  # on the loop's thread: never half a change
            async with self.store.read() as r:
                changes = await _undo_log(r, change_id)
            view = await asyncio.to_thread(rewind, frozen, changes, change_id)
            self.built.append(("graph", change_id, f"live projection, {len(changes)} undone"))
        else:
            state = await self.state_at(change_id)
            view = await asyncio.to_thread(state.graph)
            self.built.append(("graph", change_id, "from the state"))
        self._graphs[change_id] = view
        return view

    async def rebuild(self, change_id: int, how: str) -> CatalogState:
        """The state after ``change_id`` rebuilt one given way (``replay`` from the first
        change, ``snapshot`` plus the changes after it, ``undo`` from the present), uncached:
        the tests check that all three agree."""
        return await self._build_state(change_id, keep=False, how=how)

    async def _build_state(
        self, change_id: int, *, keep: bool = True, how: str | None = None
    ) -> CatalogState:
        from catalog.changes.snapshots import latest_snapshot, write_snapshot

        async with _consistent(self.store) as r:
            last = await r.last_change_id()
            snap = await latest_snapshot(r, change_id) if how != "replay" else None
            present_rows = await _count_rows(r)
            redo_from = snap[0] if snap is not None else 0
            redo_rows = (change_id - redo_from) + (snap[1] if snap is not None else 0)
            undo_rows = (last - change_id) + present_rows
            if how in ("replay", "snapshot") or (how is None and redo_rows <= undo_rows):
                state = snap[2] if snap is not None else CatalogState(0)
                replayed = await _redo(r, state, change_id)
                how = f"snapshot {redo_from} + {replayed} replayed"
            else:
                state = await _present_state(r, last)
                undone = await _undo(r, state, change_id)
                how = f"present tables, {undone} undone"
                replayed = 0
        self.built.append(("state", change_id, how))
        if keep:
            self._states[change_id] = state
        if keep and self.snapshot_every and replayed >= self.snapshot_every:
            # A long replay: keep its result, so the next question near here starts from it.
            await write_snapshot(self.store, state)
        return state


async def _images_at(r: Reader, ids: Sequence[str], change_id: int) -> dict[str, NodeRecord]:
    h = history.c
    latest = (
        select(func.max(h.id).label("mid"))
        .where(one_of(h.target_id, list(dict.fromkeys(ids)), r.dialect), h.id <= change_id)
        .group_by(h.target_id)
        .subquery()
    )
    stmt = select(h.after).where(h.id.in_(select(latest.c.mid)))
    out: dict[str, NodeRecord] = {}
    for (after,) in await r.conn.execute(stmt):
        if after is not None:
            rec = image_record(after)
            out[rec.id] = rec
    return out


async def _undo_log(r: Reader, change_id: int) -> list[tuple[str, str, str, Any]]:
    """Every change after ``change_id``, oldest first: (target, target_id, op, before)."""
    h = history.c
    out: list[tuple[str, str, str, Any]] = []
    after = change_id
    while True:
        stmt = (
            select(h.id, h.target, h.target_id, h.op, h.before)
            .where(h.id > after)
            .order_by(h.id)
            .limit(BATCH)
        )
        rows = (await r.conn.execute(stmt)).all()
        if not rows:
            return out
        out.extend((t, ti, op, b) for _, t, ti, op, b in rows)
        after = rows[-1][0]


async def _undo(r: Reader, state: CatalogState, change_id: int) -> int:
    changes = await _undo_log(r, change_id)
    for target, target_id, _op, before in reversed(changes):
        state.set(target, target_id, before)
    state.change_id = change_id
    return len(changes)


async def _redo(r: Reader, state: CatalogState, change_id: int) -> int:
    """Apply the changes after ``state.change_id`` up to ``change_id`` (after-images)."""
    h = history.c
    done = 0
    after = state.change_id
    while after < change_id:
        stmt = (
            select(h.id, h.target, h.target_id, h.after)
            .where(h.id > after, h.id <= change_id)
            .order_by(h.id)
            .limit(BATCH)
        )
        rows = (await r.conn.execute(stmt)).all()
        if not rows:
            break
        for _, target, target_id, image in rows:
            state.set(target, target_id, image)
        done += len(rows)
        after = rows[-1][0]
    state.change_id = change_id
    return done


async def _present_state(r: Reader, last: int) -> CatalogState:
    state = CatalogState(last)
    for row in await r.conn.execute(select(nodes)):
        state.nodes[row.id] = node_snapshot(node_from_row(row))
    rel = relations.c
    for f, t, to, props in await r.conn.execute(
        select(rel.from_id, rel.type, rel.to_id, rel.properties)
    ):
        content: dict[str, Any] = {"from": f, "type": t, "to": to}
        if props is not None:
            content["properties"] = props
        state.relations[f"{f}|{t}|{to}"] = content
    return state


async def _count_rows(r: Reader) -> int:
    n = (await r.conn.execute(select(func.count()).select_from(nodes))).scalar_one()
    m = (await r.conn.execute(select(func.count()).select_from(relations))).scalar_one()
    return int(n) + int(m)


class _consistent:
    """A read connection whose statements all see one snapshot of the database (SQLite: one
    read transaction; PostgreSQL: REPEATABLE READ), so tables and log agree."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._cm: Any = None

    async def __aenter__(self) -> Reader:
        self._cm = self.store.engine.connect()
        conn = await self._cm.__aenter__()
        if self.store.dialect == "postgresql":
            conn = await conn.execution_options(isolation_level="REPEATABLE READ")
        return Reader(conn)

    async def __aexit__(self, *exc: Any) -> None:
        await self._cm.__aexit__(*exc)


__all__ = [
    "CatalogState",
    "TimeTravel",
    "check_instant",
    "image_record",
    "parse_instant",
    "past_version",
    "relation_id",
    "relation_record",
    "rewind",
]
