"""A write that meets a busy database waits ``write_wait`` and is then UNAVAILABLE, coded.

The write lock is held by another process (a raw SQLite ``BEGIN IMMEDIATE``, as ``capahub
apply`` takes it; on PostgreSQL the writers' advisory lock), by a writer of the same store, or
released within the wait; every kind of writer meets the same answer.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from catalog.access.tokens import HubTokens
from catalog.cli import app
from catalog.services import Services
from catalog.settings import Settings
from catalog.specs import parse_document
from metadata.errors import UnavailableError
from metadata.model import Kind, Lifecycle, NodeRecord
from metadata.store import Store
from resolvers import build_schema, make_context

WAIT = 0.4
HOLDER = textwrap.dedent(
    """
    import sqlite3, sys
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    print("locked", flush=True)
    sys.stdin.readline()
    conn.execute("ROLLBACK")
    """
)


@contextmanager
def locked_by_another_process(path: Path) -> Iterator[subprocess.Popen[str]]:
    """Hold the SQLite write lock of ``path`` in another process until the block ends."""
    with subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
            yield holder
        finally:
            if holder.poll() is None:
                release(holder)
            holder.wait(timeout=10)


def release(holder: subprocess.Popen[str]) -> None:
    """Let the holding process roll back (once)."""
    assert holder.stdin is not None
    if not holder.stdin.closed:
        holder.stdin.write("\n")
        holder.stdin.flush()
        holder.stdin.close()


def _node(node_id: str) -> NodeRecord:
    now = datetime.now(UTC)
    return NodeRecord(
        id=node_id,
        kind=Kind.SYSTEM,
        key=node_id.split(":", 1)[1],
        name="x",
        description=None,
        tags=(),
        lifecycle=Lifecycle.ACTIVE,
        owner=None,
        properties=None,
        attributes=(),
        version=1,
        created_at=now,
        updated_at=now,
    )


def _sqlite_path(url: str) -> Path:
    return Path(str(make_url(url).database))


@asynccontextmanager
async def pg_lock_held(url: str) -> AsyncIterator[None]:
    """Hold the writers' advisory lock from another session (stands in for another replica)."""
    engine = create_engine(make_url(url).set(drivername="postgresql+psycopg"))
    conn = engine.connect()
    conn.execute(text("SELECT pg_advisory_lock(7412)"))
    try:
        yield
    finally:
        conn.execute(text("SELECT pg_advisory_unlock(7412)"))
        conn.close()
        engine.dispose()


@asynccontextmanager
async def held(url: str) -> AsyncIterator[None]:
    """The database's write lock held elsewhere: another process (SQLite) or session (PG)."""
    if url.startswith("sqlite"):
        with locked_by_another_process(_sqlite_path(url)):
            yield
    else:
        async with pg_lock_held(url):
            yield


async def test_a_write_meeting_a_locked_database_is_unavailable_after_write_wait(
    db_url: str,
) -> None:
    store = await Store.open(db_url, write_wait=WAIT)
    try:
        async with held(db_url):
            started = time.monotonic()
            with pytest.raises(UnavailableError) as caught:
                async with store.transaction() as tx:
                    await tx.insert_nodes([_node("system:a")])
            waited = time.monotonic() - started
        assert WAIT * 0.8 <= waited < WAIT + 2, waited
        err = caught.value
        assert err.code == "UNAVAILABLE" and err.retry_after == 1
        assert "busy" in err.message and "retry in 1 s" in err.message
        async with store.read() as r:
            assert await r.get_nodes(["system:a"]) == {}
        # Free again: the same write goes through.
        async with store.transaction() as tx:
            await tx.insert_nodes([_node("system:a")])
        async with store.read() as r:
            assert list(await r.get_nodes(["system:a"])) == ["system:a"]
    finally:
        await store.close()


async def test_a_write_waits_for_a_lock_released_within_write_wait(sqlite_url: str) -> None:
    store = await Store.open(sqlite_url, write_wait=5.0)
    try:
        with locked_by_another_process(_sqlite_path(sqlite_url)) as holder:
            loop = asyncio.get_running_loop()
            loop.call_later(0.3, release, holder)
            started = time.monotonic()
            async with store.transaction() as tx:
                await tx.insert_nodes([_node("system:late")])
            assert 0.2 <= time.monotonic() - started < 4
        async with store.read() as r:
            assert list(await r.get_nodes(["system:late"])) == ["system:late"]
    finally:
        await store.close()


async def test_writers_of_one_store_wait_for_each_other_at_most_write_wait(db_url: str) -> None:
    store = await Store.open(db_url, write_wait=WAIT)
    try:
        entered = asyncio.Event()
        leave = asyncio.Event()

        async def long_write() -> None:
            async with store.transaction() as tx:
                await tx.insert_nodes([_node("system:long")])
                entered.set()
                await leave.wait()

        first = asyncio.create_task(long_write())
        await entered.wait()
        started = time.monotonic()
        with pytest.raises(UnavailableError):
            async with store.transaction() as tx:
                await tx.insert_nodes([_node("system:second")])
        assert WAIT * 0.8 <= time.monotonic() - started < WAIT + 2
        leave.set()
        await first
        # The lock was given back: the next write goes through at once.
        async with store.transaction() as tx:
            await tx.insert_nodes([_node("system:third")])
        async with store.read() as r:
            found = await r.get_nodes(["system:long", "system:second", "system:third"])
        assert sorted(found) == ["system:long", "system:third"]
    finally:
        await store.close()


async def test_every_writer_gets_unavailable_from_a_busy_database(db_url: str) -> None:
    """Mutations (GraphQL, coded with a retry hint), harvest registration and token admin."""
    settings = Settings(database_url=db_url, write_wait=WAIT, _env_file=None)  # type: ignore[call-arg]
    services = await Services.start(settings)
    schema = build_schema()
    try:
        await services.registry.apply_document(
            parse_document("nodes: [{id: system:crm, name: CRM}, {id: system:erp, name: ERP}]")
        )
        mutations = [
            'mutation { upsertNode(input: {id: "system:x", name: "X"}) { id } }',
            'mutation { registerCapability(input: {key: "c", name: "C"}) { id } }',
            'mutation { relate(input: {from: "system:crm", type: DEPENDS_ON, to: "system:erp"}) { type } }',
            'mutation { retire(id: "system:crm") { id } }',
            'mutation { applyCatalog(document: "nodes: [{id: system:y, name: Y}]") { added } }',
            'mutation { registerSource(input: {key: "s", name: "S", type: OPENAPI, location: "https://example.invalid/o.json", system: "system:crm"}) { id } }',
        ]
        async with held(db_url):
            for query in mutations:
                result = await schema.execute(query, context_value=make_context(services))
                assert result.errors, query
                error = result.errors[0]
                assert error.extensions == {"code": "UNAVAILABLE", "retryAfter": 1}, (
                    query,
                    error,
                )
                assert "retry in 1 s" in error.message
            tokens = HubTokens(services.store)
            with pytest.raises(UnavailableError):
                await tokens.create("ci", "viewer", created_by="tests")
        async with services.store.read() as r:
            assert await r.get_nodes(["system:x", "system:y", "capability:c", "source:s"]) == {}
            assert (await r.get_nodes(["system:crm"]))["system:crm"].lifecycle is Lifecycle.ACTIVE
    finally:
        await services.close()


def test_capahub_apply_meeting_a_locked_database_says_so_in_one_line(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    url = f"sqlite:///{db}"
    doc = tmp_path / "d.yaml"
    doc.write_text("nodes: [{id: system:a, name: A}]\n")
    runner = CliRunner()
    assert runner.invoke(app, ["apply", str(doc), "--database", url]).exit_code == 0
    doc.write_text("nodes: [{id: system:b, name: B}]\n")
    with locked_by_another_process(db):
        result = runner.invoke(
            app, ["apply", str(doc), "--database", url], env={"CAPAHUB_WRITE_WAIT": str(WAIT)}
        )
    assert result.exit_code == 1, result.output
    assert "busy" in result.output and "retry in 1 s" in result.output
    # progress lines (stderr, not a terminal) come first; the refusal is one line
    assert "Traceback" not in result.output
    assert "busy" in result.output.strip().splitlines()[-1]
