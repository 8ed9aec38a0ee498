"""The reference client, npm ``graphql-ws`` under node, against a real ``capahub serve``."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.changes.ws import cli, serve_env, upsert, write_catalog, ws_url
from tests.serving import capahub_serve

CLIENT = Path(__file__).with_name("ws_client.mjs")
ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or not (ROOT / "node_modules" / "graphql-ws").is_dir(),
    reason="needs node and npm install (graphql-ws)",
)


def _start(
    base: str, count: int, variables: dict[str, Any], token: str = ""
) -> subprocess.Popen[str]:
    args = [str(CLIENT), ws_url(base), str(count), json.dumps(variables)]
    if token:
        args.append(token)
    proc = subprocess.Popen(
        ["node", "--experimental-websocket", "--no-warnings", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    first = json.loads(proc.stdout.readline() or "null")
    assert first == {"connected": True} or "error" in (first or {}) or "closed" in (first or {}), (
        first
    )
    proc.first = first  # type: ignore[attr-defined]
    return proc


def _lines(proc: subprocess.Popen[str]) -> list[dict[str, Any]]:
    out, err = proc.communicate(timeout=40)
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_graphql_ws_client_receives_events_and_resumes(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'catalog.db'}"
    with capahub_serve(tmp_path, env=serve_env(db)) as served:
        proc = _start(served.base, 3, {})
        time.sleep(0.5)  # the subscribe message follows the ack
        upsert(served.base, "system:crm", "CRM")
        doc = write_catalog(tmp_path / "d.json", [("system:erp", "ERP"), ("system:cdp", "CDP")])
        cli("apply", str(doc), "--database", db)
        lines = _lines(proc)
        events = [line["event"] for line in lines if "event" in line]
        assert [e["targetId"] for e in events][0] == "system:crm"
        assert sorted(e["targetId"] for e in events[1:]) == ["system:cdp", "system:erp"]
        assert proc.returncode == 0, lines
        # Resume after the first: the other two, nothing twice.
        proc = _start(served.base, 2, {"after": events[0]["version"]})
        again = [line["event"] for line in _lines(proc) if "event" in line]
        assert [e["version"] for e in again] == [e["version"] for e in events[1:]]
        # A bad argument: the client's error callback gets the coded GraphQL errors.
        proc = _start(served.base, 1, {"after": 10**6})
        lines = _lines(proc)
        (error,) = [line["error"] for line in lines if "error" in line]
        assert error[0]["extensions"]["code"] == "BAD_USER_INPUT"


def test_graphql_ws_client_is_refused_without_a_token(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'catalog.db'}"
    with capahub_serve(tmp_path, env=serve_env(db, auth="on")) as served:
        proc = _start(served.base, 1, {})
        lines = [proc.first, *_lines(proc)]  # type: ignore[attr-defined]
        assert any(line.get("closed") == 4401 for line in lines), lines
        token = cli("token", "create", "--name", "v", "--role", "viewer", "--database", db)
        proc = _start(served.base, 1, {}, token.strip().splitlines()[-1])
        assert proc.first == {"connected": True}  # type: ignore[attr-defined]
        admin = cli("token", "create", "--name", "a", "--role", "admin", "--database", db)
        time.sleep(0.5)
        upsert(served.base, "system:crm", "CRM", token=admin.strip().splitlines()[-1])
        events = [line["event"] for line in _lines(proc) if "event" in line]
        assert [e["targetId"] for e in events] == ["system:crm"]
