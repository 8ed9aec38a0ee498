"""The networkx projection of the catalog: built once from the store, then kept in step by changes.

The projection holds only what traversals need: each node's kind, lifecycle and owner, and each
relation (edge u -> v carries ``rels``: relation type -> properties). Records (names, tags...)
stay in the store; answers are node ids and relations that upper layers load in batches.

It is changed only on the event loop's thread, synchronously, so a reader on that thread never
sees half a transaction. Changes arrive two ways: this process's commits through the store
listener (read-your-writes), and a poll of the history table, which replays every change in
order, including other processes' (idempotent: node changes carry full snapshots).

Graph questions run on worker threads while the loop goes on applying changes, so they read a
``snapshot()``: one immutable version of the projection. A snapshot copies only the three
outer dicts (node attributes, successors, predecessors: a few milliseconds for 100,000 nodes);
the per-node dicts stay shared, and while any snapshot is alive the projection copies a node's
adjacency dict before its first change after the latest snapshot (copy on write). Node
attribute dicts and edge data dicts are never changed in place, only replaced.

Because they are never changed in place, equal ones are one object (``edge_data``,
``node_attrs``): every pair joined by relations of one type without properties (nearly all of
them) shares that type's data dict, and every node of one kind, lifecycle and owner shares its
attribute dict. On 100,000 nodes / 496,154 related pairs the projection took 385 MB with a
data dict per pair and an attribute dict per node (bench/README.md, "Graph projection memory").
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import networkx as nx
from sqlalchemy import select

from metadata.errors import InvalidInputError, UnavailableError
from metadata.model import (
    KIND_BY_PREFIX,
    Kind,
    Lifecycle,
    RelationRecord,
    RelationType,
    Touching,
)
from metadata.store import Change, Store
from metadata.tables import nodes, relations

#: Nodes whose relation records ``touching`` remembers at most (it starts over past it).
MAX_REMEMBERED = 50_000
#: Versions whose touched nodes the projection remembers (``GraphView.touched_since``), and
#: the most nodes one version may name before it counts as touching everything.
TOUCHED_VERSIONS = 512
MAX_TOUCHED_NODES = 50_000
#: The most node ids the log holds over all its versions (the oldest versions go first).
MAX_LOGGED_NODES = 200_000

#: The data dict of a pair joined by relations of one type without properties, by type
#: (shared: never change one in place).
PLAIN_EDGES: dict[RelationType, dict[str, Any]] = {t: {"rels": {t: None}} for t in RelationType}
#: Attribute dicts by (kind, lifecycle, owner); started over past this many.
_ATTRS: dict[tuple[Kind, Lifecycle, str | None], dict[str, Any]] = {}
MAX_ATTRS = 100_000


def edge_data(rels: dict[RelationType, Any]) -> dict[str, Any]:
    """The edge data dict of a pair with these relations (type -> properties): one shared
    dict per type when there is one relation and it has no properties. Never change the
    result in place (nor ``rels`` after the call): replace it."""
    if len(rels) == 1:
        for t, props in rels.items():
            if props is None:
                return PLAIN_EDGES[t]
    return {"rels": rels}


def node_attrs(kind: Kind, lifecycle: Lifecycle, owner: str | None) -> dict[str, Any]:
    """The attribute dict of a node: one shared dict per (kind, lifecycle, owner). Never
    change it in place: replace it."""
    key = (kind, lifecycle, owner)
    found = _ATTRS.get(key)
    if found is None:
        if len(_ATTRS) >= MAX_ATTRS:
            _ATTRS.clear()
        found = _ATTRS[key] = {"kind": kind, "lifecycle": lifecycle, "owner": owner}
    return found


def put_node(g: nx.DiGraph, n: str, attrs: dict[str, Any]) -> None:
    """Add node ``n`` with ``attrs`` (shared, from ``node_attrs``) and empty adjacency, or
    replace its attributes. (networkx's ``add_node`` copies the attributes into a dict of
    the node's own.)"""
    if n not in g._node:
        g._succ[n] = {}
        g._pred[n] = {}
    g._node[n] = attrs


class GraphQueryTooExpensiveError(InvalidInputError):
    """A graph question ran past its time budget."""


class GraphQuestionCancelledError(UnavailableError):
    """A graph question was stopped because its request ended (timed out, or its client left)."""


class Deadline:
    """A time budget for one graph question; ``check()`` raises once it has passed, or once
    ``cancelled()`` says the question's request is gone."""

    def __init__(
        self, seconds: float, what: str, cancelled: Callable[[], bool] | None = None
    ) -> None:
        self.seconds = seconds
        self.what = what
        self.until = time.monotonic() + seconds
        self.cancelled = cancelled
        self._ticks = 0

    def check(self) -> None:
        """Raise when the budget is spent or the question cancelled (cheap to call often)."""
        self._ticks += 1
        if self._ticks % 256 == 1:
            self.check_now()

    def check_now(self) -> None:
        """``check()`` without skipping: for loops whose every turn is long."""
        if self.cancelled is not None and self.cancelled():
            raise GraphQuestionCancelledError(
                f"{self.what}: stopped, its request ended (timed out or the client left)",
                field=self.what,
            )
        if time.monotonic() > self.until:
            raise GraphQueryTooExpensiveError(
                f"{self.what}: took longer than {self.seconds:g} s; ask a narrower question "
                "(a lower depth or fewer relation types)",
                field=self.what,
            )


@dataclass(frozen=True, slots=True)
class Step:
    """One relation crossed by a traversal, as stored (from, type, to)."""

    from_id: str
    type: RelationType
    to_id: str
    properties: dict[str, Any] | None

    def record(self) -> RelationRecord:
        """The relation as a record."""
        return RelationRecord(self.from_id, self.type, self.to_id, self.properties)


class GraphView:
    """One version of the projection, for reading: node facts, relations and traversals.

    A ``CatalogGraph`` is the live one (read it on the event loop's thread only); its
    ``snapshot()`` is a frozen one that any thread may read while the live one moves on.
    """

    def __init__(
        self,
        g: nx.DiGraph,
        version: int,
        log: deque[tuple[int, frozenset[str] | None]] | None = None,
    ) -> None:
        self.g = g
        self.version = version  # rises with every applied change; caches key on it
        #: The live projection's log of the nodes each version touched (``touched_since``);
        #: None for a graph that follows no changes (a past one).
        self._log = log

    @property
    def follows_changes(self) -> bool:
        """Whether this is the live projection or a snapshot of it (its versions move on
        with the catalog's changes), not a past catalog."""
        return self._log is not None

    def touched_since(self, version: int) -> set[str] | None:
        """The nodes the changes after ``version`` up to this one touched (a node change's
        node, a relation change's ends), or None when the log no longer reaches back there
        (or a version replaced the whole projection)."""
        log = self._log
        if log is None or version > self.version:
            return None
        entries = tuple(log)  # one step under the GIL: the loop's thread appends
        found: set[str] = set()
        expected = version + 1
        for at, ids in entries:
            if at <= version:
                continue
            if at > self.version:
                break
            if at != expected or ids is None:
                return None
            found.update(ids)
            expected += 1
        return found if expected == self.version + 1 else None

    # -- reading ------------------------------------------------------------------------------

    def has(self, node_id: str) -> bool:
        """Whether the node exists."""
        return node_id in self.g

    def kind(self, node_id: str) -> Kind:
        """The kind of a node."""
        kind: Kind = self.g._node[node_id]["kind"]
        return kind

    def active(self, node_id: str) -> bool:
        """Whether a node is not RETIRED."""
        return self.g._node[node_id]["lifecycle"] is not Lifecycle.RETIRED

    def owner(self, node_id: str) -> str | None:
        """The owner column of a node."""
        owner: str | None = self.g._node[node_id]["owner"]
        return owner

    # The readers below walk networkx's own dicts (``_node``, ``_succ``, ``_pred``, which this
    # module builds and copies itself) rather than its read-only views: the views wrap every
    # access in Python-level Mapping methods, two thirds of a ``gaps`` pass.

    def nodes_of(self, kind: Kind) -> Iterator[str]:
        """Ids of the active nodes of one kind."""
        retired = Lifecycle.RETIRED
        for n, data in self.g._node.items():
            if data["kind"] is kind and data["lifecycle"] is not retired:
                yield n

    def out(self, node_id: str, rtype: RelationType) -> list[str]:
        """Targets of this node's ``rtype`` relations."""
        return [v for v, d in self.g._succ[node_id].items() if rtype in d["rels"]]

    def into(self, node_id: str, rtype: RelationType) -> list[str]:
        """Sources of the ``rtype`` relations pointing at this node."""
        return [u for u, d in self.g._pred[node_id].items() if rtype in d["rels"]]

    def steps(
        self, node_id: str, types: Iterable[RelationType] | None, direction: str
    ) -> Iterator[tuple[str, Step]]:
        """(neighbour, relation) pairs around a node by type and direction: out, in or both."""
        wanted = set(types) if types else None
        if direction in ("out", "both"):
            for v, d in self.g._succ[node_id].items():
                for t, props in d["rels"].items():
                    if wanted is None or t in wanted:
                        yield v, Step(node_id, t, v, props)
        if direction in ("in", "both"):
            for u, d in self.g._pred[node_id].items():
                for t, props in d["rels"].items():
                    if wanted is None or t in wanted:
                        yield u, Step(u, t, node_id, props)

    def relation_between(self, a: str, b: str) -> Step:
        """One stored relation joining a and b in either direction (lowest type name first)."""
        if self.g.has_edge(a, b):
            t = min(self.g.succ[a][b]["rels"], key=lambda r: r.value)
            return Step(a, t, b, self.g.succ[a][b]["rels"][t])
        t = min(self.g.succ[b][a]["rels"], key=lambda r: r.value)
        return Step(b, t, a, self.g.succ[b][a]["rels"][t])

    # -- traversals ---------------------------------------------------------------------------

    def shortest_path(
        self, src: str, dst: str, max_length: int, deadline: Deadline
    ) -> list[str] | None:
        """Node ids of a shortest path ignoring direction and retired nodes, or None."""
        if src == dst:
            return [src]
        g = self.g
        parents: dict[str, str | None] = {src: None}
        children: dict[str, str | None] = {dst: None}
        front, back = [src], [dst]
        length = 0
        while front and back and length < max_length:
            # Expand the smaller frontier: bidirectional BFS.
            forward = len(front) <= len(back)
            frontier, seen, other = (
                (front, parents, children) if forward else (back, children, parents)
            )
            nxt: list[str] = []
            for n in frontier:
                for m in _undirected(g, n):
                    deadline.check()
                    if m in seen or g._node[m]["lifecycle"] is Lifecycle.RETIRED:
                        continue
                    seen[m] = n
                    if m in other:
                        return _join(parents, children, m)
                    nxt.append(m)
            length += 1
            if forward:
                front = nxt
            else:
                back = nxt
        return None

    def bfs(
        self,
        root: str,
        expand: Any,
        depth: int,
        deadline: Deadline,
        *,
        skip_retired: bool = True,
    ) -> dict[str, tuple[int, list[Step]]]:
        """Breadth-first from root with ``expand(node) -> [(neighbour, step)]``.

        Returns node -> (distance, relations from root), root excluded.
        """
        found: dict[str, tuple[int, list[Step]]] = {}
        seen = {root}
        queue: deque[tuple[str, int, list[Step]]] = deque([(root, 0, [])])
        while queue:
            n, dist, via = queue.popleft()
            if dist >= depth:
                continue
            for m, step in expand(n):
                deadline.check()
                if m in seen:
                    continue
                seen.add(m)
                if skip_retired and not self.active(m):
                    continue
                path = [*via, step]
                found[m] = (dist + 1, path)
                queue.append((m, dist + 1, path))
        return found


class CatalogGraph(GraphView):
    """The in-memory projection of every node and relation, kept in step with the store."""

    def __init__(self) -> None:
        super().__init__(nx.DiGraph(), 0, deque(maxlen=TOUCHED_VERSIONS))
        self._logged = 0  # node ids in the log
        self.last_change = 0
        self._followers: list[Callable[[Sequence[Change]], None]] = []
        self._sync_lock = asyncio.Lock()
        # node id -> its relations as records, built on first use, dropped when one changes
        self._touching: dict[str, Touching] = {}
        # Snapshots alive, the latest one, and the nodes whose adjacency dicts (successors,
        # predecessors) were copied since it was taken, so no snapshot shares them.
        self._snapshots: weakref.WeakSet[GraphView] = weakref.WeakSet()
        self._latest: weakref.ref[GraphView] | None = None
        self._kept: GraphView | None = None
        self._own_succ: set[str] = set()
        self._own_pred: set[str] = set()

    # -- building and keeping in step -------------------------------------------------------

    async def load(self, store: Store) -> None:
        """Build the projection from the store (the change id is read first, so nothing is lost)."""
        g: nx.DiGraph = nx.DiGraph()
        async with store.read() as r:
            last = await r.last_change_id()
            result = await r.conn.stream(
                select(nodes.c.id, nodes.c.kind, nodes.c.lifecycle, nodes.c.owner_id)
            )
            async for part in result.partitions(5000):
                for i, k, lc, o in part:
                    put_node(g, i, node_attrs(Kind(k), Lifecycle(lc), o))
            result = await r.conn.stream(
                select(
                    relations.c.from_id, relations.c.type, relations.c.to_id, relations.c.properties
                )
            )
            async for part in result.partitions(5000):
                for f, t, to, props in part:
                    _add_edge(g, f, RelationType(t), to, props)
        self.replace(g, last)

    def replace(self, g: nx.DiGraph, last_change: int) -> None:
        """Serve ``g`` from now on: a whole projection that holds every change up to
        ``last_change`` (built by ``load``, or read from a snapshot file:
        ``metadata.snapshot``); ``sync`` replays what came after."""
        self.g = g
        self._touching = {}
        # Snapshots of the old graph share nothing with the new one.
        self._snapshots = weakref.WeakSet()
        self._latest = None
        self._kept = None
        self.last_change = last_change
        self.version += 1
        self._touch(None)

    def apply(self, changes: Sequence[Change]) -> None:
        """Apply committed changes (full snapshots; applying one twice is harmless)."""
        touching = self._touching
        touched: set[str] | None = set()
        for c in changes:
            if c.target == "node":
                snap = c.after or {}
                self._set_node(
                    snap["id"], Kind(snap["kind"]), Lifecycle(snap["lifecycle"]), snap.get("owner")
                )
                ends: tuple[str, ...] = (snap["id"],)
            elif c.op == "delete":
                before = c.before or {}
                touching.pop(before["from"], None)
                touching.pop(before["to"], None)
                self._remove_edge(before["from"], RelationType(before["type"]), before["to"])
                ends = (before["from"], before["to"])
            else:
                after = c.after or {}
                touching.pop(after["from"], None)
                touching.pop(after["to"], None)
                self._add_edge(
                    after["from"], RelationType(after["type"]), after["to"], after.get("properties")
                )
                ends = (after["from"], after["to"])
            if touched is not None:
                touched.update(ends)
                if len(touched) > MAX_TOUCHED_NODES:
                    touched = None
        if changes:
            self.version += 1
            self._touch(touched)
            for follower in self._followers:
                follower(changes)

    @property
    def syncing(self) -> bool:
        """Whether a sync is running right now."""
        return self._sync_lock.locked()

    def follow(self, follower: Callable[[Sequence[Change]], None]) -> None:
        """Call ``follower`` with every batch of changes the projection applies (this
        process's commits and other processes' changes alike), e.g. to drop cached records."""
        self._followers.append(follower)

    async def sync(self, store: Store) -> int:
        """Replay, in order, every change committed since the last sync (any process's).

        Serialized: two overlapping syncs could otherwise replay an older batch after a newer.
        """
        async with self._sync_lock:
            applied = 0
            while True:
                async with store.read() as r:
                    changes = await r.changes_since(self.last_change, limit=5000)
                if not changes:
                    return applied
                self.apply(changes)
                # max: this process's commits may have moved it on meanwhile (``attach``)
                self.last_change = max(self.last_change, changes[-1].id)
                applied += len(changes)

    def attach(self, store: Store) -> None:
        """Follow this process's commits as they happen (read-your-writes)."""
        store.subscribe(self._committed_here)

    def _committed_here(self, changes: Sequence[Change]) -> None:
        """Apply this process's commit; when it follows on the last change applied with no
        gap (no other process wrote in between), the projection is at its version at once."""
        self.apply(changes)
        if changes and changes[0].id == self.last_change + 1:
            self.last_change = changes[-1].id

    def _touch(self, ids: set[str] | None) -> None:
        """Log the nodes this version touched (None: all of them)."""
        log = self._log
        if log is None:
            return
        if len(log) == log.maxlen:
            self._logged -= len(log[0][1] or ())
        log.append((self.version, None if ids is None else frozenset(ids)))
        self._logged += len(ids or ())
        while self._logged > MAX_LOGGED_NODES and len(log) > 1:
            self._logged -= len(log.popleft()[1] or ())

    # -- snapshots (copy on write) ------------------------------------------------------------

    def snapshot(self) -> GraphView:
        """This version of the projection, frozen, for readers on other threads.

        Call it on the event loop's thread (where changes are applied). Questions asked at the
        same version share one snapshot, which is kept until a later version's is taken (not
        only while a question holds it: at 1,000,000 nodes the three dict copies take 80 ms,
        and every small graph question paid them).
        """
        latest = self._latest() if self._latest is not None else None
        if latest is not None and latest.version == self.version:
            return latest
        g = self.g
        frozen = nx.DiGraph()
        frozen._node = g._node.copy()
        frozen._adj = g._succ.copy()  # also sets frozen._succ
        frozen._pred = g._pred.copy()
        view = GraphView(frozen, self.version, self._log)
        self._snapshots.add(view)
        self._latest = weakref.ref(view)
        self._kept = view  # the previous one goes once no question holds it
        # From now on every adjacency dict is shared with this snapshot until copied again.
        self._own_succ.clear()
        self._own_pred.clear()
        return view

    def _writable(self, side: dict[str, dict[str, Any]], own: set[str], n: str) -> dict[str, Any]:
        """The adjacency dict of ``n`` on one side, copied first if a live snapshot shares it."""
        inner = side[n]
        if n not in own and self._snapshots:
            inner = side[n] = dict(inner)
            own.add(n)
        return inner

    def _set_node(self, n: str, kind: Kind, lifecycle: Lifecycle, owner: str | None) -> None:
        g = self.g
        attrs = node_attrs(kind, lifecycle, owner)
        if n in g._node:
            g._node[n] = attrs  # replaced, never updated: a snapshot may hold the old dict
        else:
            put_node(g, n, attrs)  # fresh adjacency dicts, which no snapshot holds
            self._own_succ.add(n)
            self._own_pred.add(n)

    def _add_edge(self, f: str, t: RelationType, to: str, props: Any) -> None:
        g = self.g
        for end in (f, to):
            if end not in g:  # not known yet: see the module's _add_edge
                self._set_node(end, KIND_BY_PREFIX[end.split(":", 1)[0]], Lifecycle.ACTIVE, None)
        succ = self._writable(g._succ, self._own_succ, f)
        pred = self._writable(g._pred, self._own_pred, to)
        old = succ.get(to)
        # A new data dict (same order of types as updating in place would give), shared by
        # both sides as networkx shares it.
        succ[to] = pred[f] = edge_data({**old["rels"], t: props} if old else {t: props})

    def _remove_edge(self, f: str, t: RelationType, to: str) -> None:
        g = self.g
        old = g._succ[f].get(to) if f in g._succ else None
        if old is None or t not in old["rels"]:
            return
        succ = self._writable(g._succ, self._own_succ, f)
        pred = self._writable(g._pred, self._own_pred, to)
        rels = {k: v for k, v in old["rels"].items() if k is not t}
        if rels:
            succ[to] = pred[f] = edge_data(rels)
        else:
            del succ[to]
            del pred[f]

    # -- reading (the event loop's thread) -----------------------------------------------------

    def touching(self, node_id: str) -> Touching:
        """A node's outgoing and incoming relations (none for an unknown id), each ordered by
        the other end's id, remembered until one of them changes: the read path asks for the
        same nodes' relations again and again."""
        found = self._touching.get(node_id)
        if found is not None:
            return found
        g = self.g
        if node_id not in g:
            return Touching((), ())
        out = tuple(
            RelationRecord(node_id, t, v, p)
            for v, d in sorted(g.succ[node_id].items(), key=_first)
            for t, p in sorted(d["rels"].items(), key=_type_name)
        )
        into = tuple(
            RelationRecord(u, t, node_id, p)
            for u, d in sorted(g.pred[node_id].items(), key=_first)
            for t, p in sorted(d["rels"].items(), key=_type_name)
        )
        if len(self._touching) >= MAX_REMEMBERED:
            self._touching.clear()
        found = self._touching[node_id] = Touching(out, into)
        return found

    def relations_touching(self, ids: Iterable[str]) -> list[RelationRecord]:
        """Every relation from or to these nodes, as records (unknown ids have none)."""
        g = self.g
        out: list[RelationRecord] = []
        seen: set[tuple[str, str]] = set()
        for n in ids:
            if n not in g:
                continue
            for v, d in g.succ[n].items():
                if (n, v) not in seen:
                    seen.add((n, v))
                    out.extend(RelationRecord(n, t, v, p) for t, p in d["rels"].items())
            for u, d in g.pred[n].items():
                if (u, n) not in seen:
                    seen.add((u, n))
                    out.extend(RelationRecord(u, t, n, p) for t, p in d["rels"].items())
        return out


def _first(item: tuple[str, Any]) -> str:
    return item[0]


def _type_name(item: tuple[RelationType, Any]) -> str:
    return item[0].value


def _undirected(g: nx.DiGraph, n: str) -> Iterator[str]:
    yield from g._succ[n]
    yield from g._pred[n]


def _join(parents: dict[str, str | None], children: dict[str, str | None], meet: str) -> list[str]:
    left: list[str] = []
    n: str | None = meet
    while n is not None:
        left.append(n)
        n = parents[n]
    left.reverse()
    n = children[meet]
    while n is not None:
        left.append(n)
        n = children[n]
    return left


def _add_edge(g: nx.DiGraph, f: str, t: RelationType, to: str, props: Any) -> None:
    # Only while a graph is built (load), before any snapshot can share its dicts.
    # An endpoint may not be known yet: this process's commit can be applied before another
    # process's earlier change is synced. Its kind is in its id; the sync that follows replays
    # the node's own change with the full snapshot.
    for end in (f, to):
        if end not in g:
            put_node(
                g, end, node_attrs(KIND_BY_PREFIX[end.split(":", 1)[0]], Lifecycle.ACTIVE, None)
            )
    old = g._succ[f].get(to)
    # Replaced, not changed: data dicts are shared (edge_data).
    if old is None and props is None:
        g._succ[f][to] = g._pred[to][f] = PLAIN_EDGES[t]
    else:
        g._succ[f][to] = g._pred[to][f] = edge_data(
            {**old["rels"], t: props} if old else {t: props}
        )


__all__ = [
    "PLAIN_EDGES",
    "CatalogGraph",
    "edge_data",
    "node_attrs",
    "put_node",
    "Deadline",
    "GraphQueryTooExpensiveError",
    "GraphQuestionCancelledError",
    "GraphView",
    "Step",
]
