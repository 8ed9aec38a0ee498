"""The cost budget per caller (``catalog.budget``): a token bucket of query-cost points per
principal or address, charged before an operation runs, through the real ASGI app.

The buckets of these apps run on a clock the test moves (``Clock``), so what they hold is
exact; ``test_served_budget.py`` runs the same against a real ``capahub serve`` on the real
clock, from two addresses.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from catalog.app import create_app
from catalog.budget import (
    MAX_CALLERS,
    REFUSED_POINTS,
    CostBudget,
    caller_key,
    charge_of,
)
from catalog.settings import DEFAULT_COST_PER_MINUTE, Settings
from resolvers import make_context
from tests.conftest import TEST_HOSTS, GraphQLClient

#: The default budget of a hub other machines can reach (the tests' own apps run without one:
#: tests/conftest.py).
DEFAULT = DEFAULT_COST_PER_MINUTE

#: Costs 1 + 2 x n: the connection, then an edge and a node per item.
NODES = "query($n: Int) { nodes(first: $n) { edges { node { id } } } }"


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def with_budget(gql: GraphQLClient, per_minute: int, clock: Clock) -> CostBudget:
    """Give the app behind ``gql`` a budget of ``per_minute`` points on ``clock``."""
    costs = gql.http.app.state.schema.costs  # type: ignore[attr-defined]
    budget = CostBudget(per_minute, max_charge=costs.limit, clock=clock)
    costs.budget = budget
    return budget


def post(client: TestClient, query: str, **variables: Any) -> Any:
    return client.post("/graphql", json={"query": query, "variables": variables})


def refusal(resp: Any) -> dict[str, Any]:
    """The RATE_LIMITED error of a 429 answer (no ``data``), with its ``Retry-After``."""
    assert resp.status_code == 429, resp.text
    body = resp.json()
    assert "data" not in body, body
    error: dict[str, Any] = body["errors"][0]
    assert error["extensions"]["code"] == "RATE_LIMITED", error
    assert resp.headers["retry-after"] == str(error["extensions"]["retryAfter"])
    return error


def test_caller_over_budget_is_refused_with_cost_remaining_and_retry_after(
    gql: GraphQLClient,
) -> None:
    clock = Clock()
    budget = with_budget(gql, 1_200, clock)  # 20 points a second
    for _ in range(5):  # the first one by the full path, the others on the prepared lane
        resp = post(gql.http, NODES, n=100)
        assert resp.status_code == 200 and resp.json()["extensions"]["cost"] == 201
    # 1,200 - 5 x 201 = 195 left: the next one (201) is refused, by the lane and by the full
    # path (another text) alike, with the same numbers
    for query in (NODES, NODES + " "):
        error = refusal(post(gql.http, query, n=100))
        assert error["extensions"] == {
            "code": "RATE_LIMITED",
            "cost": 201,
            "remaining": 195,
            "retryAfter": 1,  # 6 points at 20 a second
            "costPerMinute": 1_200,
        }
        assert "CAPAHUB_COST_PER_MINUTE" in error["message"] and "201" in error["message"]
    # what was refused took nothing: a request within what is left still runs
    assert post(gql.http, NODES, n=97).status_code == 200  # 195
    assert budget.remaining(next(iter(budget._buckets))) == 0


def test_nothing_of_a_refused_request_runs(gql: GraphQLClient) -> None:
    clock = Clock()
    with_budget(gql, 600, clock)
    assert post(gql.http, NODES, n=299).status_code == 200  # 599 of 600
    create = 'mutation { upsertNode(input: {id: "system:late", name: "Late"}) { id } }'
    refusal(post(gql.http, create))
    clock.now += 60  # full again
    found = gql.data('{ node(id: "system:late") { id } }')
    assert found["node"] is None, "the refused mutation wrote nothing"
    assert gql.data(create)["upsertNode"]["id"] == "system:late"


def test_the_budget_refills_at_its_rate(gql: GraphQLClient) -> None:
    clock = Clock()
    with_budget(gql, 600, clock)  # 10 points a second
    assert post(gql.http, NODES, n=299).status_code == 200
    retry = refusal(post(gql.http, NODES, n=100))["extensions"]["retryAfter"]
    assert retry == 20  # 201 - 1 = 200 points at 10 a second
    clock.now += retry - 1
    refusal(post(gql.http, NODES, n=100))
    clock.now += 1
    assert post(gql.http, NODES, n=100).status_code == 200


def test_another_caller_is_not_affected(app_factory: Callable[..., GraphQLClient]) -> None:
    gql = app_factory(auth="on")
    clock = Clock()
    budget = with_budget(gql, 600, clock)
    tokens = gql.http.app.state.services.tokens  # type: ignore[attr-defined]
    heads = {}
    for name in ("one", "two"):
        _, text = gql.http.portal.call(  # type: ignore[union-attr]
            functools.partial(tokens.create, name, "viewer", created_by="tests")
        )
        heads[name] = {"Authorization": f"Bearer {text}"}
    body = {"query": NODES, "variables": {"n": 299}}
    assert gql.http.post("/graphql", json=body, headers=heads["one"]).status_code == 200
    refusal(gql.http.post("/graphql", json=body, headers=heads["one"]))
    assert gql.http.post("/graphql", json=body, headers=heads["two"]).status_code == 200
    assert budget.remaining("actor token:one") == 1
    assert budget.remaining("actor token:two") == 1
    assert budget.remaining("address testclient") == 600


def test_a_caller_out_of_points_is_refused_before_its_body_is_read(
    gql: GraphQLClient,
) -> None:
    clock = Clock()
    with_budget(gql, 600, clock)
    assert post(gql.http, NODES, n=299).status_code == 200  # 1 point left
    assert post(gql.http, "{ __typename }").status_code == 200  # the point every request costs
    # 0 left: refused at the door, the body unread (a small one is skipped by the server and
    # the connection kept; past 64 kB it is closed)
    resp = gql.http.post("/graphql", content=b"not even JSON", headers={"content-type": "x/y"})
    error = refusal(resp)
    assert "connection" not in resp.headers
    assert error["extensions"]["cost"] == 1 and error["extensions"]["remaining"] == 0
    # a body is charged a point per 1,000 bytes, so a big one waits for that many
    clock.now += 10  # 100 points
    padding = "x" * 150_000
    resp = post(gql.http, "{ __typename }", pad=padding)
    error = refusal(resp)
    assert error["extensions"]["cost"] == 150 and error["extensions"]["retryAfter"] == 5
    assert resp.headers["connection"] == "close"
    assert post(gql.http, "{ __typename }", pad="x" * 50_000).status_code == 200


def test_an_operation_over_the_cost_limit_is_charged_all_the_same(gql: GraphQLClient) -> None:
    clock = Clock()
    budget = with_budget(gql, 3_000, clock)
    huge = "{ nodes(first: 500) { edges { node { relations { from { relations { to { id } } } } } } } }"
    for _ in range(3):
        error = gql.error(huge)
        assert error["extensions"]["code"] == "BAD_USER_INPUT", error  # the limit, as before
    (caller,) = budget._buckets  # the test client's address, or its admin token
    assert budget.remaining(caller) == 3_000 - 3 * REFUSED_POINTS
    refusal(post(gql.http, huge))  # then the door
    # a client that keeps sending them goes into debt (down to what a full bucket admits
    # beyond it and a minute's points more): it is refused at the door until its bucket has
    # refilled from there (50 points a second)
    budget.take(caller, 100 * REFUSED_POINTS)
    assert budget.remaining(caller) == budget.lowest == (3_000 - 50_000) - 3_000
    clock.now += 1_000
    refusal(post(gql.http, "{ __typename }"))
    clock.now += 0.1
    assert post(gql.http, "{ __typename }").status_code == 200


def test_in_process_execution_is_not_charged(gql: GraphQLClient) -> None:
    clock = Clock()
    budget = with_budget(gql, 600, clock)
    schema = gql.http.app.state.schema  # type: ignore[attr-defined]
    context = make_context(gql.http.app.state.services)  # type: ignore[attr-defined]
    run = functools.partial(
        schema.execute, "{ nodes(first: 299) { totalCount } }", context_value=context
    )
    result = gql.http.portal.call(run)  # type: ignore[union-attr]
    assert not result.errors, result.errors
    assert len(budget) == 0


def test_the_hub_builds_its_budget_from_the_settings(
    app_factory: Callable[..., GraphQLClient],
) -> None:
    assert Settings(_env_file=None).cost_per_minute is None and DEFAULT == 100_000

    def built(**settings: Any) -> Any:
        made = Settings(allowed_hosts=TEST_HOSTS, _env_file=None, **settings)  # type: ignore[call-arg]
        return create_app(made).state.schema.costs.budget

    # Reachable from other machines (auth on, or not on loopback): the default budget.
    for exposed in ({"auth": "on"}, {"host": "0.0.0.0"}):
        budget = built(**exposed)
        assert budget.per_minute == 100_000 and budget.capacity == 100_000, exposed
    # Auth off on loopback (the default, e.g. `capahub serve --demo`): only local processes
    # can call it, which can read the database file anyway: no budget unless one is set.
    assert built() is None and built(host="localhost") is None
    assert built(cost_per_minute=5_000).per_minute == 5_000
    assert app_factory(cost_per_minute=0).http.app.state.schema.costs.budget is None  # type: ignore[attr-defined]
    chosen = app_factory(cost_per_minute=600).http.app.state.schema.costs.budget  # type: ignore[attr-defined]
    assert chosen.per_minute == 600 and chosen.rate == 10


def test_the_default_budget_runs_every_readme_example_many_times_a_minute(
    app_factory: Callable[..., GraphQLClient],
) -> None:
    """Each README query five times in a row, on the default budget and the real clock: none
    is refused, and together they take less than half of it."""
    demo_gql = app_factory(demo=True, cost_per_minute=DEFAULT)
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    blocks = re.findall(r"```graphql\n(.*?)```", readme, re.DOTALL)
    spent = 0
    for _ in range(5):
        for block in blocks:
            resp = demo_gql.http.post("/graphql", json={"query": block})
            assert resp.status_code == 200, resp.text
            spent += resp.json()["extensions"]["cost"]
    assert spent < 100_000 / 2, spent


def test_callers_are_principals_or_addresses() -> None:
    assert caller_key("token:ci", "10.0.0.1") == "actor token:ci"
    assert caller_key("user:ann", None) == "actor user:ann"
    assert caller_key("anonymous", "10.0.0.1") == "address 10.0.0.1"
    assert caller_key(None, "10.0.0.1") == "address 10.0.0.1"
    # one host usually holds a whole IPv6 /64: its addresses share a bucket
    assert caller_key(None, "2001:db8::1") == caller_key(None, "2001:db8::ffff:1")
    assert caller_key(None, "2001:db8::1") == "address 2001:db8::/64"
    assert caller_key(None, "2001:db8:0:1::1") != caller_key(None, "2001:db8::1")
    assert caller_key(None, "::ffff:10.0.0.1") == "address 10.0.0.1"
    assert caller_key(None, "testclient") == "address testclient"
    assert caller_key(None, None) is None
    assert charge_of(0) == 1 and charge_of(201) == 201 and charge_of(5, 2_000_000) == 2_000


def test_the_bucket_cache_is_bounded() -> None:
    clock = Clock()
    budget = CostBudget(600, max_charge=50_000, max_callers=3, clock=clock)
    for i in range(10):
        assert budget.spend(f"address 10.0.0.{i}", 500) is None
    assert len(budget) == 3
    # the least recently seen were dropped, which gives them a full bucket (never less)
    assert budget.remaining("address 10.0.0.0") == 600
    assert budget.remaining("address 10.0.0.9") == 100
    # a bucket is dropped once it would be full again anyway: after its time to live
    assert budget.lowest == 600 - 50_000 - 600  # a full bucket's debt, and a minute more
    assert budget.ttl == (600 - budget.lowest) / 10
    clock.now += budget.ttl + 1
    assert len(budget) == 0
    assert MAX_CALLERS == 50_000


def test_a_full_bucket_admits_one_request_costlier_than_the_budget() -> None:
    clock = Clock()
    budget = CostBudget(600, max_charge=50_000, clock=clock)
    assert budget.spend("a", 50_000) is None  # the limits admit it: never refused for ever
    assert budget.remaining("a") == 600 - 50_000
    refused = budget.spend("a", 1)
    assert refused is not None and refused.remaining == 0
    assert refused.retry_after == (50_000 - 600 + 1) // 10 + 1
    clock.now += refused.retry_after
    assert budget.spend("a", 1) is None


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c"]),
            st.integers(min_value=1, max_value=3_000),
            st.floats(min_value=0, max_value=30, allow_nan=False),
        ),
        max_size=40,
    )
)
def test_a_caller_never_spends_more_than_its_bucket_and_the_refill(
    requests: list[tuple[str, int, float]],
) -> None:
    """For any sequence of requests: per caller, what was admitted over the whole run is at
    most a full bucket plus what refilled meanwhile plus one request's debt; a refusal takes
    nothing, and its retryAfter is honest (waiting that long admits the same charge)."""
    clock = Clock()
    budget = CostBudget(1_200, max_charge=3_000, clock=clock)
    start = clock.now
    admitted = {"a": 0, "b": 0, "c": 0}
    for caller, charge, wait in requests:
        clock.now += wait
        before = budget.remaining(caller)
        assert before <= budget.capacity
        refused = budget.spend(caller, charge)
        if refused is None:
            admitted[caller] += charge
            continue
        assert budget.remaining(caller) == before
        assert refused.charge == charge and refused.remaining == max(0, int(before))
        later = min(budget.capacity, before + refused.retry_after * budget.rate)
        assert budget._refusal(charge, later) is None
    elapsed = clock.now - start
    for caller, total in admitted.items():
        assert total <= budget.capacity + budget.rate * elapsed + 3_000, (caller, total)


@pytest.mark.parametrize("per_minute", [60, 100_000])
def test_retry_after_is_at_least_one_second(per_minute: int) -> None:
    clock = Clock()
    budget = CostBudget(per_minute, max_charge=50_000, clock=clock)
    budget.take("a", per_minute)
    refused = budget.spend("a", 1)
    assert refused is not None and refused.retry_after >= 1
