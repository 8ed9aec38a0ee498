"""The in-memory matching and bm25 of ``metadata.search.bm25`` against FTS5 itself.

Generated documents go into an FTS5 table with ``search_fts``' columns, tokenizer and prefix
indexes; the projection is built the two ways the hub builds it (from the index's
``fts5vocab`` table, and from the in-memory tokenizer for documents added later), some
documents are deleted, and generated queries must give exactly FTS5's matches and exactly its
``-bm25()`` values (the same floating-point numbers), for every word and in the name column.
Then the same through ``Search``, across writes, deletions, another process and a rebuild.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from catalog.search import Search, SearchPage
from catalog.services import Services
from catalog.settings import Settings
from catalog.specs import parse_document
from metadata.search import ParsedQuery, Term, fts5_match
from metadata.search.bm25 import COLUMNS, INSTANCES_SQL, TOKENIZE, WEIGHTS, TextIndex, Tokenizer

#: Words with shared stems and prefixes (porter: order/orders/ordering), digits, accents,
#: and one that unicode61 splits differently from the query parser.
VOCAB = [
    "order", "orders", "ordering", "ordered", "cust", "customer", "customers", "custody",
    "pii", "ledger", "led", "a", "ab", "abc", "x1", "2024", "café", "cafe", "naïve", "über",
    "run", "running", "runner", "data", "database", "id",
]  # fmt: skip

_TOKENIZER = Tokenizer()

text_st = st.lists(st.sampled_from(VOCAB), max_size=12).map(" ".join)
doc_st = st.tuples(text_st, text_st, text_st, text_st, text_st, text_st)
term_st = st.builds(
    lambda w, p: Term((w,), prefix=p),
    st.sampled_from(VOCAB + ["c", "cu", "or", "zz", "ru", "da"]),
    st.booleans(),
)
query_st = st.lists(term_st, min_size=1, max_size=3).map(lambda ts: ParsedQuery(tuple(ts)))


def fts(docs: dict[int, tuple[str, ...]]) -> sqlite3.Connection:
    """An in-memory FTS5 table like ``search_fts`` holding ``docs`` (rowid: document)."""
    db = sqlite3.connect(":memory:", isolation_level=None)  # FTS5 writes its totals at commit
    db.execute(
        f"CREATE VIRTUAL TABLE search_fts USING fts5({', '.join(COLUMNS)}, "
        f"tokenize = '{TOKENIZE}', prefix = '2 3')"
    )
    db.executemany(
        f"INSERT INTO search_fts (rowid, {', '.join(COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(i, *d) for i, d in docs.items()],
    )
    db.execute("CREATE VIRTUAL TABLE temp.v USING fts5vocab(main, search_fts, instance)")
    return db


def identity(size: int) -> Any:
    """Positions = document ids (0 to size - 1)."""

    def positions(doc_ids: Any) -> tuple[Any, Any]:
        known = (doc_ids >= 0) & (doc_ids < size)
        return doc_ids[known].astype(np.intp), known

    return positions


def reference(db: sqlite3.Connection, q: ParsedQuery, part: str) -> dict[int, float]:
    """FTS5's matches and -bm25 with the hub's weights."""
    match = fts5_match(q) if part == "all" else f"{{name}} : ({fts5_match(q)})"
    weights = ", ".join(str(w) for w in WEIGHTS)
    rows = db.execute(
        f"SELECT rowid, -bm25(search_fts, {weights}) FROM search_fts WHERE search_fts MATCH ?",
        (match,),
    ).fetchall()
    return {int(i): float(x) for i, x in rows}


def stats_of(db: sqlite3.Connection) -> Any:
    from metadata.search.bm25 import FtsStats

    block = db.execute("SELECT block FROM search_fts_data WHERE id = 1").fetchone()[0]
    return FtsStats.parse(block)


def project(
    db: sqlite3.Connection, docs: dict[int, tuple[str, ...]], split: int, deleted: set[int]
) -> TextIndex:
    """The projection as the hub builds it: documents below ``split`` from the index's vocab,
    the others through the tokenizer, ``deleted`` ones not live."""
    size = max(docs, default=0) + 1
    split = min(split, size)
    instances = db.execute(INSTANCES_SQL.format(table="temp.v")).fetchall()
    # The index holds every document; keep the older ones' occurrences only.
    older = [
        (t, ",".join(str(v) for v in map(int, s.split(",")) if v >> 3 < split))
        for t, s in instances
    ]
    older = [(t, s) for t, s in older if s]
    live = np.zeros(size, dtype=np.bool_)
    live[[i for i in docs if i not in deleted]] = True
    base = TextIndex.build(identity(split), split, older, live[:split], 1)
    newer = _TOKENIZER.instances([(i, *d) for i, d in docs.items() if i >= split])
    return TextIndex.build(identity(size), size, newer, live, 2, base=base)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    docs=st.lists(doc_st, min_size=1, max_size=25),
    deleted=st.sets(st.integers(0, 24), max_size=6),
    split=st.integers(0, 25),
    queries=st.lists(query_st, min_size=1, max_size=6),
)
def test_matches_and_bm25_equal_fts5(
    docs: list[tuple[str, ...]], deleted: set[int], split: int, queries: list[ParsedQuery]
) -> None:
    by_id = dict(enumerate(docs))
    db = fts(by_id)
    text = project(db, by_id, split, deleted)
    for i in deleted & set(by_id):
        db.execute("DELETE FROM search_fts WHERE rowid = ?", (i,))
    assert text.stats == stats_of(db)
    doc_ids = np.arange(len(text.live), dtype=np.int64)
    for q in queries:
        fast = text.query(q, _TOKENIZER, doc_ids)
        if fast is None:  # a word the tokenizer splits or drops: FTS5 answers
            assert any(len(_TOKENIZER.word(t.words[0])) != 1 for t in q.terms), q
            continue
        matches = fast.matches()
        for part, ids in (("all", matches.all), ("name", matches.name)):
            expected = reference(db, q, part)
            assert sorted(ids.tolist()) == sorted(expected), (q, part)
            pos = np.asarray(sorted(expected), dtype=np.intp)
            got = fast.scores(part, pos).tolist() if len(pos) else []
            assert got == [expected[i] for i in sorted(expected)], (q, part)


def test_tokenizer_is_fts5s() -> None:
    assert _TOKENIZER.word("orders") == ("order",)
    assert _TOKENIZER.word("running") == ("run",)
    assert _TOKENIZER.word("café") == ("cafe",)
    assert _TOKENIZER.word("x1") == ("x1",)


# -- through the search service -------------------------------------------------------------------

WORDS = ["alpha", "beta", "gamma", "order", "orders", "ledger", "pii", "cust", "customer"]


def landscape(n: int, seed: int, prefix: str = "n") -> str:
    import random

    import orjson

    rnd = random.Random(seed)
    nodes = []
    for i in range(n):
        kind = ("system", "capability", "entity")[i % 3]
        node: dict[str, Any] = {
            "id": f"{kind}:{prefix}{i:03d}-{rnd.choice(WORDS)}",
            "name": " ".join(rnd.sample(WORDS, rnd.randint(1, 2))).title(),
            "description": " ".join(rnd.choice(WORDS + ["filler"] * 5) for _ in range(20)),
            "lifecycle": rnd.choice(["ACTIVE", "ACTIVE", "DEPRECATED", "RETIRED"]),
            "tags": rnd.sample(WORDS, rnd.randint(0, 2)),
        }
        if kind == "entity":
            node["attributes"] = [{"name": "email", "classification": "PII"}]
        nodes.append(node)
    return orjson.dumps({"nodes": nodes}).decode()


QUERIES = ["alpha", "order", "orders", "cust", "pii", "beta gamma", "or", "a", "ledger alp"]


def page(p: SearchPage) -> tuple[Any, ...]:
    return ([(h.node.id, h.score, h.highlight) for h in p.hits], p.total, p.facets)


async def agree(memory: Search, fts5: Search) -> int:
    """Every query answers the same both ways; returns how many the projection answered."""
    before = memory.memory_answers
    for q in QUERIES:
        for first in (3, 50):
            assert page(await memory.search(q, first=first)) == page(
                await fts5.search(q, first=first)
            ), q
    return memory.memory_answers - before


@pytest.fixture
def db_url(sqlite_url: str) -> str:
    """This module's catalogs are SQLite files: the in-memory ranking is SQLite's (PostgreSQL
    ranks in the database, tests/metadata/test_search.py covers it)."""
    return sqlite_url


async def test_memory_answers_follow_every_write(services: Services) -> None:
    await services.registry.apply_document(parse_document(landscape(60, 1)))
    memory = Search(services.store, cache_mb=0)
    fts5 = Search(services.store, cache_mb=0, memory_ranking=False)
    await memory.warm()
    assert await agree(memory, fts5) == 2 * len(QUERIES)
    # A new node: found by the very next search, from the projection (after it syncs).
    await services.registry.apply_document(
        parse_document("nodes: [{id: system:zz, name: Alpha Zulu, description: orders}]")
    )
    found = await memory.search("zulu")
    assert [h.node.id for h in found.hits] == ["system:zz"]
    assert await agree(memory, fts5) > 0
    # Changes that replace documents (rename, retire).
    await services.registry.apply_document(
        parse_document("nodes: [{id: system:zz, name: Beta Zulu, description: ledger}]")
    )
    assert await agree(memory, fts5) > 0
    await services.registry.retire("system:zz")
    assert await agree(memory, fts5) > 0
    # Many documents at once, then a rebuild (every document replaced: a full reload).
    await services.registry.apply_document(parse_document(landscape(40, 2, prefix="m")))
    assert await agree(memory, fts5) > 0
    await services.search.rebuild()
    assert await agree(memory, fts5) == 2 * len(QUERIES)
    # Phrases are FTS5's.
    before = memory.memory_answers
    assert page(await memory.search('"beta gamma"')) == page(await fts5.search('"beta gamma"'))
    assert memory.memory_answers == before


async def test_documents_deleted_behind_the_projection_are_reconciled(services: Services) -> None:
    from sqlalchemy import text

    await services.registry.apply_document(parse_document(landscape(30, 3)))
    memory = Search(services.store, cache_mb=0)
    fts5 = Search(services.store, cache_mb=0, memory_ranking=False)
    await agree(memory, fts5)
    # Rows deleted around the hub (no successor document): the totals tell, FTS5 says which.
    async with services.store.transaction() as tx:
        doomed = (
            await tx.conn.execute(text("SELECT doc_id FROM search_docs ORDER BY doc_id LIMIT 5"))
        ).all()
        for (doc_id,) in doomed:
            await tx.conn.execute(text("DELETE FROM search_fts WHERE rowid = :d"), {"d": doc_id})
            await tx.conn.execute(text("DELETE FROM search_docs WHERE doc_id = :d"), {"d": doc_id})
        await tx.conn.execute(text("UPDATE search_state SET next_doc_id = next_doc_id + 1"))
    assert await agree(memory, fts5) == 2 * len(QUERIES)


async def test_another_process_writes_are_ranked_in_memory(settings: Settings) -> None:
    one = await Services.start(settings)
    two = await Services.start(settings)
    try:
        await one.registry.apply_document(parse_document(landscape(30, 4)))
        memory = Search(two.store, cache_mb=0)
        fts5 = Search(two.store, cache_mb=0, memory_ranking=False)
        await agree(memory, fts5)
        await one.registry.apply_document(
            parse_document("nodes: [{id: system:other, name: Gamma Yankee}]")
        )
        found = await memory.search("yankee")
        assert [h.node.id for h in found.hits] == ["system:other"]
        assert await agree(memory, fts5) == 2 * len(QUERIES)
    finally:
        await one.close()
        await two.close()


async def test_a_file_it_cannot_read_directly_leaves_the_async_path(
    services: Services, tmp_path: Any
) -> None:
    from metadata.search import SqliteSearchIndex

    await services.registry.apply_document(parse_document(landscape(20, 5)))
    memory = Search(services.store, cache_mb=0)
    fts5 = Search(services.store, cache_mb=0, memory_ranking=False)
    assert isinstance(memory.index, SqliteSearchIndex)
    memory.index.open_now(str(tmp_path / "missing" / "catalog.db"))
    # Still answered from the projection, its statements through the store's connection.
    assert await agree(memory, fts5) == 2 * len(QUERIES)
