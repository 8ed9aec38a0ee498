"""Search on a synthetic catalog of 100,000 nodes: latency over HTTP, and index rebuild time.

1. Rebuilds the search index of a seeded SQLite catalog in-process (the code path of
   ``capahub reindex``: every node read, its document built, written, FTS5 optimized).
   Target: under 60 s.
2. Starts ``capahub serve`` (one uvicorn worker) on it and sends ``search`` with all five
   facets, a highlight and 20 hits, over HTTP (httpx, one keep-alive connection, sequential),
   cycling through one-word and two-word queries a person would type. Reports median and p95
   per class, and how many hits the queries match. Target: p95 under 30 ms for both classes.
   It does so twice: without the search cache (``CAPAHUB_SEARCH_CACHE_MB=0``: every search
   asks the index), then with it (the default; the queries repeat, so after the warm-up the
   index's answers come from the cache and only facets, ranking tiers, page and highlights are
   computed). ``--cache off`` or ``--cache on`` runs one of them.

    .venv/bin/python bench/search_bench.py [--nodes 100000] [--runs 300] [--db-dir /tmp]
        [--cache off|on|both]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import orjson
from _util import Stats, machine_note, running_server, settings_for
from synth import describe, generate_document, split_document

from catalog.search import Search
from catalog.services import Services
from catalog.specs import CatalogDocument, parse_document
from metadata.store import Store

TARGET_P95_MS = 30.0
TARGET_REBUILD_S = 60.0

#: Words of the synthetic landscape (bench/synth.py) and of any catalog: nouns, system kinds,
#: verbs, classifications, with very different numbers of matches.
ONE_WORD = [
    "customer", "order", "invoice", "payment", "crm", "shipment", "consent", "ledger",
    "warehouse", "pii", "audit", "loyalty", "erp", "voucher", "reconcile", "cust", "subscr",
]  # fmt: skip
TWO_WORDS = [
    "customer order", "manage invoice", "track shipment", "payment records", "erp customer",
    "global crm", "consent management", "price promotion", "allocate inventory",
    "digital campaign", "score lead", "supplier contract", "store warehouse", "return claim",
]  # fmt: skip

SEARCH = """
query($q: String!) {
  search(query: $q, first: 20) {
    totalCount
    hits { score highlight node { id kind name lifecycle } }
    facets {
      kind { value count } tag { value count } domain { value count }
      lifecycle { value count } owner { value count }
    }
    pageInfo { hasNextPage endCursor }
  }
}
"""


async def _apply_parts(url: str, texts: list[str]) -> None:
    # As ``capahub apply A B C``: parts merged into one document, applied in one transaction.
    merged = CatalogDocument()
    for text in texts:
        doc = parse_document(text)
        merged.nodes.extend(doc.nodes)
        merged.relations.extend(doc.relations)
    services = await Services.start(settings_for(url))
    try:
        await services.registry.apply_document(merged)
    finally:
        await services.close()


def seeded_database(nodes: int, seed: int, directory: Path) -> str:
    """A SQLite catalog of ``nodes`` synthetic nodes (built once, reused), split in documents
    under the 50 MB limit of one document."""
    path = directory / f"capahub-bench-{nodes}-{seed}.db"
    if not path.exists():
        doc = generate_document(nodes, seed=seed)
        print(f"building {path}: {describe(doc)}")
        parts = split_document(doc, max(1, nodes // 30_000))
        tmp = path.with_suffix(".tmp.db")
        for leftover in tmp.parent.glob(tmp.name + "*"):
            leftover.unlink()
        t0 = time.perf_counter()
        asyncio.run(_apply_parts(f"sqlite:///{tmp}", [orjson.dumps(p).decode() for p in parts]))
        print(f"built in {time.perf_counter() - t0:.0f} s (apply, search index included)")
        tmp.rename(path)
    return f"sqlite:///{path}"


async def rebuild(database: str) -> tuple[float, int]:
    """Seconds to rebuild the index (migrations applied first, not timed) and nodes indexed."""
    store = await Store.open(database)
    try:
        t0 = time.perf_counter()
        count = await Search(store).rebuild()
        return time.perf_counter() - t0, count
    finally:
        await store.close()


def measure(
    client: httpx.Client, queries: list[str], runs: int, warmup: int
) -> tuple[Stats, list[int], dict[str, float]]:
    """Latency of ``runs`` searches cycling through ``queries``; each query's total and median."""
    totals: dict[str, int] = {}
    per_query: dict[str, list[float]] = {q: [] for q in queries}

    def call(q: str) -> float:
        body = orjson.dumps({"query": SEARCH, "variables": {"q": q}})
        t0 = time.perf_counter()
        resp = client.post("/graphql", content=body, headers={"content-type": "application/json"})
        elapsed = time.perf_counter() - t0
        resp.raise_for_status()
        data = orjson.loads(resp.content)
        if data.get("errors"):
            raise RuntimeError(f"search {q!r} failed: {data['errors']}")
        totals[q] = data["data"]["search"]["totalCount"]
        per_query[q].append(elapsed)
        return elapsed

    for q in itertools.islice(itertools.cycle(queries), warmup):
        call(q)
    for times in per_query.values():
        times.clear()
    durations = [call(q) for q in itertools.islice(itertools.cycle(queries), runs)]
    medians = {q: statistics.median(t) * 1000 for q, t in per_query.items() if t}
    return Stats.of(durations), [totals[q] for q in queries], medians


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=60)
    parser.add_argument(
        "--db-dir", type=Path, default=Path(tempfile.gettempdir()), help="where the seeded DB lives"
    )
    parser.add_argument("--cache", choices=("off", "on", "both"), default="both")
    parser.add_argument(
        "--skip-rebuild", action="store_true", help="do not measure the index rebuild"
    )
    args = parser.parse_args(argv)
    database = seeded_database(args.nodes, args.seed, args.db_dir)
    print(f"catalog: {database} ({args.nodes} synthetic nodes)")
    print(f"machine: {machine_note()}")

    if not args.skip_rebuild:
        seconds, count = asyncio.run(rebuild(database))
        verdict = "ok" if seconds < TARGET_REBUILD_S else "OVER TARGET"
        print(
            f"index rebuild: {count} nodes in {seconds:.1f} s "
            f"(target < {TARGET_REBUILD_S:.0f} s: {verdict})"
        )

    log = args.db_dir / "capahub-search-bench-serve.log"
    modes = {"off": ["off"], "on": ["on"], "both": ["off", "on"]}[args.cache]
    for mode in modes:
        env = {"CAPAHUB_SEARCH_CACHE_MB": "0"} if mode == "off" else {}
        results: dict[str, tuple[Stats, list[int], dict[str, float]]] = {}
        with (
            running_server(database, log=log, env=env) as server,
            httpx.Client(base_url=server.url) as client,
        ):
            for name, queries in (("one word", ONE_WORD), ("two words", TWO_WORDS)):
                results[name] = measure(client, queries, args.runs, args.warmup)
        print(f"machine: {machine_note()}")
        print(
            f"search cache {mode}: search with 5 facets, highlight, first 20, over HTTP "
            "(capahub serve, 1 worker):"
        )
        for name, (stats, totals, medians) in results.items():
            verdict = "ok" if stats.p95 < TARGET_P95_MS else "OVER TARGET"
            print(f"  {name:9}  {stats}   (target p95 < {TARGET_P95_MS:.0f} ms: {verdict})")
            print(
                f"  {'':9}  hits per query: median {statistics.median(totals):.0f}, "
                f"max {max(totals)}, min {min(totals)}"
            )
            hits = dict(zip(ONE_WORD if name == "one word" else TWO_WORDS, totals, strict=True))
            slowest = sorted(medians.items(), key=lambda qm: -qm[1])[:4]
            print(
                f"  {'':9}  slowest (median): "
                + ", ".join(f"{q!r} {m:.1f} ms ({hits[q]} hits)" for q, m in slowest)
            )


if __name__ == "__main__":
    main()
