"""``catalogChanged`` on PostgreSQL: two ``capahub serve`` on one database and ``capahub apply``,
woken by LISTEN/NOTIFY rather than a poll."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.changes.ws import acked, cli, events, quiet, serve_env, subscribe, upsert, write_catalog
from tests.conftest import PG_URL, _fresh_pg_database
from tests.serving import capahub_serve

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_url() -> str:
    if not PG_URL:
        pytest.skip("CAPAHUB_TEST_DATABASE_URL is not set (.ci/run starts a PostgreSQL)")
    return _fresh_pg_database()


async def test_events_from_another_replica_and_from_apply_arrive_at_once(
    pg_url: str, tmp_path: Path
) -> None:
    # A long sync interval: only NOTIFY can bring other processes' changes quickly.
    env = serve_env(pg_url, sync_interval="30", subscription_poll_interval="30")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with (
        capahub_serve(tmp_path / "a", env=env) as a,
        capahub_serve(tmp_path / "b", env=env) as b,
    ):
        ws = await acked(a.base)
        await subscribe(ws, "1")
        await asyncio.sleep(0.5)
        started = time.monotonic()
        upsert(b.base, "system:crm", "CRM")  # written by the other replica
        (event,) = await events(ws, 1, timeout=10)
        assert event["targetId"] == "system:crm"
        assert time.monotonic() - started < 3  # not the 30 s poll
        doc = write_catalog(tmp_path / "d.json", [("system:erp", "ERP"), ("system:cdp", "CDP")])
        cli("apply", str(doc), "--database", pg_url)
        got = await events(ws, 2, timeout=10)
        assert sorted(e["targetId"] for e in got) == ["system:cdp", "system:erp"]
        upsert(a.base, "system:own", "Own")
        (own,) = await events(ws, 1)
        assert own["targetId"] == "system:own"
        versions = [event["version"], *(e["version"] for e in got), own["version"]]
        assert versions == sorted(set(versions))
        assert await quiet(ws, 0.5) == []
        await ws.close()
        # Resume on replica b from the first event: the rest, nothing twice.
        ws = await acked(b.base)
        await subscribe(ws, "2", after=event["version"])
        resumed = await events(ws, 3)
        assert [e["version"] for e in resumed] == versions[1:]
        assert await quiet(ws, 0.5) == []
        await ws.close()
