"""The access log (catalog/access_log.py): uvicorn's line format, batched writes, every request."""

from __future__ import annotations

import asyncio
import io
import os
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.types import Message, Receive, Scope, Send

from catalog.access_log import AccessLog, access_line
from tests.serving import capahub_serve


def _scope(path: str = "/graphql", query: bytes = b"", method: str = "POST") -> Scope:
    return {
        "type": "http",
        "method": method,
        "path": path,
        "query_string": query,
        "http_version": "1.1",
        "client": ("127.0.0.1", 52144),
        "headers": [],
    }


async def _answer(status: int, scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


async def _call(app: Any, scope: Scope) -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


def test_the_line_is_uvicorns() -> None:
    assert access_line(_scope(), 200) == (
        'INFO:     127.0.0.1:52144 - "POST /graphql HTTP/1.1" 200 OK\n'
    )
    line = access_line(_scope("/a b", b"query=%7B%7D", "GET"), 404)
    assert line == 'INFO:     127.0.0.1:52144 - "GET /a%20b?query=%7B%7D HTTP/1.1" 404 Not Found\n'


async def test_lines_are_written_in_batches_and_on_time() -> None:
    stream = io.StringIO()
    app = AccessLog(
        lambda s, r, snd: _answer(201, s, r, snd), stream, flush_after=0.05, max_lines=3
    )
    sent = await _call(app, _scope())
    assert sent[0]["status"] == 201  # the answer passes through untouched
    assert stream.getvalue() == ""  # buffered
    await asyncio.sleep(0.15)
    assert stream.getvalue() == access_line(_scope(), 201)  # flushed after flush_after
    for _ in range(3):
        await _call(app, _scope())
    assert stream.getvalue().count("\n") == 4  # a full buffer goes out at once


async def test_a_failing_app_is_logged_as_500_and_the_error_propagates() -> None:
    stream = io.StringIO()

    async def broken(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("boom")

    app = AccessLog(broken, stream)
    with pytest.raises(RuntimeError):
        await _call(app, _scope())
    app.flush()
    assert stream.getvalue().endswith('"POST /graphql HTTP/1.1" 500 Internal Server Error\n')


async def test_shutdown_flushes_and_other_scopes_pass_through() -> None:
    stream = io.StringIO()
    seen: list[str] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])
        if scope["type"] == "lifespan":
            await send({"type": "lifespan.shutdown.complete"})
        else:
            await _answer(200, scope, receive, send)

    app = AccessLog(inner, stream, flush_after=60)
    await _call(app, _scope())
    assert stream.getvalue() == ""
    await _call(app, {"type": "lifespan"})
    assert stream.getvalue() == access_line(_scope(), 200)
    await _call(app, {"type": "websocket", "path": "/graphql"})
    assert seen == ["http", "lifespan", "websocket"]
    assert stream.getvalue().count("\n") == 1  # a websocket is not an HTTP request line


@pytest.mark.parametrize("enabled", [True, False])
def test_capahub_serve_logs_each_request_once(tmp_path: Path, enabled: bool) -> None:
    env = {**os.environ, "CAPAHUB_ACCESS_LOG": str(enabled).lower()}
    with capahub_serve(tmp_path, "--database", f"sqlite:///{tmp_path / 'c.db'}", env=env) as srv:
        for _ in range(3):
            resp = httpx.post(f"{srv.base}/graphql", json={"query": "{ __typename }"})
            assert resp.status_code == 200
        time.sleep(1.0)  # past flush_after: the lines are out while the server runs
        text = srv.output()
    posts = [line for line in text.splitlines() if '"POST /graphql HTTP/1.1" 200 OK' in line]
    assert len(posts) == (3 if enabled else 0), text
    assert all(line.startswith("INFO:     127.0.0.1:") for line in posts)
