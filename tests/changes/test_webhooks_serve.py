"""Webhooks from a real ``capahub serve``: admin only (auth on, tokens from ``capahub token
create``), changes from ``capahub apply`` in another process delivered, and a ``kill -9`` with
deliveries pending loses no event (the receiver deduplicates by ``webhook-id``)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.changes.test_webhooks import Receiver
from tests.serving import capahub_serve


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def _cli(*args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "catalog.cli", *args], capture_output=True, text=True, check=True
    )
    return out.stdout


def _post(base: str, token: str | None, query: str, variables: dict[str, Any] | None = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    resp = httpx.post(
        f"{base}/graphql",
        json={"query": query, "variables": variables or {}},
        headers=headers,
        trust_env=False,
        timeout=30,
    )
    return resp


REGISTER = "mutation($u: String!) { registerWebhook(input: {url: $u}) { secret webhook { id } } }"
UPSERT = 'mutation($id: ID!) { upsertNode(input: {id: $id, name: "n"}) { id } }'


def test_kill_9_with_deliveries_pending_loses_no_event(
    tmp_path: Path, db_url: str, receiver: Receiver
) -> None:
    admin = _cli("token", "create", "--name", "ops", "--role", "admin", "--database", db_url)
    admin = admin.strip().splitlines()[-1]
    editor = _cli("token", "create", "--name", "ed", "--role", "editor", "--database", db_url)
    editor = editor.strip().splitlines()[-1]
    env = {
        **os.environ,
        "CAPAHUB_AUTH": "on",
        "CAPAHUB_DATABASE_URL": db_url,
        "CAPAHUB_ACCESS_LOG": "false",
        "CAPAHUB_HARVEST_ALLOWED_HOSTS": "127.0.0.1",
        "CAPAHUB_WEBHOOK_TIMEOUT": "1",
        "CAPAHUB_WEBHOOK_RETRY_BASE": "0.2",
        "CAPAHUB_WEBHOOK_RETRY_MAX_DELAY": "0.5",
        "CAPAHUB_WEBHOOK_POLL_INTERVAL": "0.1",
    }
    receiver.always["/k"] = "500"
    url = receiver.url("/k")
    with capahub_serve(tmp_path, env=env, log_name="serve1.log") as served:
        base = served.base
        # Not an admin: refused, nothing written.
        assert _post(base, None, REGISTER, {"u": url}).status_code == 401
        for query, variables in ((REGISTER, {"u": url}), ("{ webhooks { id } }", None)):
            body = _post(base, editor, query, variables).json()
            assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN", body
        assert _post(base, admin, "{ webhooks { id } }").json()["data"] == {"webhooks": []}
        reg = _post(base, admin, REGISTER, {"u": url}).json()["data"]["registerWebhook"]
        secret = reg["secret"]
        for i in range(10):
            assert "errors" not in _post(base, admin, UPSERT, {"id": f"system:k{i}"}).json()
        deadline = time.monotonic() + 20
        while len(receiver.received) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert receiver.received, "the hub tried no delivery"
        served.process.kill()  # kill -9, deliveries pending (the receiver answered 500)
        served.process.wait()
    # Written by another process while no hub runs.
    doc = tmp_path / "more.yaml"
    doc.write_text("nodes:\n" + "".join(f"  - {{id: 'system:a{i}', name: A}}\n" for i in range(3)))
    _cli("apply", str(doc), "--database", db_url)
    receiver.always["/k"] = "ok"
    expected = {f"system:k{i}" for i in range(10)} | {f"system:a{i}" for i in range(3)}
    with capahub_serve(tmp_path, env=env, log_name="serve2.log") as served:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            events = receiver.delivered("/k", secret)  # verified, deduplicated by webhook-id
            if {e["data"]["id"] for e in events} >= expected:
                break
            time.sleep(0.1)
        events = receiver.delivered("/k", secret)
        got = [e["data"]["id"] for e in events]
        assert set(got) == expected, served.output()[-2000:]
        assert len(got) == len(expected)  # one event per change once deduplicated
        changes = [e["data"]["changeId"] for e in events]
        assert changes == sorted(changes)  # in change order
        assert {e["data"]["actor"] for e in events if e["data"]["id"].startswith("system:k")} == {
            "token:ops"
        }
        log = _post(
            served.base,
            admin,
            "query($w: ID!) { webhookDeliveries(webhook: $w, first: 50) { edges { node { status } } } }",
            {"w": reg["webhook"]["id"]},
        ).json()["data"]["webhookDeliveries"]["edges"]
        assert len(log) == 13 and {e["node"]["status"] for e in log} == {"DELIVERED"}
