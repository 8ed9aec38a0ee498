"""Long lists are completed in turns: the event loop answers others meanwhile, same result."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from resolvers import make_context
from resolvers.fastpath import LONG_LIST
from tests.resolvers.test_fastpath import Harness

#: Planned all through (``owner`` is ``@direct``): without turns, one synchronous stretch.
LISTING = "{ nodes(first: 500) { edges { node { id name owner { id } } } } }"
WITH_RELATIONS = "{ nodes(first: 500) { edges { node { id relations { type } } } } }"
SUBGRAPH = '{ neighborhood(id: "system:crm", depth: 3) { nodes { id } relations { type } } }'


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    h = Harness(tmp_path_factory.mktemp("long-lists"))
    try:
        yield h
    finally:
        h.close()


def test_long_lists_answer_the_same_as_graphql_core(harness: Harness) -> None:
    for query in (LISTING, WITH_RELATIONS, SUBGRAPH):
        planned, plain, _ = harness.run(query)
        assert planned == plain and not planned[1]
    edges = planned[0]  # the subgraph's lists are long in the demo too
    assert len(edges["neighborhood"]["relations"]) > LONG_LIST


@pytest.mark.parametrize("query", [LISTING, SUBGRAPH])
def test_the_loop_gets_turns_while_a_long_list_completes(
    harness: Harness, query: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("resolvers.fastpath.TURN_SECONDS", 0.0)  # a turn after every item

    async def run() -> tuple[Any, int]:
        ticks = 0
        done = False

        async def ticker() -> None:
            nonlocal ticks
            while not done:
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        start = ticks
        result = await harness.planned.execute(query, context_value=make_context(harness.services))
        done = True
        await task
        return result, ticks - start

    result, ticks = harness.runner.run(run())
    assert not result.errors
    assert ticks > LONG_LIST  # others ran between the items, not only before and after
