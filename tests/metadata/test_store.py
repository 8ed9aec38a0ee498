"""The store: migrations, WAL, recorded history, rollback."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import inspect

from metadata.model import Kind, Lifecycle, NodeRecord, RelationRecord, RelationType
from metadata.store import Store, normalize_url


def _node(node_id: str, kind: Kind, name: str = "x") -> NodeRecord:
    now = datetime.now(UTC)
    return NodeRecord(
        id=node_id,
        kind=kind,
        key=node_id.split(":", 1)[1],
        name=name,
        description=None,
        tags=("a",),
        lifecycle=Lifecycle.ACTIVE,
        owner=None,
        properties=None,
        attributes=(),
        version=1,
        created_at=now,
        updated_at=now,
    )


def test_normalize_url_picks_async_drivers() -> None:
    assert normalize_url("sqlite:///x.db") == "sqlite+aiosqlite:///x.db"
    assert normalize_url("postgresql://u:p@h/db") == "postgresql+asyncpg://u:p@h/db"
    assert normalize_url("sqlite+aiosqlite:///x.db") == "sqlite+aiosqlite:///x.db"


async def test_open_migrates_an_empty_database(db_url: str) -> None:
    store = await Store.open(db_url)
    try:
        async with store.engine.connect() as conn:
            names = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        assert {"nodes", "relations", "history", "node_tags", "alembic_version"} <= names
        # Opening again is a no-op migration.
        await (await Store.open(db_url)).close()
    finally:
        await store.close()


async def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    store = await Store.open(f"sqlite:///{tmp_path / 'w.db'}")
    try:
        async with store.engine.connect() as conn:
            mode = (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar()
        assert mode == "wal"
    finally:
        await store.close()


async def test_transaction_records_history_and_notifies(db_url: str) -> None:
    store = await Store.open(db_url)
    seen: list[str] = []
    store.subscribe(lambda changes: seen.extend(c.target_id for c in changes))
    try:
        async with store.transaction() as tx:
            await tx.insert_nodes([_node("system:a", Kind.SYSTEM), _node("system:b", Kind.SYSTEM)])
            await tx.insert_relations(
                [RelationRecord("system:a", RelationType.DEPENDS_ON, "system:b")]
            )
        assert seen == ["system:a", "system:b", "system:a|DEPENDS_ON|system:b"]
        async with store.read() as r:
            hist = await r.history_of("system:a", limit=10)
            assert [h.op for h in hist] == ["create"]
            assert hist[0].before is None and hist[0].after is not None
            assert hist[0].after["name"] == "x"
            assert await r.last_change_id() == 3
    finally:
        await store.close()


async def test_failed_transaction_writes_nothing(db_url: str) -> None:
    store = await Store.open(db_url)
    seen: list[object] = []
    store.subscribe(seen.append)
    try:
        with pytest.raises(RuntimeError):
            async with store.transaction() as tx:
                await tx.insert_nodes([_node("system:a", Kind.SYSTEM)])
                raise RuntimeError("boom")
        async with store.read() as r:
            assert await r.get_nodes(["system:a"]) == {}
            assert await r.last_change_id() == 0
        assert seen == []
    finally:
        await store.close()


async def test_tags_filter_uses_the_tag_table(db_url: str) -> None:
    from metadata.store import NodeFilter

    store = await Store.open(db_url)
    try:
        async with store.transaction() as tx:
            await tx.insert_nodes(
                [_node("system:a", Kind.SYSTEM), _node("entity:b", Kind.DATA_ENTITY)]
            )
        async with store.read() as r:
            assert await r.count_nodes(NodeFilter(tags=["a"])) == 2
            assert await r.count_nodes(NodeFilter(tags=["zzz"])) == 0
            assert await r.count_nodes(NodeFilter(kinds=[Kind.SYSTEM], tags=["a"])) == 1
    finally:
        await store.close()


async def test_last_change_id_now_follows_commits_of_any_connection(db_url: str) -> None:
    """The synchronous probe (SQLite files) sees every commit, including other processes'."""
    store = await Store.open(db_url)
    other = await Store.open(db_url, migrate=False)  # stands in for another process
    try:
        if store.dialect != "sqlite":
            assert store.last_change_id_now() is None
            return
        assert store.last_change_id_now() == 0
        async with other.transaction() as tx:
            await tx.insert_nodes([_node("system:a", Kind.SYSTEM)])
        assert store.last_change_id_now() == 1
        with pytest.raises(RuntimeError):
            async with other.transaction() as tx:
                await tx.insert_nodes([_node("system:b", Kind.SYSTEM)])
                raise RuntimeError("rolled back")
        assert store.last_change_id_now() == 1  # a rolled-back write is not a change
        async with store.read() as r:
            assert await r.last_change_id() == store.last_change_id_now()
    finally:
        await other.close()
        await store.close()


def test_head_revision_read_from_the_files_is_alembics() -> None:
    """``Store.open`` skips alembic when the database is at this head: it must be alembic's."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from metadata.store import _MIGRATIONS, _head_revision

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    assert _head_revision() == ScriptDirectory.from_config(cfg).get_current_head()


async def test_open_upgrades_a_database_behind_head(db_url: str) -> None:
    """A database at an older revision is still migrated (the at-head shortcut does not apply)."""
    from metadata.store import _head_revision

    store = await Store.open(db_url)
    try:
        async with store.engine.begin() as conn:
            await conn.exec_driver_sql("DROP INDEX ix_nodes_kind_id")
            await conn.exec_driver_sql("CREATE INDEX ix_nodes_kind ON nodes (kind)")
            # Undo 0006 and 0005 (history snapshots, webhooks).
            await conn.exec_driver_sql("DROP INDEX ix_history_at")
            await conn.exec_driver_sql("DROP TABLE history_snapshots")
            await conn.exec_driver_sql("DROP INDEX ix_webhook_deliveries_due")
            await conn.exec_driver_sql("DROP TABLE webhook_deliveries")
            await conn.exec_driver_sql("DROP TABLE webhooks")
            # Undo 0004 too (access: api_tokens and the history columns).
            await conn.exec_driver_sql("DROP TABLE api_tokens")
            await conn.exec_driver_sql("DROP INDEX ix_history_actor")
            await conn.exec_driver_sql("ALTER TABLE history DROP COLUMN actor")
            await conn.exec_driver_sql("ALTER TABLE history DROP COLUMN request_id")
            await conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0002'")
    finally:
        await store.close()
    store = await Store.open(db_url)
    try:
        async with store.engine.connect() as conn:
            indexes = await conn.run_sync(
                lambda c: {i["name"] for i in inspect(c).get_indexes("nodes")}
            )
            columns = await conn.run_sync(
                lambda c: {col["name"] for col in inspect(c).get_columns("history")}
            )
            tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
            version = (await conn.exec_driver_sql("SELECT version_num FROM alembic_version")).all()
        assert "ix_nodes_kind_id" in indexes and "ix_nodes_kind" not in indexes
        assert {"actor", "request_id"} <= columns and "api_tokens" in tables
        assert [tuple(v) for v in version] == [(_head_revision(),)]
    finally:
        await store.close()
