"""Bulk load through ``capahub apply``: wall time and peak RSS of the command, one document of
N nodes at a time, and consecutive parts into a growing catalog (the per-part cost).

Documents come from ``synth.py`` (about five relations per node: dense dependencies, some
nodes without owners), written as one JSON file each (``capahub apply`` reads files of 20 MB
and more in parts: ``catalog.document_stream``). The parts of the growing catalog are
landscapes of their own (every id of part ``i`` gets the suffix ``.p<i>``), so each adds its
nodes and relations to what the parts before it wrote. Each run is a fresh ``capahub``
process; its peak RSS is the kernel's (``wait4``).

    .venv/bin/python bench/bulk_bench.py --nodes 100000 250000
    .venv/bin/python bench/bulk_bench.py --nodes 0 --parts 4 --part-nodes 100000
    .venv/bin/python bench/bulk_bench.py --nodes 100000 --database "$(scripts/pg-start)"
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
from _util import CAPAHUB, code_note, machine_note
from synth import describe, generate_document

#: The targets of issue 15 for 1,000,000 nodes / 5,000,000 relations.
TARGET_S = 300.0
TARGET_RSS_MB = 2048.0


def suffixed(doc: dict[str, Any], suffix: str) -> dict[str, Any]:
    """``doc`` with every node id (and every reference to one) ending in ``suffix``."""

    def ref(node_id: str | None) -> str | None:
        return None if node_id is None else node_id + suffix

    nodes = []
    for n in doc["nodes"]:
        out = dict(n, id=n["id"] + suffix)
        if n.get("owner"):
            out["owner"] = ref(n["owner"])
        nodes.append(out)
    relations = [
        dict(r, **{"from": r["from"] + suffix, "to": r["to"] + suffix}) for r in doc["relations"]
    ]
    return {"nodes": nodes, "relations": relations}


def write_document(doc: dict[str, Any], path: Path) -> str:
    """Write ``doc`` as JSON; returns its description."""
    path.write_bytes(orjson.dumps(doc))
    return f"{describe(doc)}; {path.stat().st_size / 1e6:.0f} MB of JSON"


def run_apply(paths: list[Path], url: str) -> tuple[float, float, float, int]:
    """``capahub apply PATHS --database URL`` in a fresh process: wall s, CPU s, peak RSS MB,
    exit status.

    Through ``/usr/bin/time``: a child's ``ru_maxrss`` counts the memory of the process it
    was forked from (this one, which holds the generated documents), a grandchild's does not.
    """
    env = dict(os.environ, CAPAHUB_MAX_DOCUMENT_ITEMS="1000000000")
    with tempfile.NamedTemporaryFile("r", suffix=".time") as out:
        t0 = time.perf_counter()
        proc = subprocess.run(
            ["/usr/bin/time", "-o", out.name, "-f", "%M %U %S", str(CAPAHUB), "apply"]
            + [str(p) for p in paths]
            + ["--database", url],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
            check=False,
        )
        wall = time.perf_counter() - t0
        fields = out.read().split()
    if proc.returncode != 0:
        print(proc.stderr.decode(errors="replace")[-2000:])
    rss_kb, user, system = int(fields[-3]), float(fields[-2]), float(fields[-1])
    return wall, user + system, rss_kb / 1024, proc.returncode


def _fresh_url(database: str | None, tmp: Path, name: str) -> str:
    if database is None:
        return f"sqlite:///{tmp / name}.db"
    import asyncio

    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    from metadata.store import normalize_url

    async def reset() -> None:
        engine = create_async_engine(normalize_url(database))
        async with engine.begin() as conn:
            await conn.execute(text("DROP SCHEMA public CASCADE"))
            await conn.execute(text("CREATE SCHEMA public"))
        await engine.dispose()

    asyncio.run(reset())
    return database


def main(argv: list[str] | None = None) -> None:
    """Run the measures asked for and print one line each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, nargs="*", default=[100_000])
    parser.add_argument("--parts", type=int, default=0, help="consecutive parts to apply")
    parser.add_argument("--part-nodes", type=int, default=100_000)
    parser.add_argument("--database", help="a PostgreSQL URL (emptied first); default SQLite")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-reapply", action="store_true", help="skip the unchanged re-apply")
    args = parser.parse_args(argv)
    store = "PostgreSQL" if args.database else "SQLite file"
    print(f"machine: {machine_note()}; {code_note()}; store: {store}")
    with tempfile.TemporaryDirectory(prefix="capahub-bulk-") as tmp_dir:
        tmp = Path(tmp_dir)
        for n in [n for n in args.nodes if n > 0]:
            path = tmp / f"synth-{n}.json"
            shape = write_document(generate_document(n, seed=args.seed), path)
            url = _fresh_url(args.database, tmp, f"one-{n}")
            wall, cpu, rss, rc = run_apply([path], url)
            print(
                f"apply {n:>9,} nodes to an empty catalog: {wall:7.1f} s (CPU {cpu:6.1f} s), "
                f"peak RSS {rss:6.0f} MB, exit {rc}  [{shape}]",
                flush=True,
            )
            if args.no_reapply:
                path.unlink()
                continue
            again = run_apply([path], url)
            print(
                f"re-apply it unchanged:                 {again[0]:7.1f} s (CPU {again[1]:6.1f} s), "
                f"peak RSS {again[2]:6.0f} MB, exit {again[3]}",
                flush=True,
            )
            path.unlink()
        if args.parts:
            url = _fresh_url(args.database, tmp, "growing")
            base = generate_document(args.part_nodes, seed=args.seed)
            for i in range(1, args.parts + 1):
                path = tmp / f"part-{i}.json"
                shape = write_document(suffixed(base, f".p{i}"), path)
                wall, cpu, rss, rc = run_apply([path], url)
                print(
                    f"part {i} ({args.part_nodes:,} nodes onto {(i - 1) * args.part_nodes:,}): "
                    f"{wall:7.1f} s (CPU {cpu:6.1f} s), peak RSS {rss:6.0f} MB, exit {rc}"
                    + (f"  [{shape}]" if i == 1 else ""),
                    flush=True,
                )
                path.unlink()
    print(f"targets (1,000,000 nodes): < {TARGET_S:.0f} s, < {TARGET_RSS_MB:.0f} MB")


if __name__ == "__main__":
    main()
