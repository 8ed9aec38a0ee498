"""Replica start: how long `capahub serve` takes until /readyz answers 200, with and without
snapshots of the projections (issue 15: the graph's, ``metadata/snapshot.py``, and the
search's, ``metadata/search/snapshot.py``), and its RSS then.

    .venv/bin/python bench/start_bench.py [--nodes 100000] [--runs 3] [--db PATH]
        [--database postgresql://...] [--replay 1000]
    .venv/bin/python bench/start_bench.py --projection-only --nodes 1000000

Modes, each a fresh process on the same catalog:

- ``off``: ``CAPAHUB_PROJECTION_SNAPSHOT_DIR=off``, both projections are built from the tables
  (what every start did before);
- ``first``: snapshots on, none on disk yet: built from the tables, both snapshots written in
  the background after start (each file's size is printed);
- ``snapshot``: the snapshots the previous mode wrote, nothing to replay;
- ``replay``: ``--replay`` nodes applied by `capahub apply` (another process) after the
  snapshots, replayed at start (the graph's changes; the search's documents after its last).

The servers log JSON (``CAPAHUB_LOG_FORMAT=json``, to read the lines back), and the snapshot
lines and any warnings are printed at the end: check there that each start from the snapshots
read both files.

The SQLite catalog is built once with `capahub apply` from ``bench/synth.py`` (in parts: one
document must stay under 50 MB) and copied for the run, which changes it (``replay``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from _util import CAPAHUB, code_note, cpu_seconds, free_port, machine_note
from synth import describe, dump, generate_document


def seeded(nodes: int, directory: Path) -> Path:
    """A SQLite catalog of ``nodes`` synthetic nodes (seed 1), built once."""
    path = directory / f"capahub-start-bench-{nodes}.db"
    if path.exists():
        return path
    doc = generate_document(nodes, seed=1)
    print(f"building {path}: {describe(doc)}", file=sys.stderr)
    files = dump(doc, path.with_suffix(".json"), parts=max(1, nodes // 33_000))
    tmp = path.with_suffix(".tmp.db")
    env = {**os.environ, "CAPAHUB_MAX_DOCUMENT_ITEMS": "5000000"}
    subprocess.run(
        [str(CAPAHUB), "apply", *map(str, files), "--database", f"sqlite:///{tmp}"],
        check=True,
        env=env,
    )
    for f in files:
        f.unlink()
    tmp.rename(path)
    return path


def rss_mb(pid: int) -> float:
    """Resident memory of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def start_once(database: str, env: dict[str, str], log: Path) -> tuple[float, float, float]:
    """Start `capahub serve`, wait for /readyz 200; (seconds, RSS in MB, CPU seconds used by
    then: steadier than the wall time on a shared machine)."""
    port = free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith("CAPAHUB_")}
    cmd = [str(CAPAHUB), "serve", "--database", database, "--port", str(port)]
    env = {"CAPAHUB_LOG_FORMAT": "json", **env}
    url = f"http://127.0.0.1:{port}"
    t = time.perf_counter()
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env={**base, **env})
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"capahub serve exited with {proc.returncode}; see {log}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    took = time.perf_counter() - t
                    break
            if time.perf_counter() - t > 900:
                raise RuntimeError(f"no /readyz in 900 s; see {log}")
            time.sleep(0.05)
        rss, cpu = rss_mb(proc.pid), cpu_seconds(proc.pid)
        # let a background snapshot write finish before stopping (``first`` mode)
        time.sleep(float(env.get("_SETTLE", "0")))
        return took, rss, cpu
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def apply_more(database: str, count: int, work: Path) -> None:
    """``count`` new systems, each DEPENDS_ON the one before, through `capahub apply`."""
    lines = ["nodes:"]
    lines += [f"  - {{id: system:replay{i}, name: Replay {i}}}" for i in range(count)]
    lines.append("relations:")
    lines += [
        f"  - {{from: system:replay{i}, type: DEPENDS_ON, to: system:replay{i - 1}}}"
        for i in range(1, count)
    ]
    doc = work / "replay.yaml"
    doc.write_text("\n".join(lines) + "\n")
    subprocess.run(
        [str(CAPAHUB), "apply", str(doc), "--database", database], check=True, capture_output=True
    )


def projection_only(nodes: int) -> None:
    """Without a database: the graph projection of a synthetic catalog, built in memory, then
    its snapshot encoded and decoded (what a start reads instead of the tables)."""
    import gc
    import resource

    from metadata.graph import CatalogGraph
    from metadata.model import KIND_BY_PREFIX
    from metadata.snapshot import Anchor, SnapshotIdentity, encode
    from metadata.store import Change

    t = time.perf_counter()
    doc = generate_document(nodes, seed=1)
    print(f"{describe(doc)}; generated in {time.perf_counter() - t:.0f} s")
    graph = CatalogGraph()
    gc.disable()
    batch: list[Change] = []
    i = 0
    for n in doc.pop("nodes"):
        i += 1
        kind = KIND_BY_PREFIX[n["id"].split(":", 1)[0]].value
        after = {"id": n["id"], "kind": kind, "lifecycle": n.get("lifecycle", "ACTIVE")}
        after["owner"] = n.get("owner")
        batch.append(Change(i, "node", n["id"], "create", None, after))
    graph.apply(batch)
    batch = []
    for r in doc.pop("relations"):
        i += 1
        after = {"from": r["from"], "type": r["type"], "to": r["to"]}
        after["properties"] = r.get("properties")
        batch.append(Change(i, "relation", "", "create", None, after))
        if len(batch) == 50_000:
            graph.apply(batch)
            batch = []
    graph.apply(batch)
    del doc, batch
    gc.enable()
    gc.collect()
    rels = sum(len(d["rels"]) for _, _, d in graph.g.edges(data=True))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"projection: {graph.g.number_of_nodes()} nodes, {rels} relations; max RSS {rss:.0f} MB")
    identity = SnapshotIdentity("bench", "bench")
    t = time.perf_counter()
    data = encode(graph.snapshot(), identity, Anchor(i, "", "", "create"))
    print(f"encode: {time.perf_counter() - t:.2f} s, {len(data) / 1e6:.1f} MB")
    del graph
    gc.collect()
    # Each decode in a fresh process, so that its RSS growth is the projection's (in this one
    # the build's freed memory would be reused).
    with tempfile.NamedTemporaryFile(suffix=".snapshot") as f:
        f.write(data)
        f.flush()
        del data
        for _ in range(3):
            subprocess.run([sys.executable, __file__, "--decode", f.name], check=True)


def decode_file(path: Path) -> None:
    """Decode a graph snapshot file in this (fresh) process: time and RSS growth."""
    import gc

    from metadata.snapshot import decode_graph, decode_header

    data = path.read_bytes()
    gc.collect()
    before = _rss_now_mb()
    t = time.perf_counter()
    header, body = decode_header(data)
    snap = decode_graph(header, body)
    took = time.perf_counter() - t
    del data, body
    gc.collect()
    held = _rss_now_mb() - before
    nodes = snap.graph.number_of_nodes()
    print(
        f"decode (checksum, inflate, JSON, dicts), fresh process: {took:.2f} s; "
        f"{nodes} nodes; RSS +{held:.0f} MB after (the projection)"
    )


def _rss_now_mb() -> float:
    """This process's resident memory now (not its peak)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--db", type=Path, help="a SQLite catalog to copy (else one is built)")
    ap.add_argument("--db-dir", type=Path, default=Path(tempfile.gettempdir()))
    ap.add_argument("--database", help="a PostgreSQL URL holding the catalog (used as is)")
    ap.add_argument("--replay", type=int, default=1000, help="nodes applied after the snapshot")
    ap.add_argument("--decode", type=Path, help=argparse.SUPPRESS)  # projection_only's child
    ap.add_argument(
        "--projection-only",
        action="store_true",
        help="no database, no server: encode and decode the snapshot of --nodes in memory",
    )
    args = ap.parse_args()
    if args.decode:
        decode_file(args.decode)
        return
    print(machine_note())
    print(code_note())
    if args.projection_only:
        projection_only(args.nodes)
        return
    with tempfile.TemporaryDirectory(prefix="capahub-start-") as tmp:
        work = Path(tmp)
        if args.database:
            database = args.database
        else:
            source = args.db or seeded(args.nodes, args.db_dir)
            copy = work / "catalog.db"
            shutil.copyfile(source, copy)
            database = f"sqlite:///{copy}"
        snapshots = work / "snapshots"
        log = work / "serve.log"
        on = {"CAPAHUB_PROJECTION_SNAPSHOT_DIR": str(snapshots)}
        modes: list[tuple[str, dict[str, str], int]] = [
            ("off", {"CAPAHUB_PROJECTION_SNAPSHOT_DIR": "off"}, args.runs),
            ("first", {**on, "_SETTLE": "15"}, 1),
            ("snapshot", on, args.runs),
        ]
        results: list[tuple[str, list[tuple[float, float, float]]]] = []
        for name, env, runs in modes:
            if name == "first":
                shutil.rmtree(snapshots, ignore_errors=True)
            got = [start_once(database, env, log) for _ in range(runs)]
            results.append((name, got))
            print(
                f"{name:9s} "
                + "  ".join(f"{t:6.2f} s ({c:5.2f} s CPU) / {r:5.0f} MB" for t, r, c in got)
            )
            if name == "first":
                sizes = {p.name: p.stat().st_size for p in sorted(snapshots.glob("*.snapshot"))}
                for file, size in sizes.items():
                    print(f"          snapshot file {file}: {size / 1e6:.1f} MB")
                if len(sizes) < 2:
                    print("          (fewer snapshot files than projections: see the log below)")
        if args.replay:
            apply_more(database, args.replay, work)
            got = [start_once(database, on, log)]
            results.append((f"replay {args.replay}", got))
            t, r, c = got[0]
            print(f"replay    {t:6.2f} s ({c:5.2f} s CPU) / {r:5.0f} MB ({args.replay} nodes)")
        print(
            "\n| start | until /readyz (median, min) | CPU by then (median) | RSS at ready | runs |"
        )
        print("|---|---|---|---|---|")
        for name, got in results:
            ts, rs, cs = ([g[i] for g in got] for i in range(3))
            print(
                f"| {name} | {statistics.median(ts):.1f} s, {min(ts):.1f} s | "
                f"{statistics.median(cs):.1f} s | {statistics.median(rs):.0f} MB | {len(got)} |"
            )
        for line in log.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                entry = {"level": "?", "logger": "?", "message": line}
            if not isinstance(entry, dict):
                continue
            if entry.get("logger") == "capahub.snapshot" or entry.get("level") not in (
                "INFO",
                "DEBUG",
            ):
                print(f"log: {entry.get('level')} {entry.get('message', '')}"[:300])


if __name__ == "__main__":
    main()
