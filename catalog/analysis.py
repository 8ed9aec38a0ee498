"""Graph questions over the projection: impact, paths, gaps, redundancies, maps, coverage.

"Depends on" for impact analysis (docs/graph.md): when a node is affected, these neighbours are
affected too. A relation u -[T]-> v is followed forward (OUT: v depends on u) or backward
(IN: u depends on v):

    PROVIDES, MASTERS, STORES, FLOWS_TO, REPRESENTS   OUT (the capability/data needs the system)
    DEPENDS_ON, USES, SERVED_BY, OCCURS_AT, READS,
    WRITES, REFERENCES                                IN  (the dependent points at what it needs)
    PART_OF                                           IN  (parts of an affected whole), and OUT
                                                          from a journey step to its journey
    OWNS, STEWARDS, HARVESTED_FROM                    not followed (accountability, provenance)

The server asks every question through ``GraphAnalysis.ask``: on a worker thread
(``catalog.workers``), against one snapshot of the projection, so the event loop keeps
answering and applying changes meanwhile; each question stops at its time budget, or as soon as
its request ends, at the next check of its ``Deadline`` in the loops below.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from scipy import sparse

from catalog.answers import AnswerFilter, AnswerPage, Answers, Pager, Question, list_bytes
from catalog.findings import (
    FindingMemo,
    GapIndex,
    GapResult,
    RedundancyIndex,
    RedundancyResult,
    covered_capabilities,
)
from metadata.errors import InvalidInputError, NotFoundError
from metadata.graph import CatalogGraph, Deadline, GraphView, Step
from metadata.model import Kind, Lifecycle, RelationType, parse_id

if TYPE_CHECKING:
    from catalog.workers import Workers

T = TypeVar("T")

log = logging.getLogger("capahub")
R = RelationType
FORWARD = (R.PROVIDES, R.MASTERS, R.STORES, R.FLOWS_TO, R.REPRESENTS)
BACKWARD = (
    R.DEPENDS_ON,
    R.USES,
    R.SERVED_BY,
    R.OCCURS_AT,
    R.READS,
    R.WRITES,
    R.REFERENCES,
    R.PART_OF,
)
LINEAGE = (R.FLOWS_TO, R.REPRESENTS)

MAX_DEPTH = 10
_IN_SERVICE = frozenset({Lifecycle.ACTIVE, Lifecycle.DEPRECATED})
MAX_PATH_LENGTH = 12
MAX_FIRST = 500
TIME_BUDGET_S = 5.0


@dataclass
class ImpactResult:
    """Everything that depends on a root, with how it is reached."""

    root: str
    affected: list[tuple[str, int, list[Step]]]
    unprovided_capabilities: list[str]
    orphaned_entities: list[str]
    #: The question and arguments that gave it (its pages' cursors name them).
    question: Question = ()


@dataclass
class SubgraphResult:
    """A set of nodes and the relations between them that a traversal crossed."""

    nodes: list[str]
    relations: list[Step]
    #: The question and arguments that gave it (its pages' cursors name them).
    question: Question = ()


@dataclass
class MapEntry:
    """One capability in the capability map."""

    capability: str
    level: int
    parent: str | None
    providers: list[str]
    covered_leaves: int
    uncovered_leaves: int


@dataclass
class StepCoverage:
    """What stands behind one journey step."""

    step: str
    touchpoints: list[str]
    capabilities: list[str]
    systems: list[str]
    entities: list[str]
    gaps: list[GapResult]


@dataclass
class CoverageResult:
    """Coverage of a journey, step by step in order."""

    journey: str
    steps: list[StepCoverage] = field(default_factory=list)


def _check_range(name: str, value: int, high: int) -> None:
    if not 0 <= value <= high:
        raise InvalidInputError(f"{name}: must be between 0 and {high}, got {value}", field=name)


@dataclass
class _Ranked:
    """PageRank order of one catalog version, shared by every copy of an analysis."""

    entry: tuple[int, list[tuple[str, float]]] | None = None


class GraphAnalysis:
    """Answers graph questions from the projection; every one bounded in depth and time.

    Its question methods answer in the calling thread from ``graph`` as it is (on the event
    loop: the live projection, as tests and one-shot commands do); ``ask`` answers one on a
    worker thread from a snapshot.
    """

    def __init__(
        self,
        graph: GraphView,
        *,
        time_budget: float = TIME_BUDGET_S,
        workers: Workers | None = None,
        answers: Answers | None = None,
    ) -> None:
        self.graph = graph
        self.time_budget = time_budget
        self.workers = workers
        #: Whole answers per catalog version, shared by every copy (``catalog.answers``).
        self.answers = answers or Answers()
        self._cancelled: Callable[[], bool] | None = None
        self._ranked = _Ranked()
        # Gaps and redundancies moved on from version to version (catalog/findings.py),
        # shared by every copy as the PageRank cache is.
        self._gaps = FindingMemo(GapIndex)
        self._redundancies = FindingMemo(RedundancyIndex)
        self._past_ranked = _Ranked()  # of past views (negative versions): never the present's

    async def ask(
        self,
        question: Callable[[GraphAnalysis], T],
        *,
        group: object = None,
        view: GraphView | None = None,
    ) -> T:
        """``question(analysis)`` answered on a worker thread, from one immutable version of
        the projection (the one current when its turn comes).

        The questions of one ``group`` (a request) take turns. The question stops at its time
        budget (``GraphQueryTooExpensiveError``) or soon after the awaiting task is cancelled.
        Without workers, or on a projection that is not live, it is answered here and now.
        With ``view`` (a past catalog), it is answered from that view instead.

        Raises:
            WorkersBusyError: every worker is busy and the queue for them is full.
        """
        if view is not None:  # a past catalog (time travel): its own PageRank cache
            past = copy.copy(self)
            past.graph, past._ranked = view, self._past_ranked
            if self.workers is None:
                return question(past)
            frozen = view
            async with self.workers.turn(group):
                return await self.workers.run(
                    lambda cancelled: question(past._on(frozen, cancelled))
                )
        live = self.graph
        if self.workers is None or not isinstance(live, CatalogGraph):
            return question(self)
        workers = self.workers
        async with workers.turn(group):
            view = live.snapshot()  # here, on the loop's thread: never half a change
            return await workers.run(lambda cancelled: question(self._on(view, cancelled)))

    def _on(self, view: GraphView, cancelled: Callable[[], bool]) -> GraphAnalysis:
        """This analysis reading ``view``, its deadlines watching ``cancelled``."""
        bound = copy.copy(self)  # shares the PageRank cache
        bound.graph = view
        bound._cancelled = cancelled
        return bound

    #: Seconds the background first pass of the whole-catalog findings may take (``prime``).
    PRIME_BUDGET_S = 600.0

    async def prime(self, stop: Callable[[], bool] | None = None) -> None:
        """Work the whole-catalog findings (gaps, redundancies) out once, on a worker thread,
        over a snapshot of the live projection, with a budget of their own: their first pass
        takes 8 s at 1,000,000 nodes, past a question's time budget, and later versions move
        on from it (catalog/findings.py). A question meanwhile waits for it. ``stop``: when it
        says so, the pass stops at its next check (the server is shutting down). Never
        raises."""
        live = self.graph
        if not isinstance(live, CatalogGraph):
            return
        primer = copy.copy(self)
        primer.graph, primer.time_budget = live.snapshot(), self.PRIME_BUDGET_S
        primer._cancelled = stop

        def run() -> None:
            primer._find_gaps(None)
            primer._find_redundancies()

        try:
            await asyncio.to_thread(run)
        except Exception:  # the first question does the pass instead
            if stop is None or not stop():
                log.warning("working out the gaps and redundancies at start failed", exc_info=True)

    def _node(self, node_id: str, field_name: str = "id", kind: Kind | None = None) -> str:
        parse_id(node_id, field=field_name)
        if not self.graph.has(node_id):
            raise NotFoundError(
                f"{field_name}: no node {node_id!r} in the catalog", field=field_name
            )
        if kind is not None and self.graph.kind(node_id) is not kind:
            raise InvalidInputError(
                f"{field_name}: {node_id} is a {self.graph.kind(node_id).prefix}, "
                f"not a {kind.prefix}",
                field=field_name,
            )
        return node_id

    def _deadline(self, what: str) -> Deadline:
        return Deadline(self.time_budget, what, self._cancelled)

    def dependents(self, n: str) -> Iterator[tuple[str, Step]]:
        """Neighbours that depend on ``n`` (see the module docstring)."""
        graph = self.graph
        yield from graph.steps(n, FORWARD, "out")
        yield from graph.steps(n, BACKWARD, "in")
        if graph.kind(n) is Kind.JOURNEY_STEP:
            yield from graph.steps(n, (R.PART_OF,), "out")

    def _remember(
        self,
        question: Question,
        compute: Callable[[], T],
        size: Callable[[T], int],
        keep: bool = True,
    ) -> T:
        """The answer to ``question`` at this version of the graph: the kept one, else
        computed (and kept, with ``keep``)."""
        return self.answers.remember((self.graph.version, *question), compute, size, keep=keep)

    def pager(self) -> Pager:
        """Pages of the answers of this version of the graph (``catalog.answers``)."""
        return Pager(self.graph, self.answers)

    def impact(
        self, node_id: str, depth: int, *, direct_only: bool = False, keep: bool = False
    ) -> ImpactResult:
        """Everything that depends on a node, up to ``depth`` relations away (only what
        depends on the node itself with ``direct_only``), and what it leaves without a
        provider or a system of record (whatever the depth; docs/graph.md gives the rules).
        With ``keep`` (its pages are asked), kept for this catalog version
        (``catalog.answers``); a kept answer is taken either way."""
        question: Question = ("impact", node_id, depth, direct_only)
        result = self._remember(
            question, lambda: self._impact(node_id, depth, direct_only), _impact_bytes, keep
        )
        result.question = question
        return result

    def _impact(self, node_id: str, depth: int, direct_only: bool) -> ImpactResult:
        self._node(node_id)
        _check_range("depth", depth, MAX_DEPTH)
        g = self.graph
        deadline = self._deadline("impact")
        found = g.bfs(node_id, self.dependents, min(depth, 1) if direct_only else depth, deadline)
        affected = sorted(
            ((n, d, via) for n, (d, via) in found.items()), key=lambda x: (x[1], x[0])
        )
        gone = self._gone_with(node_id, deadline)
        unprovided = self._unprovided(gone, deadline)
        orphaned = sorted(
            e
            for e in {e for s in gone for e in g.out(s, R.MASTERS)} - gone
            if g.kind(e) is Kind.DATA_ENTITY
            and g.active(e)
            and not any(self._serving(s) and s not in gone for s in g.into(e, R.MASTERS))
        )
        return ImpactResult(node_id, affected, unprovided, orphaned)

    def _serving(self, system: str) -> bool:
        """Whether a system is in service: ACTIVE or DEPRECATED (PLANNED ones not yet)."""
        return self.graph.g._node[system]["lifecycle"] in _IN_SERVICE

    def _gone_with(self, root: str, deadline: Deadline) -> set[str]:
        """What goes when ``root`` goes: itself and, for a system, its components (the
        systems PART_OF it, transitively). Systems that merely depend on it stay."""
        g = self.graph
        gone = {root}
        if g.kind(root) is not Kind.SYSTEM:
            return gone
        todo = [root]
        while todo:
            deadline.check()
            for part in g.into(todo.pop(), R.PART_OF):
                if part not in gone and g.kind(part) is Kind.SYSTEM and g.active(part):
                    gone.add(part)
                    todo.append(part)
        return gone

    def _unprovided(self, gone: set[str], deadline: Deadline) -> list[str]:
        """Capabilities provided (themselves or through a sub-capability, as ``gaps`` counts)
        by a system in service before ``gone`` goes, and by none after."""
        g = self.graph
        candidates: set[str] = set()
        for n in gone:
            if g.kind(n) is Kind.CAPABILITY:
                candidates.update(self._ancestors(n))
            for c in g.out(n, R.PROVIDES):
                candidates.add(c)
                candidates.update(self._ancestors(c))

        def coverage(without: set[str]) -> dict[str, bool]:
            # Post-order down the hierarchy, each capability once (iterative: hierarchies may
            # be deep); a node in ``without`` neither provides nor passes on what is below it.
            memo: dict[str, bool] = {}
            visiting: set[str] = set()  # guards a PART_OF cycle (refused on write anyway)
            for root in candidates:
                todo: list[tuple[str, bool]] = [(root, False)]
                while todo:
                    deadline.check()
                    n, expanded = todo.pop()
                    children = [
                        c
                        for c in g.into(n, R.PART_OF)
                        if g.kind(c) is Kind.CAPABILITY and g.active(c) and c not in visiting
                    ]
                    if expanded:
                        visiting.discard(n)
                        memo[n] = any(memo.get(c, False) for c in children)
                    elif n in memo:
                        continue
                    elif n in without:
                        memo[n] = False
                    elif any(self._serving(s) and s not in without for s in g.into(n, R.PROVIDES)):
                        memo[n] = True
                    else:
                        visiting.add(n)
                        todo.append((n, True))
                        todo.extend((c, False) for c in children if c not in memo)
            return memo

        before, after = coverage(set()), coverage(gone)
        return sorted(
            c
            for c in candidates - gone
            if g.active(c) and before.get(c, False) and not after.get(c, False)
        )

    def _ancestors(self, capability: str) -> list[str]:
        """The capabilities above one (its PART_OF chain), nearest first."""
        g = self.graph
        out: list[str] = []
        n = capability
        while True:
            parents = [
                p
                for p in g.out(n, R.PART_OF)
                if g.kind(p) is Kind.CAPABILITY and g.active(p) and p not in out
            ]
            if not parents or parents[0] == capability:
                return out
            n = parents[0]
            out.append(n)

    def path(self, src: str, dst: str, max_length: int) -> list[Step] | None:
        """A shortest connection (direction ignored for finding it, reported as stored)."""
        self._node(src, "from")
        self._node(dst, "to")
        _check_range("maxLength", max_length, MAX_PATH_LENGTH)
        ids = self.graph.shortest_path(src, dst, max_length, self._deadline("path"))
        if ids is None:
            return None
        return [self.graph.relation_between(a, b) for a, b in zip(ids, ids[1:], strict=False)]

    def neighborhood(
        self,
        node_id: str,
        depth: int,
        types: Sequence[RelationType] | None,
        *,
        keep: bool = False,
    ) -> SubgraphResult:
        """Nodes within ``depth`` relations (any direction, optionally only some types); kept
        for this catalog version with ``keep``, as ``impact``."""
        names = tuple(sorted({t.name for t in types})) if types else None
        question: Question = ("neighborhood", node_id, depth, names)
        result = self._remember(
            question, lambda: self._neighborhood(node_id, depth, types), _subgraph_bytes, keep
        )
        result.question = question
        return result

    def _neighborhood(
        self, node_id: str, depth: int, types: Sequence[RelationType] | None
    ) -> SubgraphResult:
        self._node(node_id)
        _check_range("depth", depth, MAX_DEPTH)
        g = self.graph
        deadline = self._deadline("neighborhood")
        found = g.bfs(
            node_id, lambda n: g.steps(n, types, "both"), depth, deadline, skip_retired=False
        )
        return self._subgraph(node_id, found, types, deadline)

    def lineage(
        self, node_id: str, direction: str, depth: int, *, keep: bool = False
    ) -> SubgraphResult:
        """Upstream (IN), downstream (OUT) or both along FLOWS_TO and REPRESENTS; kept for
        this catalog version with ``keep``, as ``impact``."""
        question: Question = ("lineage", node_id, direction, depth)
        result = self._remember(
            question, lambda: self._lineage(node_id, direction, depth), _subgraph_bytes, keep
        )
        result.question = question
        return result

    def _lineage(self, node_id: str, direction: str, depth: int) -> SubgraphResult:
        self._node(node_id, kind=None)
        _check_range("depth", depth, MAX_DEPTH)
        g = self.graph
        deadline = self._deadline("lineage")
        found = g.bfs(
            node_id, lambda n: g.steps(n, LINEAGE, direction), depth, deadline, skip_retired=False
        )
        return self._subgraph(node_id, found, LINEAGE, deadline)

    def _subgraph(
        self,
        root: str,
        found: dict[str, tuple[int, list[Step]]],
        types: Sequence[RelationType] | None,
        deadline: Deadline,
    ) -> SubgraphResult:
        members = {root, *found}
        wanted = set(types) if types else None
        succ = self.graph.g._succ  # networkx's own dicts (metadata/graph.py, "readers")
        rels: list[Step] = []
        ordered = sorted(members)
        for u in ordered:
            deadline.check()
            rels.extend(
                Step(u, t, v, props)
                for v, d in succ[u].items()
                if v in members
                for t, props in sorted(d["rels"].items(), key=lambda kv: kv[0].value)
                if wanted is None or t in wanted
            )
        return SubgraphResult(ordered, rels)

    # -- coverage -------------------------------------------------------------------------

    def gaps(self, kinds: Sequence[Kind] | None) -> list[GapResult]:
        """What is missing: providers, systems of record, stewards, owners, served touchpoints
        (kept per catalog version)."""
        return list(self._whole_gaps(kinds)[1])

    def _whole_gaps(self, kinds: Sequence[Kind] | None) -> tuple[Question, list[GapResult]]:
        question: Question = ("gaps", tuple(sorted({k.name for k in kinds})) if kinds else None)
        found = self._remember(question, lambda: self._find_gaps(kinds), list_bytes(200))
        return question, found

    def gaps_page(
        self, kinds: Sequence[Kind] | None, flt: AnswerFilter, first: int, after: str | None
    ) -> AnswerPage[GapResult]:
        """A page of ``gaps(kinds)`` that ``flt`` keeps (its kinds, reason, domain, owner)."""
        question, whole = self._whole_gaps(kinds)
        return self.pager().page(
            question, whole, flt, first, after, node=_node_of, reason=_reason_of
        )

    def _find_gaps(self, kinds: Sequence[Kind] | None) -> list[GapResult]:
        # From the kept index of an earlier version, moved on by the changes since
        # (catalog/findings.py), or from a whole pass.
        return self._gaps.results(self.graph, kinds, self._deadline("gaps"))

    def redundancies(self) -> list[RedundancyResult]:
        """Capabilities provided by several active systems; entities mastered by several (silos);
        kept per catalog version."""
        return list(self._whole_redundancies())

    def _whole_redundancies(self) -> list[RedundancyResult]:
        return self._remember(("redundancies",), self._find_redundancies, list_bytes(300))

    def redundancies_page(
        self, flt: AnswerFilter, first: int, after: str | None
    ) -> AnswerPage[RedundancyResult]:
        """A page of ``redundancies()`` that ``flt`` keeps (kinds, reason, domain, owner)."""
        whole = self._whole_redundancies()
        return self.pager().page(
            ("redundancies",), whole, flt, first, after, node=_node_of, reason=_reason_of
        )

    def _find_redundancies(self) -> list[RedundancyResult]:
        deadline = self._deadline("redundancies")
        return self._redundancies.results(self.graph, None, deadline)

    def capability_map(self, root: str | None, depth: int) -> list[MapEntry]:
        """The capability hierarchy in pre-order, with providers and leaf coverage at each node."""
        _check_range("depth", depth, MAX_DEPTH)
        g = self.graph
        deadline = self._deadline("capabilityMap")

        def is_top(c: str) -> bool:
            deadline.check()
            return not any(g.kind(p) is Kind.CAPABILITY for p in g.out(c, R.PART_OF))

        if root is None:
            tops = [c for c in g.nodes_of(Kind.CAPABILITY) if is_top(c)]
        else:
            self._node(root, "root")
            if g.kind(root) is Kind.DOMAIN:
                tops = [
                    c
                    for c in g.into(root, R.PART_OF)
                    if g.kind(c) is Kind.CAPABILITY and g.active(c)
                ]
            elif g.kind(root) is Kind.CAPABILITY:
                tops = [root]
            else:
                raise InvalidInputError("root: give a capability or a domain id", field="root")

        def children(c: str) -> list[str]:
            return sorted(
                k for k in g.into(c, R.PART_OF) if g.kind(k) is Kind.CAPABILITY and g.active(k)
            )

        leaves_memo: dict[str, tuple[int, int]] = {}

        def leaves(c: str) -> tuple[int, int]:
            if c in leaves_memo:
                return leaves_memo[c]
            deadline.check()
            kids = children(c)
            if not kids:
                ok = any(g.active(s) for s in g.into(c, R.PROVIDES))
                result = (1, 0) if ok else (0, 1)
            else:
                parts = [leaves(k) for k in kids]
                result = (sum(p[0] for p in parts), sum(p[1] for p in parts))
            leaves_memo[c] = result
            return result

        out: list[MapEntry] = []

        def walk(c: str, level: int, parent: str | None) -> None:
            deadline.check()
            cov, unc = leaves(c)
            providers = sorted(s for s in g.into(c, R.PROVIDES) if g.active(s))
            out.append(MapEntry(c, level, parent, providers, cov, unc))
            if level < depth:
                for k in children(c):
                    walk(k, level + 1, c)

        for top in sorted(tops):
            walk(top, 1, None)
        return out

    def journey_coverage(self, journey: str, orders: dict[str, int]) -> CoverageResult:
        """Each step of a journey in order: touchpoints, capabilities, systems, entities, gaps."""
        self._node(journey, kind=Kind.JOURNEY)
        g = self.graph
        deadline = self._deadline("journeyCoverage")
        covered = covered_capabilities(self.graph, deadline)
        steps = [
            s for s in g.into(journey, R.PART_OF) if g.kind(s) is Kind.JOURNEY_STEP and g.active(s)
        ]
        steps.sort(key=lambda s: (orders.get(s, 0), s))
        result = CoverageResult(journey)
        for s in steps:
            deadline.check()
            tps = sorted(t for t in g.out(s, R.OCCURS_AT) if g.active(t))
            caps = sorted(c for c in g.out(s, R.USES) if g.active(c))
            systems: set[str] = set()
            entities: set[str] = set()
            gaps: list[GapResult] = []
            for c in caps:
                provs = [p for p in g.into(c, R.PROVIDES) if g.active(p)]
                systems.update(provs)
                entities.update(e for e in g.out(c, R.READS) + g.out(c, R.WRITES) if g.active(e))
                if c not in covered:
                    gaps.append(GapResult(c, "no active system provides this capability"))
            for t in tps:
                servers = [p for p in g.out(t, R.SERVED_BY) if g.active(p)]
                systems.update(servers)
                if not servers:
                    gaps.append(GapResult(t, "no active system serves this touchpoint"))
            if not caps:
                gaps.append(GapResult(s, "this step uses no capability"))
            if not tps:
                gaps.append(GapResult(s, "this step happens at no touchpoint"))
            result.steps.append(StepCoverage(s, tps, caps, sorted(systems), sorted(entities), gaps))
        return result

    def hotspots(self, first: int) -> list[tuple[str, float]]:
        """The most central active nodes by PageRank (directions ignored), cached per version."""
        _check_range("first", first, MAX_FIRST)
        return self._ranking()[:first]

    def hotspots_page(
        self, flt: AnswerFilter, first: int, after: str | None
    ) -> AnswerPage[tuple[str, float]]:
        """A page of every active node by PageRank (``hotspots`` without its bound) that
        ``flt`` keeps (kinds, domain, owner)."""
        return self.pager().page(
            ("hotspots",), self._ranking(), flt, first, after, node=_first_of, per_item=100
        )

    def _ranking(self) -> list[tuple[str, float]]:
        """Every active node by PageRank, highest first, ties by id; once per version."""
        g = self.graph
        entry = self._ranked.entry
        if entry is None or entry[0] != g.version:
            ranks = _pagerank(g, self._deadline("hotspots"))
            entry = (g.version, sorted(ranks.items(), key=lambda kv: (-kv[1], kv[0])))
            # One assignment: a question on another thread sees the old entry or the new one.
            self._ranked.entry = entry
        return entry[1]


def _node_of(item: GapResult | RedundancyResult) -> str:
    return item.node


def _reason_of(item: GapResult | RedundancyResult) -> str:
    return item.reason


def _first_of(item: tuple[str, Any] | tuple[str, Any, Any]) -> str:
    return item[0]


def _impact_bytes(result: ImpactResult) -> int:
    lists = len(result.unprovided_capabilities) + len(result.orphaned_entities)
    return 200 + sum(160 + 8 * d for _, d, _ in result.affected) + 8 * lists


def _subgraph_bytes(result: SubgraphResult) -> int:
    return 200 + 8 * len(result.nodes) + 120 * len(result.relations)


def _pagerank(
    graph: GraphView, deadline: Deadline, alpha: float = 0.85, tol: float = 1e-8
) -> dict[str, float]:
    """PageRank of the active nodes with relation directions ignored (power iteration on a
    sparse matrix: about a second for 500,000 relations, where networkx on a view takes five)."""
    g = graph.g
    nodes = [n for n, d in g._node.items() if d["lifecycle"] is not Lifecycle.RETIRED]
    n = len(nodes)
    if n == 0:
        return {}
    index = {node: i for i, node in enumerate(nodes)}
    rows: list[int] = []
    cols: list[int] = []
    for u, around in g._succ.items():
        iu = index.get(u)
        if iu is None:
            continue
        deadline.check()
        for v in around:
            iv = index.get(v)
            if iv is not None and iu != iv:
                rows += (iu, iv)
                cols += (iv, iu)
    if not rows:
        return {}
    adj = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    degree = np.asarray(adj.sum(axis=1)).ravel()
    dangling = degree == 0
    inv = np.divide(1.0, degree, out=np.zeros(n), where=~dangling)
    rank = np.full(n, 1.0 / n)
    for _ in range(100):
        deadline.check_now()  # each turn is a sparse product over every relation
        spread = adj.T @ (rank * inv)
        new = alpha * (spread + rank[dangling].sum() / n) + (1 - alpha) / n
        done = np.abs(new - rank).sum() < n * tol
        rank = new
        if done:
            break
    return {node: float(rank[i]) for i, node in enumerate(nodes)}


__all__ = [
    "GapResult",
    "GraphAnalysis",
    "MAX_DEPTH",
    "MAX_FIRST",
    "MAX_PATH_LENGTH",
    "RedundancyResult",
]
