"""Change committed -> subscriber: how long a ``catalogChanged`` event takes to arrive.

Two ``capahub serve`` on one database (a SQLite file; PostgreSQL with ``--postgres URL``):
subscribers on server A (graphql-transport-ws, the ``websockets`` client), writes through the
API of A (this process's commits) and of B (another process: on SQLite found by the change-log
poll while someone subscribes, on PostgreSQL by LISTEN/NOTIFY). Latency is the time the event
arrived minus its ``at``, which the hub takes when the write transaction starts, so it also
counts the write itself (an upper bound of commit -> subscriber). Writes are spaced
``--gap`` s apart: this measures delivery, not write throughput.

    cd bench && ../.venv/bin/python subscription_bench.py [--writes 200] [--postgres URL]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path

import httpx
import websockets
from _util import Stats, code_note, machine_note, running_server
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

QUERY = "subscription { catalogChanged { version targetId at } }"


async def _subscriber(base: str, received: dict[str, list[float]], ready: asyncio.Event) -> None:
    url = base.replace("http://", "ws://") + "/graphql"
    async with websockets.connect(
        url, subprotocols=[websockets.Subprotocol("graphql-transport-ws")]
    ) as ws:
        await ws.send(json.dumps({"type": "connection_init"}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        payload = {"query": QUERY}
        await ws.send(json.dumps({"type": "subscribe", "id": "1", "payload": payload}))
        ready.set()
        async for raw in ws:
            now = time.time()
            message = json.loads(raw)
            if message["type"] == "ping":
                await ws.send(json.dumps({"type": "pong"}))
                continue
            change = message["payload"]["data"]["catalogChanged"]
            at = datetime.fromisoformat(change["at"]).timestamp()
            received.setdefault(change["targetId"], []).append(now - at)


async def _measure(
    writer: str, subscriber: str, writes: int, gap: float, subscribers: int
) -> list[float]:
    received: dict[str, list[float]] = {}
    readies = [asyncio.Event() for _ in range(subscribers)]
    tasks = [asyncio.create_task(_subscriber(subscriber, received, r)) for r in readies]
    for ready in readies:
        await asyncio.wait_for(ready.wait(), 30)
    await asyncio.sleep(0.5)
    run = uuid.uuid4().hex[:8]
    ids = [f"system:b{run}-{i}" for i in range(writes)]
    async with httpx.AsyncClient(trust_env=False, timeout=30) as client:
        for node_id in ids:
            query = f'mutation {{ upsertNode(input: {{id: "{node_id}", name: "x"}}) {{ id }} }}'
            answer = (await client.post(f"{writer}/graphql", json={"query": query})).json()
            assert "errors" not in answer, answer
            await asyncio.sleep(gap)
    deadline = time.monotonic() + 10
    while sum(len(received.get(i, ())) for i in ids) < writes * subscribers:
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    for task in tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    missing = writes * subscribers - sum(len(received.get(i, ())) for i in ids)
    if missing:
        print(f"    MISSING {missing} events", file=sys.stderr)
    return [lat for i in ids for lat in received.get(i, ())]


def _fresh_pg(url: str) -> str:
    name = f"capahub_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(
        make_url(url).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=200)
    parser.add_argument("--gap", type=float, default=0.02, help="seconds between writes")
    parser.add_argument("--subscribers", type=int, default=5)
    parser.add_argument("--postgres", default="", help="a PostgreSQL server URL")
    args = parser.parse_args()
    print(machine_note())
    print(code_note())
    with tempfile.TemporaryDirectory() as tmp:
        databases = [("SQLite", f"sqlite:///{Path(tmp) / 'catalog.db'}")]
        if args.postgres:
            databases.append(("PostgreSQL", _fresh_pg(args.postgres)))
        for label, db in databases:
            env = {"CAPAHUB_ACCESS_LOG": "false"}
            log = Path(tmp) / f"{label}.log"
            with (
                running_server(db, log=log, env=env, clean_env=True) as a,
                running_server(db, log=log, env=env, clean_env=True) as b,
            ):
                for where, writer in (("same process", a.url), ("other process", b.url)):
                    lat = asyncio.run(
                        _measure(writer, a.url, args.writes, args.gap, args.subscribers)
                    )
                    print(f"{label:10} {where:13} {args.subscribers} subscribers: {Stats.of(lat)}")
    print(machine_note())


if __name__ == "__main__":
    main()
