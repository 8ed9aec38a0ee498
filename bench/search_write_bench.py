"""What one write costs the search projection (issue 15, "writes cost what they change").

    .venv/bin/python bench/search_write_bench.py [--docs 1000000] [--writes 200]
        [--database sqlite:///catalog.db] [--searches 30]

1. In memory, on ``--docs`` synthetic documents (4 words each from a 100,000-word vocabulary,
   2 tags, 1 domain, 50 owners): the projection's state and the text index after one new
   document, as every sync after a write makes them (``ProjectionState.extended``,
   ``TextIndex.build(base=...)``, the position table). "appended" is the code path of every
   sync; "copied" extends an older state each time, which copies every array and list as
   every write did before the buffers of ``metadata/search/buffers.py`` (for the text index
   "copied" copies the columns but counts only the new document's words; the code before
   counted every document's again: 9.5 ms at 1,000,000 documents against 4.8 ms appended).
2. With ``--database`` (a catalog, e.g. the one ``graph_bench.py --nodes 100000`` builds):
   in-process ``Services`` on it; each round renames one node through the registry, then
   times the next search (which syncs the projection first), then the same search again.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time

import numpy as np
from _util import Stats, machine_note, settings_for

from catalog.services import Services
from catalog.specs import NodeSpec
from metadata.model import Kind
from metadata.search import DocRow, ProjectionState
from metadata.search.bm25 import TextIndex

VOCABULARY = 100_000


def _row(doc_id: int, rng: random.Random) -> DocRow:
    return DocRow(
        doc_id=doc_id,
        node_id=f"capability:c{doc_id}",
        kind="CAPABILITY",
        lifecycle="ACTIVE",
        owner_id=f"team:t{doc_id % 50}",
        tags=(f"tag{rng.randrange(30)}", f"x{rng.randrange(7)}"),
        domains=(f"domain:d{doc_id % 20}",),
        name_norm=f"capability number {doc_id}",
        key_norm=f"c{doc_id}",
        leaf_norm=f"c{doc_id}",
    )


def _instances(words: dict[int, list[int]]) -> list[tuple[str, str]]:
    return sorted((f"w{w:06d}", ",".join(map(str, v))) for w, v in words.items())


def _doc_words(doc_id: int, rng: random.Random, into: dict[int, list[int]]) -> None:
    for w in rng.sample(range(VOCABULARY), 4):
        into.setdefault(w, []).append(doc_id << 3 | rng.randrange(3))


def in_memory(docs: int, writes: int) -> None:
    rng = random.Random(1)
    t = time.perf_counter()
    state = ProjectionState.empty().extended([_row(d, rng) for d in range(1, docs + 1)])
    words: dict[int, list[int]] = {}
    for d in range(1, docs + 1):
        _doc_words(d, rng, words)
    live = np.ones(docs, dtype=np.bool_)
    text = TextIndex.build(state.positions, state.size, _instances(words), live, 1)
    print(f"{docs:,} documents built in {time.perf_counter() - t:.1f} s")
    next_id = docs + 1
    for mode in ("appended", "copied"):
        took: list[float] = []
        text_took: list[float] = []
        current, current_text = state, text
        for _ in range(writes):
            row = _row(next_id, rng)
            new_words: dict[int, list[int]] = {}
            _doc_words(next_id, rng, new_words)
            next_id += 1
            t = time.perf_counter()
            base = current if mode == "appended" else state  # "copied": never the newest
            grown = base.extended([row])
            grown.positions(grown.doc_ids[-1:])  # the position table a search builds
            took.append(time.perf_counter() - t)
            t = time.perf_counter()
            known = np.concatenate((current_text.live, np.ones(1, dtype=np.bool_)))
            if mode == "appended":
                current_text = TextIndex.build(
                    grown.positions,
                    grown.size,
                    _instances(new_words),
                    known,
                    2,
                    base=current_text,
                )
                current = grown
            else:
                TextIndex.build(
                    grown.positions,
                    grown.size,
                    _instances(new_words),
                    np.ones(grown.size, dtype=np.bool_),
                    2,
                    base=text,
                )
            text_took.append(time.perf_counter() - t)
        print(f"  {mode:9} projection state + position table: {Stats.of(took)}")
        print(f"  {mode:9} text index:                         {Stats.of(text_took)}")


async def served(url: str, searches: int) -> None:
    services = await Services.start(settings_for(url))
    try:
        ids = [i async for i in _some_capabilities(services, searches)]
        query = "customer"
        await services.search.search(query=query)
        after_write: list[float] = []
        again: list[float] = []
        names = {i: r.name for i, r in (await services.discovery.get_nodes(ids)).items()}
        for n, node_id in enumerate(ids):
            spec = NodeSpec.model_validate({"id": node_id, "name": f"{names[node_id]} r{n}"})
            await services.registry.upsert_node(spec)
            t = time.perf_counter()
            await services.search.search(query=query)
            after_write.append(time.perf_counter() - t)
            t = time.perf_counter()
            await services.search.search(query=query)
            again.append(time.perf_counter() - t)
        print(f"  first search after a write: {Stats.of(after_write)}")
        print(f"  the same search again:      {Stats.of(again)}")
    finally:
        await services.close()


async def _some_capabilities(services: Services, n: int):  # type: ignore[no-untyped-def]
    found = list(services.graph.nodes_of(Kind.CAPABILITY))
    for node_id in random.Random(1).sample(found, min(n, len(found))):
        yield node_id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=1_000_000)
    parser.add_argument("--writes", type=int, default=200)
    parser.add_argument("--database", help="a catalog to write to and search in-process")
    parser.add_argument("--searches", type=int, default=30)
    args = parser.parse_args()
    print(machine_note())
    if args.docs:
        in_memory(args.docs, args.writes)
    if args.database:
        print(f"in-process on {args.database}:")
        asyncio.run(served(args.database, args.searches))


if __name__ == "__main__":
    main()
