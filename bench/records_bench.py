"""Live records benchmark (issue 6): three slow sources, unified through the hub.

    .venv/bin/python bench/records_bench.py [--latency 0.05] [--runs 30]

Three REST sources on 127.0.0.1, each adding ``--latency`` seconds per request and serving 100
customers (overlapping e-mails), are registered as REPRESENTS of entity:customer. The script
starts the real hub (`capahub serve`), then measures `records(entity: "entity:customer",
first: 100)` through HTTP: median and p95 against the slowest source's latency (concurrency,
not sum) and the number of requests each source received per query. It also compares the hub
with a direct query of one SQL source (a SQLite file, same rows) in the same run.
"""

from __future__ import annotations

import argparse
import json
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import orjson

ROOT = Path(__file__).resolve().parents[1]


def _rows(offset: int) -> list[dict[str, Any]]:
    return [
        {"mail": f"c{i}@example.com", "tel": f"+31 {i + offset}", "nation": "NL", "name": f"C {i}"}
        for i in range(offset, offset + 100)
    ]


def _source(latency: float, rows: list[dict[str, Any]], hits: list[int]) -> ThreadingHTTPServer:
    body = json.dumps({"items": rows}).encode()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a: Any) -> None:
            pass

        def do_GET(self) -> None:
            hits.append(1)
            time.sleep(latency)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _direct_floor(servers: dict[str, ThreadingHTTPServer], runs: int) -> float:
    """Median time to fetch the three sources concurrently without the hub."""
    import asyncio

    async def go() -> float:
        async with httpx.AsyncClient() as c:
            urls = [f"http://127.0.0.1:{s.server_address[1]}/customers" for s in servers.values()]
            times = []
            for _ in range(runs):
                t = time.perf_counter()
                for r in await asyncio.gather(*(c.get(u) for u in urls)):
                    r.json()
                times.append(time.perf_counter() - t)
            return statistics.median(times)

    return asyncio.run(go())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--latency", type=float, default=0.05)
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    hits: dict[str, list[int]] = {n: [] for n in ("a", "b", "c")}
    servers = {n: _source(args.latency, _rows(i * 50), hits[n]) for i, n in enumerate(hits)}
    # The same rows as source "a" in a SQLite file, for the direct baseline.
    direct_db = tmp / "direct.db"
    conn = sqlite3.connect(direct_db)
    conn.execute("CREATE TABLE customers (mail TEXT, tel TEXT, nation TEXT, name TEXT)")
    conn.executemany("INSERT INTO customers VALUES (:mail, :tel, :nation, :name)", _rows(0))
    conn.commit()
    conn.close()

    fields = "{email: mail, phone: tel, country: nation, name: name}"
    lines = [
        "nodes:",
        "  - {id: entity:customer, name: Customer, attributes: [{name: email}, {name: phone},"
        " {name: country}, {name: name}]}",
    ]
    rels = ["relations:"]
    for n, srv in servers.items():
        port = srv.server_address[1]
        lines += [
            f"  - {{id: system:{n}, name: System {n}}}",
            f"  - {{id: entity:{n}.customers, name: {n} customers, properties: {{live: {{path: /customers}}}},"
            " attributes: [{name: mail}, {name: tel}, {name: nation}, {name: name}]}",
            f"  - {{id: source:{n}-api, name: {n} API, properties: {{type: REST, location: 'http://127.0.0.1:{port}'}}}}",
        ]
        rels += [
            f"  - {{from: system:{n}, type: STORES, to: entity:{n}.customers}}",
            f"  - {{from: source:{n}-api, type: PART_OF, to: system:{n}}}",
            f"  - {{from: entity:{n}.customers, type: REPRESENTS, to: entity:customer,"
            f" properties: {{matchKey: email, fields: {fields}}}}}",
        ]
    rels.append("  - {from: system:a, type: MASTERS, to: entity:customer}")
    doc = tmp / "bench.yaml"
    doc.write_text("\n".join(lines + rels) + "\n")
    db = f"sqlite:///{tmp / 'hub.db'}"
    exe = str(ROOT / ".venv" / "bin" / "capahub")
    subprocess.run([exe, "apply", str(doc), "--database", db], check=True, capture_output=True)
    port = _free_port()
    log = (tmp / "serve.log").open("wb")
    proc = subprocess.Popen(
        [exe, "serve", "--port", str(port), "--database", db], stdout=log, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        query = {
            "query": '{ records(entity: "entity:customer", first: 100) { totalCount errors { source }'
            " edges { node { key data sources conflicts { field } } } } }"
        }
        with httpx.Client() as client:
            for _ in range(3):
                client.post(f"{base}/graphql", json=query)
            for h in hits.values():
                h.clear()
            times = []
            for _ in range(args.runs):
                t = time.perf_counter()
                body = client.post(f"{base}/graphql", json=query).json()
                times.append(time.perf_counter() - t)
            per_source = {n: len(h) / args.runs for n, h in hits.items()}
            assert not body.get("errors"), body
            rec = body["data"]["records"]
            assert not rec["errors"] and len(rec["edges"]) == 100, rec["errors"]
            # Hub overhead: a records query of a single SQL source vs the same SELECT by hand.
            single = tmp / "single.yaml"
            single.write_text(
                "nodes:\n  - {id: system:d, name: D}\n"
                "  - {id: entity:d.customers, name: D customers, attributes: [{name: mail}, {name: tel},"
                " {name: nation}, {name: name}]}\n"
                f"  - {{id: source:d-db, name: D db, properties: {{type: SQL, location: 'sqlite:///{direct_db}'}}}}\n"
                "relations:\n  - {from: system:d, type: STORES, to: entity:d.customers}\n"
                "  - {from: source:d-db, type: PART_OF, to: system:d}\n"
            )
            subprocess.run(
                [exe, "apply", str(single), "--database", db], check=True, capture_output=True
            )
            q2 = {
                "query": '{ records(entity: "entity:d.customers", first: 100) { totalCount edges { node { data } } } }'
            }
            for _ in range(5):
                client.post(f"{base}/graphql", json=q2)
            hub_sql = []
            for _ in range(args.runs * 3):
                t = time.perf_counter()
                client.post(f"{base}/graphql", json=q2).json()
                hub_sql.append(time.perf_counter() - t)
        floor = _direct_floor(servers, args.runs)
        direct = []
        for _ in range(args.runs * 3):
            t = time.perf_counter()
            c = sqlite3.connect(f"file:{direct_db}?mode=ro", uri=True)
            rows = c.execute("SELECT mail, tel, nation, name FROM customers LIMIT 100").fetchall()
            orjson.dumps(
                [dict(zip(("mail", "tel", "nation", "name"), r, strict=True)) for r in rows]
            )
            c.close()
            direct.append(time.perf_counter() - t)
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()
        for srv in servers.values():
            srv.shutdown()
    med = statistics.median(times)
    p95 = sorted(times)[int(0.95 * len(times)) - 1]
    print(f"sources: 3, each +{args.latency * 1000:.0f} ms; unified records: {rec['totalCount']}")
    print(f"records(first: 100) through HTTP: median {med * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms")
    if args.latency:
        print(f"  = {med / args.latency:.2f}x the slowest source's latency (target < 1.3x)")
    print(
        f"  floor: the three sources fetched directly and concurrently: median {floor * 1000:.1f} ms"
    )
    print(f"requests per source per query: {per_source}")
    hm, dm = statistics.median(hub_sql), statistics.median(direct)
    print(
        f"one SQL source: hub median {hm * 1000:.2f} ms vs direct SELECT+JSON {dm * 1000:.2f} ms"
        f" -> ratio {hm / dm:.1f}x"
    )


if __name__ == "__main__":
    sys.exit(main())
