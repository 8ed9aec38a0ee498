"""A small graphql-transport-ws client for the tests (the ``websockets`` library)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import websockets
from websockets.asyncio.client import ClientConnection

SUBSCRIBE = (
    "subscription($kinds: [Kind!], $ids: [ID!], $types: [RelationType!], $after: Int) {"
    " catalogChanged(kinds: $kinds, ids: $ids, types: $types, after: $after) {"
    " version operation target targetId kind relationType actor at truncated before after } }"
)


def ws_url(base: str) -> str:
    """The WebSocket URL of a served hub's /graphql."""
    return base.replace("http://", "ws://") + "/graphql"


async def connect(
    base: str, payload: dict[str, Any] | None = None, headers: dict[str, str] | None = None
) -> ClientConnection:
    """Open a connection and send connection_init (the ack is not awaited)."""
    ws = await websockets.connect(
        ws_url(base),
        subprotocols=[websockets.Subprotocol("graphql-transport-ws")],
        additional_headers=headers or {},
        open_timeout=10,
    )
    init: dict[str, Any] = {"type": "connection_init"}
    if payload is not None:
        init["payload"] = payload
    await ws.send(json.dumps(init))
    return ws


async def recv(ws: ClientConnection, timeout: float = 10) -> dict[str, Any]:
    """The next message, answering the server's pings on the way."""
    while True:
        message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        if message["type"] == "ping":
            await ws.send(json.dumps({"type": "pong"}))
            continue
        return message


async def acked(base: str, **kwargs: Any) -> ClientConnection:
    """A connection the server acknowledged."""
    ws = await connect(base, **kwargs)
    message = await recv(ws)
    assert message == {"type": "connection_ack"}, message
    return ws


async def subscribe(
    ws: ClientConnection, op_id: str, query: str = SUBSCRIBE, **variables: Any
) -> None:
    """Start an operation."""
    payload = {"query": query, "variables": variables}
    await ws.send(json.dumps({"type": "subscribe", "id": op_id, "payload": payload}))


async def events(ws: ClientConnection, count: int, timeout: float = 15) -> list[dict[str, Any]]:
    """The next ``count`` change events (``next`` payloads' catalogChanged), of any operation."""
    out: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while len(out) < count:
        message = await recv(ws, max(0.1, deadline - time.monotonic()))
        assert message["type"] == "next", message
        assert "errors" not in message["payload"], message
        out.append(message["payload"]["data"]["catalogChanged"] | {"_op": message["id"]})
    return out


async def quiet(ws: ClientConnection, seconds: float) -> list[dict[str, Any]]:
    """Messages that arrive within ``seconds`` (there should usually be none)."""
    got: list[dict[str, Any]] = []
    try:
        while True:
            got.append(await recv(ws, seconds))
    except TimeoutError:
        return got


async def closed(ws: ClientConnection, timeout: float = 10) -> tuple[int | None, str]:
    """Wait for the server to close; its code and reason."""
    try:
        while True:
            await recv(ws, timeout)
    except websockets.ConnectionClosed as closing:
        rcvd = closing.rcvd
        return (rcvd.code, rcvd.reason) if rcvd is not None else (None, "")


def mutate(base: str, query: str, token: str | None = None) -> dict[str, Any]:
    """POST a mutation; its JSON answer (must have no errors)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    answer = httpx.post(
        f"{base}/graphql", json={"query": query}, headers=headers, trust_env=False, timeout=30
    ).json()
    assert "errors" not in answer, answer
    return dict(answer)


def upsert(base: str, node_id: str, name: str, token: str | None = None) -> None:
    """upsertNode through the API."""
    mutate(
        base,
        f'mutation {{ upsertNode(input: {{id: "{node_id}", name: "{name}"}}) {{ id }} }}',
        token,
    )


def cli(*args: str, env: dict[str, str] | None = None) -> str:
    """Run ``capahub ARGS`` in another process; its standard output."""
    out = subprocess.run(
        [sys.executable, "-m", "catalog.cli", *args],
        capture_output=True,
        text=True,
        check=True,
        env=env or os.environ.copy(),
    )
    return out.stdout


def write_catalog(
    path: Path, nodes: Sequence[tuple[str, str]], relations: Sequence[tuple[str, str, str]] = ()
) -> Path:
    """A catalog document (JSON) with these nodes and relations."""
    doc = {
        "nodes": [{"id": i, "name": n} for i, n in nodes],
        "relations": [{"from": f, "type": t, "to": to} for f, t, to in relations],
    }
    path.write_text(json.dumps(doc))
    return path


def serve_env(db: str, **extra: str) -> dict[str, str]:
    """The environment of a test server on ``db`` (no access log, settings given as extras)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAPAHUB_")}
    env.update(
        CAPAHUB_DATABASE_URL=db,
        CAPAHUB_ACCESS_LOG="false",
        CAPAHUB_ALLOWED_HOSTS="localhost,127.0.0.1",
    )
    env.update({f"CAPAHUB_{k.upper()}": v for k, v in extra.items()})
    return env
