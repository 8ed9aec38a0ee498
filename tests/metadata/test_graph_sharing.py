"""The graph projection shares equal data dicts (metadata.graph.edge_data, node_attrs): a pair
of one plain relation shares its type's dict with every such pair, a node its attributes with
every node of its kind, lifecycle and owner. Changing one pair or node must never show on
another, nor on a snapshot taken before: checked against a plain model on random changes."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from metadata.graph import CatalogGraph, GraphView
from metadata.model import Kind, Lifecycle, RelationType
from metadata.store import Change

NODES = [f"system:s{i}" for i in range(5)]
TYPES = [RelationType.DEPENDS_ON, RelationType.FLOWS_TO]
OWNERS = [None, "team:a", "team:b"]

relation_change = st.tuples(
    st.just("relation"),
    st.sampled_from(NODES),
    st.sampled_from(TYPES),
    st.sampled_from(NODES),
    st.sampled_from(["create", "delete"]),
    st.sampled_from([None, None, {"via": "kafka"}]),
)
node_change = st.tuples(
    st.just("node"),
    st.sampled_from(NODES),
    st.sampled_from([Lifecycle.ACTIVE, Lifecycle.RETIRED]),
    st.sampled_from(OWNERS),
)
changes = st.lists(
    st.tuples(st.one_of(relation_change, node_change), st.booleans()), min_size=1, max_size=40
)


def _seen(view: GraphView) -> tuple[dict[tuple[str, str, str], Any], dict[str, tuple[Any, ...]]]:
    rels = {(u, t.value, v): p for u, v, d in view.g.edges(data=True) for t, p in d["rels"].items()}
    pred = {
        (u, t.value, v): p
        for v, around in view.g.pred.items()
        for u, d in around.items()
        for t, p in d["rels"].items()
    }
    assert pred == rels  # both sides agree
    nodes = {n: (d["kind"], d["lifecycle"], d["owner"]) for n, d in view.g.nodes(data=True)}
    return rels, nodes


@settings(max_examples=150, deadline=None)
@given(steps=changes)
def test_changes_show_only_where_they_are_made(steps: list[tuple[Any, bool]]) -> None:
    graph = CatalogGraph()
    rels: dict[tuple[str, str, str], Any] = {}
    nodes: dict[str, tuple[Any, ...]] = {}
    for n in NODES:
        graph.apply([_node(0, n, Lifecycle.ACTIVE, None)])
        nodes[n] = (Kind.SYSTEM, Lifecycle.ACTIVE, None)
    taken: list[tuple[GraphView, Any]] = []
    for i, (step, snap) in enumerate(steps, 1):
        if step[0] == "node":
            _, n, lifecycle, owner = step
            graph.apply([_node(i, n, lifecycle, owner)])
            nodes[n] = (Kind.SYSTEM, lifecycle, owner)
        else:
            _, f, t, to, op, props = step
            after = {"from": f, "type": t.value, "to": to, "properties": props}
            change = Change(
                id=i,
                target="relation",
                target_id=f"{f}|{t.value}|{to}",
                op=op,
                before=after if op == "delete" else None,
                after=None if op == "delete" else after,
            )
            graph.apply([change])
            if op == "delete":
                rels.pop((f, t.value, to), None)
            else:
                rels[(f, t.value, to)] = props
        assert _seen(graph) == (rels, nodes)
        if snap:
            taken.append((graph.snapshot(), (dict(rels), dict(nodes))))
        for view, then in taken:  # snapshots keep what they saw
            assert _seen(view) == then


def _node(i: int, n: str, lifecycle: Lifecycle, owner: str | None) -> Change:
    after = {"id": n, "kind": Kind.SYSTEM.value, "lifecycle": lifecycle.value, "owner": owner}
    return Change(id=i, target="node", target_id=n, op="update", before=None, after=after)


def test_plain_pairs_share_one_data_dict_and_nodes_their_attributes() -> None:
    graph = CatalogGraph()
    changes = [
        Change(
            id=i,
            target="relation",
            target_id=f"system:a{i}|DEPENDS_ON|system:b{i}",
            op="create",
            before=None,
            after={"from": f"system:a{i}", "type": "DEPENDS_ON", "to": f"system:b{i}"},
        )
        for i in range(3)
    ]
    graph.apply(changes)
    g = graph.g
    assert g.succ["system:a0"]["system:b0"] is g.succ["system:a2"]["system:b2"]
    assert g.nodes["system:a0"] is g.nodes["system:b1"]
