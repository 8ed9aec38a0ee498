"""Graph questions through the real app run on the graph workers: a request's aliased
questions take turns on one of them, and a hub whose workers are all taken answers UNAVAILABLE
at once."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from catalog.workers import Workers
from tests.conftest import GraphQLClient

IMPACT = 'impact(id: "system:crm", depth: 2) { root { id } affected { distance node { id } } }'


def test_aliased_questions_of_one_request_take_turns_on_one_worker(
    app_factory: Callable[..., GraphQLClient],
) -> None:
    # One thread and four places in its queue: 20 questions at once would be refused, but
    # the questions of one request wait for each other instead of for a place.
    gql = app_factory(demo=True, graph_workers=1)
    single = gql.data(f"{{ {IMPACT} }}")["impact"]
    aliased = " ".join(f"a{i}: {IMPACT}" for i in range(20))
    data = gql.data(f"{{ {aliased} }}")
    assert len(data) == 20
    assert all(answer == single for answer in data.values())


def test_a_hub_whose_workers_are_all_taken_refuses_graph_questions_at_once(
    app_factory: Callable[..., GraphQLClient],
) -> None:
    gql = app_factory(demo=True, graph_workers=1)
    client: Any = gql.http
    workers: Workers = client.app.state.services.analysis.workers
    release = threading.Event()

    def block(cancelled: Callable[[], bool]) -> None:
        while not release.wait(0.005) and not cancelled():
            pass

    query = '{ path(from: "system:crm", to: "system:erp") { type } }'
    taken: list[Future[Any]] = []
    try:
        # The thread and every place in its queue, taken by other work on the hub's loop.
        for _ in range(workers.threads + workers.waiting):
            taken.append(client.portal.start_task_soon(workers.run, block))
        client.portal.call(_settled, workers, workers.threads + workers.waiting)
        err = gql.error(query)
        assert err["extensions"]["code"] == "UNAVAILABLE", err
        assert err["extensions"].get("retryAfter") == 1, err
        assert "busy" in err["message"] and "try again" in err["message"]
    finally:
        release.set()
        for job in taken:
            job.result(timeout=10)
    assert gql.data(query)["path"] is not None


async def _settled(workers: Workers, pending: int) -> None:
    while workers.pending < pending:
        await asyncio.sleep(0.005)
