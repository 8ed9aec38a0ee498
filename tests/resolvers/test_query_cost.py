"""Query cost (resolvers/cost.py): what an operation costs, and the refusal of costlier ones."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from graphql import get_introspection_query, parse
from starlette.testclient import TestClient
from strawberry.extensions import SchemaExtension

from catalog.app import create_app
from catalog.http import GRAPHQL_RESPONSE_JSON
from catalog.playground import EXAMPLE_TABS
from catalog.settings import Settings
from resolvers import build_schema
from resolvers.cost import DEFAULT_LIST_SIZE, compile_cost, evaluate
from tests.conftest import GraphQLClient, StatementCounter

ROOT = Path(__file__).resolve().parents[2]
README_BLOCKS = re.findall(r"```graphql\n(.*?)```", (ROOT / "README.md").read_text(), re.DOTALL)
SCHEMA = build_schema()._schema
LIMIT = Settings.model_fields["max_query_cost"].default

#: The README's examples in order, and what each costs (docs/limits.md works two of them out).
README_COSTS = [632, 481, 2241, 3721, 212, 2331, 32]
#: The same on the demo catalog, where graph answers are bounded by what it holds instead of 20
#: items (a level): the impact by what the CRM's depth 3 can reach, gaps and redundancies by
#: its capabilities, entities, steps and touchpoints (docs/limits.md, "Graph answers").
DEMO_README_COSTS = [632, 481, 2232, 3819, 212, 2331, 32]
#: The playground's example tabs.
TAB_COSTS = [421, 61, 32, 5]


def cost(query: str, variables: dict[str, Any] | None = None, name: str | None = None) -> int:
    """The cost of a query's operation for these variables."""
    return evaluate(compile_cost(SCHEMA, parse(query), name), variables)


# -- the formula ------------------------------------------------------------------------------


def test_every_readme_example_and_playground_tab_fits_the_default_limit() -> None:
    assert [cost(b) for b in README_BLOCKS] == README_COSTS
    assert [cost(t["query"]) for t in EXAMPLE_TABS] == TAB_COSTS
    assert max(README_COSTS + TAB_COSTS) * 10 < LIMIT
    # GraphiQL's own introspection query too.
    assert cost(get_introspection_query(descriptions=True)) == 2_000


def test_lists_multiply_by_first_and_by_the_default_size() -> None:
    # 1 connection + 10 edges x (edge + node + 20 providers), as docs/limits.md works it out
    one = "{ capabilities(first: 10) { totalCount edges { node { id providers { id } } } } }"
    assert cost(one) == 1 + 10 * (1 + 1 + DEFAULT_LIST_SIZE)
    nested = "{ capabilities(first: 10) { edges { node { providers { provides { id } } } } } }"
    assert cost(nested) == 1 + 10 * (2 + 20 * (1 + 20))
    # leaves cost nothing; an object 1
    assert cost("{ __typename }") == 0
    assert cost('{ node(id: "system:crm") { id name tags } }') == 1
    assert cost('{ node(id: "system:crm") { id owner { id } } }') == 2


def test_first_counts_up_to_the_largest_page_and_null_means_the_default() -> None:
    q = "{ nodes(first: %s) { edges { node { id } } } }"
    assert cost(q % "100000") == cost(q % "500") == 1 + 500 * 2
    assert cost(q % "-3") == 1
    assert cost(q % "null") == cost("{ nodes { edges { node { id } } } }") == 1 + 50 * 2


def test_variables_in_first_are_read_per_request() -> None:
    q = "query($n: Int) { capabilities(first: $n) { edges { node { providers { id } } } } }"
    assert cost(q, {"n": 10}) == 1 + 10 * 22
    assert cost(q, {"n": 100}) == 1 + 100 * 22
    assert cost(q, {}) == cost(q, {"n": None}) == 1 + 50 * 22  # the argument's default
    assert cost(q, {"n": 10**9}) == 1 + 500 * 22
    assert cost(q, {"n": "ten"}) == 1 + 50 * 22  # not an Int: execution refuses it anyway
    with_default = q.replace("$n: Int", "$n: Int = 7")
    assert cost(with_default, {}) == 1 + 7 * 22
    compiled = compile_cost(SCHEMA, parse(q), None)
    assert not isinstance(compiled, int)  # an expression, evaluated per request
    fixed = compile_cost(SCHEMA, parse(q.replace("$n", "3").replace("(3: Int)", "")), None)
    assert fixed == 1 + 3 * 22


def test_aliases_add_up_and_repeated_keys_merge() -> None:
    one = '{ impact(id: "system:crm") { root { id } } }'
    two = '{ a: impact(id: "system:crm") { root { id } } b: impact(id: "system:crm") { root { id } } }'
    assert cost(two) == 2 * cost(one)
    hundred = (
        "{ "
        + " ".join(f'a{i}: neighborhood(id: "system:crm") {{ nodes {{ id }} }}' for i in range(100))
        + " }"
    )
    assert cost(hundred) == 100 * cost('{ neighborhood(id: "system:crm") { nodes { id } } }')
    # the same response key twice is one field, as execution merges it
    merged = '{ node(id: "system:crm") { id } node(id: "system:crm") { owner { id } } }'
    assert cost(merged) == cost('{ node(id: "system:crm") { id owner { id } } }')


def test_graph_questions_have_a_base_price_growing_with_depth() -> None:
    def impact(depth: int) -> int:
        return cost(f'{{ impact(id: "system:crm", depth: {depth}) {{ root {{ id }} }} }}')

    assert impact(1) == 100 + 2 and impact(3) == 200 + 2 and impact(10) == 550 + 2
    assert impact(99) == impact(10)  # the largest depth the question accepts
    # the answer's lists grow with the depth: 20 affected nodes per level
    affected = '{ impact(id: "system:crm", depth: %d) { affected { node { id } } } }'
    assert cost(affected % 2) == 150 + 1 + 40 * 2
    path = '{ path(from: "system:crm", to: "system:erp", maxLength: 4) { type from { id } } }'
    assert cost(path) == 50 + 4 * 25 + 4 * 2
    # a list answer without a size of its own holds the default 20
    assert cost("{ gaps { reason } }") == cost("{ redundancies { reason } }") == 500 + 20
    assert cost("{ hotspots(first: 0) { score } }") == 500
    assert cost('{ search(query: "crm", first: 0) { totalCount } }') == 101
    records = (
        '{ node(id: "entity:customer") { ... on DataEntity { records(first: 0) { totalCount } } } }'
    )
    assert cost(records) == 1 + 200 + 1


def test_fragments_are_expanded_and_an_interface_costs_its_dearest_member() -> None:
    spread = """{ node(id: "system:crm") { ...S } }
      fragment S on System { provides { id } masters { id } }"""
    inline = '{ node(id: "system:crm") { ... on System { provides { id } masters { id } } } }'
    assert cost(spread) == cost(inline) == 1 + 20 + 20
    both = """{ node(id: "system:crm") { ... on System { provides { id } }
      ... on Capability { providers { id } children { id } } } }"""
    assert cost(both) == 1 + 40  # a node is one type: the dearer selection counts
    nested = """query { capabilities(first: 5) { edges { node { ...C } } } }
      fragment C on Capability { providers { ...P } }
      fragment P on System { provides { id } }"""
    assert cost(nested) == 1 + 5 * (2 + 20 * (1 + 20))
    skipped = '{ node(id: "system:crm") { ... on System @skip(if: true) { provides { id } } } }'
    assert cost(skipped) == 1


def test_mutations_and_entities_are_priced() -> None:
    assert cost('mutation { retire(id: "system:crm") { id } }') == 10 + 1
    assert cost('mutation { applyCatalog(document: "") { dryRun } }') == 100 + 1
    entities = "query($r: [_Any!]!) { _entities(representations: $r) { ... on System { id } } }"
    assert cost(entities, {"r": [{}, {}, {}]}) == 3


# -- through the app --------------------------------------------------------------------------


class ResolverSpy(SchemaExtension):
    """Counts every field any resolver resolves."""

    calls = 0

    def resolve(self, _next: Any, root: Any, info: Any, *args: Any, **kwargs: Any) -> Any:
        ResolverSpy.calls += 1
        return _next(root, info, *args, **kwargs)


BOMB = """{ nodes(first: 500) { edges { node { relations { from { relations {
  to { relations { to { id name } } } } } } } } } }"""


@pytest.fixture
def quiet_settings(settings: Settings) -> Settings:
    """Settings whose app checks the change log only once (so a request runs no statement
    for it), and whose background loop (the change log's poll, the hub tokens' last use)
    does not run during a count either."""
    return settings.model_copy(update={"read_sync_interval": 3600, "sync_interval": 3600})


def test_an_operation_over_the_limit_is_refused_before_anything_runs(
    quiet_settings: Settings, count_statements: Callable[[Any], StatementCounter]
) -> None:
    with TestClient(create_app(quiet_settings, demo=True)) as client:
        client.post("/graphql", json={"query": "{ __typename }"})
        schema = client.app.state.schema  # type: ignore[attr-defined]
        schema.extensions = [*schema.extensions, ResolverSpy]
        counter = count_statements(client.app.state.services.store.engine)  # type: ignore[attr-defined]
        ResolverSpy.calls = 0
        resp = client.post(
            "/graphql", json={"query": BOMB}, headers={"accept": GRAPHQL_RESPONSE_JSON}
        )
        assert resp.status_code == 400
        body = resp.json()
        assert "data" not in body
        [error] = body["errors"]
        # the demo's relation lists count as long as its longest (a data entity's: 36)
        compiled = compile_cost(SCHEMA, parse(BOMB), None, sizes=schema.costs.sizes)
        expected = evaluate(compiled, None)
        assert expected > cost(BOMB) > LIMIT
        assert error["extensions"] | {"catalogVersion": None} == {
            "catalogVersion": None,
            "code": "BAD_USER_INPUT",
            "cost": expected,
            "limit": LIMIT,
        }
        assert f"{expected:,}" in error["message"] and f"{LIMIT:,}" in error["message"]
        assert ResolverSpy.calls == 0 and counter.count == 0
        # the same request within a higher limit runs (the spy sees it) and reports its cost
        ok = client.post("/graphql", json={"query": README_BLOCKS[0]}).json()
        assert ok["extensions"] | {"catalogVersion": None} == {
            "catalogVersion": None,
            "cost": README_COSTS[0],
        } and not ok.get("errors")
        assert ResolverSpy.calls > 0


def test_two_hundred_aliased_graph_questions_are_refused(demo_gql: GraphQLClient) -> None:
    query = (
        "{ "
        + " ".join(
            f'q{i}: neighborhood(id: "system:crm", depth: 3) {{ nodes {{ id }} }}'
            for i in range(200)
        )
        + " }"
    )
    err = demo_gql.error(query)
    assert err["extensions"]["code"] == "BAD_USER_INPUT"
    # each as much as the demo's 174 nodes: depth 3 from its densest node can reach them all
    one = demo_gql.post('{ neighborhood(id: "system:crm", depth: 3) { nodes { id } } }')
    assert one["extensions"]["cost"] == 50 + 3 * 50 + 1 + 174
    assert err["extensions"]["cost"] == 200 * one["extensions"]["cost"]


def test_readme_examples_report_their_cost(demo_gql: GraphQLClient) -> None:
    for block, expected in zip(README_BLOCKS, DEMO_README_COSTS, strict=True):
        body = demo_gql.post(block)
        assert not body.get("errors"), (block, body["errors"])
        assert body["extensions"]["cost"] == expected, block
    assert max(DEMO_README_COSTS) * 10 < LIMIT


def test_the_limit_is_a_setting(app_factory: Callable[..., GraphQLClient]) -> None:
    gql = app_factory(demo=True, max_query_cost=500)
    err = gql.error(README_BLOCKS[0])  # costs 632
    assert err["extensions"] | {"catalogVersion": None} == {
        "catalogVersion": None,
        "code": "BAD_USER_INPUT",
        "cost": 632,
        "limit": 500,
    }
    assert gql.post(README_BLOCKS[1])["extensions"] | {"catalogVersion": None} == {
        "catalogVersion": None,
        "cost": 481,
    }


def test_variables_decide_the_cost_on_the_prepared_lane_too(
    settings: Settings,
) -> None:
    """A document prepared with a small ``first`` is refused with a large one, on the lane, with
    the same answer the full path gives."""
    query = "query($n: Int) { capabilities(first: $n) { edges { node { providers { provides { id } } } } } }"
    small, large = {"n": 2}, {"n": 300}
    limited = settings.model_copy(update={"max_query_cost": 20_000})
    with (
        TestClient(create_app(limited, demo=True)) as fast,
        TestClient(create_app(limited)) as full,
    ):
        full.app.state.schema.prepared.enabled = False  # type: ignore[attr-defined]
        prepared = fast.app.state.schema.prepared  # type: ignore[attr-defined]
        first = fast.post("/graphql", json={"query": query, "variables": small})
        assert first.json()["extensions"] | {"catalogVersion": None} == {
            "catalogVersion": None,
            "cost": 1 + 2 * (2 + 20 * 21),
        }
        assert prepared.known(query, None)
        for variables in (small, large, {"n": None}, {}):
            hits = prepared.hits
            lane = fast.post("/graphql", json={"query": query, "variables": variables})
            assert prepared.hits == hits + 1  # answered, or refused, on the lane
            if variables is small:
                assert lane.json()["extensions"] | {"catalogVersion": None} == {
                    "catalogVersion": None,
                    "cost": 1 + 2 * (2 + 20 * 21),
                }
                continue
            other = full.post("/graphql", json={"query": query, "variables": variables})
            assert lane.status_code == other.status_code
            assert lane.content == other.content
            [error] = lane.json()["errors"]
            assert error["extensions"]["cost"] == cost(query, variables) > 20_000
