"""Impact's cost per affected node (issue 15: target < 10 us per affected node).

    cd bench && ../.venv/bin/python impact_bench.py [--nodes 100000] [--runs 5] [--database URL]

On a synthetic catalog (``synth.py``, the same file ``graph_bench.py`` builds), picks the roots
whose ``impact(depth: 3)`` reaches the most nodes (in-process, from the graph projection) and a
few random systems, then asks a real ``capahub serve`` for each, over HTTP, one warm-up and
``--runs`` timed runs:

- ``full``: ``affected { node { id name kind } distance via { type from { id } to { id } } }``;
- ``distance``: ``affected { distance }`` (no node is loaded or completed);
- ``in-process``: ``GraphAnalysis.impact`` on the projection alone (the question the server's
  worker thread answers: traversal, unprovided capabilities, orphaned entities; no GraphQL).

The server runs without the cost budget and with the static cost, response-size and time
limits raised: a large impact's static cost is counted by what depth 3 can reach in the whole
catalog, far over the default 50,000 (docs/limits.md). Prints a markdown table, with the load
average measured right after each root's runs (the machine is shared).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import orjson
from _util import code_note, machine_note, running_server
from graph_bench import _seeded

from catalog.analysis import GraphAnalysis
from metadata.graph import CatalogGraph
from metadata.model import Kind
from metadata.store import Store

DEPTH = 3
#: Limits raised for the server (catalog/settings.py); everything else is the default.
SERVER_ENV = {
    "CAPAHUB_COST_PER_MINUTE": "0",  # no cost budget: one caller asks many large questions
    "CAPAHUB_MAX_QUERY_COST": "1000000000000",  # default 50,000
    "CAPAHUB_MAX_RESPONSE_BYTES": "2000000000",  # default 20 MB
    "CAPAHUB_GRAPH_TIME_BUDGET": "600",  # default 5 s
    "CAPAHUB_REQUEST_TIMEOUT": "600",  # default 30 s
    "CAPAHUB_AUTH": "off",  # serve's default (loopback only); running_server passes no token
}
FULL = (
    '{{ impact(id: "{root}", depth: 3) {{ affected {{ node {{ id name kind }} distance '
    "via {{ type from {{ id }} to {{ id }} }} }} }} }}"
)
DISTANCE = '{{ impact(id: "{root}", depth: 3) {{ affected {{ distance }} }} }}'


def _load() -> float:
    return os.getloadavg()[0]


def _p95(samples: list[float]) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, round(0.95 * (len(s) - 1)))]


async def _projection(url: str) -> CatalogGraph:
    store = await Store.open(url)
    try:
        graph = CatalogGraph()
        await graph.load(store)
        return graph
    finally:
        await store.close()


def _pick_roots(
    analysis: GraphAnalysis, top: int, randoms: int, candidates: int, seed: int
) -> tuple[list[tuple[str, str]], float]:
    """(label, root) pairs: the ``top`` roots reaching the most nodes at depth 3 among the
    ``candidates`` with the largest two-step dependent count, then ``randoms`` random systems;
    and the seconds the search took."""
    t = time.perf_counter()
    g = analysis.graph
    ids = list(g.g.nodes)
    direct = {n: {m for m, _ in analysis.dependents(n)} for n in ids}
    two_step = {n: len(ds) + sum(len(direct[m]) for m in ds) for n, ds in direct.items()}
    shortlist = sorted(ids, key=lambda n: (-two_step[n], n))[:candidates]
    reach = {n: len(analysis.impact(n, DEPTH).affected) for n in shortlist}
    largest = sorted(shortlist, key=lambda n: (-reach[n], n))[:top]
    systems = sorted(n for n in ids if g.kind(n) is Kind.SYSTEM and n not in largest)
    rng = random.Random(seed)
    chosen = [("largest", n) for n in largest]
    chosen += [("random system", n) for n in rng.sample(systems, min(randoms, len(systems)))]
    return chosen, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=100_000)
    ap.add_argument("--database", help="reuse an existing synthetic catalog (SQLAlchemy URL)")
    ap.add_argument("--runs", type=int, default=5, help="timed runs per root and query")
    ap.add_argument("--top", type=int, default=5, help="roots with the largest impact")
    ap.add_argument("--random", type=int, default=5, help="random systems")
    ap.add_argument(
        "--candidates", type=int, default=40, help="roots whose impact is computed to find --top"
    )
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()

    url = args.database or _seeded(args.nodes)
    print(machine_note())
    print(code_note())
    print(f"database: {url}")
    t = time.perf_counter()
    graph = asyncio.run(_projection(url))
    print(
        f"projection: {graph.g.number_of_nodes()} nodes, {graph.g.number_of_edges()} related "
        f"pairs, loaded in {time.perf_counter() - t:.1f} s"
    )
    gc.collect()
    gc.freeze()  # as `serve` does after start-up: the projection is not scanned by every collection
    analysis = GraphAnalysis(graph, time_budget=600)  # in this thread, no worker, no cache
    roots, took = _pick_roots(analysis, args.top, args.random, args.candidates, args.seed)
    print(f"roots picked in {took:.1f} s ({args.candidates} candidates' impact computed)")

    inproc: dict[str, list[float]] = {}
    counts: dict[str, int] = {}
    for _, root in roots:
        analysis.impact(root, DEPTH)  # warm-up
        samples = []
        for _ in range(args.runs):
            t = time.perf_counter()
            result = analysis.impact(root, DEPTH)
            samples.append(time.perf_counter() - t)
        inproc[root], counts[root] = samples, len(result.affected)
    del analysis, graph

    raised = ", ".join(f"{k}={v}" for k, v in SERVER_ENV.items())
    print(f"server: capahub serve, one worker, clean environment plus {raised}")
    log = Path(tempfile.mkdtemp()) / "serve.log"
    rows = []
    with (
        running_server(url, log=log, env=SERVER_ENV, clean_env=True) as server,
        httpx.Client(timeout=900) as client,
    ):
        gql = f"{server.url}/graphql"

        def ask(query: str) -> tuple[float, int, list[dict]]:
            t = time.perf_counter()
            response = client.post(gql, json={"query": query})
            took = time.perf_counter() - t  # the body is read; parsing it is the client's
            body = orjson.loads(response.content)
            assert response.status_code == 200 and not body.get("errors"), body.get("errors")
            return took, len(response.content), body["data"]["impact"]["affected"]

        for label, root in roots:
            row: dict = {"label": label, "root": root, "count": counts[root]}
            for name, template in (("full", FULL), ("distance", DISTANCE)):
                query = template.format(root=root)
                _, size, affected = ask(query)  # warm-up (loads the answer's nodes)
                assert len(affected) == counts[root], (root, len(affected), counts[root])
                samples = [ask(query)[0] for _ in range(args.runs)]
                row[name] = samples
                row[f"{name}_bytes"] = size
            row["inproc"] = inproc[root]
            row["load"] = _load()
            rows.append(row)
            print(f"  {root}: {counts[root]} affected, load {row['load']:.2f}", flush=True)

    def cell(samples: list[float], count: int) -> str:
        median = statistics.median(samples)
        per = f"{median * 1e6 / count:,.1f}" if count else "-"
        return f"{median * 1000:,.1f} / {_p95(samples) * 1000:,.1f} | {per}"

    print()
    print(f"impact(depth: {DEPTH}), {args.runs} runs after one warm-up; ms median / p95 | us per ")
    print("affected node (median); `full` body size; GraphQL share = 1 - in-process / full")
    print()
    print(
        "| root | affected | full: ms | us/node | body | distance only: ms | us/node "
        "| in-process: ms | us/node | GraphQL share | load (1 min) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        n = r["count"]
        share = 1 - statistics.median(r["inproc"]) / statistics.median(r["full"])
        print(
            f"| {r['label']}: `{r['root']}` | {n:,} | {cell(r['full'], n)} "
            f"| {r['full_bytes'] / 1e6:.1f} MB | {cell(r['distance'], n)} "
            f"| {cell(r['inproc'], n)} | {share:.0%} | {r['load']:.2f} |"
        )
    big = [r for r in rows if r["count"]]
    for name in ("full", "distance", "inproc"):
        total_s = sum(statistics.median(r[name]) for r in big)
        total_n = sum(r["count"] for r in big)
        print(f"{name}: {total_s * 1e6 / total_n:.1f} us per affected node over all roots")
    print(machine_note())


if __name__ == "__main__":
    main()
