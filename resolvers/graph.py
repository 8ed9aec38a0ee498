"""Graph questions on the Query root: impact, path, neighborhood, gaps, lineage, maps, hotspots.

Each question is answered on a worker thread (``GraphAnalysis.ask``); the questions of one
request take turns, and a question stops when its request is cancelled or its client leaves.

Beside the list forms of the contract, the answers page as Relay connections (``gapsPage``,
``redundanciesPage``, ``hotspotsPage``, ``Impact.affectedPage``, ``Subgraph.nodePage`` and
``relationPage``): slices of the answer kept per catalog version (``catalog.answers``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Annotated, Any, TypeVar, cast

import strawberry
from strawberry.types.nodes import SelectedField

from catalog import analysis as a
from catalog.answers import AnswerFilter, AnswerPage, Pager, cursor_change, reach
from catalog.operations import committed_version
from metadata import model
from metadata.graph import CatalogGraph, GraphQuestionCancelledError, Step
from resolvers._fields import field
from resolvers.connections import (
    NodeConnection,
    NodeEdge,
    answer_connection,
    prefetch,
    wants_relations,
)
from resolvers.context import CatalogInfo
from resolvers.enums import Direction, Kind, RelationType
from resolvers.fastpath import direct
from resolvers.paging import PageInfo
from resolvers.timetravel import UNSET, AsOf, enter_past
from resolvers.types import (
    Capability,
    CatalogNode,
    DataEntity,
    Journey,
    JourneyStep,
    Relation,
    System,
    Touchpoint,
    as_node,
    node_by_id,
    step_order,
)

T = TypeVar("T")


async def _ask(info: CatalogInfo, question: Callable[[a.GraphAnalysis], T]) -> T:
    """Ask the analysis service on a worker thread; stop the question if the client leaves."""
    context = info.context
    asked = context.services.analysis.ask(question, group=context)
    receive = getattr(context.request, "receive", None)
    if receive is None:  # no HTTP request (schema.execute in tests, the CLI)
        return await asked
    answer = asyncio.ensure_future(asked)
    gone = asyncio.ensure_future(_client_gone(receive))
    try:
        await asyncio.wait((answer, gone), return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        if not answer.done():
            answer.cancel()  # the client left, or this request was cancelled: stop the thread
    if not answer.done() or answer.cancelled():
        raise GraphQuestionCancelledError("the client closed the connection; question stopped")
    return answer.result()


async def _reach_cursors(info: CatalogInfo, afters: Sequence[str | None]) -> None:
    """Before a paged graph answer: have the answers know which catalog version each version
    of the projection holds, and wait (at most ``CAPAHUB_VERSION_WAIT`` seconds) until this
    replica holds the version the latest of ``afters`` was cut at, when another replica that
    is ahead of this one gave it (docs/graph.md, "Paging graph answers")."""
    services = info.context.services
    graph = services.graph
    if not isinstance(graph, CatalogGraph):  # a past catalog (asOf): nothing moves
        return
    services.analysis.answers.versions.follow(graph)
    changes = [c for c in (cursor_change(a) for a in afters if a) if c is not None]
    wanted = max(changes, default=0)
    if wanted <= graph.last_change:
        return
    await reach(
        wanted,
        current=lambda: graph.last_change,
        sync=services.sync_if_changed,
        committed=lambda: committed_version(services),
        wait=services.settings.version_wait,
    )
    # The answer is read at the version waited for: extensions.catalogVersion says so.
    scope = getattr(info.context.request, "scope", None)
    state = scope.get("state") if isinstance(scope, dict) else None
    if isinstance(state, dict) and state.get("catalog_version", wanted) < wanted:
        state["catalog_version"] = graph.last_change


def _afters(info: CatalogInfo, *names: str) -> list[str | None]:
    """The ``after`` arguments of the connections ``names`` right below this field."""
    return [f.arguments.get("after") for n in names for f in _children(info.selected_fields, n)]


async def _client_gone(receive: Callable[[], Any]) -> None:
    """Return when the ASGI server reports that the client disconnected.

    The body was read before any resolver ran, so what comes next is the disconnect, after at
    most the body replayed to the prepared lane and an empty end-of-body message; past a few
    other messages, stop listening rather than spin.
    """
    for _ in range(4):
        if (await receive())["type"] == "http.disconnect":
            return
    await asyncio.Event().wait()


async def _nodes(info: CatalogInfo, ids: Sequence[str]) -> list[Any]:
    found = await info.context.loaders.node.load_many(list(ids))
    return [as_node(r) for r in found if r is not None]


async def _preload(info: CatalogInfo, ids: Sequence[str]) -> None:
    """Load many answer nodes in one batch into the request's cache, so that their ``node``
    fields resolve without a future and a task each (impact answers can hold thousands).
    Nothing is loaded when the query selects no node of the answer."""
    if not _selects_nodes(info.selected_fields):
        return
    discovery = info.context.services.discovery
    missing = [i for i in dict.fromkeys(ids) if discovery.cached(i) is None]
    if missing:
        info.context.loaders.node.prime_many(await discovery.get_nodes(missing))


_NODE_FIELDS = frozenset({"node", "root", "involved", "nodes", "from", "to"})


def _selects_nodes(fields: Sequence[Any]) -> bool:
    for f in fields:
        if getattr(f, "name", None) in _NODE_FIELDS or _selects_nodes(f.selections):
            return True
    return False


def _children(fields: Sequence[Any], name: str) -> list[Any]:
    """The fields called ``name`` right below these (looking through fragments)."""
    found: list[Any] = []
    for f in fields:
        for sub in f.selections:
            if not isinstance(sub, SelectedField):
                found.extend(_children([sub], name))
            elif sub.name == name:
                found.append(sub)
    return found


def _relations(steps: Sequence[Step]) -> list[Relation]:
    return [Relation(rec=s.record()) for s in steps]


#: The page size of a graph answer's connection when ``first`` is not given.
DEFAULT_PAGE = 50

First = Annotated[
    int | None,
    strawberry.argument(description="Items per page, 0 to the page limit (CAPAHUB_MAX_PAGE_SIZE)."),
]
After = Annotated[
    str | None,
    strawberry.argument(
        description="The cursor of the item to start after, from this field asked with the same "
        "arguments at the same catalog version."
    ),
]
Kinds = Annotated[
    list[Kind] | None, strawberry.argument(description="Only items whose node is of these kinds.")
]
InDomain = Annotated[
    strawberry.ID | None,
    strawberry.argument(
        description="Only items whose node is PART_OF this domain (capabilities and systems "
        "also through their parents)."
    ),
]
OwnedBy = Annotated[
    strawberry.ID | None,
    strawberry.argument(description="Only items whose node this team owns (owner or OWNS)."),
]
Reason = Annotated[
    str | None,
    strawberry.argument(description="Only items whose reason contains this text (any case)."),
]


def _page_size(info: CatalogInfo, first: int | None) -> int:
    """``first`` or the default, refused past the page limit as the listings refuse it."""
    n = DEFAULT_PAGE if first is None else first
    info.context.services.discovery.check_first(n)
    return n


def _filter(
    kinds: Sequence[Kind] | None = None,
    reason: str | None = None,
    domain: strawberry.ID | None = None,
    owner: strawberry.ID | None = None,
    types: Sequence[RelationType] | None = None,
) -> AnswerFilter:
    return AnswerFilter.of(
        kinds=kinds,
        reason=reason,
        domain=None if domain is None else str(domain),
        owner=None if owner is None else str(owner),
        types=types,
    )


def _first_of(item: tuple[Any, ...]) -> str:
    return str(item[0])


@strawberry.type(description="A node reached by an impact analysis.")
class ImpactedNode:
    node_id: strawberry.Private[str]
    distance: int = strawberry.field(description="Relations between the root and this node.")
    steps: strawberry.Private[list[Step]]

    @strawberry.field
    @direct
    def node(self, info: CatalogInfo) -> CatalogNode:
        return cast("CatalogNode", node_by_id(info, self.node_id))

    @field(description="The relations from the root to this node, in order.")
    @direct
    def via(self) -> list[Relation]:
        return _relations(self.steps)


@strawberry.type(description="An impacted node in a page of them.")
class ImpactedNodeEdge:
    cursor: str
    node: ImpactedNode


@strawberry.type(description="Impacted nodes a page at a time, in the order of `affected`.")
class ImpactedNodeConnection:
    edges: list[ImpactedNodeEdge]
    page_info: PageInfo
    total_count: int


@strawberry.type(description="A relation in a page of relations.")
class RelationEdge:
    cursor: str
    node: Relation


@strawberry.type(description="Relations a page at a time (Relay connection).")
class RelationConnection:
    edges: list[RelationEdge]
    page_info: PageInfo
    total_count: int


@strawberry.type(description="What depends on a node (see docs/graph.md for the directions).")
class Impact:
    result: strawberry.Private[a.ImpactResult]
    pager: strawberry.Private[Pager]

    @strawberry.field
    def root(self, info: CatalogInfo) -> CatalogNode:
        return cast("CatalogNode", node_by_id(info, self.result.root))

    @strawberry.field
    def affected(self) -> list[ImpactedNode]:
        return [
            ImpactedNode(node_id=n, distance=d, steps=via) for n, d, via in self.result.affected
        ]

    @field(
        description="`affected` a page at a time (same order), optionally filtered "
        '(docs/graph.md, "Paging graph answers").'
    )
    async def affected_page(
        self,
        info: CatalogInfo,
        kinds: Kinds = None,
        domain: InDomain = None,
        owner: OwnedBy = None,
        first: First = DEFAULT_PAGE,
        after: After = None,
    ) -> ImpactedNodeConnection:
        n = _page_size(info, first)
        flt = _filter(kinds, domain=domain, owner=owner)
        result = self.result
        page = self.pager.page(
            (*result.question, "affected"), result.affected, flt, n, after, node=_first_of
        )
        await _preload(info, [x[0] for x in page.items])
        return answer_connection(
            ImpactedNodeConnection,
            ImpactedNodeEdge,
            page,
            lambda x: ImpactedNode(node_id=x[0], distance=x[1], steps=x[2]),
        )

    @field(
        description="Capabilities that no system in service provides (itself or through a "
        "sub-capability) once the root and its components are gone."
    )
    async def unprovided_capabilities(self, info: CatalogInfo) -> list[Capability]:
        return await _nodes(info, self.result.unprovided_capabilities)

    @field(
        description="Entities that no system in service masters once the root and its "
        "components are gone."
    )
    async def orphaned_entities(self, info: CatalogInfo) -> list[DataEntity]:
        return await _nodes(info, self.result.orphaned_entities)


@strawberry.type(description="Nodes and the relations between them.")
class Subgraph:
    result: strawberry.Private[a.SubgraphResult]
    pager: strawberry.Private[Pager]

    @strawberry.field
    async def nodes(self, info: CatalogInfo) -> list[CatalogNode]:
        return await _nodes(info, self.result.nodes)

    @strawberry.field
    async def relations(self, info: CatalogInfo) -> list[Relation]:
        result = self.result
        # The order of relationPage: by from, to and type (stored order differs by process).
        question = (*result.question, "relations")
        found = _relations(self.pager.ordered(question, result.relations, _relation_order))
        # Their ends in one batch, so that each `from`/`to` completes by plan.
        await _preload(info, [i for r in found for i in (r.rec.from_id, r.rec.to_id)])
        return found

    @field(
        description="`nodes` a page at a time (by id), optionally filtered (docs/graph.md, "
        '"Paging graph answers").'
    )
    async def node_page(
        self,
        info: CatalogInfo,
        kinds: Kinds = None,
        domain: InDomain = None,
        owner: OwnedBy = None,
        first: First = DEFAULT_PAGE,
        after: After = None,
    ) -> NodeConnection:
        n = _page_size(info, first)
        flt = _filter(kinds, domain=domain, owner=owner)
        result = self.result
        page: AnswerPage[str] = self.pager.page(
            (*result.question, "nodes"), result.nodes, flt, n, after, node=str
        )
        found = await info.context.loaders.node.load_many(list(page.items))
        recs = {r.id: r for r in found if r is not None}
        if wants_relations(info):
            await prefetch(info, list(recs.values()))
        return answer_connection(
            NodeConnection,
            NodeEdge,
            page,
            lambda i: as_node(recs[i]) if i in recs else None,
        )

    @field(description="`relations` a page at a time (same order), optionally only some types.")
    def relation_page(
        self,
        info: CatalogInfo,
        types: Annotated[
            list[RelationType] | None,
            strawberry.argument(description="Only relations of these types."),
        ] = None,
        first: First = DEFAULT_PAGE,
        after: After = None,
    ) -> RelationConnection:
        n = _page_size(info, first)
        result = self.result
        page = self.pager.page(
            (*result.question, "relations"),
            result.relations,
            _filter(types=types),
            n,
            after,
            rtype=_step_type,
            order=_relation_order,
            ident=_relation_ident,
        )
        return answer_connection(
            RelationConnection, RelationEdge, page, lambda s: Relation(rec=s.record())
        )


def _step_type(step: Step) -> model.RelationType:
    return step.type


def _relation_order(step: Step) -> tuple[str, str, str]:
    return step.from_id, step.to_id, step.type.value


def _relation_ident(step: Step) -> str:
    return f"{step.from_id}\t{step.type.value}\t{step.to_id}"


@strawberry.type(description="A node missing something it should have.")
class Gap:
    node_id: strawberry.Private[str]
    reason: str

    @strawberry.field
    def node(self, info: CatalogInfo) -> CatalogNode:
        return cast("CatalogNode", node_by_id(info, self.node_id))


def _gaps(gaps: Sequence[a.GapResult]) -> list[Gap]:
    return [Gap(node_id=g.node, reason=g.reason) for g in gaps]


@strawberry.type(description="A gap in a page of gaps.")
class GapEdge:
    cursor: str
    node: Gap


@strawberry.type(description="Gaps a page at a time, in the order of `gaps` (Relay connection).")
class GapConnection:
    edges: list[GapEdge]
    page_info: PageInfo
    total_count: int


@strawberry.type(description="A capability provided, or an entity mastered, more than once.")
class Redundancy:
    node_id: strawberry.Private[str]
    reason: str
    involved_ids: strawberry.Private[list[str]]

    @strawberry.field
    def node(self, info: CatalogInfo) -> CatalogNode:
        return cast("CatalogNode", node_by_id(info, self.node_id))

    @field(description="The systems involved.")
    async def involved(self, info: CatalogInfo) -> list[CatalogNode]:
        return await _nodes(info, self.involved_ids)


@strawberry.type(description="A redundancy in a page of redundancies.")
class RedundancyEdge:
    cursor: str
    node: Redundancy


@strawberry.type(
    description="Redundancies a page at a time, in the order of `redundancies` (Relay connection)."
)
class RedundancyConnection:
    edges: list[RedundancyEdge]
    page_info: PageInfo
    total_count: int


@strawberry.type(description="A node central to the landscape (PageRank, directions ignored).")
class Hotspot:
    node_id: strawberry.Private[str]
    score: float

    @strawberry.field
    def node(self, info: CatalogInfo) -> CatalogNode:
        return cast("CatalogNode", node_by_id(info, self.node_id))


@strawberry.type(description="A hotspot in a page of hotspots.")
class HotspotEdge:
    cursor: str
    node: Hotspot


@strawberry.type(
    description="Every active node by PageRank a page at a time, in the order of `hotspots` "
    "(Relay connection)."
)
class HotspotConnection:
    edges: list[HotspotEdge]
    page_info: PageInfo
    total_count: int


@strawberry.type(description="One capability of the capability map, in pre-order.")
class CapabilityMapNode:
    entry: strawberry.Private[a.MapEntry]

    @strawberry.field
    def capability(self, info: CatalogInfo) -> Capability:
        return cast("Capability", node_by_id(info, self.entry.capability))

    @field(description="1 for the top of the map, 2 for its children...")
    def level(self) -> int:
        return self.entry.level

    @field(description="Id of the parent capability in the map (null at the top).")
    def parent_id(self) -> strawberry.ID | None:
        return strawberry.ID(self.entry.parent) if self.entry.parent else None

    @field(description="Active systems providing this capability directly.")
    async def providers(self, info: CatalogInfo) -> list[System]:
        return await _nodes(info, self.entry.providers)

    @field(description="Leaf capabilities below (or this leaf) with an active provider.")
    def covered_leaves(self) -> int:
        return self.entry.covered_leaves

    @field(description="Leaf capabilities below (or this leaf) without one.")
    def uncovered_leaves(self) -> int:
        return self.entry.uncovered_leaves


@strawberry.type(description="What stands behind one journey step.")
class StepCoverage:
    cov: strawberry.Private[a.StepCoverage]

    @strawberry.field
    def step(self, info: CatalogInfo) -> JourneyStep:
        return cast("JourneyStep", node_by_id(info, self.cov.step))

    @strawberry.field
    async def touchpoints(self, info: CatalogInfo) -> list[Touchpoint]:
        return await _nodes(info, self.cov.touchpoints)

    @strawberry.field
    async def capabilities(self, info: CatalogInfo) -> list[Capability]:
        return await _nodes(info, self.cov.capabilities)

    @field(description="Systems providing the capabilities or serving the touchpoints.")
    async def systems(self, info: CatalogInfo) -> list[System]:
        return await _nodes(info, self.cov.systems)

    @field(description="Entities the capabilities read or write.")
    async def entities(self, info: CatalogInfo) -> list[DataEntity]:
        return await _nodes(info, self.cov.entities)

    @strawberry.field
    def gaps(self) -> list[Gap]:
        return _gaps(self.cov.gaps)

    @field(description="True when the step has no gap.")
    def covered(self) -> bool:
        return not self.cov.gaps


@strawberry.type(description="Coverage of a journey, step by step in order.")
class JourneyCoverage:
    result: strawberry.Private[a.CoverageResult]

    @strawberry.field
    def journey(self, info: CatalogInfo) -> Journey:
        return cast("Journey", node_by_id(info, self.result.journey))

    @strawberry.field
    def steps(self) -> list[StepCoverage]:
        return [StepCoverage(cov=s) for s in self.result.steps]

    @field(description="Every gap of every step.")
    def gaps(self) -> list[Gap]:
        return _gaps([g for s in self.result.steps for g in s.gaps])

    @field(description="Share of steps without gaps, 0..1.")
    def coverage(self) -> float:
        steps = self.result.steps
        return sum(1 for s in steps if not s.gaps) / len(steps) if steps else 0.0


def _pages_subgraph(info: CatalogInfo) -> bool:
    """Whether the query asks for pages of the subgraph (then it is kept for the version)."""
    fields = info.selected_fields
    return bool(_children(fields, "nodePage") or _children(fields, "relationPage"))


def _direction(d: model.Direction | None) -> str:
    return {model.Direction.OUT: "out", model.Direction.IN: "in"}.get(
        d or model.Direction.BOTH, "both"
    )


@strawberry.type
class GraphQuery:
    """Questions about the landscape as a graph."""

    @field(
        description="Everything that depends on a node, up to `depth` relations away "
        "(`directOnly`: only what depends on the node itself, distance 1), and the "
        "capabilities and entities it leaves unserved (docs/graph.md)."
    )
    async def impact(
        self,
        info: CatalogInfo,
        id: strawberry.ID,
        depth: int | None = 3,
        as_of: AsOf = UNSET,
        direct_only: Annotated[
            bool | None,
            strawberry.argument(
                description="Only the direct effects: the nodes that depend on the root "
                "itself. The unprovided and orphaned lists are the same either way."
            ),
        ] = False,
    ) -> Impact:
        if as_of:
            await enter_past(info, as_of, graph=True)
        d = 3 if depth is None else depth
        direct = bool(direct_only)
        # Kept for the catalog version when its pages are asked: the next page is a slice.
        keep = bool(_children(info.selected_fields, "affectedPage"))
        await _reach_cursors(info, _afters(info, "affectedPage"))
        result, pager = await _ask(
            info, lambda q: (q.impact(str(id), d, direct_only=direct, keep=keep), q.pager())
        )
        # The affected nodes' records only when they are asked for: an impact can reach most
        # of the catalog, and loading it all (on the event loop) for `root { id }` took seconds.
        fields = info.selected_fields
        ids = [result.root] if _children(fields, "root") else []
        if _selects_nodes(_children(fields, "affected")):  # `via` starts at the root
            ids.extend([result.root, *(n for n, _, _ in result.affected)])
        await _preload(info, ids)
        return Impact(result=result, pager=pager)

    @field(description="A shortest connection between two nodes, or null when none.")
    async def path(
        self,
        info: CatalogInfo,
        from_: Annotated[strawberry.ID, strawberry.argument(name="from")],
        to: strawberry.ID,
        max_length: int | None = 6,
        as_of: AsOf = UNSET,
    ) -> list[Relation] | None:
        if as_of:
            await enter_past(info, as_of, graph=True)
        n = 6 if max_length is None else max_length
        steps = await _ask(info, lambda q: q.path(str(from_), str(to), n))
        return None if steps is None else _relations(steps)

    @field(description="Nodes within `depth` relations of a node, in any direction.")
    async def neighborhood(
        self,
        info: CatalogInfo,
        id: strawberry.ID,
        depth: int | None = 1,
        types: list[RelationType] | None = None,
        as_of: AsOf = UNSET,
    ) -> Subgraph:
        if as_of:
            await enter_past(info, as_of, graph=True)
        d = 1 if depth is None else depth
        keep = _pages_subgraph(info)
        await _reach_cursors(info, _afters(info, "nodePage", "relationPage"))
        result, pager = await _ask(
            info, lambda q: (q.neighborhood(str(id), d, types, keep=keep), q.pager())
        )
        return Subgraph(result=result, pager=pager)

    @field(description="What is missing in the landscape, with reasons.")
    async def gaps(
        self, info: CatalogInfo, kinds: list[Kind] | None = None, as_of: AsOf = UNSET
    ) -> list[Gap]:
        if as_of:
            await enter_past(info, as_of, graph=True)
        found = await _ask(info, lambda q: q.gaps(kinds))
        await _preload(info, [g.node for g in found])
        return _gaps(found)

    @field(description="Capabilities provided twice, entities mastered twice.")
    async def redundancies(self, info: CatalogInfo, as_of: AsOf = UNSET) -> list[Redundancy]:
        if as_of:
            await enter_past(info, as_of, graph=True)
        found = await _ask(info, lambda q: q.redundancies())
        await _preload(info, [n for r in found for n in (r.node, *r.involved)])
        return [Redundancy(node_id=r.node, reason=r.reason, involved_ids=r.involved) for r in found]

    @field(
        description="`gaps` a page at a time (same order), filtered by kind, reason, domain and "
        'owner (docs/graph.md, "Paging graph answers").'
    )
    async def gaps_page(
        self,
        info: CatalogInfo,
        kinds: Annotated[
            list[Kind] | None, strawberry.argument(description="As `gaps(kinds)`.")
        ] = None,
        reason: Reason = None,
        domain: InDomain = None,
        owner: OwnedBy = None,
        first: First = DEFAULT_PAGE,
        after: After = None,
        as_of: AsOf = UNSET,
    ) -> GapConnection:
        if as_of:
            await enter_past(info, as_of, graph=True)
        n = _page_size(info, first)
        flt = _filter(reason=reason, domain=domain, owner=owner)
        await _reach_cursors(info, [after])
        page = await _ask(info, lambda q: q.gaps_page(kinds, flt, n, after))
        await _preload(info, [g.node for g in page.items])
        return answer_connection(
            GapConnection, GapEdge, page, lambda g: Gap(node_id=g.node, reason=g.reason)
        )

    @field(
        description="`redundancies` a page at a time (same order), filtered by kind, reason, "
        "domain and owner."
    )
    async def redundancies_page(
        self,
        info: CatalogInfo,
        kinds: Kinds = None,
        reason: Reason = None,
        domain: InDomain = None,
        owner: OwnedBy = None,
        first: First = DEFAULT_PAGE,
        after: After = None,
        as_of: AsOf = UNSET,
    ) -> RedundancyConnection:
        if as_of:
            await enter_past(info, as_of, graph=True)
        n = _page_size(info, first)
        flt = _filter(kinds, reason, domain, owner)
        await _reach_cursors(info, [after])
        page = await _ask(info, lambda q: q.redundancies_page(flt, n, after))
        await _preload(info, [i for r in page.items for i in (r.node, *r.involved)])
        return answer_connection(
            RedundancyConnection,
            RedundancyEdge,
            page,
            lambda r: Redundancy(node_id=r.node, reason=r.reason, involved_ids=r.involved),
        )

    @field(description="Data lineage along FLOWS_TO and REPRESENTS.")
    async def lineage(
        self,
        info: CatalogInfo,
        id: strawberry.ID,
        direction: Direction | None = model.Direction.BOTH,
        depth: int | None = 5,
        as_of: AsOf = UNSET,
    ) -> Subgraph:
        if as_of:
            await enter_past(info, as_of, graph=True)
        way, d = _direction(direction), 5 if depth is None else depth
        keep = _pages_subgraph(info)
        await _reach_cursors(info, _afters(info, "nodePage", "relationPage"))
        result, pager = await _ask(
            info, lambda q: (q.lineage(str(id), way, d, keep=keep), q.pager())
        )
        return Subgraph(result=result, pager=pager)

    @field(description="The capability hierarchy with providers and leaf coverage.")
    async def capability_map(
        self,
        info: CatalogInfo,
        # "root" is strawberry's name for the parent value, hence the rename.
        root_: Annotated[strawberry.ID | None, strawberry.argument(name="root")] = None,
        depth: int | None = 3,
        as_of: AsOf = UNSET,
    ) -> list[CapabilityMapNode]:
        if as_of:
            await enter_past(info, as_of, graph=True)
        top, d = str(root_) if root_ else None, 3 if depth is None else depth
        entries = await _ask(info, lambda q: q.capability_map(top, d))
        return [CapabilityMapNode(entry=e) for e in entries]

    @field(description="For each step of a journey: touchpoints, capabilities, systems, gaps.")
    async def journey_coverage(
        self, info: CatalogInfo, id: strawberry.ID, as_of: AsOf = UNSET
    ) -> JourneyCoverage:
        if as_of:
            await enter_past(info, as_of, graph=True)
        services = info.context.services
        graph = services.graph
        # The projection answers; the step records give the order (properties.order).
        steps = graph.into(str(id), model.RelationType.PART_OF) if graph.has(str(id)) else []
        recs = await info.context.loaders.node.load_many(steps)
        orders = {r.id: step_order(r) for r in recs if r is not None}
        result = await _ask(info, lambda q: q.journey_coverage(str(id), orders))
        return JourneyCoverage(result=result)

    @field(description="The most central nodes (PageRank over relations, directions ignored).")
    async def hotspots(
        self, info: CatalogInfo, first: int | None = 10, as_of: AsOf = UNSET
    ) -> list[Hotspot]:
        if as_of:
            await enter_past(info, as_of, graph=True)
        n = 10 if first is None else first
        await _reach_cursors(info, [])
        # Checked by the list form, ordered as the pages (the order every replica agrees on).
        ranked = await _ask(
            info, lambda q: (q.hotspots(n), q.hotspots_page(AnswerFilter(), n, None).items)[1]
        )
        await _preload(info, [n for n, _ in ranked])
        return [Hotspot(node_id=n, score=s) for n, s in ranked]

    @field(
        description="Every active node by PageRank a page at a time (the order of `hotspots`, "
        "without its bound of 500), filtered by kind, domain and owner."
    )
    async def hotspots_page(
        self,
        info: CatalogInfo,
        kinds: Kinds = None,
        domain: InDomain = None,
        owner: OwnedBy = None,
        first: First = DEFAULT_PAGE,
        after: After = None,
        as_of: AsOf = UNSET,
    ) -> HotspotConnection:
        if as_of:
            await enter_past(info, as_of, graph=True)
        n = _page_size(info, first)
        flt = _filter(kinds, domain=domain, owner=owner)
        await _reach_cursors(info, [after])
        page = await _ask(info, lambda q: q.hotspots_page(flt, n, after))
        await _preload(info, [i for i, _ in page.items])
        return answer_connection(
            HotspotConnection, HotspotEdge, page, lambda h: Hotspot(node_id=h[0], score=h[1])
        )


__all__ = ["GraphQuery"]
