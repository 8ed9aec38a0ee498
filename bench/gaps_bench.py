"""Gaps and redundancies after a write (issue 15: per-version answers maintained from the
change stream).

    .venv/bin/python bench/gaps_bench.py --database sqlite:////tmp/capahub-graph-bench-100000.db
        [--writes 20]

In-process, on the graph projection of a catalog (e.g. the one ``graph_bench.py`` builds):
the whole gaps pass (``GapIndex.build``), then ``--writes`` times one PROVIDES relation from
a random system to a random capability applied to the projection and the gaps of the new
version asked (the index moved on by what the change touched, and the answer read out), beside
the ``snapshot()`` every graph question takes of a new version; the same for redundancies.
Nothing is written to the database.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import time

from _util import Stats, code_note, machine_note

from catalog.findings import FindingMemo, GapIndex, RedundancyIndex
from metadata.graph import CatalogGraph, Deadline
from metadata.model import Kind
from metadata.store import Change, Store


async def run(url: str, writes: int) -> None:
    store = await Store.open(url)
    graph = CatalogGraph()
    t = time.perf_counter()
    await graph.load(store)
    await store.close()
    print(f"projection: {len(graph.g):,} nodes, loaded in {time.perf_counter() - t:.1f} s")
    gc.collect()
    gc.freeze()  # as `capahub serve` does after start
    memo = FindingMemo(GapIndex)
    doubles = FindingMemo(RedundancyIndex)
    deadline = Deadline(600, "gaps")
    t = time.perf_counter()
    found = memo.results(graph.snapshot(), None, deadline)
    print(f"whole pass: {time.perf_counter() - t:.2f} s, {len(found):,} gaps")
    t = time.perf_counter()
    both = doubles.results(graph.snapshot(), None, deadline)
    print(f"whole pass: {time.perf_counter() - t:.2f} s, {len(both):,} redundancies")
    twice: list[float] = []
    caps = sorted(graph.nodes_of(Kind.CAPABILITY))
    systems = sorted(graph.nodes_of(Kind.SYSTEM))
    rng = random.Random(1)
    moved: list[float] = []
    snapshots: list[float] = []
    for i in range(writes):
        after = {"from": rng.choice(systems), "type": "PROVIDES", "to": rng.choice(caps)}
        graph.apply([Change(10**12 + i, "relation", "", "create", None, after)])
        t = time.perf_counter()
        view = graph.snapshot()
        snapshots.append(time.perf_counter() - t)
        t = time.perf_counter()
        found = memo.results(view, None, deadline)
        moved.append(time.perf_counter() - t)
        t = time.perf_counter()
        both = doubles.results(view, None, deadline)
        twice.append(time.perf_counter() - t)
    print(f"gaps after one relation written: {Stats.of(moved)} ({len(found):,} gaps)")
    print(f"redundancies after it:           {Stats.of(twice)} ({len(both):,})")
    print(f"snapshot() of the new version:   {Stats.of(snapshots)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", required=True)
    parser.add_argument("--writes", type=int, default=20)
    args = parser.parse_args()
    print(machine_note())
    print(code_note())
    asyncio.run(run(args.database, args.writes))


if __name__ == "__main__":
    main()
