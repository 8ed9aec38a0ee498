"""Gaps and redundancies moved on from version to version (catalog/findings.py) equal a whole
pass of the rules as they were written before (``reference_gaps``, ``reference_redundancies``,
kept here as the oracles), after every batch of random changes: lifecycles, owners, and
relations of every type they read, on random landscapes (capability hierarchies with several
parents, retired links in the chains)."""

from __future__ import annotations

import time
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from catalog.analysis import GraphAnalysis
from catalog.findings import (
    FindingMemo,
    GapIndex,
    GapResult,
    RedundancyIndex,
    RedundancyResult,
)
from metadata.graph import CatalogGraph, Deadline, GraphView
from metadata.model import Kind, Lifecycle, RelationType
from metadata.store import Change

R = RelationType

CAPS = [f"capability:c{i}" for i in range(6)]
SYSTEMS = [f"system:s{i}" for i in range(2)]
ENTITIES = [f"entity:e{i}" for i in range(3)]
STEPS = [f"step:p{i}" for i in range(2)]
TOUCHPOINTS = [f"touchpoint:t{i}" for i in range(2)]
TEAMS = ["team:a", "team:b"]
NODES = CAPS + SYSTEMS + ENTITIES + STEPS + TOUCHPOINTS + TEAMS

# (type, from candidates, to candidates); PART_OF between capabilities only downwards in
# index (no cycles, as the metamodel refuses them), with several parents possible.
RELATIONS: list[tuple[RelationType, list[str], list[str]]] = [
    (R.PROVIDES, SYSTEMS, CAPS),
    (R.MASTERS, SYSTEMS, ENTITIES),
    (R.STORES, SYSTEMS, ENTITIES),
    (R.REPRESENTS, ENTITIES, ENTITIES),
    (R.STEWARDS, TEAMS, ENTITIES),
    (R.OWNS, TEAMS, CAPS + SYSTEMS),
    (R.USES, STEPS, CAPS),
    (R.SERVED_BY, TOUCHPOINTS, SYSTEMS),
]


def reference_gaps(g: GraphView) -> list[GapResult]:
    """``GraphAnalysis._find_gaps(None)`` as it was before the index (catalog/analysis.py at
    07a9323): the whole pass."""
    covered: set[str] = set()
    for c in g.nodes_of(Kind.CAPABILITY):
        if any(g.active(s) for s in g.into(c, R.PROVIDES)):
            n: str | None = c
            while n is not None and n not in covered:
                covered.add(n)
                parents = [p for p in g.out(n, R.PART_OF) if g.kind(p) is Kind.CAPABILITY]
                n = parents[0] if parents else None
    out: list[GapResult] = []
    for c in sorted(g.nodes_of(Kind.CAPABILITY)):
        if c not in covered:
            out.append(
                GapResult(c, "no active system provides this capability or any sub-capability")
            )
    for kind in (Kind.SYSTEM, Kind.CAPABILITY):
        for n in sorted(g.nodes_of(kind)):
            if g.owner(n) is None and not g.into(n, R.OWNS):
                out.append(GapResult(n, f"this {kind.prefix} has no owner (no team owns it)"))
    for e in sorted(g.nodes_of(Kind.DATA_ENTITY)):
        if g.out(e, R.REPRESENTS) or g.into(e, R.STORES):
            continue
        if not any(g.active(s) for s in g.into(e, R.MASTERS)):
            out.append(
                GapResult(e, "no active system is the system of record (MASTERS) for this entity")
            )
        if not g.into(e, R.STEWARDS):
            out.append(GapResult(e, "no team stewards this entity"))
    for s in sorted(g.nodes_of(Kind.JOURNEY_STEP)):
        for c in sorted(g.out(s, R.USES)):
            if c not in covered:
                out.append(GapResult(s, f"uses {c}, which no active system provides"))
    for t in sorted(g.nodes_of(Kind.TOUCHPOINT)):
        if not any(g.active(s) for s in g.out(t, R.SERVED_BY)):
            out.append(GapResult(t, "no active system serves this touchpoint"))
    return out


def reference_redundancies(g: GraphView) -> list[RedundancyResult]:
    """``GraphAnalysis._find_redundancies`` as it was before the index (at 53b64d3)."""
    out: list[RedundancyResult] = []
    for c in sorted(g.nodes_of(Kind.CAPABILITY)):
        providers = sorted(s for s in g.into(c, R.PROVIDES) if g.active(s))
        if len(providers) > 1:
            out.append(
                RedundancyResult(c, f"provided by {len(providers)} active systems", providers)
            )
    for e in sorted(g.nodes_of(Kind.DATA_ENTITY)):
        masters = sorted(s for s in g.into(e, R.MASTERS) if g.active(s))
        if len(masters) > 1:
            out.append(
                RedundancyResult(
                    e, f"mastered by {len(masters)} systems: competing systems of record", masters
                )
            )
    return out


def _kind(n: str) -> str:
    return {
        "capability": Kind.CAPABILITY,
        "system": Kind.SYSTEM,
        "entity": Kind.DATA_ENTITY,
        "step": Kind.JOURNEY_STEP,
        "touchpoint": Kind.TOUCHPOINT,
        "team": Kind.TEAM,
    }[n.split(":")[0]].value


class Log:
    def __init__(self) -> None:
        self.next_id = 1

    def node(self, n: str, lifecycle: Lifecycle, owner: str | None) -> Change:
        self.next_id += 1
        after = {"id": n, "kind": _kind(n), "lifecycle": lifecycle.value, "owner": owner}
        return Change(self.next_id, "node", n, "update", None, after)

    def relation(self, f: str, t: RelationType, to: str, delete: bool) -> Change:
        self.next_id += 1
        image = {"from": f, "type": t.value, "to": to, "properties": None}
        return Change(
            self.next_id,
            "relation",
            f"{f}|{t.value}|{to}",
            "delete" if delete else "create",
            image if delete else None,
            None if delete else image,
        )


@st.composite
def relation_change(draw: Any) -> tuple[Any, ...]:
    if draw(st.integers(0, 4)) == 0:  # PART_OF in the capability hierarchy
        child = draw(st.integers(1, len(CAPS) - 1))
        parent = draw(st.integers(0, child - 1))
        return ("rel", CAPS[child], R.PART_OF, CAPS[parent], draw(st.booleans()))
    rtype, froms, tos = draw(st.sampled_from(RELATIONS))
    f, to = draw(st.sampled_from(froms)), draw(st.sampled_from(tos))
    if f == to:
        return ("rel", f, rtype, CAPS[0], True)  # a harmless delete
    return ("rel", f, rtype, to, draw(st.booleans()))


node_change = st.tuples(
    st.just("node"),
    st.sampled_from(NODES),
    st.sampled_from([Lifecycle.ACTIVE, Lifecycle.ACTIVE, Lifecycle.PLANNED, Lifecycle.RETIRED]),
    st.sampled_from([None, "team:a"]),
)
batches = st.lists(
    st.lists(st.one_of(relation_change(), node_change), min_size=1, max_size=6),
    min_size=1,
    max_size=12,
)
landscape = st.lists(relation_change(), min_size=0, max_size=30)


def _changes(log: Log, steps: list[tuple[Any, ...]]) -> list[Change]:
    out = []
    for step in steps:
        if step[0] == "node":
            out.append(log.node(step[1], step[2], step[3]))
        else:
            _, f, t, to, delete = step
            out.append(log.relation(f, t, to, delete))
    return out


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(start=landscape, steps=batches)
def test_moved_on_findings_equal_a_whole_pass(start: list[Any], steps: list[list[Any]]) -> None:
    graph = CatalogGraph()
    log = Log()
    graph.apply([log.node(n, Lifecycle.ACTIVE, None) for n in NODES])
    graph.apply(_changes(log, [s for s in start if not s[4]]))  # creations only at first
    memo = FindingMemo(GapIndex)
    doubles = FindingMemo(RedundancyIndex)
    deadline = Deadline(60, "gaps")
    assert memo.results(graph.snapshot(), None, deadline) == reference_gaps(graph)
    assert doubles.results(graph.snapshot(), None, deadline) == reference_redundancies(graph)
    for batch in steps:
        graph.apply(_changes(log, batch))
        view = graph.snapshot()
        assert memo.results(view, None, deadline) == reference_gaps(view), batch
        assert doubles.results(view, None, deadline) == reference_redundancies(view), batch
        for kinds in ([Kind.CAPABILITY], [Kind.DATA_ENTITY, Kind.JOURNEY_STEP]):
            whole = reference_gaps(view)
            wanted = [x for x in whole if view.kind(x.node) in kinds]
            assert memo.results(view, kinds, deadline) == wanted


def test_a_move_costs_what_the_changes_touch() -> None:
    graph = CatalogGraph()
    log = Log()
    caps = [f"capability:x{i:05}" for i in range(20_000)]
    graph.apply([log.node(c, Lifecycle.ACTIVE, None) for c in caps])
    graph.apply([log.relation(caps[i], R.PART_OF, caps[i // 10], False) for i in range(1, 20_000)])
    graph.apply([log.node("system:s", Lifecycle.ACTIVE, "team:a")])
    memo = FindingMemo(GapIndex)
    deadline = Deadline(60, "gaps")
    t = time.perf_counter()
    first = memo.results(graph.snapshot(), None, deadline)
    whole = time.perf_counter() - t
    assert first == reference_gaps(graph)
    # One capability deep in the hierarchy gets a provider: it and its ancestors are covered.
    graph.apply([log.relation("system:s", R.PROVIDES, caps[19_999], False)])
    t = time.perf_counter()
    moved = memo.results(graph.snapshot(), None, deadline)
    step = time.perf_counter() - t
    assert moved == reference_gaps(graph)
    assert len(first) - len(moved) == 6  # caps[19999] and its ancestors 1999, 199, 19, 1, 0
    # Reading the answer out is most of it; the move itself touches a handful of nodes.
    assert step < whole, (step, whole)


def test_the_analysis_answers_gaps_through_the_index() -> None:
    graph = CatalogGraph()
    log = Log()
    graph.apply([log.node(n, Lifecycle.ACTIVE, None) for n in NODES])
    analysis = GraphAnalysis(graph)
    before = analysis.gaps(None)
    assert before == reference_gaps(graph)
    graph.apply([log.relation("system:s0", R.PROVIDES, "capability:c3", False)])
    assert analysis.gaps(None) == reference_gaps(graph) != before
    assert analysis.gaps([Kind.SYSTEM]) == [
        x for x in reference_gaps(graph) if x.node.startswith("system:")
    ]


def test_the_touched_log_is_bounded_and_says_when_it_no_longer_reaches_back() -> None:
    from metadata import graph as graph_module

    graph = CatalogGraph()
    log = Log()
    graph.apply([log.node(n, Lifecycle.ACTIVE, None) for n in NODES])
    start = graph.version
    graph.apply([log.node("system:s0", Lifecycle.RETIRED, None)])
    assert graph.touched_since(start) == {"system:s0"}
    assert graph.snapshot().touched_since(start) == {"system:s0"}
    for i in range(graph_module.TOUCHED_VERSIONS + 5):
        graph.apply([log.node("system:s1", Lifecycle.ACTIVE, f"team:t{i % 2}")])
    assert len(graph._log or ()) <= graph_module.TOUCHED_VERSIONS
    assert graph.touched_since(start) is None  # forgotten: a whole pass
    assert graph.touched_since(graph.version - 3) == {"system:s1"}
    assert graph.touched_since(graph.version) == set()
    assert GraphView(graph.g, graph.version).touched_since(start) is None  # a past graph
