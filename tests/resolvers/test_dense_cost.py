"""Query cost on a dense catalog: relation lists count as long as the catalog's longest."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from graphql import parse

from resolvers import build_schema
from resolvers.cost import DEFAULT_LIST_SIZE, compile_cost, evaluate
from tests.conftest import GraphQLClient

SCHEMA = build_schema()._schema
APPLY = "mutation($d: String!) { applyCatalog(document: $d) { relationsAdded } }"
LISTING = (
    "query($n: Int) { nodes(first: $n) { edges { node { id relations { type to { id } } } } } }"
)
LIMIT = 30_000


def hub_document(providers: int) -> str:
    """One system that provides ``providers`` capabilities: its ``relations`` list is that long."""
    caps = [{"id": f"capability:c{i:03}", "name": f"C{i}"} for i in range(providers)]
    return json.dumps(
        {
            "nodes": [{"id": "system:hub", "name": "Hub"}, *caps],
            "relations": [{"from": "system:hub", "type": "PROVIDES", "to": c["id"]} for c in caps],
        }
    )


def listing_cost(longest: int, n: int) -> int:
    """1 connection + n x (edge + node + longest x (relation + its end))."""
    return 1 + n * (2 + max(longest, DEFAULT_LIST_SIZE) * 2)


@pytest.fixture
def dense(app_factory: Callable[..., GraphQLClient]) -> GraphQLClient:
    gql = app_factory(max_query_cost=LIMIT)
    assert gql.data(APPLY, {"d": hub_document(60)})["applyCatalog"]["relationsAdded"] == 60
    return gql


def test_a_dense_listing_is_costed_by_its_real_size_and_refused(dense: GraphQLClient) -> None:
    # by the static default (20 relations a node) it would fit the limit
    static = evaluate(compile_cost(SCHEMA, parse(LISTING), None), {"n": 500})
    assert static == listing_cost(DEFAULT_LIST_SIZE, 500) < LIMIT
    err = dense.error(LISTING, {"n": 500})
    assert err["extensions"] | {"catalogVersion": None} == {
        "catalogVersion": None,
        "code": "BAD_USER_INPUT",
        "cost": listing_cost(60, 500),
        "limit": LIMIT,
    }
    small = dense.post(LISTING, {"n": 10})
    assert not small.get("errors") and small["extensions"] | {"catalogVersion": None} == {
        "catalogVersion": None,
        "cost": listing_cost(60, 10),
    }


def test_the_prepared_lane_counts_the_same_and_follows_the_catalog(
    dense: GraphQLClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("resolvers.cost.LIST_SIZES_INTERVAL", 0.0)
    prepared = dense.http.app.state.schema.prepared  # type: ignore[attr-defined]
    assert dense.post(LISTING, {"n": 2})["extensions"] | {"catalogVersion": None} == {
        "catalogVersion": None,
        "cost": listing_cost(60, 2),
    }
    assert prepared.known(LISTING, None)

    def on_lane(variables: dict[str, Any]) -> dict[str, Any]:
        hits = prepared.hits
        body = dense.post(LISTING, variables)
        assert prepared.hits == hits + 1
        return body

    assert on_lane({"n": 500})["errors"][0]["extensions"]["cost"] == listing_cost(60, 500)
    # the catalog grows denser: the same prepared document costs more at the next version
    dense.data(APPLY, {"d": hub_document(100)})
    assert on_lane({"n": 2})["extensions"] | {"catalogVersion": None} == {
        "catalogVersion": None,
        "cost": listing_cost(100, 2),
    }
    assert on_lane({"n": 200})["errors"][0]["extensions"]["cost"] == listing_cost(100, 200)


def test_graph_answers_are_costed_by_what_the_catalog_can_hold(dense: GraphQLClient) -> None:
    """60 capabilities around one system: a neighbourhood holds at most the 61 nodes, whatever
    its depth; the gaps at most 2 per capability and 1 for the system; no redundancy at all."""
    near = '{ neighborhood(id: "system:hub", depth: %d) { nodes { id } } }'
    for depth in (1, 2, 5):
        body = dense.post(near % depth)
        assert len(body["data"]["neighborhood"]["nodes"]) == 61
        assert body["extensions"]["cost"] == 50 + 50 * depth + 1 + 61
    # without a catalog, 20 nodes a level
    assert evaluate(compile_cost(SCHEMA, parse(near % 5), None), None) == 300 + 1 + 100
    gaps = dense.post("{ gaps { reason } }")
    assert len(gaps["data"]["gaps"]) <= 2 * 60 + 1
    assert gaps["extensions"]["cost"] == 500 + 2 * 60 + 1
    only = dense.post("{ gaps(kinds: [SYSTEM]) { reason } }")
    assert only["extensions"]["cost"] == 500 + 1 and len(only["data"]["gaps"]) == 1
    assert dense.post("{ redundancies { reason } }")["extensions"]["cost"] == 500


async def test_a_large_catalogs_statistics_are_worked_out_off_the_event_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # At 100,000 nodes / 500,000 relations the pass took 2.2 s, on the event loop, once a
    # second while writes came: every other request waited for it (bench/README.md).
    import threading
    import time

    from metadata.graph import CatalogGraph
    from metadata.model import RelationType
    from metadata.store import Change
    from resolvers import cost

    monkeypatch.setattr(cost, "LIST_SIZES_INTERVAL", 0.0)
    monkeypatch.setattr(cost, "LIST_SIZES_AT_ONCE", 0)  # every catalog is "large"
    graph = CatalogGraph()
    for i in range(30):
        graph._add_edge("system:hub", RelationType.PROVIDES, f"capability:c{i}", None)
    graph.version += 1
    sizes = cost.CatalogListSizes()
    sizes.bind(graph)
    assert sizes.size("System.provides") == 30  # the first pass: at once
    passes: list[str] = []
    real = cost.catalog_statistics

    def counted(view: Any) -> Any:
        passes.append(threading.current_thread().name)
        time.sleep(0.2)  # a large catalog's pass
        return real(view)

    monkeypatch.setattr(cost, "catalog_statistics", counted)
    changes = [
        Change(
            id=100 + i,
            target="relation",
            target_id=f"system:hub PROVIDES capability:d{i}",
            op="create",
            before=None,
            after={"from": "system:hub", "type": "PROVIDES", "to": f"capability:d{i}"},
        )
        for i in range(40)
    ]
    graph.apply(changes)
    started = time.perf_counter()
    assert sizes.size("System.provides") == 30  # the previous version's, without waiting
    assert time.perf_counter() - started < 0.1
    deadline = time.monotonic() + 5
    while sizes.size("System.provides") != 70 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sizes.size("System.provides") == 70
    assert passes and passes[0] == "capahub-cost-statistics"
