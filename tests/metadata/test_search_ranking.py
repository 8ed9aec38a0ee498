"""Ranking in stages and the search cache: pages, thresholds and cached answers agree with a
full ranking, and every write is seen by the next search."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import orjson
import pytest

from catalog.search import Search, SearchPage
from catalog.services import Services
from catalog.settings import Settings
from catalog.specs import parse_document
from metadata.model import Kind, Lifecycle
from metadata.search import DocRow, ProjectionState, ranking

WORDS = ["alpha", "beta", "gamma", "delta", "order", "ledger"]
STAGES = ["ACTIVE", "ACTIVE", "ACTIVE", "DEPRECATED", "RETIRED", "PLANNED"]


def landscape(n: int = 90, seed: int = 7) -> str:
    """Systems and capabilities whose names, keys, tags and descriptions mix a few words, in
    every lifecycle stage, with descriptions of different lengths (bm25 varies)."""
    rnd = random.Random(seed)
    nodes: list[dict[str, Any]] = []
    for i in range(n):
        kind = "system" if i % 3 == 0 else "capability"
        name = " ".join(rnd.sample(WORDS, rnd.randint(1, 2))).title()
        description = " ".join(
            rnd.choice(WORDS + ["filler"] * 6) for _ in range(rnd.randint(1, 30))
        )
        nodes.append(
            {
                "id": f"{kind}:n{i:03d}-{rnd.choice(WORDS)}",
                "name": name,
                "description": description,
                "lifecycle": rnd.choice(STAGES),
                "tags": rnd.sample(WORDS, rnd.randint(0, 2)),
            }
        )
    return orjson.dumps({"nodes": nodes}).decode()


def summary(page: SearchPage) -> list[tuple[str, float, str | None]]:
    return [(h.node.id, h.score, h.highlight) for h in page.hits]


async def walk(
    search: Search, q: str, size: int, **flt: Any
) -> list[tuple[str, float, str | None]]:
    """Every hit of ``q``, page by page."""
    out: list[tuple[str, float, str | None]] = []
    after = None
    while True:
        page = await search.search(q, first=size, after=after, **flt)
        out += summary(page)
        if not page.has_next:
            return out
        after = page.cursor(len(page.hits) - 1)


QUERIES = ["alpha", "beta gamma", "ord", "ledger alpha", "de"]
FILTERS: list[dict[str, Any]] = [
    {},
    {"kinds": [Kind.SYSTEM]},
    {"lifecycle": [Lifecycle.DEPRECATED, Lifecycle.RETIRED]},
    {"tags": ["gamma"]},
]


async def test_pages_of_the_rest_stage_agree_with_a_full_ranking(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    await services.registry.apply_document(parse_document(landscape()))
    # FTS5 without the cache: the reference, and the stage that asks for the best matches only.
    plain = Search(services.store, cache_mb=0, memory_ranking=False)
    full = {
        (q, i): summary(await plain.search(q, first=500, **flt))
        for q in QUERIES
        for i, flt in enumerate(FILTERS)
    }
    assert any(len(hits) > 20 for hits in full.values())
    # Ask for as few of the best matches as possible: the bound decides which hits are final,
    # and too few final hits make it ask again.
    monkeypatch.setattr(ranking, "FETCH_ALL", 1e9)
    monkeypatch.setattr(ranking, "MIN_FETCH", 0)
    monkeypatch.setattr(ranking, "OVERFETCH", 1.0)
    for (q, i), expected in full.items():
        for size in (1, 4, 9):
            assert await walk(plain, q, size, **FILTERS[i]) == expected, (q, FILTERS[i], size)
            # In memory on SQLite (on PostgreSQL: FTS5's path with the cache).
            assert await walk(services.search, q, size, **FILTERS[i]) == expected


async def test_cached_answers_equal_the_index_and_follow_every_write(services: Services) -> None:
    await services.registry.apply_document(parse_document(landscape(40)))
    # The cache serves what the index answers: on SQLite the queries the projection does not
    # answer (here: all of them, ``memory_ranking=False``).
    cached = Search(services.store, memory_ranking=False)
    plain = Search(services.store, cache_mb=0, memory_ranking=False)

    async def same(q: str) -> list[tuple[str, float, str | None]]:
        reference = await plain.search(q, first=5)
        for search in (cached, services.search):
            first = await search.search(q, first=5)
            again = (
                await search.search(q, first=5, after=first.cursor(4)) if first.has_next else None
            )
            assert summary(first) == summary(reference)
            assert first.facets == reference.facets and first.total == reference.total
            if again is not None:
                assert summary(again) == summary(
                    await plain.search(q, first=5, after=first.cursor(4))
                )
        return summary(reference)

    for q in QUERIES:
        await same(q)
    hits, memory_hits = cached.cache.hits, services.search.cache.hits
    for q in QUERIES:
        await same(q)
    assert cached.cache.hits > hits
    # The projection's answers are cached too (on SQLite; on PostgreSQL the index's).
    assert services.search.cache.hits > memory_hits
    version = await _version(services)
    # A new node, a lifecycle change and a rebuild: each moves the version; the very next search
    # answers from the index.
    before = (await cached.search("alpha")).total
    doc = "nodes: [{id: system:zz-alpha, name: Alpha Alpha, description: alpha}]"
    await services.registry.apply_document(parse_document(doc))
    await same("alpha")
    assert (await cached.search("alpha")).total == before + 1
    scores = {node_id: score for node_id, score, _ in await walk(cached, "alpha", 50)}
    assert scores["system:zz-alpha"] > 2
    await services.registry.retire("system:zz-alpha")
    await same("alpha")
    scores = {node_id: score for node_id, score, _ in await walk(cached, "alpha", 50)}
    assert scores["system:zz-alpha"] < 1
    assert await _version(services) > version
    version = await _version(services)
    await services.search.rebuild()
    assert await _version(services) > version
    for q in QUERIES:
        await same(q)


async def test_cache_can_be_turned_off(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAPAHUB_SEARCH_CACHE_MB", "0")
    services = await Services.start(Settings(database_url=settings.database_url, _env_file=None))  # type: ignore[call-arg]
    try:
        await _searches_do_not_cache(services)
    finally:
        await services.close()


async def _searches_do_not_cache(services: Services) -> None:
    search = services.search
    await services.registry.apply_document(parse_document(landscape(20)))
    await search.search("alpha")
    await search.search("alpha")
    assert search.cache.max_bytes == 0 and search.cache.hits == search.cache.misses == 0


async def _version(services: Services) -> int:
    async with services.store.read() as r:
        return await services.search.index.version(r)


@pytest.mark.parametrize("ids", [[1, 2, 3, 5, 8], [1, 40, 7_000, 10**9]])
def test_projection_positions_dense_and_sparse_ids(ids: list[int]) -> None:
    rows = [
        DocRow(i, f"system:s{i}", "system", "ACTIVE", None, ("t",), (), f"s{i}", f"s{i}", f"s{i}")
        for i in ids
    ]
    state = ProjectionState.empty().extended(rows[:2]).extended(rows[2:])
    asked = np.array([ids[-1], 4, ids[0], ids[2], 10**12, 0], dtype=np.int64)
    pos, known = state.positions(asked)
    assert known.tolist() == [True, False, True, True, False, False]
    assert pos.tolist() == [len(ids) - 1, 0, 2]
    assert [state.node_id[p] for p in pos] == [
        f"system:s{ids[-1]}",
        "system:s1",
        f"system:s{ids[2]}",
    ]
