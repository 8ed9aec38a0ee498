"""A real `capahub serve` with auth on: tokens made and revoked by the CLI in another process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.serving import capahub_serve

QUERY = {"query": '{ node(id: "system:crm") { id } }'}


def _cli(*args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "catalog.cli", *args], capture_output=True, text=True, check=True
    )
    return out.stdout


def test_cli_tokens_take_effect_on_a_running_hub_within_the_sync_interval(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'catalog.db'}"
    env = {
        **os.environ,
        "CAPAHUB_AUTH": "on",
        "CAPAHUB_DATABASE_URL": db,
        "CAPAHUB_ACCESS_LOG": "false",
    }
    with capahub_serve(tmp_path, "--demo", env=env) as served:
        url = f"{served.base}/graphql"
        assert httpx.post(url, json=QUERY, trust_env=False).status_code == 401
        token = _cli("token", "create", "--name", "ci", "--role", "viewer", "--database", db)
        token = token.strip().splitlines()[-1]
        headers = {"Authorization": f"Bearer {token}"}
        ok = httpx.post(url, json=QUERY, headers=headers, trust_env=False)
        assert ok.status_code == 200 and ok.json()["data"]["node"]["id"] == "system:crm"
        _cli("token", "revoke", "ci", "--database", db)
        revoked_at = time.monotonic()
        while httpx.post(url, json=QUERY, headers=headers, trust_env=False).status_code == 200:
            assert time.monotonic() - revoked_at < 3.0, "revocation not seen within the interval"
            time.sleep(0.05)
        took = time.monotonic() - revoked_at
        assert took <= 2.0  # CAPAHUB_SYNC_INTERVAL is 1 s
        assert token not in served.output()
