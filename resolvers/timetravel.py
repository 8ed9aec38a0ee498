"""Time travel in GraphQL: ``asOf`` on the reads and graph questions, and ``catalogDiff``.

An operation reads one instant. Its first root field with ``asOf`` resolves the instant to a
change id (``catalog.changes.asof``) and then points the request's context at the past: the
services' discovery, graph, analysis and search become views of the catalog after that change
id, and the request's dataloaders are made anew over them. Every nested field (relations,
owners, providers...) then answers from the past through the same resolvers and dataloaders as
the present, and the same permission rules apply. So an operation may not mix instants: every
root field of an operation with ``asOf`` must carry the same ``asOf`` (refused otherwise, with
``BAD_USER_INPUT`` naming ``asOf``). Without ``asOf`` nothing here runs.
"""

from __future__ import annotations

import asyncio
import bisect
import enum
import weakref
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, cast

import strawberry
from graphql import FieldNode, FragmentSpreadNode, InlineFragmentNode, value_from_ast_untyped
from strawberry import UNSET
from strawberry.scalars import JSON

from catalog.changes.asof import TimeTravel, check_instant
from catalog.changes.diff import DiffEntry
from catalog.discovery import Page, decode_cursor, encode_cursor
from catalog.search import FACETS, Hit, SearchPage, highlight
from metadata.errors import InvalidInputError
from metadata.graph import GraphView
from metadata.model import Kind, Lifecycle, NodeRecord, RelationRecord, RelationType, Touching
from metadata.search import normalize, parse_query
from metadata.store import NodeFilter
from resolvers._fields import field
from resolvers.context import CatalogInfo, Context, Loaders, resolve_later
from resolvers.paging import PageInfo

if TYPE_CHECKING:
    from catalog.services import Services
    from resolvers.types import CatalogNode

AS_OF = "asOf"


@dataclass
class Past:
    """The catalog after one change id, as one request reads it."""

    time_travel: TimeTravel
    change_id: int
    at: datetime
    view: GraphView | None = None

    async def graph(self) -> GraphView:
        """The past projection (built on first use, shared through the service's cache)."""
        if self.view is None:
            self.view = await self.time_travel.graph_at(self.change_id)
        return self.view


#: Each request's past, by ``id`` of its context (dropped with the context): the instant
#: asked and its pending resolution. (Contexts are dataclasses, so not hashable themselves.)
_PAST: dict[int, tuple[datetime, asyncio.Future[Past]]] = {}


def _root_fields(info: CatalogInfo) -> list[FieldNode]:
    out: list[FieldNode] = []

    def walk(selections: Sequence[Any]) -> None:
        for sel in selections:
            if isinstance(sel, FieldNode):
                out.append(sel)
            elif isinstance(sel, InlineFragmentNode):
                walk(sel.selection_set.selections)
            elif isinstance(sel, FragmentSpreadNode):
                # strawberry's Info does not expose the fragments; graphql-core's does.
                frag = info._raw_info.fragments.get(sel.name.value)
                if frag is not None:
                    walk(frag.selection_set.selections)

    walk(info.operation.selection_set.selections)
    return out


def _check_one_instant(info: CatalogInfo, at: datetime) -> None:
    """Refuse an operation whose root fields do not all read the instant ``at``."""
    variables = info.variable_values
    for f in _root_fields(info):
        name = f.name.value
        if name.startswith("__"):
            continue
        given = next((a.value for a in f.arguments or () if a.name.value == AS_OF), None)
        value = None if given is None else value_from_ast_untyped(given, variables)
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value)
            except ValueError:
                value = None
        same = isinstance(value, datetime) and value.tzinfo is not None and value == at
        if not same:
            raise InvalidInputError(
                f"asOf: an operation reads one instant, and `{name}` "
                + ("has no asOf" if given is None else "asks about another one")
                + "; give every root field the same asOf, or ask the present in another request",
                field=AS_OF,
            )


async def enter_past(info: CatalogInfo, as_of: datetime, *, graph: bool = False) -> Past:
    """Point this request at the catalog as it stood at ``as_of`` (once per request).

    Raises:
        InvalidInputError: a naive or future ``asOf``, one before the first change, or an
            operation that mixes instants.
    """
    context = info.context
    entry = _PAST.get(id(context))
    if entry is None:
        services = context.services
        check_instant(as_of, AS_OF, services.timetravel.now())
        _check_one_instant(info, as_of)
        future = asyncio.ensure_future(_resolve(context, services, as_of))
        _PAST[id(context)] = entry = (as_of, future)
        weakref.finalize(context, _PAST.pop, id(context), None)
    elif entry[0] != as_of:  # pragma: no cover - _check_one_instant refuses it first
        raise InvalidInputError("asOf: an operation reads one instant", field=AS_OF)
    past = await asyncio.shield(entry[1])
    if graph:
        await past.graph()
    return past


async def _resolve(context: Context, services: Services, as_of: datetime) -> Past:
    tt = services.timetravel
    if services.graph.version:  # a server: see other processes' recent changes first
        await services.sync_if_changed()
    change_id = await tt.resolve(as_of, AS_OF)
    past = Past(tt, change_id, as_of)
    view: Any = PastServices(services, past)
    context.services = view
    context.loaders = Loaders(view)
    return past


class PastDiscovery:
    """The discovery service's reads, answered from the past (``resolvers.context.Loaders``
    and the node types call these)."""

    def __init__(self, present: Any, past: Past) -> None:
        self.present = present
        self.past = past
        self.max_page_size = present.max_page_size
        self._touching: dict[str, Touching] = {}

    def check_first(self, first: int, field: str = "first") -> None:
        """As the present's."""
        self.present.check_first(first, field)

    def cached(self, node_id: str) -> NodeRecord | None:
        """No shared cache of past records: the request's dataloader holds them."""
        return None

    def touching_now(self, node_id: str) -> Touching | None:
        """A node's past relations, once the past graph is built (else None: the dataloader
        asks ``relations_touching``)."""
        view = self.past.view
        if view is None:
            return None
        found = self._touching.get(node_id)
        if found is None:
            found = self._touching[node_id] = touching(view, node_id)
        return found

    async def get_nodes(self, ids: Sequence[str]) -> dict[str, NodeRecord]:
        """Past records by id (one indexed statement per batch)."""
        return await self.past.time_travel.nodes_at(ids, self.past.change_id)

    async def relations_touching(self, ids: Sequence[str]) -> list[RelationRecord]:
        """Past relations from or to these nodes (from the past graph)."""
        view = await self.past.graph()
        out: dict[tuple[str, str, str], RelationRecord] = {}
        for i in dict.fromkeys(ids):
            t = touching(view, i)
            for r in (*t.out, *t.into):
                out.setdefault(r.key, r)
        return list(out.values())

    async def relations_from(self, ids: Sequence[str]) -> list[RelationRecord]:
        """Past outgoing relations of these nodes."""
        view = await self.past.graph()
        return [r for i in dict.fromkeys(ids) for r in touching(view, i).out]

    async def owned_by(self, team_ids: Sequence[str]) -> list[NodeRecord]:
        """Nodes whose owner was one of these teams."""
        view = await self.past.graph()
        teams = set(team_ids)
        ids = sorted(n for n, d in view.g.nodes(data=True) if d["owner"] in teams)
        found = await self.get_nodes(ids)
        return [found[i] for i in ids if i in found]

    async def page(self, flt: NodeFilter, *, first: int | None, after: str | None) -> Page:
        """A page of the past listing, by id, with its total."""
        first = 50 if first is None else first
        self.check_first(first)
        start = decode_cursor(after) if after else None
        view = await self.past.graph()
        kinds = set(flt.kinds)
        cycles = set(flt.lifecycle)
        ids = sorted(
            n
            for n, d in view.g.nodes(data=True)
            if (not kinds or d["kind"] in kinds) and (not cycles or d["lifecycle"] in cycles)
        )
        if flt.tags:  # tags are not in the graph: read the candidates' past records
            wanted = set(flt.tags)
            found = await self.get_nodes(ids)
            ids = [i for i in ids if i in found and wanted.intersection(found[i].tags)]
        total = len(ids)
        if start is not None:
            ids = ids[bisect.bisect_right(ids, start) :]
        chunk = ids[: first + 1]
        records = await self.get_nodes(chunk[:first])
        return Page([records[i] for i in chunk[:first] if i in records], len(chunk) > first, total)


def touching(view: GraphView, node_id: str) -> Touching:
    """A node's relations in ``view``, each side ordered by the other end's id, then type."""
    g = view.g
    if node_id not in g:
        return Touching((), ())
    out = tuple(
        RelationRecord(node_id, t, v, p)
        for v, d in sorted(g.succ[node_id].items(), key=lambda kv: kv[0])
        for t, p in sorted(d["rels"].items(), key=lambda kv: kv[0].value)
    )
    into = tuple(
        RelationRecord(u, t, node_id, p)
        for u, d in sorted(g.pred[node_id].items(), key=lambda kv: kv[0])
        for t, p in sorted(d["rels"].items(), key=lambda kv: kv[0].value)
    )
    return Touching(out, into)


class PastAnalysis:
    """The analysis service, asking every question of the past graph."""

    def __init__(self, present: Any, past: Past) -> None:
        self.present = present
        self.past = past

    async def ask(self, question: Any, *, group: object = None) -> Any:
        """``question`` answered from the past graph, on the graph workers."""
        view = await self.past.graph()
        return await self.present.ask(question, group=group, view=view)


class PastSearch:
    """Search of the past catalog: the whole past state, matched in memory.

    Every word must occur in the node's name, key, description, tags or attribute names (the
    last word also as a prefix); hits rank exact name or key first, then a name starting with
    the query, then all words in the name, then the rest, retired nodes last, ties by id. The
    names of related nodes are not searched (the present's index does that).
    """

    def __init__(self, present: Any, past: Past) -> None:
        self.present = present
        self.past = past

    async def search(
        self,
        query: str,
        *,
        kinds: Sequence[Kind] = (),
        tags: Sequence[str] = (),
        domain: str | None = None,
        lifecycle: Sequence[Lifecycle] = (),
        first: int | None = 20,
        after: str | None = None,
        facets: Any = FACETS,
    ) -> SearchPage:
        """As ``catalog.search.Search.search``, over the past state."""
        # The present's checks of every argument first (one cheap empty search).
        await self.present.search(
            "", kinds=kinds, tags=tags, domain=domain, lifecycle=lifecycle, first=first,
            after=after, facets=(),
        )  # fmt: skip
        q = parse_query(query, field="query")
        first = 20 if first is None else first
        offset = int(decode_cursor(after)[1:]) if after else 0
        wanted = [f for f in FACETS if f in facets]
        if q.empty:
            return SearchPage([], offset, 0, {f: [] for f in wanted})
        state = await self.past.time_travel.state_at(self.past.change_id)
        view = await self.past.graph()
        scored: list[tuple[float, str, NodeRecord]] = []
        for rec in state.records():
            if kinds and rec.kind not in kinds:
                continue
            if lifecycle and rec.lifecycle not in lifecycle:
                continue
            if tags and not set(tags).intersection(rec.tags):
                continue
            if domain is not None and domain not in _domains(view, rec.id):
                continue
            score = _score(rec, q)
            if score is not None:
                scored.append((score, rec.id, rec))
        scored.sort(key=lambda s: (-s[0], s[1]))
        counts = {f: _facet(f, [s[2] for s in scored], view) for f in wanted}
        hits = [Hit(rec, score, highlight(rec, "", q)) for score, _, rec in scored[offset:][:first]]
        return SearchPage(hits, offset, len(scored), counts)


def _domains(view: GraphView, node_id: str) -> set[str]:
    g = view.g
    if node_id not in g:
        return set()
    return {
        v
        for v, d in g.succ[node_id].items()
        if RelationType.PART_OF in d["rels"] and g.nodes[v]["kind"] is Kind.DOMAIN
    }


def _score(rec: NodeRecord, q: Any) -> float | None:
    name = normalize(rec.name)
    text = " ".join(
        [
            name,
            normalize(rec.key),
            normalize(rec.description or ""),
            *(normalize(t) for t in rec.tags),
            *(normalize(str(a.get("name", ""))) for a in rec.attributes),
        ]
    )
    words = [w for t in q.terms for w in t.words]
    tokens = set(text.replace(".", " ").replace("-", " ").replace("_", " ").split())
    last = words[-1] if words else ""
    for w in words:
        if w in tokens or (w == last and any(tok.startswith(w) for tok in tokens)):
            continue
        if w not in text:
            return None
    whole = q.normalized
    if whole in (name, normalize(rec.key)):
        score = 4.0
    elif name.startswith(whole):
        score = 3.0
    elif all(w in name for w in words):
        score = 2.0
    else:
        score = 1.0
    return score - 10.0 if rec.lifecycle is Lifecycle.RETIRED else score


def _facet(name: str, recs: Sequence[NodeRecord], view: GraphView) -> list[tuple[str, int]]:
    counts: dict[str, int] = {}
    for rec in recs:
        values: Sequence[str]
        if name == "kind":
            values = (rec.kind.value,)
        elif name == "tag":
            values = rec.tags
        elif name == "lifecycle":
            values = (rec.lifecycle.value,)
        elif name == "owner":
            values = (rec.owner,) if rec.owner else ()
        else:
            values = sorted(_domains(view, rec.id))
        for v in values:
            counts[v] = counts.get(v, 0) + 1
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:50]


class PastServices:
    """The request's services, with every catalog read pointed at the past."""

    def __init__(self, present: Any, past: Past) -> None:
        self._present = present
        self.past = past
        self.discovery = PastDiscovery(present.discovery, past)
        self.analysis = PastAnalysis(present.analysis, past)
        self.search = PastSearch(present.search, past)

    @property
    def graph(self) -> GraphView:
        """The past projection (graph questions build it before they read it)."""
        view = self.past.view
        if view is None:  # pragma: no cover - enter_past(graph=True) builds it first
            raise InvalidInputError("asOf: the past graph is not built yet", field=AS_OF)
        return view

    def __getattr__(self, name: str) -> Any:
        # Everything that is not a catalog read (settings, records, tokens...) is the present's.
        return getattr(self._present, name)


# -- catalogDiff ----------------------------------------------------------------------------


@strawberry.enum(description="How a node or relation differs between the two instants.")
class CatalogDiffKind(enum.Enum):
    ADDED = "ADDED"
    CHANGED = "CHANGED"
    RETIRED = "RETIRED"
    REMOVED = "REMOVED"


@strawberry.enum(description="What a change is about.")
class CatalogDiffTarget(enum.Enum):
    NODE = "node"
    RELATION = "relation"


@strawberry.type(description="One field that differs: its value at `from` and at `to`.")
class CatalogDiffField:
    field: str
    before: JSON | None
    after: JSON | None


@strawberry.type(description="A node or relation that differs between two instants.")
class CatalogDiffEntry:
    target: CatalogDiffTarget
    id: strawberry.ID = strawberry.field(
        description="The node's id, or the relation's `from|TYPE|to`."
    )
    change: CatalogDiffKind
    fields: list[CatalogDiffField] = strawberry.field(
        description="The fields that differ (all of them for an added or removed one)."
    )
    version_before: int | None = strawberry.field(description="The node's version at `from`.")
    version_after: int | None = strawberry.field(description="The node's version at `to`.")

    @classmethod
    def from_model(cls, e: DiffEntry) -> CatalogDiffEntry:
        """Map a diff entry to its GraphQL type."""
        return cls(
            target=CatalogDiffTarget(e.target),
            id=strawberry.ID(e.target_id),
            change=CatalogDiffKind(e.kind.value),
            fields=[
                CatalogDiffField(field=f.field, before=f.before, after=f.after) for f in e.fields
            ],
            version_before=e.version_before,
            version_after=e.version_after,
        )


@strawberry.type
class CatalogDiffEdge:
    cursor: str
    node: CatalogDiffEntry


@strawberry.type(description="The differences between the catalog at two instants, paged.")
class CatalogDiffConnection:
    edges: list[CatalogDiffEdge]
    page_info: PageInfo
    total_count: int
    from_change: int = strawberry.field(description="The change id `from` resolved to.")
    to_change: int = strawberry.field(description="The change id `to` resolved to.")


async def catalog_diff(
    info: CatalogInfo, start: datetime, end: datetime | None, first: int, after: str | None
) -> CatalogDiffConnection:
    """The ``catalogDiff`` answer: resolve both instants, then one page of the differences."""
    services = info.context.services
    tt = services.timetravel
    services.discovery.check_first(first)
    now = tt.now()
    begin = check_instant(start, "from", now)
    finish = check_instant(end, "to", now) if end is not None else now
    if begin > finish:
        raise InvalidInputError(
            f"from: {begin.isoformat()} is after to ({finish.isoformat()}); give the earlier "
            "instant as from",
            field="from",
        )
    a = await tt.resolve(begin, "from")
    b = await tt.resolve(finish, "to")
    entries = await services.diffs.between(a, b)
    offset = 0
    if after:
        raw = decode_cursor(after)
        if not (raw.startswith("d") and raw[1:].isdigit()):
            raise InvalidInputError(
                f"after: {after[:40]!r} is not a cursor of this diff", field="after"
            )
        offset = int(raw[1:]) + 1
    page = entries[offset : offset + first]
    edges = [
        CatalogDiffEdge(cursor=encode_cursor(f"d{offset + i}"), node=CatalogDiffEntry.from_model(e))
        for i, e in enumerate(page)
    ]
    return CatalogDiffConnection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=offset + len(page) < len(entries),
            has_previous_page=offset > 0,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
        total_count=len(entries),
        from_change=a,
        to_change=b,
    )


#: The ``asOf`` argument of every read and graph question. Its default is ``UNSET`` (no default
#: in the SDL): an argument left out is then neither filled in nor converted per call, which
#: kept ``node(id)`` as fast as before the argument existed.
AsOf = Annotated[
    datetime | None,
    strawberry.argument(
        name="asOf",
        description="Answer as the catalog stood at this instant (ISO 8601 with an offset, "
        "e.g. 2026-03-01T00:00:00Z), from its recorded history; docs/time-travel.md.",
    ),
]


def past_node(info: CatalogInfo, node_id: str, as_of: datetime) -> CatalogNode | None:
    """``node(id, asOf)``: the node as it was (None: it did not exist yet)."""
    from resolvers.types import node_by_id

    async def answer() -> CatalogNode | None:
        await enter_past(info, as_of)
        found = node_by_id(info, node_id)
        if asyncio.iscoroutine(found):  # not loaded yet: node_by_id's awaitable (resolve_later)
            return await cast("Awaitable[CatalogNode | None]", found)
        return found

    return resolve_later(answer())


@strawberry.type
class TimeTravelQuery:
    """What changed between two instants."""

    @field(
        description="Nodes and relations added, changed (the fields that differ, before and "
        "after), retired or removed between `from` and `to` (default: now), nodes first, each "
        "by id."
    )
    async def catalog_diff(
        self,
        info: CatalogInfo,
        from_: Annotated[datetime, strawberry.argument(name="from")],
        to: datetime | None = None,
        first: int | None = 50,
        after: str | None = None,
    ) -> CatalogDiffConnection:
        return await catalog_diff(info, from_, to, 50 if first is None else first, after)


__all__ = [
    "AS_OF",
    "UNSET",
    "AsOf",
    "CatalogDiffConnection",
    "CatalogDiffEntry",
    "Past",
    "TimeTravelQuery",
    "catalog_diff",
    "enter_past",
    "past_node",
]
