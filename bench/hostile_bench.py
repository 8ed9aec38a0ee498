"""A small query's latency while one client sends the worst requests the limits let through.

The issue's numbers (issue 12): under wrk with 8 connections running ``node(id) { id name }``,
with one other client sending the worst request it can within the limits, the small query's
p99 stays under 100 ms and the server's RSS under 1 GB.

One ``capahub serve`` (one worker, access log on, SQLite) on a generated catalog of
``--nodes`` nodes (bench/synth.py: dense dependencies, some nodes without owners). While wrk
runs, the attacker (one connection, one request after the other) cycles through the heaviest
requests we found: aliased graph questions up to the cost limit, the widest nested listing
under it, ``gaps``/``redundancies``/``hotspots`` on the whole catalog, wide searches, a body
just under the body limit, a YAML alias bomb, deep JSON, and queries over the cost limit. Each
attacker request's status, ``extensions.code`` and time are recorded, the server's RSS is
sampled every 0.1 s from /proc, and ``/healthz`` is timed once a second.

Needs wrk (Debian: ``apt-get install -y wrk``).

    .venv/bin/python bench/hostile_bench.py [--nodes 10000] [--duration 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
from _util import code_note, machine_note, running_server, seeded_database
from load_bench import parse_wrk

from catalog.settings import DEFAULT_COST_PER_MINUTE, Settings

ATTACKER_ADDRESS = "127.0.0.2"
NODE_QUERY = '{ node(id: "system:crm") { id name } }'
LUA = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [==[%s]==]
"""


def rss_mb(pid: int) -> float:
    """Resident memory of a process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def attacks(
    ids: list[str], dense: list[str], max_body: int = 16_000_000
) -> dict[str, dict[str, Any]]:
    """The hostile requests: name -> JSON body (or raw bytes under "raw"). ``dense``: the
    catalog's most central nodes (``hotspots``), whose neighbourhoods are the largest."""
    first = ids[0]
    impacts = " ".join(
        f'a{i}: impact(id: "{ids[i % len(ids)]}", depth: 3) {{ affected {{ node {{ id }} distance }} }}'
        for i in range(200)
    )
    nested = "{ nodes(first: 500) { edges { node { id relations { type from { id relations { to { id } } } to { id } } } } } }"
    wide = "{ nodes(first: 500) { edges { node { id name relations { type to { id name } } } } } }"
    bomb = "a: &a [x,x,x,x,x,x,x,x,x,x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{','.join('*' + chr(97 + i) for _ in range(10))}]\n"
        for i in range(8)
    )
    deep = "[" * 100_000 + "]" * 100_000
    return {
        "200 aliased impacts": {"query": "{ " + impacts + " }"},
        "nested relations x500": {"query": nested},
        "wide listing x500": {"query": wide},
        # every gap of the catalog: what the limit still admits of the three below
        "gaps alone": {"query": "{ gaps { node { id } reason } }"},
        "gaps+redundancies+hotspots": {
            "query": "{ gaps { node { id } reason } redundancies { node { id } involved { id } } hotspots(first: 100) { node { id } } }"
        },
        "neighborhood depth 4": {
            "query": f'{{ neighborhood(id: "{first}", depth: 4) {{ nodes {{ id }} relations {{ type }} }} }}'
        },
        # the deepest neighbourhood of the densest node that the cost limit admits
        "neighborhood depth 2, densest": {
            "query": f'{{ neighborhood(id: "{dense[0]}", depth: 2) {{ nodes {{ id }} relations {{ type }} }} }}'
        },
        "25 neighborhoods depth 1, densest": {
            "query": "{ "
            + " ".join(
                f'n{i}: neighborhood(id: "{n}", depth: 1) {{ nodes {{ id }} relations {{ type }} }}'
                for i, n in enumerate(dense[:25])
            )
            + " }"
        },
        "search x100 first 500": {
            "query": "{ "
            + " ".join(
                f's{i}: search(query: "a", first: 500) {{ totalCount hits {{ node {{ id }} }} }}'
                for i in range(100)
            )
            + " }"
        },
        "yaml bomb": {
            "query": "mutation($d: String!) { applyCatalog(document: $d, dryRun: true) { added } }",
            "variables": {"d": bomb},
        },
        "deep json": {"raw": deep.encode()},
        "body near the limit": {  # the body limit less 1,000 bytes
            "raw": b'{"query": "{ __typename }", "variables": {"x": "'
            + b"a" * (max_body - 1_000)
            + b'"}}'
        },
    }


def attacker(
    base: str,
    bodies: dict[str, dict[str, Any]],
    stop: threading.Event,
    log: dict[str, list[tuple[float, str]]],
) -> None:
    """Send the hostile requests one after the other until ``stop``."""
    if not bodies:  # nothing to send: wrk alone (the baseline)
        stop.wait()
        return
    # Another caller than wrk's connections: the attacker comes from 127.0.0.2 (any 127/8
    # address reaches the loopback server), so a per-caller budget tells the two apart. It
    # ignores Retry-After: it sends its next request as soon as it has an answer.
    transport = httpx.HTTPTransport(local_address=ATTACKER_ADDRESS)
    with httpx.Client(timeout=120, trust_env=False, transport=transport) as client:
        while not stop.is_set():
            for name, body in bodies.items():
                if stop.is_set():
                    break
                start = time.perf_counter()
                try:
                    if "raw" in body:
                        resp = client.post(
                            f"{base}/graphql",
                            content=body["raw"],
                            headers={"Content-Type": "application/json"},
                        )
                    else:
                        resp = client.post(f"{base}/graphql", json=body)
                    try:
                        errors = resp.json().get("errors") or []
                    except ValueError:
                        errors = []
                    code = errors[0].get("extensions", {}).get("code", "?") if errors else "ok"
                    outcome = f"{resp.status_code} {code}"
                except httpx.HTTPError as err:
                    outcome = f"client error {type(err).__name__}"
                log[name].append((time.perf_counter() - start, outcome))


def main() -> None:
    """Run wrk and the attacker together; print the verdict."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=10_000, help="catalog size (bench/synth.py)")
    parser.add_argument("--duration", type=int, default=20, help="seconds of wrk")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections")
    parser.add_argument(
        "--only", default="", help="run only the attacks whose name contains this (all: empty)"
    )
    parser.add_argument(
        "--data", type=Path, default=None, help="keep the generated catalog here (reused)"
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="record the server with py-spy during wrk into this file (speedscope JSON)",
    )
    parser.add_argument(
        "--budget",
        type=int,
        default=DEFAULT_COST_PER_MINUTE,
        help="CAPAHUB_COST_PER_MINUTE of the server (default: what a hub other machines can "
        f"reach gets, {DEFAULT_COST_PER_MINUTE:,}: the attacker is on the network; 0: none)",
    )
    args = parser.parse_args()
    # The server listens on loopback with auth off, where the hub's own default is no budget
    # (only local processes can call it); the attack is one from the network: say the budget.
    env = {"CAPAHUB_COST_PER_MINUTE": str(args.budget)}
    max_body = Settings().max_body_bytes  # the default, or CAPAHUB_MAX_BODY_BYTES of this shell
    with tempfile.TemporaryDirectory(prefix="capahub-hostile-") as name:
        directory = Path(name)
        url = seeded_database(args.nodes, 7, args.data or directory)
        with running_server(url, log=directory / "serve.log", env=env) as server:
            pid = server.process.pid
            with httpx.Client(trust_env=False) as c:
                ids = [
                    e["node"]["id"]
                    for e in c.post(
                        f"{server.url}/graphql",
                        json={"query": "{ systems(first: 50) { edges { node { id } } } }"},
                    ).json()["data"]["systems"]["edges"]
                ]
                dense = [
                    h["node"]["id"]
                    for h in c.post(
                        f"{server.url}/graphql",
                        json={"query": "{ hotspots(first: 25) { node { id } } }"},
                    ).json()["data"]["hotspots"]
                ]
                assert (
                    c.post(f"{server.url}/graphql", json={"query": NODE_QUERY}).status_code == 200
                )
            start_rss = rss_mb(pid)
            lua = directory / "node.lua"
            lua.write_text(LUA % json.dumps({"query": NODE_QUERY}))
            stop = threading.Event()
            log: dict[str, list[tuple[float, str]]] = defaultdict(list)
            peak = [start_rss]
            health: list[float] = []

            def sample() -> None:
                with httpx.Client(trust_env=False, timeout=30) as c:
                    tick = 0
                    while not stop.is_set():
                        peak[0] = max(peak[0], rss_mb(pid))
                        tick += 1
                        if tick % 10 == 0:
                            t = time.perf_counter()
                            c.get(f"{server.url}/healthz")
                            health.append(time.perf_counter() - t)
                        time.sleep(0.1)

            threads = [
                threading.Thread(
                    target=attacker,
                    args=(
                        server.url,
                        {k: v for k, v in attacks(ids, dense, max_body).items() if args.only in k},
                        stop,
                        log,
                    ),
                ),
                threading.Thread(target=sample),
            ]
            for t in threads:
                t.start()
            time.sleep(1)  # the attacker is under way before wrk starts
            spy = None
            if args.profile is not None:
                spy = subprocess.Popen(
                    [
                        str(Path(sys.executable).parent / "py-spy"),
                        "record",
                        "--pid",
                        str(pid),
                        "--duration",
                        str(args.duration),
                        "--format",
                        "speedscope",
                        "--threads",
                        "--output",
                        str(args.profile),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            out = subprocess.run(
                [
                    "wrk",
                    "-t1",
                    f"-c{args.connections}",
                    f"-d{args.duration}s",
                    "--timeout=30s",
                    "--latency",
                    "-s",
                    str(lua),
                    f"{server.url}/graphql",
                ],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            stop.set()
            for t in threads:
                t.join()
            if spy is not None:
                spy.wait()
            end_rss = rss_mb(pid)
    result = parse_wrk(out)
    print(f"machine: {machine_note()}; code: {code_note()}")
    print(f"catalog: {args.nodes} generated nodes (bench/synth.py, seed 7)")
    budget = args.budget or "off"
    print(f"cost budget (CAPAHUB_COST_PER_MINUTE): {budget}; attacker from {ATTACKER_ADDRESS}")
    print(
        f"wrk -t1 -c{args.connections} -d{args.duration}s node(id): {result.rps:.0f} req/s, p50 {result.latency.get('50%')}, p99 {result.latency.get('99%')}, max {result.latency.get('max')}, errors: {result.errors}"
    )
    print(f"server RSS: start {start_rss:.0f} MB, peak {peak[0]:.0f} MB, end {end_rss:.0f} MB")
    if health:
        print(
            f"/healthz during the run: median {statistics.median(health) * 1000:.1f} ms, max {max(health) * 1000:.1f} ms ({len(health)} probes)"
        )
    print("attacker requests (one client, sequential):")
    for name, entries in log.items():
        outcomes = sorted({o for _, o in entries})
        times = [t for t, _ in entries]
        print(
            f"  {name:34} x{len(entries):3}  median {statistics.median(times) * 1000:8.1f} ms  max {max(times) * 1000:8.1f} ms  {', '.join(outcomes)}"
        )
    p99 = result.latency.get("99%", "")
    p99_ms = (
        float(p99[:-2])
        if p99.endswith("ms")
        else float(p99[:-2]) / 1000
        if p99.endswith("us")
        else float(p99[:-1]) * 1000
    )
    ok = p99_ms < 100 and peak[0] < 1024
    print(
        f"verdict: p99 {p99_ms:.1f} ms (target < 100), peak RSS {peak[0]:.0f} MB (target < 1024): {'MET' if ok else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
