"""Throughput of one ``capahub serve`` worker under ``wrk`` on a 10,000-node catalog.

Three POST /graphql workloads, each ``wrk -t2 -c20 -d15s --latency`` with a Lua script that
sets the bodies: a small ``node(id:)`` lookup of one node (target >= 3,000 req/s), the same
lookup through a variable over 1,000 different nodes of every kind (drawn at random, seeded),
and the discovery query of issue 2 (capabilities(first: 100) with providers, reads, writes,
parent). wrk runs on the same machine as the server, so on 2 cores they compete for the CPU:
read these numbers as a floor.

Needs wrk (Debian: ``apt-get install -y wrk``).

    .venv/bin/python bench/load_bench.py [--duration 15] [--connections 20] [--threads 2]
"""

from __future__ import annotations

import argparse
import contextlib
import random
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
from _util import (
    DISCOVERY_QUERY,
    code_note,
    cpu_seconds,
    free_port,
    machine_note,
    running_server,
    seeded_database,
)
from sqlalchemy.engine import make_url

TARGET_NODE_RPS = 3_000.0

#: wrk Lua: POSTs of the given JSON bodies in turn; non-2xx answers are counted by wrk.
LUA = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local bodies = {{ {bodies} }}
local i = 0
request = function()
  i = i % #bodies + 1
  return wrk.format(nil, nil, nil, bodies[i])
end
"""

#: How many different nodes the "many ids" workload asks for.
MANY_IDS = 1_000


@dataclass
class WrkResult:
    """What wrk printed, parsed, plus the server's CPU time per request."""

    rps: float
    latency: dict[str, str]  # "avg", "stdev", "max", "50%", "75%", "90%", "99%"
    requests: int
    errors: str
    raw: str
    cpu_ms: float = 0.0


def parse_wrk(out: str) -> WrkResult:
    """Read requests/s, latency and error lines from ``wrk --latency`` output."""
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    lat = re.search(r"Latency\s+(\S+)\s+(\S+)\s+(\S+)", out)
    latency = dict(zip(("avg", "stdev", "max"), lat.groups(), strict=True)) if lat else {}
    for pct in ("50%", "75%", "90%", "99%"):
        m = re.search(rf"^\s+{re.escape(pct)}\s+(\S+)", out, re.MULTILINE)
        if m:
            latency[pct] = m.group(1)
    errors = [
        line.strip() for line in out.splitlines() if "Socket errors" in line or "Non-2xx" in line
    ]
    return WrkResult(rps, latency, requests, "; ".join(errors) or "none", out)


def run_wrk(url: str, bodies: list[bytes], lua: Path, args: argparse.Namespace) -> WrkResult:
    """Run wrk against ``url`` POSTing ``bodies`` in turn."""
    listed = ", ".join(f"[==[{b.decode()}]==]" for b in bodies)
    lua.write_text(LUA.format(bodies=listed), encoding="utf-8")
    cmd = [
        "wrk",
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{args.duration}s",
        f"--timeout={args.timeout}s",
        "--latency",
        "-s",
        str(lua),
        url,
    ]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return parse_wrk(out)


@contextlib.contextmanager
def reference_server(access_log: bool) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """uvicorn serving ``_ref_app`` (one worker, the same uvicorn defaults as capahub, and the
    same access log as ``capahub serve`` when it is on)."""
    port = free_port()
    app = "_ref_app:logged_app" if access_log else "_ref_app:app"
    cmd = [sys.executable, "-m", "uvicorn", app, "--port", str(port)]
    cmd += ["--log-level", "info", "--no-access-log"]
    proc = subprocess.Popen(
        cmd, cwd=Path(__file__).parent, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            with contextlib.suppress(httpx.HTTPError):
                httpx.post(f"{url}/graphql", content=b"{}", timeout=1)
                break
            time.sleep(0.1)
        yield url, proc
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def some_capability(database: str) -> str:
    """The id of one capability of the catalog (the first by id)."""
    with sqlite3.connect(f"file:{make_url(database).database}?mode=ro", uri=True) as conn:
        row = conn.execute("SELECT min(id) FROM nodes WHERE kind = 'capability'").fetchone()
    return str(row[0])


def some_nodes(database: str, count: int, seed: int) -> list[str]:
    """``count`` node ids of any kind, drawn at random (seeded)."""
    with sqlite3.connect(f"file:{make_url(database).database}?mode=ro", uri=True) as conn:
        ids = [r[0] for r in conn.execute("SELECT id FROM nodes ORDER BY id")]
    return random.Random(seed).sample(ids, min(count, len(ids)))


def main(argv: list[str] | None = None) -> None:
    """Run both workloads against one server and print req/s and latency."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--duration", type=int, default=15, help="seconds per workload (15)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument(
        "--timeout", type=int, default=30, help="wrk request timeout, s (30: slow answers count)"
    )
    parser.add_argument("--db-dir", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--raw", action="store_true", help="also print wrk's own output")
    parser.add_argument(
        "--no-access-log",
        action="store_true",
        help="serve with CAPAHUB_ACCESS_LOG=false (and the reference without its access log)",
    )
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get update && apt-get install -y wrk")

    database = seeded_database(args.nodes, args.seed, args.db_dir)
    cap = some_capability(database)
    by_variable = "query N($id: ID!) { node(id: $id) { id name } }"
    workloads = {
        "node(id) { id name }": [{"query": f'{{ node(id: "{cap}") {{ id name }} }}'}],
        f"node($id), {MANY_IDS} ids": [
            {"query": by_variable, "variables": {"id": i}}
            for i in some_nodes(database, MANY_IDS, args.seed)
        ],
        "discovery, first 100": [{"query": DISCOVERY_QUERY}],
    }
    print(f"catalog: {database}; wrk -t{args.threads} -c{args.connections} -d{args.duration}s")
    print(f"machine: {machine_note()}; {code_note()}")
    results: dict[str, WrkResult] = {}
    access_log = not args.no_access_log
    print(f"access log: {'on (the default)' if access_log else 'off (CAPAHUB_ACCESS_LOG=false)'}")
    env = {"CAPAHUB_ACCESS_LOG": "true" if access_log else "false"}
    with (
        tempfile.TemporaryDirectory(prefix="capahub-wrk-") as tmp,
        running_server(database, log=args.db_dir / "capahub-bench-serve.log", env=env) as server,
    ):
        for name, payloads in workloads.items():
            bodies = [orjson.dumps(p) for p in payloads]
            # Every body once first: checks the answers and measures the steady state (the
            # first lookup of a node reads it from the database, later ones from memory).
            with httpx.Client(base_url=server.url, timeout=30) as client:
                for body in bodies:
                    check = client.post(
                        "/graphql", content=body, headers={"content-type": "application/json"}
                    )
                    check.raise_for_status()
                    answer = check.json()
                    if "errors" in answer or not all(answer["data"].values()):
                        raise RuntimeError(f"{name}: {answer}")
            cpu0 = cpu_seconds(server.process.pid)
            result = run_wrk(f"{server.url}/graphql", bodies, Path(tmp) / "post.lua", args)
            cpu = cpu_seconds(server.process.pid) - cpu0
            result.cpu_ms = cpu * 1000 / max(1, result.requests)
            results[name] = result
            print(
                f"  {name}: {result.rps:.0f} req/s; server CPU {cpu / args.duration:.0%} of a core"
            )

        # The ceiling: the same uvicorn with a fixed JSON answer and no GraphQL.
        with reference_server(access_log) as (ref_url, ref_proc):
            bodies = [orjson.dumps(p) for p in workloads["node(id) { id name }"]]
            cpu0 = cpu_seconds(ref_proc.pid)
            result = run_wrk(f"{ref_url}/graphql", bodies, Path(tmp) / "ref.lua", args)
            result.cpu_ms = (cpu_seconds(ref_proc.pid) - cpu0) * 1000 / max(1, result.requests)
            results["reference: no GraphQL"] = result
            print(f"  reference (Starlette, fixed JSON): {result.rps:.0f} req/s")

    print(f"machine: {machine_note()}")
    print(
        f"\n{'workload':<24}{'req/s':>8}{'avg':>10}{'p50':>10}{'p90':>10}{'p99':>10}"
        f"{'CPU/req':>10}  errors"
    )
    for name, r in results.items():
        lat = r.latency
        print(
            f"{name:<24}{r.rps:>8.0f}{lat.get('avg', '?'):>10}{lat.get('50%', '?'):>10}"
            f"{lat.get('90%', '?'):>10}{lat.get('99%', '?'):>10}{r.cpu_ms:>8.2f}ms  {r.errors}"
        )
        if args.raw:
            print(r.raw)
    node_rps = results["node(id) { id name }"].rps
    verdict = "OK" if node_rps >= TARGET_NODE_RPS else "MISSED"
    print(f"\ntarget: node(id) >= {TARGET_NODE_RPS:.0f} req/s: {verdict}")
    if node_rps < TARGET_NODE_RPS:
        sys.exit(1)


if __name__ == "__main__":
    main()
