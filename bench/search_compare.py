"""Compare the in-memory ranking with FTS5's on a synthetic catalog: every answer must be equal.

Runs the same searches through ``Search`` twice on one SQLite catalog (the bench's 100,000 nodes
by default): once matching and ranking in memory (``metadata.search.bm25``, the default), once
asking FTS5 for everything (``memory_ranking=False``, the code before), both without the cache,
and compares hits (node, score, highlight, order), totals, facets and cursors. Queries: the
bench's, every word of the index's vocabulary that is a word of the catalog, prefixes of them,
random pairs and triples, with filters and later pages. Prints the number of searches compared,
the differences (none expected) and the time of each side.

    .venv/bin/python bench/search_compare.py [--nodes 100000] [--queries 300] [--seed 3]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from _util import settings_for
from search_bench import ONE_WORD, TWO_WORDS, seeded_database
from sqlalchemy import text

from catalog.search import Search, SearchPage
from catalog.services import Services
from metadata.model import Kind, Lifecycle


def summary(page: SearchPage) -> tuple[Any, ...]:
    """Everything a page answers."""
    return (
        [(h.node.id, h.score, h.highlight) for h in page.hits],
        page.total,
        page.facets,
        page.has_next,
        page.cursor(len(page.hits) - 1) if page.hits else None,
    )


async def vocabulary(services: Services) -> list[str]:
    """Words of node names in the catalog (what people type)."""
    async with services.store.read() as r:
        rows = (await r.conn.execute(text("SELECT name_norm FROM search_docs LIMIT 20000"))).all()
    return sorted({w for (name,) in rows for w in str(name).split() if w.isalpha()})


def queries(words: list[str], n: int, seed: int) -> list[tuple[str, dict[str, Any], int]]:
    """(query, filter, first page offset) triples."""
    rnd = random.Random(seed)
    texts = list(ONE_WORD) + list(TWO_WORDS)
    texts += words
    texts += [
        w[: rnd.randint(1, max(1, len(w) - 1))] for w in rnd.sample(words, min(40, len(words)))
    ]
    texts += [" ".join(rnd.sample(words, 2)) for _ in range(60)]
    texts += [" ".join(rnd.sample(words, 3)) for _ in range(20)]
    texts += [f"{rnd.choice(words)}* {rnd.choice(words)[:3]}" for _ in range(10)]
    texts += ['"customer order"', "erp", "crm", "sys", "c", "pi", "system:crm", "Orders"]
    filters: list[dict[str, Any]] = [
        {},
        {"kinds": [Kind.CAPABILITY]},
        {"kinds": [Kind.DATA_ENTITY, Kind.SYSTEM]},
        {"lifecycle": [Lifecycle.ACTIVE, Lifecycle.DEPRECATED]},
        {"lifecycle": [Lifecycle.RETIRED]},
    ]
    out = [(t, {}, 0) for t in texts]
    for _ in range(max(0, n - len(out))):
        out.append((rnd.choice(texts), rnd.choice(filters), rnd.choice((0, 0, 20, 100))))
    return out


async def compare(database: str, n: int, seed: int) -> int:
    """Run both sides on every query; returns the number of differences."""
    services = await Services.start(settings_for(database))
    try:
        fast = Search(services.store, cache_mb=0)
        slow = Search(services.store, cache_mb=0, memory_ranking=False)
        t0 = time.perf_counter()
        await fast.warm()
        print(f"projection with the text index loaded in {time.perf_counter() - t0:.1f} s")
        await slow.warm()
        plan = queries(await vocabulary(services), n, seed)
        differences = 0
        spent = {"memory": 0.0, "fts5": 0.0}
        for q, flt, offset in plan:
            after = None
            if offset:
                first = await slow.search(q, first=offset, **flt)
                after = first.cursor(len(first.hits) - 1) if first.hits else None
            t0 = time.perf_counter()
            a = await fast.search(q, first=20, after=after, **flt)
            t1 = time.perf_counter()
            b = await slow.search(q, first=20, after=after, **flt)
            t2 = time.perf_counter()
            spent["memory"] += t1 - t0
            spent["fts5"] += t2 - t1
            if summary(a) != summary(b):
                differences += 1
                print(f"DIFFERENT: {q!r} {flt} offset {offset}")
        print(
            f"{len(plan)} searches compared (hits, scores, highlights, order, totals, facets, "
            f"cursors): {differences} different"
        )
        print(
            f"time: in memory {spent['memory'] * 1000 / len(plan):.1f} ms per search, "
            f"FTS5 {spent['fts5'] * 1000 / len(plan):.1f} ms"
        )
        return differences
    finally:
        await services.close()


def main(argv: list[str] | None = None) -> None:
    """Compare and exit non-zero on any difference."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--query-seed", type=int, default=3)
    parser.add_argument("--db-dir", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args(argv)
    database = seeded_database(args.nodes, args.seed, args.db_dir)
    if asyncio.run(compare(database, args.queries, args.query_seed)):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
