"""Graph intelligence benchmark (issue 3) on a synthetic catalog.

    .venv/bin/python bench/graph_bench.py [--nodes 100000] [--runs 200]

Measures: the projection built from the store (time and RSS increase, in-process); a mutation
visible to the very next query (read-your-writes); ``impact`` (depth 3) and ``path`` on random
nodes through the HTTP endpoint (median, p95); ``gaps`` and ``redundancies`` over the whole
catalog; ``hotspots`` (first call computes PageRank, later calls are cached).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
from _util import CAPAHUB, machine_note, running_server, seeded_database
from synth import dump, generate_document

from metadata.graph import CatalogGraph
from metadata.store import Store


def _seeded(nodes: int) -> str:
    """A synthetic catalog built once with `capahub apply` (in parts: one file must stay < 50 MB)."""
    path = Path(tempfile.gettempdir()) / f"capahub-graph-bench-{nodes}.db"
    if not path.exists():
        if nodes <= 20_000:
            return seeded_database(nodes, 1, path.parent)
        files = dump(generate_document(nodes, seed=1), path.with_suffix(".json"), parts=3)
        tmp = path.with_suffix(".tmp.db")
        subprocess.run(
            [str(CAPAHUB), "apply", *map(str, files), "--database", f"sqlite:///{tmp}"], check=True
        )
        tmp.rename(path)
    return f"sqlite:///{path}"


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def _build(url: str) -> tuple[float, float, int, int, list[str]]:
    store = await Store.open(url)
    before = _rss_mb()
    graph = CatalogGraph()
    t = time.perf_counter()
    await graph.load(store)
    took = time.perf_counter() - t
    grown = _rss_mb() - before
    ids = list(graph.g.nodes)
    await store.close()
    return took, grown, graph.g.number_of_nodes(), graph.g.number_of_edges(), ids


def _stats(samples: list[float]) -> str:
    s = sorted(samples)
    return f"median {s[len(s) // 2] * 1000:.1f} ms, p95 {s[int(len(s) * 0.95) - 1] * 1000:.1f} ms"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--database", help="reuse an existing synthetic catalog (SQLAlchemy URL)")
    args = ap.parse_args()
    url = args.database or _seeded(args.nodes)
    took, grown, n, e, ids = asyncio.run(_build(url))
    print(machine_note())
    print(
        f"projection: {n} nodes, {e} node pairs with relations; built in {took:.1f} s, RSS +{grown:.0f} MB"
    )
    rng = random.Random(7)
    log = Path(tempfile.mkdtemp()) / "serve.log"
    with running_server(url, log=log) as server, httpx.Client(timeout=60) as client:
        gql = f"{server.url}/graphql"

        def post(query: str) -> dict:
            body = client.post(gql, json={"query": query}).json()
            assert not body.get("errors"), body["errors"]
            return body["data"]

        impact, path = [], []
        for _ in range(args.runs):
            a = rng.choice(ids)
            t = time.perf_counter()
            post(
                f'{{ impact(id: "{a}", depth: 3) {{ affected {{ node {{ id }} distance }} unprovidedCapabilities {{ id }} }} }}'
            )
            impact.append(time.perf_counter() - t)
            b, c = rng.choice(ids), rng.choice(ids)
            t = time.perf_counter()
            post(f'{{ path(from: "{b}", to: "{c}") {{ type from {{ id }} to {{ id }} }} }}')
            path.append(time.perf_counter() - t)
        print(f"impact(depth 3), {args.runs} random nodes: {_stats(impact)}")
        print(f"path, {args.runs} random pairs: {_stats(path)}")
        # Read-your-writes: the relation is in the projection for the very next request.
        systems = [i for i in ids if i.startswith("system:")]
        s1, s2 = systems[0], systems[-1]
        post(
            f'mutation {{ relate(input: {{from: "{s1}", type: DEPENDS_ON, to: "{s2}"}}) {{ type }} }}'
        )
        hop = post(f'{{ path(from: "{s1}", to: "{s2}", maxLength: 1) {{ type }} }}')["path"]
        print(f"read-your-writes: path right after relate = {hop}")
        for name, query in [
            ("gaps", "{ gaps { reason } }"),
            ("redundancies", "{ redundancies { reason } }"),
            ("hotspots (first call, PageRank)", "{ hotspots(first: 10) { score } }"),
            ("hotspots (cached)", "{ hotspots(first: 10) { score } }"),
        ]:
            t = time.perf_counter()
            data = post(query)
            count = len(next(iter(data.values())))
            print(
                f"{name} over the whole catalog: {time.perf_counter() - t:.2f} s ({count} results)"
            )


if __name__ == "__main__":
    main()
