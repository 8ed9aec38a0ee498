"""The bulk write path: driver-level executemany for nodes, tags, relations and history.

``Writer.insert_rows`` skips SQLAlchemy's per-row parameter handling; these tests hold it to
what ``conn.execute(insert(table), rows)`` stores, and hold a large apply to its promises: one
history row per node and relation, ids in order, all or nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, insert, select, text
from sqlalchemy.exc import IntegrityError

from catalog.services import Services, WriteServices
from catalog.settings import Settings
from catalog.specs import parse_document
from metadata.errors import NotFoundError
from metadata.model import Kind, Lifecycle, NodeRecord, RelationRecord, RelationType
from metadata.store import Change, Store, Writer, _node_values, node_snapshot
from metadata.tables import history, node_tags, nodes, relations


def _node(node_id: str, **extra: Any) -> NodeRecord:
    now = datetime(2026, 11, 23, 12, 30, 15, 123456, tzinfo=UTC)
    kind = {"system": Kind.SYSTEM, "entity": Kind.DATA_ENTITY, "team": Kind.TEAM}[
        node_id.split(":")[0]
    ]
    fields: dict[str, Any] = {
        "id": node_id,
        "kind": kind,
        "key": node_id.split(":", 1)[1],
        "name": f"Node {node_id}",
        "description": None,
        "tags": (),
        "lifecycle": Lifecycle.ACTIVE,
        "owner": None,
        "properties": None,
        "attributes": (),
        "version": 1,
        "created_at": now,
        "updated_at": now,
    }
    fields.update(extra)
    return NodeRecord(**fields)


def _document(count: int) -> str:
    """``count`` systems in a DEPENDS_ON chain, each owned by one team, with tags/properties."""
    lines = ["nodes:", "  - {id: team:t, name: Team}"]
    for i in range(count):
        lines.append(
            f"  - {{id: system:s{i}, name: System {i}, owner: team:t, tags: [a, b{i % 3}],"
            f" properties: {{n: {i}, note: 'é\\u00e9'}}}}"
        )
    lines.append("relations:")
    for i in range(count - 1):
        props = f", properties: {{w: {i}}}" if i % 2 else ""
        lines.append(f"  - {{from: system:s{i}, type: DEPENDS_ON, to: system:s{i + 1}{props}}}")
    return "\n".join(lines) + "\n"


async def _raw(store: Store, sql: str) -> list[tuple[Any, ...]]:
    async with store.engine.connect() as conn:
        return [tuple(r) for r in await conn.exec_driver_sql(sql)]


async def test_insert_rows_stores_what_a_core_insert_stores(db_url: str) -> None:
    """Same values, same encoding: JSON text (None as JSON null), timestamps, tags."""
    recs = [
        _node("team:t"),
        _node(
            "system:a",
            owner="team:t",
            tags=("x", "y"),
            properties={"k": [1, 2.5, None, "é"], "nested": {"deep": True}},
            description="Some text",
        ),
        _node("entity:e", attributes=({"name": "email", "classification": "PII"},)),
    ]
    rels = [
        RelationRecord("team:t", RelationType.OWNS, "system:a"),
        RelationRecord("system:a", RelationType.MASTERS, "entity:e", {"matchKey": "email"}),
    ]
    store = await Store.open(db_url)
    try:
        async with store.transaction() as tx:
            await tx.insert_nodes(recs)
            await tx.insert_relations(rels)
        bulk_nodes = await _raw(store, "SELECT * FROM nodes ORDER BY id")
        bulk_tags = await _raw(store, "SELECT * FROM node_tags ORDER BY node_id, tag")
        bulk_rels = await _raw(store, "SELECT * FROM relations ORDER BY id")
        async with store.engine.begin() as conn:
            for table in (history, relations, node_tags):
                await conn.execute(table.delete())
            await conn.execute(text("DELETE FROM nodes WHERE owner_id IS NOT NULL"))
            await conn.execute(nodes.delete())
        # The same rows through SQLAlchemy's own executemany, for reference.
        async with store.transaction() as tx:
            await tx.conn.execute(insert(nodes), [_node_values(r) for r in recs])
            tags = [{"node_id": r.id, "tag": t} for r in recs for t in r.tags]
            await tx.conn.execute(insert(node_tags), tags)
            await tx.conn.execute(
                insert(relations),
                [
                    {
                        "from_id": r.from_id,
                        "type": r.type.value,
                        "to_id": r.to_id,
                        "properties": r.properties,
                    }
                    for r in rels
                ],
            )
        core_nodes = await _raw(store, "SELECT * FROM nodes ORDER BY id")
        assert bulk_nodes == core_nodes
        assert bulk_tags == await _raw(store, "SELECT * FROM node_tags ORDER BY node_id, tag")
        core_rels = await _raw(store, "SELECT * FROM relations ORDER BY id")
        assert [r[1:] for r in bulk_rels] == [r[1:] for r in core_rels]  # ids differ
        async with store.read() as r:
            assert await r.get_nodes([x.id for x in recs]) == {x.id: x for x in recs}
            assert await r.all_relations() == rels
            assert [x.properties for x in await r.all_relations()] == [None, {"matchKey": "email"}]
    finally:
        await store.close()


async def test_bulk_apply_records_a_history_row_per_node_and_relation(settings: Settings) -> None:
    count = 300
    services = await WriteServices.start(settings)
    committed: list[Change] = []
    services.store.subscribe(committed.extend)
    try:
        report = await services.registry.apply_document(parse_document(_document(count)))
        assert len(report.added) == count + 1 and report.relations_added == count - 1
        async with services.store.read() as r:
            rows = (await r.conn.execute(select(history).order_by(history.c.id))).all()
            stored = await r.get_nodes(report.added)
        assert len(rows) == 2 * count
        assert {row.target_id for row in rows if row.target == "node"} == set(report.added)
        rel_ids = {f"system:s{i}|DEPENDS_ON|system:s{i + 1}" for i in range(count - 1)}
        assert {row.target_id for row in rows if row.target == "relation"} == rel_ids
        assert all(row.op == "create" and row.before is None for row in rows)
        # Each snapshot is the stored node; relations carry their properties.
        for row in rows:
            if row.target == "node":
                assert row.after == node_snapshot(stored[row.target_id])
            elif row.target_id == "system:s1|DEPENDS_ON|system:s2":
                assert row.after == {
                    "from": "system:s1",
                    "type": "DEPENDS_ON",
                    "to": "system:s2",
                    "properties": {"w": 1},
                }
        # One timestamp for the whole transaction; listeners got the rows' own ids, in order.
        assert len({row.at for row in rows}) == 1
        assert [c.id for c in committed] == [row.id for row in rows]
        assert [c.target_id for c in committed] == [row.target_id for row in rows]
        assert [row.id for row in rows] == sorted({row.id for row in rows})

        # A second write continues the change log after the first.
        text_v2 = _document(count).replace("name: System 7,", "name: System seven,")
        again = await services.registry.apply_document(parse_document(text_v2))
        assert again.updated == ["system:s7"] and len(again.unchanged) == count
        async with services.store.read() as r:
            latest = await r.changes_since(rows[-1].id)
        assert [(c.target_id, c.op) for c in latest] == [("system:s7", "update")]
        assert latest[0].before is not None and latest[0].before["name"] == "System 7"
        assert latest[0].after is not None and latest[0].after["name"] == "System seven"
        assert committed[-1].id == latest[0].id
    finally:
        await services.close()


async def test_bulk_apply_matches_the_search_index(services: Services) -> None:
    """What the index holds after a bulk apply is what a full rebuild writes."""
    await services.registry.apply_document(parse_document(_document(120)))
    page = await services.search.search("system 17", first=3)
    assert page.hits and page.hits[0].node.id == "system:s17"
    before = await _docs(services)
    await services.search.rebuild()
    assert await _docs(services) == before


async def _docs(services: Services) -> list[tuple[Any, ...]]:
    rows = await _raw(
        services.store,
        "SELECT node_id, kind, lifecycle, owner_id, name_norm, key_norm, leaf_norm, "
        "related_names, tag_list, domain_list FROM search_docs ORDER BY node_id",
    )
    return rows


async def test_a_failure_mid_write_leaves_nothing(db_url: str) -> None:
    """Nodes are in when the relation insert fails (a missing end): everything rolls back."""
    store = await Store.open(db_url)
    seen: list[object] = []
    store.subscribe(seen.append)
    try:
        with pytest.raises(IntegrityError):
            async with store.transaction() as tx:
                await tx.insert_nodes([_node(f"system:n{i}") for i in range(50)])
                await tx.insert_relations(
                    [
                        RelationRecord("system:n0", RelationType.DEPENDS_ON, "system:n1"),
                        RelationRecord("system:n1", RelationType.DEPENDS_ON, "system:ghost"),
                    ]
                )
        assert seen == []
        for table in ("nodes", "node_tags", "relations", "history", "search_docs"):
            if table == "search_docs":
                continue  # the index hook never ran (no Search attached here)
            assert await _raw(store, f"SELECT count(*) FROM {table}") == [(0,)]
        async with store.read() as r:
            assert await r.last_change_id() == 0
    finally:
        await store.close()


async def test_a_failure_in_the_history_write_rolls_back_the_apply(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last write of the transaction failing (history) takes nodes, relations and index
    documents with it."""
    services = await WriteServices.start(settings)
    try:
        original = Writer.insert_rows

        async def failing(self: Writer, table: Any, rows: Sequence[dict[str, Any]]) -> None:
            if table is history:
                await original(self, table, rows[: len(rows) // 2])
                raise RuntimeError("disk full")
            await original(self, table, rows)

        monkeypatch.setattr(Writer, "insert_rows", failing)
        with pytest.raises(RuntimeError, match="disk full"):
            await services.registry.apply_document(parse_document(_document(40)))
        monkeypatch.undo()
        for table in ("nodes", "node_tags", "relations", "history", "search_docs"):
            assert await _raw(services.store, f"SELECT count(*) FROM {table}") == [(0,)]
        # And the store still works: the same document applies cleanly afterwards.
        report = await services.registry.apply_document(parse_document(_document(40)))
        assert len(report.added) == 41
        async with services.store.read() as r:
            count = (await r.conn.execute(select(func.count()).select_from(history))).scalar()
        assert count == 41 + 39
    finally:
        await services.close()


async def test_a_refused_document_writes_nothing_in_bulk(services: Services) -> None:
    """A missing node referenced at the very end of a large document: nothing is written."""
    text_doc = _document(200) + "  - {from: system:s3, type: DEPENDS_ON, to: system:nope}\n"
    with pytest.raises(NotFoundError, match=r"relations\[199\]\.to"):
        await services.registry.apply_document(parse_document(text_doc))
    assert await _raw(services.store, "SELECT count(*) FROM nodes") == [(0,)]
    assert await _raw(services.store, "SELECT count(*) FROM history") == [(0,)]
