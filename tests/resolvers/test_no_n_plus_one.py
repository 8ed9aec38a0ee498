"""SQL statements per request grow with the query's depth, never with the number of items."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import sqlalchemy
from starlette.testclient import TestClient

from catalog.app import create_app
from catalog.demo import load_demo
from catalog.services import Services
from catalog.settings import Settings
from resolvers import build_schema, make_context
from tests.conftest import StatementCounter

DISCOVERY = """query($first: Int) { capabilities(first: $first) { edges { node {
  id name providers { id name } reads { id name } writes { id name } parent { id }
} } } }"""

DEEP = """query($first: Int) { capabilities(first: $first) { edges { node {
  id owner { id name } domain { id }
  providers { id name dependsOn { id provides { id } } masters { id stewards { id } } }
  reads { id masteredBy { id } attributes { name } }
  relations { type from { id } to { id } }
  children { id providers { id } }
} } } }"""


def _settle(services: Services) -> None:
    """Wait until no sync started by a change notification is in flight (on PostgreSQL the
    demo load's own NOTIFY can arrive late on a loaded machine and start one catch-up read,
    which is not the request's)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        waking = services._waking
        if waking is None or waking.done():
            time.sleep(0.2)
            waking = services._waking
            if waking is None or waking.done():
                return
        time.sleep(0.05)


def _statements(
    settings: Settings,
    count_statements: Callable[[Any], StatementCounter],
    query: str,
    first: int,
    *,
    repeat: int = 1,
) -> int | list[int]:
    # A long read-sync interval: the change-log check then runs once, on the warm-up request.
    # The deep query costs about 18,000 per capability: far over the default cost limit,
    # which is not what this test is about.
    # No background poll either (the change log, the hub tokens' last use) during a count.
    settings = settings.model_copy(
        update={"read_sync_interval": 3600, "sync_interval": 3600, "max_query_cost": 10**7}
    )
    with TestClient(create_app(settings, demo=True)) as client:
        client.post("/graphql", json={"query": "{ __typename }"})
        _settle(client.app.state.services)  # type: ignore[attr-defined]
        counts = []
        for _ in range(repeat):
            counter = count_statements(client.app.state.services.store.engine)  # type: ignore[attr-defined]
            resp = client.post("/graphql", json={"query": query, "variables": {"first": first}})
            body = resp.json()
            assert not body.get("errors"), body
            assert len(body["data"]["capabilities"]["edges"]) == min(first, 104)
            counts.append(counter.count)
            sqlalchemy.event.remove(
                client.app.state.services.store.engine.sync_engine,  # type: ignore[attr-defined]
                "before_cursor_execute",
                counter,
            )
        return counts[0] if repeat == 1 else counts


def test_discovery_query_uses_a_constant_number_of_statements(
    settings: Settings, count_statements: Callable[[Any], StatementCounter]
) -> None:
    counts = {
        n: _statements(settings, count_statements, DISCOVERY, n, repeat=2) for n in (1, 10, 100)
    }
    # First request: the page's ids, totalCount, the page's records, one batch of related nodes
    # (relations come from the graph projection). Then the records are in the node cache and the
    # count is kept until the catalog changes: only the page's ids are read.
    assert counts == {1: [4, 1], 10: [4, 1], 100: [4, 1]}


async def test_without_projections_relations_are_batched_in_sql_too(
    settings: Settings, count_statements: Callable[[Any], StatementCounter]
) -> None:
    """The same query on services without in-memory projections (as one-shot tools run)."""
    services = await Services.start(settings, projections=False)
    try:
        await load_demo(services.registry)
        schema = build_schema()
        counts = {}
        for first in (1, 10, 100):
            counter = count_statements(services.store.engine)
            result = await schema.execute(
                DISCOVERY, variable_values={"first": first}, context_value=make_context(services)
            )
            assert result.errors is None
            counts[first] = counter.count
            sqlalchemy.event.remove(
                services.store.engine.sync_engine, "before_cursor_execute", counter
            )
        # page + totalCount + one relation batch (both directions) + one node batch
        assert counts == {1: 4, 10: 4, 100: 4}
    finally:
        await services.close()


def test_deep_query_statements_are_bounded_by_depth_not_items(
    settings: Settings, count_statements: Callable[[Any], StatementCounter]
) -> None:
    counts = {n: _statements(settings, count_statements, DEEP, n) for n in (1, 10, 100)}
    # Three levels of relation fields. Per level: one relation batch and node batches, which
    # may split in two or three when concurrent batches finish at different moments. A query
    # per item would need hundreds of statements for 100 capabilities.
    relation_levels = 3
    bound = 2 + relation_levels * 4
    assert max(counts.values()) <= bound, counts
