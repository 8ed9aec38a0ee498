"""Token storage: the api_tokens table, its migration and the functions of metadata/tokens.py.

Not named test_tokens.py: tests/catalog/access/ has one, and test basenames must be unique.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, inspect, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import create_async_engine

from metadata.store import _MIGRATIONS, Store, _head_revision, normalize_url
from metadata.tokens import (
    TokenRecord,
    insert_token,
    list_tokens,
    record_last_used,
    revoke_token,
    token_by_hash,
    token_by_name,
)

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _token(name: str, *, digest: str | None = None, **changes: Any) -> TokenRecord:
    values: dict[str, Any] = {
        "name": name,
        "token_hash": digest or (name.encode().hex() * 64)[:64],
        "role": "editor",
        "teams": ("team:a", "team:b"),
        "rights": ("records",),
        "created_at": T0,
        "created_by": "local:ada",
        "expires_at": T0 + timedelta(days=90),
    }
    values.update(changes)
    return TokenRecord(**values)


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Store]:
    """A migrated, empty catalog store."""
    s = await Store.open(db_url)
    try:
        yield s
    finally:
        await s.close()


async def test_migration_creates_the_token_table_and_history_columns(store: Store) -> None:
    async with store.engine.connect() as conn:

        def shape(c: Connection) -> tuple[set[str], set[str], set[str]]:
            insp = inspect(c)
            tokens = {col["name"] for col in insp.get_columns("api_tokens")}
            hist = {col["name"] for col in insp.get_columns("history")}
            uniques = {
                col
                for uc in insp.get_unique_constraints("api_tokens")
                for col in uc["column_names"]
            }
            return tokens, hist, uniques

        tokens, hist, uniques = await conn.run_sync(shape)
    assert tokens == {
        "name",
        "token_hash",
        "role",
        "teams",
        "rights",
        "created_at",
        "created_by",
        "expires_at",
        "revoked_at",
        "last_used_at",
    }
    assert {"actor", "request_id"} <= hist
    assert uniques == {"token_hash"}


async def test_a_database_at_0003_upgrades_and_keeps_its_history(db_url: str) -> None:
    from alembic import command
    from alembic.config import Config

    def upgrade_to(revision: str) -> Callable[[Connection], None]:
        def run(sync_conn: Connection) -> None:
            cfg = Config()
            cfg.set_main_option("script_location", str(_MIGRATIONS))
            cfg.attributes["connection"] = sync_conn
            command.upgrade(cfg, revision)

        return run

    engine = create_async_engine(normalize_url(db_url))
    try:
        async with engine.begin() as conn:
            await conn.run_sync(upgrade_to("0003"))
            await conn.execute(
                text(
                    "INSERT INTO history (id, at, target, target_id, op) "
                    "VALUES (1, :at, 'node', 'system:a', 'create')"
                ),
                {"at": T0},
            )
    finally:
        await engine.dispose()
    store = await Store.open(db_url)
    try:
        async with store.read() as reader:
            [change] = await reader.changes_since(0)
            row = (await reader.conn.execute(text("SELECT actor, request_id FROM history"))).one()
            version = await reader.conn.execute(text("SELECT version_num FROM alembic_version"))
            assert await list_tokens(reader.conn) == []
        assert change.target_id == "system:a"
        assert tuple(row) == (None, None)
        assert version.scalars().all() == [_head_revision()]
    finally:
        await store.close()


async def test_insert_then_read_by_hash_and_by_name(store: Store) -> None:
    rec = _token("ci")
    async with store.transaction() as tx:
        await insert_token(tx.conn, rec)
    async with store.read() as reader:
        by_hash = await token_by_hash(reader.conn, rec.token_hash)
        by_name = await token_by_name(reader.conn, "ci")
        assert await token_by_hash(reader.conn, "0" * 64) is None
        assert await token_by_name(reader.conn, "cd") is None
    assert by_hash == by_name == rec
    assert by_hash is not None and by_hash.created_at.tzinfo is not None
    # Tokens are no catalog nodes: nothing reached the change log.
    async with store.read() as reader:
        assert await reader.last_change_id() == 0


async def test_a_token_hash_is_unique(store: Store) -> None:
    async with store.transaction() as tx:
        await insert_token(tx.conn, _token("a", digest="ab" * 32))
    with pytest.raises(IntegrityError):
        async with store.transaction() as tx:
            await insert_token(tx.conn, _token("b", digest="ab" * 32))
    async with store.read() as reader:
        assert [t.name for t in await list_tokens(reader.conn)] == ["a"]


async def test_list_orders_by_name_and_keeps_revoked_tokens(store: Store) -> None:
    async with store.transaction() as tx:
        for name in ("zeta", "alpha", "mid"):
            await insert_token(tx.conn, _token(name))
        assert await revoke_token(tx.conn, "mid", T0)
    async with store.read() as reader:
        listed = await list_tokens(reader.conn)
    assert [t.name for t in listed] == ["alpha", "mid", "zeta"]
    assert [t.status(T0) for t in listed] == ["active", "revoked", "active"]


async def test_revoke_says_whether_the_token_existed_and_was_active(store: Store) -> None:
    async with store.transaction() as tx:
        await insert_token(tx.conn, _token("ci"))
    async with store.transaction() as tx:
        assert await revoke_token(tx.conn, "ci", T0 + timedelta(hours=1)) is True
        assert await revoke_token(tx.conn, "ci", T0 + timedelta(hours=2)) is False
        assert await revoke_token(tx.conn, "nope", T0) is False
    async with store.read() as reader:
        rec = await token_by_name(reader.conn, "ci")
    assert rec is not None and rec.revoked_at == T0 + timedelta(hours=1)


def test_status_prefers_revoked_to_expired() -> None:
    rec = _token("ci", expires_at=T0 + timedelta(minutes=1))
    assert rec.status(T0) == "active"
    assert rec.status(T0 + timedelta(minutes=1)) == "expired"
    assert _token("ci", revoked_at=T0).status(T0 + timedelta(days=999)) == "revoked"
    assert _token("ci", expires_at=None).status(T0 + timedelta(days=9999)) == "active"


async def test_record_last_used_is_one_statement_and_never_goes_back(
    store: Store, count_statements: Callable[[Any], Any]
) -> None:
    async with store.transaction() as tx:
        await insert_token(tx.conn, _token("fresh"))
        await insert_token(tx.conn, _token("stale", last_used_at=T0))
        await insert_token(tx.conn, _token("recent", last_used_at=T0 + timedelta(minutes=9)))
        await insert_token(tx.conn, _token("later", last_used_at=T0 + timedelta(minutes=20)))
    now = T0 + timedelta(minutes=10)
    used = {name: now - timedelta(seconds=5) for name in ("fresh", "stale", "recent", "later")}
    used["ghost"] = now  # no such token: nothing to update
    counter = count_statements(store.engine)
    async with store.engine.begin() as conn:
        await record_last_used(conn, used, unless_since=now - timedelta(seconds=60))
    assert counter.count == 1
    async with store.read() as reader:
        stored = {t.name: t.last_used_at for t in await list_tokens(reader.conn)}
    assert stored == {
        "fresh": now - timedelta(seconds=5),
        "stale": now - timedelta(seconds=5),
        "recent": T0 + timedelta(minutes=9),  # written less than a minute ago
        "later": T0 + timedelta(minutes=20),  # never moved backwards
    }
    counter.count = 0
    async with store.engine.begin() as conn:
        await record_last_used(conn, {}, unless_since=now)
    assert counter.count == 0
