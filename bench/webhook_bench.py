"""Webhook latency: change committed -> the receiver has it (issue 14: p95 < 1 s).

A real ``capahub serve`` (default poll interval) delivers to a receiver on 127.0.0.1 that
records when each event arrives. Two kinds of change: mutations through that serve (the
worker is woken by the commit) and writes from another process (this script's own store:
the worker sees them on its next look at the change log). A second webhook whose receiver
hangs (beyond the timeout) runs throughout, to show it delays no one.

    .venv/bin/python bench/webhook_bench.py [--changes 100] [--database URL]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from _util import Stats, code_note, machine_note, running_server, settings_for

from catalog.services import WriteServices
from catalog.specs import parse_document

ARRIVED: dict[str, float] = {}
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        if self.path == "/hang":
            time.sleep(30)
            return
        node = json.loads(body)["data"]["id"]
        with LOCK:
            ARRIVED.setdefault(node, time.time())
        self.send_response(204)
        self.end_headers()


def _wait(ids: list[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with LOCK:
            if all(i in ARRIVED for i in ids):
                return
        time.sleep(0.01)
    raise SystemExit(f"not every event arrived within {timeout} s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--changes", type=int, default=100)
    parser.add_argument("--database", default="")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="webhook-bench-"))
    db = args.database or f"sqlite:///{tmp / 'catalog.db'}"
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    env = {"CAPAHUB_HARVEST_ALLOWED_HOSTS": "127.0.0.1", "CAPAHUB_ACCESS_LOG": "false"}
    print(machine_note())
    print(code_note())
    print(f"database: {db.split('://')[0]}; {args.changes} changes of each kind, 50 ms apart")
    with running_server(db, log=tmp / "serve.log", env=env) as srv:
        client = httpx.Client(base_url=srv.url, trust_env=False, timeout=30)

        def gql(query: str, variables: dict[str, Any] | None = None) -> Any:
            body = client.post("/graphql", json={"query": query, "variables": variables or {}})
            out = body.json()
            assert not out.get("errors"), out
            return out["data"]

        reg = "mutation($u: String!) { registerWebhook(input: {url: $u}) { webhook { id } } }"
        gql(reg, {"u": f"http://127.0.0.1:{port}/ok"})
        gql(reg, {"u": f"http://127.0.0.1:{port}/hang"})
        upsert = 'mutation($id: ID!) { upsertNode(input: {id: $id, name: "n"}) { id } }'
        committed: dict[str, float] = {}
        ids = [f"system:m{i}" for i in range(args.changes)]
        for node in ids:
            gql(upsert, {"id": node})
            committed[node] = time.time()  # the answer comes after the commit
            time.sleep(0.05)
        _wait(ids)
        local = Stats.of([ARRIVED[i] - committed[i] for i in ids])

        async def other_process() -> list[str]:
            services = await WriteServices.start(settings_for(db))
            out = []
            try:
                for i in range(args.changes):
                    node = f"system:x{i}"
                    doc = parse_document(json.dumps({"nodes": [{"id": node, "name": "x"}]}))
                    await services.registry.apply_document(doc)
                    committed[node] = time.time()
                    out.append(node)
                    await asyncio.sleep(0.05)
            finally:
                await services.close()
            return out

        xids = asyncio.run(other_process())
        _wait(xids)
        remote = Stats.of([ARRIVED[i] - committed[i] for i in xids])
    print(f"mutation through serve -> receiver:   {local}")
    print(f"write by another process -> receiver: {remote}")
    print("(a second webhook's receiver hung for 30 s per attempt throughout)")
    server.shutdown()


if __name__ == "__main__":
    main()
