"""``catalogChanged`` with access control on: tokens made by ``capahub token create``."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from types import SimpleNamespace

from catalog.access.principal import Principal
from resolvers import build_schema
from tests.changes.ws import acked, cli, closed, connect, events, serve_env, subscribe, upsert
from tests.serving import capahub_serve


def _token(db: str, name: str, role: str) -> str:
    out = cli("token", "create", "--name", name, "--role", role, "--database", db)
    return out.strip().splitlines()[-1]


async def test_auth_at_connect_and_while_connected(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'catalog.db'}"
    env = serve_env(db, auth="on")
    with capahub_serve(tmp_path, env=env) as served:
        viewer = _token(db, "viewer", "viewer")
        admin = _token(db, "admin", "admin")
        # Anonymous: refused at connection_init, 4401 with the reason.
        ws = await connect(served.base)
        code, reason = await closed(ws)
        assert code == 4401 and "token" in reason
        # A wrong token: 4401.
        ws = await connect(served.base, payload={"Authorization": "Bearer chub_" + "x" * 43})
        assert (await closed(ws))[0] == 4401
        # The viewer, in the payload (what browsers can send) ...
        ws = await acked(served.base, payload={"Authorization": f"Bearer {viewer}"})
        await subscribe(ws, "1")
        # ... and in the upgrade request's header.
        ws2 = await acked(served.base, headers={"Authorization": f"Bearer {viewer}"})
        await subscribe(ws2, "1", kinds=["SYSTEM"])
        await asyncio.sleep(0.3)
        upsert(served.base, "system:crm", "CRM", token=admin)
        (event,) = await events(ws, 1)
        assert event["targetId"] == "system:crm" and event["actor"] == "token:admin"
        assert (await events(ws2, 1))[0]["targetId"] == "system:crm"
        # Revoked by another process: both connections are closed within the sync interval.
        cli("token", "revoke", "viewer", "--database", db)
        started = time.monotonic()
        assert (await closed(ws, timeout=10))[0] == 4401
        assert (await closed(ws2, timeout=10))[0] == 4401
        assert time.monotonic() - started < 5
        assert viewer not in served.output()


async def test_a_caller_without_a_role_is_forbidden(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'catalog.db'}"
    env = serve_env(db, auth="on", auth_anonymous_role="viewer")
    with capahub_serve(tmp_path, env=env) as served:
        # The anonymous role lets a connection without a token in.
        ws = await acked(served.base)
        await subscribe(ws, "1")
        await asyncio.sleep(0.3)
        admin = _token(db, "admin", "admin")
        upsert(served.base, "team:web", "Web", token=admin)
        assert (await events(ws, 1))[0]["targetId"] == "team:web"
        await ws.close()


async def test_the_permission_table_refuses_a_caller_without_a_role() -> None:
    schema = build_schema()
    context = SimpleNamespace(principal=Principal(actor="user:nobody", role=None))
    stream = await schema.subscribe(
        "subscription { catalogChanged { version } }", context_value=context
    )
    results = [r async for r in stream]
    errors = results[0].errors or []
    assert [(e.extensions or {})["code"] for e in errors] == ["FORBIDDEN"]
    assert "Subscription.catalogChanged" in errors[0].message
