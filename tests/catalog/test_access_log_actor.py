"""The access log names the caller (``token:NAME``, ``user:SUB``, ``anonymous``), never the
credential: real requests to a real ``capahub serve``, auth on (JSON lines) and off (text)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from catalog.access_log import access_line, actor_of
from catalog.logs import json_access_line
from tests.serving import Served, capahub_serve

QUERY = {"query": "query Count { systems { totalCount } }"}


def _lines(served: Served, wanted: int, match: str) -> list[str]:
    """The server's output lines containing ``match``, once there are ``wanted`` of them
    (access lines are written in batches, at most 0.5 s late)."""
    deadline = time.monotonic() + 10
    while True:
        found = [line for line in served.output().splitlines() if match in line]
        if len(found) >= wanted or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def _by_request(served: Served, ids: list[str]) -> dict[str, dict[str, Any]]:
    lines = _lines(served, len(ids), '"capahub.access"')
    entries = [json.loads(line) for line in lines]
    got = {e["request_id"]: e for e in entries if e.get("request_id") in ids}
    assert set(got) == set(ids), served.output()
    return got


def test_with_auth_on_json_access_lines_name_the_token_never_its_secret(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'c.db'}"
    env = {
        **os.environ,
        "CAPAHUB_AUTH": "on",
        "CAPAHUB_LOG_FORMAT": "json",
        "CAPAHUB_LOG_LEVEL": "info",
        "CAPAHUB_ACCESS_LOG": "true",
    }
    made = subprocess.run(
        [sys.executable, "-m", "catalog.cli", "token", "create", "--name", "ci"]
        + ["--role", "viewer", "--database", database],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        cwd=tmp_path,
    )
    token = made.stdout.strip().splitlines()[-1]
    with (
        capahub_serve(tmp_path, "--database", database, env=env) as srv,
        httpx.Client(trust_env=False, timeout=10) as http,
    ):
        for rid, auth, status in (
            ("with-token", f"Bearer {token}", 200),
            ("no-token", None, 401),
            ("bad-token", "Bearer not-a-valid-token", 401),
        ):
            headers = {"X-Request-Id": rid, **({"Authorization": auth} if auth else {})}
            answer = http.post(f"{srv.base}/graphql", json=QUERY, headers=headers)
            assert answer.status_code == status, answer.text
        got = _by_request(srv, ["with-token", "no-token", "bad-token"])
        output = srv.output()
    assert got["with-token"]["actor"] == "token:ci"
    assert got["with-token"]["status"] == 200
    assert got["with-token"]["message"].endswith('- token:ci "POST /graphql HTTP/1.1" 200 OK')
    assert got["no-token"]["actor"] == "anonymous" and got["no-token"]["status"] == 401
    assert got["bad-token"]["actor"] == "anonymous"
    assert token not in output and "not-a-valid-token" not in output


def test_with_auth_off_text_access_lines_say_anonymous(tmp_path: Path) -> None:
    env = {**os.environ, "CAPAHUB_ACCESS_LOG": "true", "CAPAHUB_LOG_FORMAT": "text"}
    env.pop("CAPAHUB_AUTH", None)
    database = f"sqlite:///{tmp_path / 'c.db'}"
    with (
        capahub_serve(tmp_path, "--database", database, env=env) as srv,
        httpx.Client(trust_env=False, timeout=10) as http,
    ):
        assert http.post(f"{srv.base}/graphql", json=QUERY).status_code == 200
        assert http.get(f"{srv.base}/healthz").status_code == 200
        posts = _lines(srv, 1, '"POST /graphql HTTP/1.1" 200 OK')
        health = _lines(srv, 1, '"GET /healthz HTTP/1.1" 200 OK')
    assert posts and posts[0].startswith("INFO:     127.0.0.1:")
    assert ' - anonymous "POST /graphql HTTP/1.1" 200 OK' in posts[0], posts
    # A route that does not ask who calls keeps uvicorn's line as it is.
    assert health and ' - "GET /healthz HTTP/1.1" 200 OK' in health[0], health


@pytest.mark.parametrize(
    ("actor", "shown"),
    [
        ("user:ada", "user:ada"),
        ('user:a "b"\nc', "user:a??b??c"),
        ("user:" + "x" * 300, "user:" + "x" * 195),
        (None, None),
    ],
)
def test_a_caller_name_keeps_the_line_one_record(actor: str | None, shown: str | None) -> None:
    scope: dict[str, Any] = {
        "type": "http",
        "method": "POST",
        "path": "/graphql",
        "query_string": b"",
        "client": ("10.0.0.1", 4000),
        "headers": [],
        "state": {"actor": actor} if actor else {},
    }
    assert actor_of(scope) == shown
    line = access_line(scope, 200)
    assert line.count("\n") == 1
    entry = json.loads(json_access_line(scope, 200))
    assert entry.get("actor") == shown
    if shown:
        assert line == f'INFO:     10.0.0.1:4000 - {shown} "POST /graphql HTTP/1.1" 200 OK\n'
