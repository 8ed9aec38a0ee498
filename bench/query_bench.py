"""Latency of the discovery query on 10,000 nodes, its SQL count, and a hand-written baseline.

1. Starts ``capahub serve`` (one uvicorn worker) on a seeded SQLite catalog and sends the
   discovery query of issue 2 over HTTP (httpx, one keep-alive connection, sequential):
   median and p95 after a warm-up. Target: median under 15 ms.
2. In-process (Starlette TestClient), counts the SQL statements of one request for
   ``first`` = 10, 100, 500: they must not depend on ``first``.
3. A hand-written baseline on the same file: one SQL statement (sqlite3) that fetches the
   page with its providers, reads, writes and parent, assembled in Python and encoded with
   orjson. Its output is checked equal to the hub's. Reports hub / baseline (aim: <= 3x;
   the hub's number includes HTTP, the baseline's does not).
4. Diagnostics: the same query executed in-process (``schema.execute``, no HTTP), to split
   the hub's time between GraphQL execution and the HTTP server.

    .venv/bin/python bench/query_bench.py [--nodes 10000] [--runs 300] [--db-dir /tmp]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
from _util import (
    DISCOVERY_QUERY,
    Stats,
    code_note,
    cpu_seconds,
    machine_note,
    running_server,
    seeded_database,
    settings_for,
)
from sqlalchemy import event
from sqlalchemy.engine import make_url
from starlette.testclient import TestClient

from catalog.app import create_app
from catalog.services import Services
from resolvers import build_schema, make_context

TARGET_MEDIAN_MS = 15.0
TARGET_RATIO = 3.0
COUNTED_PAGE_SIZES = (10, 100, 500)

PARAMETRIZED_QUERY = (
    "query($first: Int) { capabilities(first: $first) { edges { node { id name "
    "providers { id name } reads { id name } writes { id name } parent { id } } } } }"
)

#: The hand-written baseline: the page, then one row per provider / read / write / parent.
#: CROSS JOIN fixes the join order (SQLite otherwise scans every capability for the parents).
BASELINE_SQL = """
WITH page AS MATERIALIZED (
  SELECT id, name FROM nodes WHERE kind = 'capability' ORDER BY id LIMIT :first
)
SELECT p.id, NULL AS field, p.name AS other_id, NULL AS other_name FROM page p
UNION ALL
SELECT p.id, 'providers', n.id, n.name
  FROM page p CROSS JOIN relations r ON r.to_id = p.id AND r.type = 'PROVIDES'
  CROSS JOIN nodes n ON n.id = r.from_id
UNION ALL
SELECT p.id, lower(r.type), n.id, n.name
  FROM page p CROSS JOIN relations r ON r.from_id = p.id AND r.type IN ('READS', 'WRITES')
  CROSS JOIN nodes n ON n.id = r.to_id
UNION ALL
SELECT p.id, 'parent', n.id, NULL
  FROM page p CROSS JOIN relations r ON r.from_id = p.id AND r.type = 'PART_OF'
  CROSS JOIN nodes n ON n.id = r.to_id AND n.kind = 'capability'
ORDER BY 1, 2, 3
"""


def time_calls(call: Any, runs: int, warmup: int) -> list[float]:
    """Durations in seconds of ``runs`` calls of ``call()`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        call()
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        call()
        out.append(time.perf_counter() - t0)
    return out


def measure_http(
    database: str, runs: int, warmup: int, log: Path, env: dict[str, str] | None = None
) -> tuple[Stats, float, Any]:
    """Latency of the discovery query through a real ``capahub serve``; server CPU ms/request."""
    body = orjson.dumps({"query": DISCOVERY_QUERY})
    headers = {"content-type": "application/json"}
    with (
        running_server(database, log=log, env=env) as server,
        httpx.Client(base_url=server.url) as client,
    ):
        last: dict[str, Any] = {}

        def call() -> None:
            resp = client.post("/graphql", content=body, headers=headers)
            resp.raise_for_status()
            last["body"] = resp.content

        time_calls(call, 0, warmup)
        cpu0 = cpu_seconds(server.process.pid)
        durations = time_calls(call, runs, 0)
        cpu_ms = (cpu_seconds(server.process.pid) - cpu0) * 1000 / runs
    data = orjson.loads(last["body"])
    if data.get("errors"):
        raise RuntimeError(f"the hub answered with errors: {data['errors']}")
    return Stats.of(durations), cpu_ms, data["data"]


def count_statements(database: str) -> dict[int, tuple[list[str], list[str]]]:
    """The SQL statements of one discovery request for each page size, in-process: on a
    freshly started hub (cold node cache) and then the same request again (warm)."""
    out: dict[int, tuple[list[str], list[str]]] = {}
    # No background sync and no per-request change-log check during the count: those
    # statements are time-driven (CAPAHUB_SYNC_INTERVAL, CAPAHUB_READ_SYNC_INTERVAL), not the
    # request's. They are reported apart.
    settings = settings_for(database).model_copy(
        update={"sync_interval": 3600.0, "read_sync_interval": 3600.0}
    )
    for first in COUNTED_PAGE_SIZES:
        with TestClient(create_app(settings)) as client:
            engine = client.app.state.services.store.engine  # type: ignore[attr-defined]
            seen: list[str] = []

            def listen(
                _conn: Any, _cursor: Any, statement: str, *_: Any, seen: list[str] = seen
            ) -> None:
                seen.append(" ".join(statement.split()))

            client.post("/graphql", json={"query": "{ __typename }"})  # start-up catch-up
            event.listen(engine.sync_engine, "before_cursor_execute", listen)
            payload = {"query": PARAMETRIZED_QUERY, "variables": {"first": first}}
            rounds = []
            for _ in range(2):
                seen.clear()
                body = client.post("/graphql", json=payload).json()
                if body.get("errors"):
                    raise RuntimeError(f"first={first}: {body['errors']}")
                got = len(body["data"]["capabilities"]["edges"])
                if got != first:
                    raise RuntimeError(f"first={first}: only {got} capabilities in the catalog")
                rounds.append(list(seen))
            event.remove(engine.sync_engine, "before_cursor_execute", listen)
            out[first] = (rounds[0], rounds[1])
    return out


def _describe(stmts: list[str]) -> str:
    selects = sum(s.upper().startswith("SELECT") for s in stmts)
    return f"{len(stmts)} statements ({selects} SELECT)"


def baseline(conn: sqlite3.Connection, first: int) -> bytes:
    """The discovery page assembled from one hand-written SQL statement, as JSON."""
    nodes: list[dict[str, Any]] = []
    node: dict[str, Any] = {}
    for cap_id, field, other_id, other_name in conn.execute(BASELINE_SQL, {"first": first}):
        if field is None:  # the capability's own row sorts first (NULL < text)
            node = {
                "id": cap_id,
                "name": other_id,
                "providers": [],
                "reads": [],
                "writes": [],
                "parent": None,
            }
            nodes.append(node)
        elif field == "parent":
            node["parent"] = node["parent"] or {"id": other_id}
        else:
            node[field].append({"id": other_id, "name": other_name})
    doc = {"data": {"capabilities": {"edges": [{"node": n} for n in nodes]}}}
    return orjson.dumps(doc)


def measure_baseline(database: str, runs: int, warmup: int) -> tuple[Stats, float, Any]:
    """Latency and CPU ms/run of the hand-written baseline on the same SQLite file."""
    path = make_url(database).database
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        out: dict[str, bytes] = {}

        def call() -> None:
            out["json"] = baseline(conn, 100)

        time_calls(call, 0, warmup)
        cpu0 = time.process_time()
        durations = time_calls(call, runs, 0)
        cpu_ms = (time.process_time() - cpu0) * 1000 / runs
    finally:
        conn.close()
    return Stats.of(durations), cpu_ms, orjson.loads(out["json"])["data"]


async def _execute_in_process(database: str, runs: int, warmup: int) -> tuple[Stats, float, float]:
    """Latency, CPU ms and garbage-collector ms per request of ``schema.execute`` in-process."""
    services = await Services.start(settings_for(database))
    schema = build_schema()
    gc_time = [0.0, 0.0]  # total, start of the current collection

    def on_gc(phase: str, _info: dict[str, Any]) -> None:
        if phase == "start":
            gc_time[1] = time.perf_counter()
        else:
            gc_time[0] += time.perf_counter() - gc_time[1]

    try:
        durations = []
        for i in range(warmup + runs):
            if i == warmup:
                cpu0 = time.process_time()
                gc_time[0] = 0.0
                gc.callbacks.append(on_gc)
            t0 = time.perf_counter()
            result = await schema.execute(DISCOVERY_QUERY, context_value=make_context(services))
            orjson.dumps({"data": result.data})
            if i >= warmup:
                durations.append(time.perf_counter() - t0)
            if result.errors:
                raise RuntimeError(result.errors)
        cpu_ms = (time.process_time() - cpu0) * 1000 / runs
    finally:
        if on_gc in gc.callbacks:
            gc.callbacks.remove(on_gc)
        await services.close()
    return Stats.of(durations), cpu_ms, gc_time[0] * 1000 / runs


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument(
        "--db-dir", type=Path, default=Path(tempfile.gettempdir()), help="where the seeded DB lives"
    )
    args = parser.parse_args(argv)
    database = seeded_database(args.nodes, args.seed, args.db_dir)
    print(f"catalog: {database} ({args.nodes} synthetic nodes)")
    log = args.db_dir / "capahub-bench-serve.log"

    print(f"machine: {machine_note()}; {code_note()}")
    hub, hub_cpu, hub_data = measure_http(database, args.runs, args.warmup, log)
    base, base_cpu, base_data = measure_baseline(database, args.runs, args.warmup)
    if hub_data != base_data:
        raise RuntimeError("the hand-written baseline does not return what the hub returns")
    in_process, in_process_cpu, in_process_gc = asyncio.run(
        _execute_in_process(database, args.runs, args.warmup)
    )
    statements = count_statements(database)
    print(f"machine: {machine_note()}")

    edges = hub_data["capabilities"]["edges"]
    related = sum(len(e["node"][f]) for e in edges for f in ("providers", "reads", "writes"))
    print(f"query: discovery, first 100 -> {len(edges)} capabilities, {related} related nodes\n")
    print(f"hub over HTTP (capahub serve, 1 worker)  {hub}   CPU {hub_cpu:5.1f} ms/req (server)")
    print(
        f"hub in-process (schema.execute + orjson) {in_process}   CPU {in_process_cpu:5.1f} ms/req"
        f" (garbage collector: {in_process_gc:.1f} ms/req)"
    )
    print(f"hand-written SQL + orjson (sqlite3)      {base}   CPU {base_cpu:5.1f} ms/req")
    ratio = hub.median / base.median
    print(f"ratio hub / hand-written (median): {ratio:.1f}x\n")

    print("SQL statements per request (in-process, TestClient; cold = first request after start):")
    for first, (cold, warm) in statements.items():
        print(f"  first={first:<4} cold {_describe(cold)}   warm {_describe(warm)}")
    for label, stmts in (("cold", statements[100][0]), ("warm", statements[100][1])):
        print(f"  {label} statements for first=100:")
        for stmt in stmts:
            print(f"    {stmt[:100]}{'...' if len(stmt) > 100 else ''}")
    print(
        "  plus, on any request, at most one change-log check (BEGIN + SELECT history) per "
        "CAPAHUB_READ_SYNC_INTERVAL (0.1 s)"
    )
    constant = all(len({len(s[i]) for s in statements.values()}) == 1 for i in (0, 1))
    print()
    checks = [
        (f"median < {TARGET_MEDIAN_MS:.0f} ms", hub.median < TARGET_MEDIAN_MS),
        ("SQL statements independent of first", constant),
        (f"hub / hand-written <= {TARGET_RATIO:.0f}x", ratio <= TARGET_RATIO),
    ]
    for label, ok in checks:
        print(f"target: {label}: {'OK' if ok else 'MISSED'}")
    if not all(ok for _, ok in checks):
        sys.exit(1)


if __name__ == "__main__":
    main()
