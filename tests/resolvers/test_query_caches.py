"""The query caches are bounded by bytes: many distinct large queries cannot fill memory.

Parsed documents, validation results and prepared documents (resolvers/prepared.py), the fast
path's plans (resolvers/fastpath.py) and the compiled costs (resolvers/cost.py) each hold a
share of ``query_cache_mb``, counted by estimated size. These tests feed them distinct large
queries and check both the estimate (each cache's ``currsize`` within its bound) and the real
memory the process keeps (tracemalloc), so the estimate's factors are checked as well.
"""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from graphql import parse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from catalog.demo import load_demo
from catalog.services import Services
from catalog.settings import Settings
from resolvers import build_schema, make_context
from resolvers.fastpath import plan_cache
from resolvers.prepared import CACHE_SHARES, document_size
from resolvers.schema import CatalogSchema

MB = 2**20


def _bounds_hold(schema: CatalogSchema) -> None:
    caches = schema.caches
    for cache in (caches.parsed, caches.validated):
        assert cache.currsize <= cache.maxsize
    assert schema.prepared.size <= schema.prepared.max_bytes
    plans = plan_cache(schema._schema)
    assert plans.size <= plans.max_bytes
    total = caches.parsed.maxsize + caches.validated.maxsize + schema.prepared.max_bytes
    assert total + plans.max_bytes <= caches.max_bytes


def _run(schema: CatalogSchema, query: str, context: Any = None) -> Any:
    return asyncio.run(schema.execute(query, context_value=context))


def _repeated(tokens: int, salt: int) -> str:
    """A valid, dense document of about ``tokens`` tokens that runs no resolver: a long list
    literal (each item a token) on a skipped field."""
    return "{ nodes(tags: [" + '"t" ' * tokens + f"]) @skip(if: true) {{ totalCount }} }} # {salt}"


def test_the_shares_add_up_to_the_setting() -> None:
    assert sum(CACHE_SHARES.values()) == pytest.approx(1.0)
    schema = build_schema(query_cache_mb=3)
    assert schema.caches.max_bytes == 3 * MB
    _bounds_hold(schema)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sizes=st.lists(st.integers(1, 1_500), min_size=5, max_size=15),
    invalid=st.lists(st.booleans(), min_size=5, max_size=15),
)
def test_distinct_big_queries_stay_within_the_bytes(sizes: list[int], invalid: list[bool]) -> None:
    schema = build_schema(query_cache_mb=1)
    query = ""
    for i, (size, bad) in enumerate(zip(sizes, invalid, strict=False)):
        query = _repeated(size, i)
        if bad:  # a validation error keeps its document alive: counted with it
            query = query.replace("totalCount", "totalCount nope")
        result = _run(schema, query)
        assert bool(result.errors) is bad
        _bounds_hold(schema)
    # the latest document is kept, unless it alone is larger than the cache
    parsed = schema.caches.parsed
    kept = any(key[0] == query for key in parsed)
    assert kept or document_size(query, parse(query)) > parsed.maxsize


def test_what_the_caches_keep_in_memory_stays_near_their_bound() -> None:
    """150 distinct documents of 500 tokens (about 30 MB if all were kept) into 4 MB."""
    schema = build_schema(query_cache_mb=4)
    _run(schema, _repeated(10, -1))
    gc.collect()
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        for i in range(150):
            _run(schema, _repeated(500, i))
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - start
    finally:
        tracemalloc.stop()
    _bounds_hold(schema)
    assert len(schema.prepared) > 0 and len(schema.caches.parsed) > 0
    # the estimates are upper bounds: what is really kept is below the configured 4 MB
    assert kept < 4 * MB, kept


def test_an_oversized_document_is_answered_and_not_kept() -> None:
    schema = build_schema(query_cache_mb=0.05)  # 50 kB: smaller than one 20,000-token document
    query = _repeated(19_000, 0)
    assert _run(schema, query).errors is None
    assert len(schema.caches.parsed) == 0 and len(schema.prepared) == 0
    _bounds_hold(schema)


def test_the_least_recently_used_document_goes_first() -> None:
    schema = build_schema(query_cache_mb=1)
    hot = "{ __typename } # hot"
    _run(schema, hot)
    for i in range(400):
        _run(schema, _repeated(20, i))
        if i % 10 == 0:
            _run(schema, hot)  # the full path, through the parser cache: used again
            assert schema.prepared.known(hot, None)
    assert any(k[0] == hot for k in schema.caches.parsed)
    assert not any(k[0] == _repeated(20, 0) for k in schema.caches.parsed)


# -- plans --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[asyncio.Runner, Services]]:
    runner = asyncio.Runner()
    db: Path = tmp_path_factory.mktemp("caches") / "demo.db"
    services = runner.run(
        Services.start(Settings(database_url=f"sqlite:///{db}", _env_file=None))  # type: ignore[call-arg]
    )
    runner.run(load_demo(services.registry))
    try:
        yield runner, services
    finally:
        runner.run(services.close())
        runner.close()


def test_plans_of_many_distinct_queries_stay_within_their_bytes(
    demo: tuple[asyncio.Runner, Services],
) -> None:
    runner, services = demo
    schema = build_schema(query_cache_mb=2)
    plans = plan_cache(schema._schema)
    aliases = " ".join(f"n{i}: name" for i in range(20))
    gc.collect()
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        for i in range(120):
            query = (
                f'{{ node(id: "system:crm") {{ id {aliases} k{i}: key '
                f"... on System {{ provides {{ id name }} }} }} }}"
            )
            result = runner.run(schema.execute(query, context_value=make_context(services)))
            assert result.errors is None
            assert plans.size <= plans.max_bytes
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - start
    finally:
        tracemalloc.stop()
    _bounds_hold(schema)
    assert plans.size > 0  # some documents' plans are kept
    assert kept < 2 * MB, kept
    # the last query's plans are among them, and a repeat runs on them
    again = runner.run(schema.execute(query, context_value=make_context(services)))
    assert again.data == result.data
