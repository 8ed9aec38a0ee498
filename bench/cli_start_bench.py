"""Wall time (and CPU time) of short CLI commands, i.e. a command's start: median of N runs.

    .venv/bin/python bench/cli_start_bench.py [--runs 5] [--tree DIR]

``--tree DIR`` measures another checkout (e.g. an older commit unpacked with ``git archive``)
with this virtualenv's Python (``python -m catalog.cli`` from DIR). Prints the load average,
since the machine is shared.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS: list[list[str]] = [["--version"], ["--help"], ["apply", "--help"], ["export", "--help"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tree", type=Path, default=Path(__file__).resolve().parents[1])
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAPAHUB_")}
    env["PYTHONPATH"] = str(args.tree)
    print(f"tree {args.tree}, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for command in COMMANDS:
        times = []
        cpu = []
        status = 0
        for _ in range(args.runs):
            used = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-m", "catalog.cli", *command],
                cwd=args.tree,
                env=env,
                capture_output=True,
                check=False,
            )
            times.append(time.perf_counter() - started)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu.append(after.ru_utime + after.ru_stime - used.ru_utime - used.ru_stime)
            status = done.returncode
        print(
            f"capahub {' '.join(command):<16} median {statistics.median(times) * 1000:6.0f} ms"
            f"  (min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f}; "
            f"CPU median {statistics.median(cpu) * 1000:.0f} ms; exit {status})"
        )


if __name__ == "__main__":
    main()
