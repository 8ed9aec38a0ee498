"""Heavy graph questions against a real ``capahub serve``: /healthz and small queries keep
answering while they run, the time budget stops them with a coded error, a request timeout or a
client that leaves frees their worker at once, and the process's memory comes back."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import random
import statistics
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import create_engine

from catalog._gc import paused_gc
from catalog.services import WriteServices
from catalog.settings import Settings
from catalog.specs import parse_document
from metadata.tables import relations
from tests.serving import Served, capahub_serve

SYSTEMS = 3_000
DEPENDS_ON = 40  # per system: 120,000 relations, a neighborhood of depth 10 is all of them
HEAVY = 'neighborhood(id: "system:s0", depth: 10) { nodes { id } }'
SMALL = '{ node(id: "system:s1") { id name } }'
SMALL_QUESTION = '{ path(from: "system:s1", to: "system:s2", maxLength: 12) { type } }'


@pytest.fixture(scope="module")
def dense(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A SQLite catalog of systems that each depend on many others (a dense graph)."""
    path = tmp_path_factory.mktemp("dense") / "catalog.db"
    url = f"sqlite:///{path}"
    nodes = [{"id": f"system:s{i}", "name": f"System {i}"} for i in range(SYSTEMS)]

    async def apply_nodes() -> None:
        services = await WriteServices.start(Settings(database_url=url, _env_file=None))
        try:
            with paused_gc():
                document = parse_document(orjson.dumps({"nodes": nodes}).decode())
                await services.registry.apply_document(document)
        finally:
            await services.close()

    asyncio.run(apply_nodes())
    # The relations go straight into their table: through the registry (validation, history,
    # search documents) the 120,000 of them would take most of a minute, and the projection
    # is built from this table alone.
    rng = random.Random(1)
    rows = [
        {"from_id": f"system:s{i}", "type": "DEPENDS_ON", "to_id": f"system:s{j}"}
        for i in range(SYSTEMS)
        for j in rng.sample(range(SYSTEMS), DEPENDS_ON)
        if j != i
    ]
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(relations.insert(), [{**r, "properties": None} for r in rows])
    engine.dispose()
    return url


#: The one-worker hub's request timeout: above one heavy question on a loaded 2-CPU machine
#: (about 2 s there), far below ten of them.
TIMEOUT = 4

#: The hubs the tests ask, by the settings they differ in (CAPAHUB_...).
HUBS = {
    # One worker, so a question left running would hold up the next; a request timeout.
    "one worker": {
        "graph_workers": "1",
        "graph_time_budget": "60",
        "request_timeout": str(TIMEOUT),
        # room for as many heavy questions in one request as it takes to outlast the timeout
        "max_query_cost": "5000000",
    },
    "short budget": {"graph_time_budget": "0.1"},
}


@pytest.fixture(scope="module")
def hubs(tmp_path_factory: pytest.TempPathFactory, dense: str) -> Iterator[dict[str, Served]]:
    """Each hub of ``HUBS`` running on the dense catalog (started side by side)."""
    with contextlib.ExitStack() as stack, ThreadPoolExecutor(len(HUBS)) as starting:

        def start(name: str) -> Served:
            env = {**os.environ, **{f"CAPAHUB_{k.upper()}": v for k, v in HUBS[name].items()}}
            where = tmp_path_factory.mktemp("serve")
            return stack.enter_context(capahub_serve(where, "--database", dense, env=env))

        yield dict(zip(HUBS, starting.map(start, HUBS), strict=True))


def _client() -> httpx.Client:
    # trust_env=False: no proxy from the environment between us and loopback
    return httpx.Client(timeout=60, trust_env=False)


def _graphql(served: Served, query: str) -> dict[str, Any]:
    with _client() as c:
        body: dict[str, Any] = c.post(f"{served.base}/graphql", json={"query": query}).json()
        return body


def _rss_mb(served: Served) -> float:
    for line in Path(f"/proc/{served.process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def _cpu_s(served: Served) -> float:
    fields = Path(f"/proc/{served.process.pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _timed(served: Served, query: str) -> float:
    t = time.perf_counter()
    body = _graphql(served, query)
    took = time.perf_counter() - t
    assert not body.get("errors"), body
    return took


class Poller:
    """Sends /healthz and a small ``node(id)`` query one after the other until stopped."""

    def __init__(self, served: Served) -> None:
        self.served = served
        self.healthz: list[float] = []
        self.node: list[float] = []
        self.failures: list[object] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        base = self.served.base
        with _client() as c:
            while not self._stop.is_set():
                t = time.perf_counter()
                health = c.get(f"{base}/healthz")
                self.healthz.append(time.perf_counter() - t)
                t = time.perf_counter()
                body = c.post(f"{base}/graphql", json={"query": SMALL}).json()
                self.node.append(time.perf_counter() - t)
                if health.status_code != 200 or "errors" in body:
                    self.failures.append((health.status_code, body))
                time.sleep(0.01)

    def __enter__(self) -> Poller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def check(self, *, during: float) -> None:
        """Both kept answering: many answers, a quick median, no answer near ``during``."""
        assert not self.failures, self.failures
        for name, times in (("healthz", self.healthz), ("node", self.node)):
            assert len(times) >= 5, (name, times)
            assert statistics.median(times) < 0.15, (name, sorted(times))
            # Before the workers, each waited for the whole question (``during`` seconds).
            assert max(times) < min(1.0, during / 2), (name, sorted(times))


def test_healthz_and_small_queries_answer_while_heavy_questions_run(
    hubs: dict[str, Served],
) -> None:
    # Ten questions in one request would take ten times as long as one; the request is cut at
    # its timeout (TIMEOUT s) and its question stopped.
    served = hubs["one worker"]
    _timed(served, SMALL)
    alone = _timed(served, f"{{ {HEAVY} }}")  # also fills the node cache
    rss = _rss_mb(served)
    # Enough of them to take three times the timeout one after the other (at least ten).
    count = min(200, max(10, math.ceil(3 * TIMEOUT / alone)))
    heavy = " ".join(f"q{i}: {HEAVY}" for i in range(count))
    with Poller(served) as poller:
        t = time.perf_counter()
        body = _graphql(served, f"{{ {heavy} }}")
        cut = time.perf_counter() - t
    assert body["errors"][0]["extensions"]["code"] == "UNAVAILABLE", body
    assert TIMEOUT - 0.1 < cut < TIMEOUT + 2 * alone, cut
    poller.check(during=cut)
    # The request's question stopped with it: the one worker answers a small one at once.
    assert _timed(served, SMALL_QUESTION) < max(0.5, alone / 2)
    assert _rss_mb(served) - rss < 50


def test_a_client_that_leaves_frees_the_worker_and_stops_the_work(
    hubs: dict[str, Served],
) -> None:
    served = hubs["one worker"]
    alone = _timed(served, f"{{ {HEAVY} }}")
    heavy = " ".join(f"q{i}: {HEAVY}" for i in range(5))
    impatient = httpx.Client(timeout=max(0.3, alone / 3), trust_env=False)
    with impatient, pytest.raises(httpx.TimeoutException):
        impatient.post(f"{served.base}/graphql", json={"query": f"{{ {heavy} }}"})
    # Left after a fraction of one question: the rest of it and the four others never run.
    assert _timed(served, SMALL_QUESTION) < max(0.5, alone / 2)
    time.sleep(0.2)
    cpu = _cpu_s(served)
    time.sleep(min(1.0, 2 * alone))
    assert _cpu_s(served) - cpu < 0.2  # idle: nothing computes on in the background


def test_past_its_budget_a_question_is_refused_and_its_memory_released(
    hubs: dict[str, Served],
) -> None:
    served = hubs["short budget"]
    question = f"{{ {HEAVY} }}"

    def refused() -> None:
        t = time.perf_counter()
        err = _graphql(served, question)["errors"][0]
        assert err["extensions"]["code"] == "BAD_USER_INPUT", err
        assert "took longer than 0.1 s" in err["message"], err
        assert time.perf_counter() - t < 0.1 + 1.5

    refused()
    refused()
    rss = _rss_mb(served)
    with Poller(served) as poller, ThreadPoolExecutor(3) as clients:
        t = time.perf_counter()
        # Three at a time, 24 in all: the two workers busy, one question waiting.
        for done in [clients.submit(refused) for _ in range(24)]:
            done.result()
        during = time.perf_counter() - t
    poller.check(during=during)
    assert _rss_mb(served) - rss < 40, (rss, _rss_mb(served))
