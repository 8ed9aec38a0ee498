"""Issue 15's figures at scale (1,000,000 nodes / ~5,000,000 relations) on one SQLite replica.

    # build: one synthetic landscape (synth.py, seed 1) cut into parts applied one after the
    # other by `capahub apply PART --database sqlite:///DB`, each under /usr/bin/time -v
    .venv/bin/python bench/scale_bench.py build --nodes 1000000 --parts 5 \
        --db /tmp/capahub-scale-1000000.db
    # measure: start-up (3 modes) and HTTP latencies of a real `capahub serve`
    .venv/bin/python bench/scale_bench.py measure --db /tmp/capahub-scale-1000000.db
    .venv/bin/python bench/scale_bench.py measure --db /tmp/capahub-graph-bench-100000.db --copy
    # latencies again, from snapshots kept by an earlier run
    .venv/bin/python bench/scale_bench.py measure --db DB --snapshot-dir DIR --skip-starts

``build``: the parts are not ``synth.split_document``'s (round-robin, for one ``capahub apply
A B ...`` run, whose relations may point into any part): nodes are cut in synth's order and a
relation goes with the later of its two ends, so each part refers only to itself and to parts
applied before it (``apply`` accepts relations to stored nodes).

``measure``: each start is a fresh ``capahub serve`` (one worker, clean environment, no cost
budget) polled every 50 ms at /healthz and /readyz: snapshots off; snapshots on with none yet
(built from the tables, both snapshot files waited for); again from those snapshots. On the
last: discovery, ``node(id)`` of random ids, ``search``, ``gapsPage(first: 20)`` and page
1,000 of ``nodes(first: 20)`` (its cursor found by walking the pages before it once), each
``--runs`` times after 3 warm-ups (the first request's time is shown: it pays what the start
left to do). A row the default limits refuse, and ``impact(depth: 3)`` (impact_bench's full
answer, whose static cost is over the default limit), are asked again on a server with
impact_bench's raised limits. Prints markdown tables, the load and the commit.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
from _util import CAPAHUB, DISCOVERY_QUERY, Stats, code_note, cpu_seconds, free_port, machine_note
from impact_bench import FULL as IMPACT_QUERY
from impact_bench import SERVER_ENV as IMPACT_ENV
from start_bench import rss_mb
from synth import describe, generate_document

#: Every server: no cost budget (one caller asks many questions), JSON logs (read back at the
#: end), no CAPAHUB_* setting of this shell. Auth is serve's default (off on loopback).
BASE_ENV = {"CAPAHUB_COST_PER_MINUTE": "0", "CAPAHUB_LOG_FORMAT": "json"}
NODE_QUERY = "query($id: ID!) { node(id: $id) { id name kind description tags lifecycle version } }"
SEARCH_QUERY = (
    'query { search(query: "customer", first: 20) { totalCount '
    "hits { score highlight node { id name kind } } pageInfo { hasNextPage endCursor } } }"
)
SEARCH_FACETS_QUERY = (
    'query { search(query: "customer", first: 20) { totalCount '
    "hits { score highlight node { id name kind } } "
    "facets { kind { value count } tag { value count } domain { value count } "
    "lifecycle { value count } owner { value count } } } }"
)
GAPS_QUERY = (
    "query { gapsPage(first: 20) { totalCount edges { cursor node { reason node { id name kind } } }"
    " pageInfo { hasNextPage endCursor } } }"
)
NODES_QUERY = (
    "query($after: String, $first: Int) { nodes(first: $first, after: $after) { totalCount "
    "edges { cursor node { id name kind } } pageInfo { hasNextPage endCursor } } }"
)


def ordered_split(doc: dict[str, Any], parts: int) -> list[dict[str, Any]]:
    """Cut ``doc`` into ``parts`` documents that apply one after the other, each in a run of
    its own.

    Unlike ``synth.split_document`` (round-robin, for one ``capahub apply A B ...`` run), the
    nodes are cut in the order synth made them (domains, teams, systems, entities, ...) and a
    relation goes to the part of the later of its two ends: every part refers only to nodes of
    itself or of parts applied before it (``owner``s are teams, in the first part).
    """
    nodes = doc["nodes"]
    size = -(-len(nodes) // parts)
    part_of = {n["id"]: i // size for i, n in enumerate(nodes)}
    out: list[dict[str, Any]] = [{"nodes": nodes[i * size : (i + 1) * size], "relations": []}
                                 for i in range(parts)]  # fmt: skip
    for n in nodes:
        if n.get("owner") and part_of[n["owner"]] > part_of[n["id"]]:
            raise ValueError(f"{n['id']}: owner {n['owner']} comes in a later part")
    for r in doc["relations"]:
        out[max(part_of[r["from"]], part_of[r["to"]])]["relations"].append(r)
    return out


def timed_apply(path: Path, url: str, log: Path) -> dict[str, float]:
    """``capahub apply PATH --database URL`` under ``/usr/bin/time -v``: wall, CPU, peak RSS."""
    env = dict(os.environ, CAPAHUB_MAX_DOCUMENT_ITEMS="1000000000")
    tv = path.with_suffix(".time")
    t0 = time.perf_counter()
    with log.open("ab") as out:
        proc = subprocess.run(
            ["/usr/bin/time", "-v", "-o", str(tv), str(CAPAHUB), "apply", str(path)]
            + ["--database", url],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            check=False,
        )
    wall = time.perf_counter() - t0
    fields = {}
    for line in tv.read_text().splitlines():
        key, _, value = line.strip().rpartition(": ")
        fields[key] = value
    user = float(fields["User time (seconds)"])
    system = float(fields["System time (seconds)"])
    rss = int(fields["Maximum resident set size (kbytes)"]) / 1024
    return {"wall": wall, "cpu": user + system, "rss": rss, "rc": proc.returncode}


def build(args: argparse.Namespace) -> None:
    """Generate, cut and apply the landscape; one line per part, then the totals."""
    db = Path(args.db)
    if db.exists():
        sys.exit(f"{db} exists; remove it (and its -wal/-shm) first")
    print(f"machine: {machine_note()}; {code_note()}", flush=True)
    t0 = time.perf_counter()
    doc = generate_document(args.nodes, seed=args.seed)
    print(f"generated in {time.perf_counter() - t0:.1f} s: {describe(doc)}", flush=True)
    docs = ordered_split(doc, args.parts)
    del doc
    paths = []
    for i, part in enumerate(docs, 1):
        path = Path(args.tmp) / f"capahub-scale-{args.nodes}.{i}.json"
        path.write_bytes(orjson.dumps(part))
        paths.append(path)
        print(
            f"part {i}: {len(part['nodes']):,} nodes, {len(part['relations']):,} relations, "
            f"{path.stat().st_size / 1e6:.0f} MB of JSON: {path}",
            flush=True,
        )
    del docs, part
    url = f"sqlite:///{db}"
    total = {"wall": 0.0, "cpu": 0.0, "rss": 0.0}
    for i, path in enumerate(paths, 1):
        print(f"applying part {i} ({time.strftime('%H:%M:%S')}, {machine_note()})", flush=True)
        r = timed_apply(path, url, Path(args.tmp) / "scale-apply-output.log")
        print(
            f"part {i}: wall {r['wall']:.1f} s, CPU {r['cpu']:.1f} s, peak RSS {r['rss']:.0f} MB, "
            f"exit {r['rc']}  ({machine_note()})",
            flush=True,
        )
        if r["rc"]:
            sys.exit(f"apply of {path} failed; see {args.tmp}/scale-apply-output.log")
        total = {"wall": total["wall"] + r["wall"], "cpu": total["cpu"] + r["cpu"],
                 "rss": max(total["rss"], r["rss"])}  # fmt: skip
    print(
        f"total: wall {total['wall']:.1f} s, CPU {total['cpu']:.1f} s, max peak RSS "
        f"{total['rss']:.0f} MB; file {db.stat().st_size / 1e6:.0f} MB ({machine_note()})",
        flush=True,
    )


@dataclass
class Started:
    """A ``capahub serve`` that answered /readyz: its URL, process and start-up figures."""

    url: str
    process: subprocess.Popen[bytes]
    healthz_s: float
    readyz_s: float
    rss_mb: float
    cpu_s: float


@contextlib.contextmanager
def started(database: str, env: dict[str, str], log: Path) -> Iterator[Started]:
    """Start ``capahub serve`` (one worker, clean environment plus ``BASE_ENV`` and ``env``),
    poll /healthz and /readyz every 50 ms until both answered 200; stop it afterwards.

    Not ``_util.running_server``: that gives up after 60 s without /healthz, and a start from
    the tables at 1,000,000 nodes takes longer (uvicorn answers nothing before the lifespan's
    start-up is done).
    """
    port = free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith("CAPAHUB_")}
    cmd = [str(CAPAHUB), "serve", "--database", database, "--port", str(port)]
    url = f"http://127.0.0.1:{port}"
    t = time.perf_counter()
    with log.open("ab") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env={**base, **BASE_ENV, **env}
        )
    # One client for all the polls: ``httpx.get`` makes a client (and an SSL context) each
    # time, a quarter of a core at 20 polls a second, taken from the server starting.
    poll = httpx.Client(timeout=1)
    try:
        healthz = readyz = None
        while readyz is None:
            if proc.poll() is not None:
                raise RuntimeError(f"capahub serve exited with {proc.returncode}; see {log}")
            with contextlib.suppress(httpx.HTTPError):
                if healthz is None and poll.get(f"{url}/healthz").status_code == 200:
                    healthz = time.perf_counter() - t
                if healthz is not None and poll.get(f"{url}/readyz").status_code == 200:
                    readyz = time.perf_counter() - t
            if time.perf_counter() - t > 1800:
                raise RuntimeError(f"no /readyz in 1800 s; see {log}")
            time.sleep(0.05)
        assert healthz is not None
        yield Started(url, proc, healthz, readyz, rss_mb(proc.pid), cpu_seconds(proc.pid))
    finally:
        poll.close()
        proc.terminate()
        try:
            proc.wait(timeout=300)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_for_snapshots(directory: Path, count: int = 2, timeout: float = 600) -> float:
    """Seconds until ``count`` snapshot files are in ``directory`` and none grew for 3 s."""
    t = time.perf_counter()
    last: dict[str, int] = {}
    stable_since = time.perf_counter()
    while time.perf_counter() - t < timeout:
        sizes = {p.name: p.stat().st_size for p in directory.glob("*.snapshot")}
        if sizes != last:
            last, stable_since = sizes, time.perf_counter()
        elif len(sizes) >= count and time.perf_counter() - stable_since > 3:
            return stable_since - t
        time.sleep(0.5)
    return float("nan")


class Client:
    """GraphQL over HTTP: ``ask`` times the round trip, body read; errors are returned."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(timeout=900)
        self.gql = f"{url}/graphql"

    def ask(self, query: str, variables: dict[str, Any] | None = None) -> tuple[float, int, Any]:
        t = time.perf_counter()
        response = self.http.post(self.gql, json={"query": query, "variables": variables or {}})
        took = time.perf_counter() - t
        body = orjson.loads(response.content)
        if response.status_code != 200 or body.get("errors"):
            return took, len(response.content), {"errors": body.get("errors"),
                                                  "status": response.status_code}  # fmt: skip
        return took, len(response.content), body["data"]


def series(
    client: Client, query: str, runs: int, warmup: int = 3, variables: Any = None
) -> tuple[Stats, float]:
    """``runs`` timed requests after ``warmup``; ``variables`` a dict or a function of the run.
    Returns the statistics and the first (cold) request's seconds; raises ``RuntimeError`` on
    an error answer."""

    def vars_of(i: int) -> dict[str, Any] | None:
        return variables(i) if callable(variables) else variables

    first = None
    for i in range(warmup):
        took, _, data = client.ask(query, vars_of(-1 - i))
        first = took if first is None else first
        if "errors" in data:
            raise RuntimeError(f"after {took:.1f} s: {data['errors'][0].get('message')}")
    samples = []
    for i in range(runs):
        took, _, data = client.ask(query, vars_of(i))
        if "errors" in data:
            raise RuntimeError(f"run {i}, after {took:.1f} s: {data['errors'][0].get('message')}")
        samples.append(took)
    return Stats.of(samples), first or 0.0


def sample_ids(db: Path, seed: int) -> tuple[list[str], list[str], list[str], list[str]]:
    """All node ids (shuffled), the systems, the level-1 capabilities and the domains by
    PART_OF children, most first (at 100,000 nodes the roots of the largest impacts,
    impact_bench), read from the SQLite file (read-only)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        ids = [r[0] for r in conn.execute("SELECT id FROM nodes")]
        domains = [r[0] for r in conn.execute(
            "SELECT to_id FROM relations WHERE type = 'PART_OF' AND to_id LIKE 'domain:%' "
            "GROUP BY to_id ORDER BY count(*) DESC, to_id"
        )]  # fmt: skip
    finally:
        conn.close()
    systems = sorted(i for i in ids if i.startswith("system:"))
    l1 = sorted(i for i in ids if i.startswith("capability:") and "." not in i)
    random.Random(seed).shuffle(ids)
    return ids, systems, l1, domains


def page_cursor(client: Client, page: int, size: int) -> tuple[str, float]:
    """The ``after`` cursor of page ``page`` of ``nodes(first: size)``, walked in pages of 500
    (the API's own order; cursors are opaque); the walk's seconds."""
    t = time.perf_counter()
    before = (page - 1) * size  # items ahead of the page
    cursor, done = None, 0
    while done < before:
        step = min(500, before - done)
        _, _, data = client.ask(NODES_QUERY, {"after": cursor, "first": step})
        if "errors" in data:
            raise RuntimeError(f"nodes paging: {data}")
        conn = data["nodes"]
        cursor, done = conn["pageInfo"]["endCursor"], done + len(conn["edges"])
        if not conn["pageInfo"]["hasNextPage"]:
            raise RuntimeError(f"only {done} nodes: no page {page}")
    return cursor, time.perf_counter() - t


Row = tuple[str, "Stats | None", str]


def latencies(
    url: str, db: Path, args: argparse.Namespace, only: set[str] | None = None
) -> tuple[list[Row], set[str]]:
    """The latency rows (name, stats or None when refused, note) against the server at
    ``url``, and the names of the refused ones; ``only``: these rows alone."""
    client = Client(url)
    ids, systems, l1, domains = sample_ids(db, args.seed)
    rng = random.Random(args.seed)
    roots = domains[:2] + rng.sample(systems, min(args.impact_roots, len(systems)))
    args._impact_roots = roots + rng.sample(l1, min(2, len(l1)))
    rows: list[Row] = []
    refused: set[str] = set()

    def row(name: str, query: str, variables: Any = None, note: Any = None) -> None:
        if only is not None and name not in only:
            return
        try:
            stats, first = series(client, query, args.runs, variables=variables)
        except RuntimeError as err:
            rows.append((name, None, f"refused: {err}"))
            refused.add(name)
            print(f"  {name}: refused: {err}", flush=True)
            return
        extra = f"first request {first * 1000:,.0f} ms"
        if note is not None:
            extra += "; " + (note() if callable(note) else note)
        rows.append((name, stats, extra))
        print(f"  {name}: {stats} ({extra})", flush=True)

    def total(query: str, field: str, what: str) -> str:
        _, size, data = client.ask(query)
        return f"{data[field]['totalCount']:,} {what}, {size / 1e3:.1f} kB"

    row("discovery query (_util.DISCOVERY_QUERY)", DISCOVERY_QUERY)
    row(
        "node(id), a random id each run",
        NODE_QUERY,
        variables=lambda i: {"id": ids[i % len(ids)]},
    )
    row('search(query: "customer", first: 20)', SEARCH_QUERY,
        note=lambda: total(SEARCH_QUERY, "search", "hits"))  # fmt: skip
    row("the same with facets", SEARCH_FACETS_QUERY)
    row("gapsPage(first: 20), first page", GAPS_QUERY,
        note=lambda: total(GAPS_QUERY, "gapsPage", "gaps in all"))  # fmt: skip
    name = f"nodes(first: 20, after: cursor), page {args.page:,}"
    if only is None or name in only:
        cursor, walk = page_cursor(client, args.page, 20)
        page_vars = {"after": cursor, "first": 20}
        _, _, data = client.ask(NODES_QUERY, page_vars)
        first_id = data["nodes"]["edges"][0]["node"]["id"]
        row(name, NODES_QUERY, variables=page_vars,
            note=f"its cursor found by walking {(args.page - 1) * 20:,} nodes in {walk:.1f} s; "
            f"the page starts at {first_id}")  # fmt: skip
    return rows, refused


def impacts(url: str, roots: list[str], runs: int) -> list[tuple[str, int, int, Stats]]:
    """impact(depth: 3) (impact_bench's full answer) per root: affected, bytes, stats."""
    client = Client(url)
    out = []
    for root in roots:
        query = IMPACT_QUERY.format(root=root)
        _, size, data = client.ask(query)  # warm-up
        if "errors" in data:
            raise RuntimeError(f"impact {root}: {data}")
        count = len(data["impact"]["affected"])
        samples = [client.ask(query)[0] for _ in range(runs)]
        stats = Stats.of(samples)
        print(f"  impact {root}: {count:,} affected, {size / 1e6:.2f} MB, {stats}", flush=True)
        out.append((root, count, size, stats))
    return out


def measure(args: argparse.Namespace) -> None:
    """Start-up in three modes, then the latencies on the server started from the snapshots."""
    db = Path(args.db)
    print(f"machine: {machine_note()}; {code_note()}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="capahub-scale-"))
    if args.copy:
        t = time.perf_counter()
        shutil.copyfile(db, work / "catalog.db")
        db = work / "catalog.db"
        print(f"copied to {db} in {time.perf_counter() - t:.1f} s", flush=True)
    database = f"sqlite:///{db}"
    snapshots = Path(args.snapshot_dir) if args.snapshot_dir else work / "snapshots"
    log = work / "serve.log"
    print(f"catalog {db} ({db.stat().st_size / 1e6:,.0f} MB); serve log {log}", flush=True)
    starts: list[tuple[str, Started, str]] = []

    def note(name: str, s: Started, extra: str = "") -> None:
        starts.append((name, s, extra))
        print(
            f"{name}: /healthz {s.healthz_s:.1f} s, /readyz {s.readyz_s:.1f} s, CPU {s.cpu_s:.1f} s, "
            f"RSS {s.rss_mb:.0f} MB {extra} ({machine_note()})",
            flush=True,
        )

    on = {"CAPAHUB_PROJECTION_SNAPSHOT_DIR": str(snapshots)}
    if not args.skip_starts:
        with started(database, {"CAPAHUB_PROJECTION_SNAPSHOT_DIR": "off"}, log) as s:
            note("snapshots off (both projections from the tables)", s)
        with started(database, on, log) as s:
            written = wait_for_snapshots(snapshots, timeout=args.snapshot_timeout)
            sizes = ", ".join(
                f"{p.name} {p.stat().st_size / 1e6:.1f} MB"
                for p in sorted(snapshots.glob("*.snapshot"))
            )
            note("snapshots on, none yet (tables; snapshots written after ready)", s,
                 f"[files complete {written:.1f} s after ready: {sizes}]")  # fmt: skip
    rows: list[Row] = []
    refused: set[str] = set()
    impact_refused = ""
    with started(database, on, log) as s:
        note("second start, from the snapshots", s)
        if not args.no_latency:
            print(f"latencies, {args.runs} runs after 3 warm-ups each:", flush=True)
            rows, refused = latencies(s.url, db, args)
            # impact with the default limits, once: is it refused (static cost)?
            took, _, data = Client(s.url).ask(IMPACT_QUERY.format(root=args._impact_roots[0]))
            if "errors" in data:
                impact_refused = f"after {took:.1f} s: {data['errors'][0].get('message')}"
                print(f"  impact with the default limits refused: {impact_refused}", flush=True)
    results = []
    if not args.no_latency:
        # Raised limits only where the defaults refused (impact_bench's: cost, response size,
        # graph time budget, request timeout); a server of their own.
        env = {**on, **IMPACT_ENV} if impact_refused or refused else on
        raised = ", ".join(f"{k}={v}" for k, v in IMPACT_ENV.items())
        print(f"impact{' and the refused rows' if refused else ''} on a server with "
              f"{'raised limits (' + raised + ')' if env != on else 'the defaults'}:",
              flush=True)  # fmt: skip
        with started(database, env, log) as s:
            if refused:
                again, _ = latencies(s.url, db, args, only=refused)
                rows += [(f"{n} (raised limits)", st, note) for n, st, note in again]
            results = impacts(s.url, args._impact_roots, args.impact_runs)
    print(f"\n{machine_note()}; {code_note()}")
    print("\n| start | /healthz | /readyz | CPU by then | RSS at ready | note |")
    print("|---|---|---|---|---|---|")
    for name, s, extra in starts:
        print(f"| {name} | {s.healthz_s:.1f} s | {s.readyz_s:.1f} s | {s.cpu_s:.1f} s "
              f"| {s.rss_mb:,.0f} MB | {extra} |")  # fmt: skip
    if rows:
        print(f"\n| query (HTTP, {args.runs} runs) | p50 | p95 | mean | min | note |")
        print("|---|---|---|---|---|---|")
        for name, st, extra in rows:
            if st is None:
                print(f"| {name} | - | - | - | - | {extra} |")
                continue
            print(f"| {name} | {st.median:.1f} ms | {st.p95:.1f} ms | {st.mean:.1f} ms "
                  f"| {st.minimum:.1f} ms | {extra} |")  # fmt: skip
    if impact_refused:
        print(f"\nimpact(depth: 3) with the default limits: refused {impact_refused}")
    if results:
        print(f"\n| impact(depth: 3), full answer, {args.impact_runs} runs | affected | body "
              "| p50 | p95 | us per affected node (p50) |")  # fmt: skip
        print("|---|---|---|---|---|---|")
        for root, count, size, st in results:
            per = f"{st.median * 1000 / count:.1f}" if count else "-"
            print(f"| `{root}` | {count:,} | {size / 1e6:.2f} MB | {st.median:.1f} ms "
                  f"| {st.p95:.1f} ms | {per} |")  # fmt: skip
    print()
    for line in log.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            entry = {"level": "?", "message": line}
        if not isinstance(entry, dict):
            continue
        if entry.get("logger") == "capahub.snapshot" or entry.get("level") not in ("INFO", "DEBUG"):
            print(
                f"log: {entry.get('level')} {entry.get('logger')} {entry.get('message', '')}"[:300]
            )
    if not args.snapshot_dir:
        shutil.rmtree(snapshots, ignore_errors=True)
    if args.copy:
        db.unlink()


def main(argv: list[str] | None = None) -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="generate and apply a landscape in parts")
    b.add_argument("--nodes", type=int, default=1_000_000)
    b.add_argument("--parts", type=int, default=5)
    b.add_argument("--seed", type=int, default=1)
    b.add_argument("--db", required=True, help="the SQLite file to create")
    b.add_argument("--tmp", default="/tmp", help="where the part files go")
    m = sub.add_parser("measure", help="start-up and latencies of a real capahub serve")
    m.add_argument("--db", help="the SQLite catalog file")
    m.add_argument("--database", help="or its URL, sqlite:///PATH")
    m.add_argument("--copy", action="store_true", help="measure a copy of the file")
    m.add_argument("--runs", type=int, default=50, help="timed requests per query (50)")
    m.add_argument("--page", type=int, default=1000, help="the page of nodes(first: 20) (1000)")
    m.add_argument(
        "--impact-roots",
        type=int,
        default=3,
        help="random systems (3; + 2 L1 capabilities, 2 largest domains)",
    )
    m.add_argument("--impact-runs", type=int, default=5)
    m.add_argument("--snapshot-timeout", type=float, default=900)
    m.add_argument("--seed", type=int, default=7)
    m.add_argument("--no-latency", action="store_true", help="start-up only")
    m.add_argument("--snapshot-dir", help="the projections' snapshots (kept; default: temporary)")
    m.add_argument(
        "--skip-starts",
        action="store_true",
        help="no start without and first with snapshots: start from those of --snapshot-dir",
    )
    args = parser.parse_args(argv)
    if args.command == "build":
        build(args)
    else:
        if not args.db:
            if not (args.database or "").startswith("sqlite:///"):
                parser.error("give --db PATH or --database sqlite:///PATH")
            args.db = args.database.removeprefix("sqlite:///")
        measure(args)


if __name__ == "__main__":
    main()
