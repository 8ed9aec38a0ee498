"""Time applying a synthetic catalog document to an empty SQLite catalog, then re-applying it.

Measures, in-process (the code path of ``capahub apply``): parsing and validating the JSON
document, opening and migrating the database (``WriteServices``: the store, the search index
hook, the registry), and the apply transaction; then the same document again, unchanged. Also
times the ``capahub apply`` command end to end (a fresh process, so interpreter and import time
included). Wall and CPU seconds: on a shared machine the CPU time (all threads; SQLite works
in aiosqlite's thread) moves less with the other load. Target: under 10 s for 10,000 nodes.

    .venv/bin/python bench/apply_bench.py [--nodes 10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from _util import CAPAHUB, code_note, machine_note, settings_for
from sqlalchemy import event
from synth import describe, generate_document

from catalog.services import WriteServices
from catalog.specs import parse_document

TARGET_S = 10.0


@dataclass
class Timing:
    """Seconds spent in each phase of one apply, and what it did."""

    parse: float
    open: float
    apply: float
    statements: int
    report: str
    cpu: float = 0.0

    @property
    def total(self) -> float:
        """Parse + open + apply."""
        return self.parse + self.open + self.apply


async def apply_once(text: str, url: str) -> Timing:
    """Parse ``text`` and apply it to the catalog at ``url``, timing each phase."""
    c0 = time.process_time()
    t0 = time.perf_counter()
    doc = parse_document(text)
    t1 = time.perf_counter()
    # As `capahub apply` does: the write path only (no projections, analysis, harvesters).
    services = await WriteServices.start(settings_for(url))
    t2 = time.perf_counter()
    statements = 0

    def count(*_: Any) -> None:
        nonlocal statements
        statements += 1

    event.listen(services.store.engine.sync_engine, "before_cursor_execute", count)
    try:
        report = await services.registry.apply_document(doc)
        t3 = time.perf_counter()
        cpu = time.process_time() - c0
    finally:
        await services.close()
    summary = (
        f"{len(report.added)} added, {len(report.updated)} updated, "
        f"{len(report.unchanged)} unchanged, {report.relations_added} relations added"
    )
    return Timing(t1 - t0, t2 - t1, t3 - t2, statements, summary, cpu)


def cli_once(path: Path, url: str) -> tuple[float, float]:
    """Wall and CPU time of ``capahub apply FILE --database URL`` in a fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(
        [str(CAPAHUB), "apply", str(path), "--database", url],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def _show(label: str, runs: list[Timing]) -> float:
    med = statistics.median
    total = med(t.total for t in runs)
    print(
        f"{label:<22} total {total:6.2f} s  (parse {med(t.parse for t in runs):5.2f} s, "
        f"open+migrate {med(t.open for t in runs):5.2f} s, "
        f"apply {med(t.apply for t in runs):5.2f} s; {runs[0].statements} SQL statements; "
        f"CPU {med(t.cpu for t in runs):5.2f} s)  -> {runs[0].report}"
    )
    return total


def _show_cli(label: str, runs: list[tuple[float, float]]) -> float:
    med = statistics.median
    wall = med(w for w, _ in runs)
    print(f"{label:<22} total {wall:6.2f} s  (CPU {med(c for _, c in runs):5.2f} s)")
    return wall


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print medians over ``--repeat`` runs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3, help="runs per measure (median shown)")
    args = parser.parse_args(argv)

    doc = generate_document(args.nodes, seed=args.seed)
    text = orjson.dumps(doc).decode()
    print(f"document: {describe(doc)}; {len(text) / 1e6:.1f} MB of JSON")
    print(f"machine: {machine_note()}; {code_note()}")

    first: list[Timing] = []
    again: list[Timing] = []
    cli_first: list[tuple[float, float]] = []
    cli_again: list[tuple[float, float]] = []
    with tempfile.TemporaryDirectory(prefix="capahub-apply-") as tmp:
        path = Path(tmp) / "synth.json"
        path.write_text(text, encoding="utf-8")
        for i in range(args.repeat):
            url = f"sqlite:///{tmp}/inproc-{i}.db"
            first.append(asyncio.run(apply_once(text, url)))
            again.append(asyncio.run(apply_once(text, url)))
            url = f"sqlite:///{tmp}/cli-{i}.db"
            cli_first.append(cli_once(path, url))
            cli_again.append(cli_once(path, url))

    print(f"\nmedian of {args.repeat} runs, {args.nodes} nodes, SQLite file, in-process:")
    total = _show("apply to empty", first)
    _show("re-apply unchanged", again)
    print("`capahub apply` command, wall time (fresh process: imports and start-up included):")
    command = _show_cli("apply to empty", cli_first)
    _show_cli("re-apply unchanged", cli_again)
    print(f"machine: {machine_note()}")
    failed = False
    for what, seconds in (("in-process", total), ("`capahub apply`", command)):
        verdict = "OK" if seconds < TARGET_S else "MISSED"
        failed = failed or seconds >= TARGET_S
        print(
            f"target: apply {args.nodes} nodes to an empty catalog < {TARGET_S:.0f} s, "
            f"{what}: {seconds:.2f} s {verdict}"
        )
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
