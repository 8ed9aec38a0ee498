"""Time travel on a large history: ``node`` and ``impact`` a month back, and storage per change.

The data is written in bulk straight through the store's writer (``Writer.insert_rows``, one
driver ``executemany`` per table), not through mutations: NODES nodes (a tenth teams, a tenth
systems, 40 % capabilities, 40 % entities) and about 1.5 relations per node are created, then
updates (renames, description and lifecycle changes, each with full before/after images as the
registry records them) and relation removals/re-additions until the log holds CHANGES rows,
stamped evenly over the year before the bench's "now". The tables hold the final state.

    .venv/bin/python bench/asof_bench.py [--nodes 100000] [--changes 1000000] [--db PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from catalog.analysis import GraphAnalysis
from catalog.changes.asof import TimeTravel
from metadata.graph import CatalogGraph
from metadata.model import Kind, Lifecycle, NodeRecord, RelationRecord, RelationType
from metadata.store import Store, _node_values, node_snapshot
from metadata.tables import history, node_tags, nodes, relations

NOW = datetime(2026, 12, 1, tzinfo=UTC)
START = NOW - timedelta(days=365)


def _generate(n_nodes: int, n_changes: int, rng: random.Random) -> tuple[Any, ...]:
    kinds = [Kind.TEAM] * 1 + [Kind.SYSTEM] * 1 + [Kind.CAPABILITY] * 4 + [Kind.DATA_ENTITY] * 4
    recs: dict[str, NodeRecord] = {}
    by_kind: dict[Kind, list[str]] = {k: [] for k in Kind}
    events: list[tuple[str, Any, str, Any, Any]] = []
    for i in range(n_nodes):
        kind = kinds[i % len(kinds)]
        node_id = f"{kind.prefix}:n{i:06d}"
        rec = NodeRecord(
            node_id, kind, f"n{i:06d}", f"{kind.value} {i}", None, ("bench",),
            Lifecycle.ACTIVE, None, None, (), 1, START, START,
        )  # fmt: skip
        recs[node_id] = rec
        by_kind[kind].append(node_id)
        events.append(("node", node_id, "create", None, rec))
    rels: dict[tuple[str, str, str], RelationRecord] = {}

    def new_relation() -> RelationRecord:
        choice = rng.random()
        if choice < 0.4:
            r = RelationRecord(
                rng.choice(by_kind[Kind.SYSTEM]), RelationType.PROVIDES,
                rng.choice(by_kind[Kind.CAPABILITY]),
            )  # fmt: skip
        elif choice < 0.7:
            r = RelationRecord(
                rng.choice(by_kind[Kind.CAPABILITY]), RelationType.READS,
                rng.choice(by_kind[Kind.DATA_ENTITY]),
            )  # fmt: skip
        elif choice < 0.85:
            r = RelationRecord(
                rng.choice(by_kind[Kind.SYSTEM]), RelationType.MASTERS,
                rng.choice(by_kind[Kind.DATA_ENTITY]),
            )  # fmt: skip
        else:
            a, b = rng.sample(by_kind[Kind.SYSTEM], 2)
            r = RelationRecord(a, RelationType.DEPENDS_ON, b)
        return r

    while len(rels) < int(n_nodes * 1.5):
        r = new_relation()
        if r.key not in rels:
            rels[r.key] = r
            events.append(("relation", r.key, "create", None, r))
    ids = list(recs)
    while len(events) < n_changes:
        if rng.random() < 0.85:
            node_id = rng.choice(ids)
            old = recs[node_id]
            what = rng.random()
            new = NodeRecord(
                old.id, old.kind, old.key,
                f"{old.name.split(' v')[0]} v{old.version + 1}" if what < 0.6 else old.name,
                f"changed {old.version}" if 0.6 <= what < 0.9 else old.description,
                old.tags,
                (Lifecycle.DEPRECATED if old.lifecycle is Lifecycle.ACTIVE else Lifecycle.ACTIVE)
                if what >= 0.9 else old.lifecycle,
                old.owner, old.properties, old.attributes, old.version + 1, old.created_at, START,
            )  # fmt: skip
            recs[node_id] = new
            events.append(("node", node_id, "update", old, new))
        elif rng.random() < 0.5 and rels:
            key = rng.choice(list(rels)) if len(rels) < 1000 else next(iter(rels))
            r = rels.pop(key)
            events.append(("relation", key, "delete", r, None))
        else:
            r = new_relation()
            if r.key not in rels:
                rels[r.key] = r
                events.append(("relation", r.key, "create", None, r))
    return recs, rels, events


def _image(target: str, value: Any, at: datetime) -> Any:
    if value is None:
        return None
    if target == "relation":
        return value.content()
    return node_snapshot(value)


async def build(path: Path, n_nodes: int, n_changes: int) -> tuple[int, int]:
    """Write the catalog and its history; returns the file's bytes before and after history."""
    rng = random.Random(14)
    recs, rels, events = _generate(n_nodes, n_changes, rng)
    store = await Store.open(f"sqlite:///{path}")
    step = (NOW - timedelta(minutes=1) - START) / len(events)
    async with store.transaction() as tx:
        await tx.insert_rows(nodes, [_node_values(r) for r in recs.values()])
        await tx.insert_rows(node_tags, [{"node_id": r.id, "tag": "bench"} for r in recs.values()])
        await tx.insert_rows(
            relations,
            [
                {"from_id": r.from_id, "type": r.type.value, "to_id": r.to_id, "properties": None}
                for r in rels.values()
            ],
        )
    await store.close()
    os.system(f"sqlite3 {path} 'PRAGMA wal_checkpoint(TRUNCATE)' >/dev/null 2>&1")
    before = path.stat().st_size
    store = await Store.open(f"sqlite:///{path}")
    batch: list[dict[str, Any]] = []
    for i, (target, key, op, old, new) in enumerate(events, 1):
        at = START + step * i
        target_id = key if target == "node" else "|".join(key)
        batch.append(
            {
                "id": i,
                "at": at,
                "target": target,
                "target_id": target_id,
                "op": op,
                "before": _image(target, old, at),
                "after": _image(target, new, at),
                "actor": "local:bench",
                "request_id": None,
            }
        )
        if len(batch) == 50_000:
            async with store.transaction() as tx:
                await tx.insert_rows(history, batch)
            batch = []
    if batch:
        async with store.transaction() as tx:
            await tx.insert_rows(history, batch)
    await store.close()
    os.system(f"sqlite3 {path} 'PRAGMA wal_checkpoint(TRUNCATE)' >/dev/null 2>&1")
    return before, path.stat().st_size


def _ms(samples: list[float]) -> str:
    samples = sorted(samples)
    return (
        f"median {statistics.median(samples) * 1000:.1f} ms, "
        f"p95 {samples[int(len(samples) * 0.95) - 1] * 1000:.1f} ms"
    )


async def measure(path: Path) -> None:
    store = await Store.open(f"sqlite:///{path}")
    store.clock = lambda: NOW
    graph = CatalogGraph()
    t = time.perf_counter()
    await graph.load(store)
    print(f"projection loaded in {time.perf_counter() - t:.1f} s ({len(graph.g)} nodes)")
    tt = TimeTravel(store, graph)
    month = NOW - timedelta(days=30)
    ids = [n for n in graph.g if n.startswith("system:")][:200]
    # node: resolve the instant, then the record (what node(id, asOf) does)
    samples = []
    for node_id in ids:
        t = time.perf_counter()
        change_id = await tt.resolve(month)
        found = await tt.nodes_at([node_id], change_id)
        samples.append(time.perf_counter() - t)
        assert node_id in found
    print(f"node asOf a month back (resolve + record, {len(ids)} ids): {_ms(samples)}")
    change_id = await tt.resolve(month)
    async with store.read() as r:
        last = await r.last_change_id()
    t = time.perf_counter()
    view = await tt.graph_at(change_id)
    print(
        f"past graph built in {time.perf_counter() - t:.2f} s "
        f"({last - change_id} changes undone; {tt.built[-1][2]})"
    )
    now_q = GraphAnalysis(graph, time_budget=60)
    past_q = GraphAnalysis(view, time_budget=60)
    roots = ids[:50]
    for name, q in (("now", now_q), ("asOf a month back", past_q)):
        samples = []
        for root in roots:
            t = time.perf_counter()
            q.impact(root, 3)
            samples.append(time.perf_counter() - t)
        print(f"impact depth 3 {name} ({len(roots)} roots): {_ms(samples)}")
    t = time.perf_counter()
    state = await tt.rebuild(change_id, "undo")
    print(
        f"whole past state (export, search) by undo: {time.perf_counter() - t:.1f} s, "
        f"{len(state.nodes)} nodes"
    )
    await store.close()


async def measure_graphql(path: Path) -> None:
    """The same questions through the GraphQL schema of a started hub (in-process execute)."""
    from catalog.services import Services
    from catalog.settings import Settings
    from resolvers.context import make_context
    from resolvers.schema import build_schema

    t = time.perf_counter()
    services = await Services.start(Settings(database_url=f"sqlite:///{path}", _env_file=None))
    print(f"hub started in {time.perf_counter() - t:.1f} s (projection, search index)")
    schema = build_schema()
    month = (NOW - timedelta(days=30)).isoformat()
    ids = [n for n in services.graph.g if n.startswith("system:")][:100]
    for label, text in (
        ("node now", '{ node(id: "%s") { id name lifecycle } }'),
        ("node asOf", '{ node(id: "%s", asOf: "' + month + '") { id name lifecycle } }'),
        ("impact now", '{ impact(id: "%s", depth: 3) { affected { distance node { id } } } }'),
        (
            "impact asOf",
            '{ impact(id: "%s", depth: 3, asOf: "' + month + '") '
            "{ affected { distance node { id } } } }",
        ),
    ):
        samples = []
        for node_id in ids:
            t = time.perf_counter()
            result = await schema.execute(text % node_id, context_value=make_context(services))
            samples.append(time.perf_counter() - t)
            assert not result.errors, result.errors
        print(
            f"GraphQL {label} ({len(ids)} ids; the first asOf builds the past graph): {_ms(samples)}"
        )
    await services.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nodes", type=int, default=100_000)
    parser.add_argument("--changes", type=int, default=1_000_000)
    parser.add_argument("--db", type=Path, default=None)
    parser.add_argument(
        "--graphql", action="store_true", help="also through the schema of a started hub"
    )
    args = parser.parse_args()
    path = args.db or Path(tempfile.mkdtemp()) / "asof.db"
    if not path.exists():
        t = time.perf_counter()
        before, after = asyncio.run(build(path, args.nodes, args.changes))
        print(
            f"built {args.nodes} nodes, {args.changes} history rows in "
            f"{time.perf_counter() - t:.0f} s; history takes {after - before} bytes, "
            f"{(after - before) / args.changes:.0f} bytes per change (SQLite, with its indexes)"
        )
    asyncio.run(measure(path))
    if args.graphql:
        asyncio.run(measure_graphql(path))


if __name__ == "__main__":
    main()
