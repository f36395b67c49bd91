"""How fast the CLI answers: wall time and peak memory of each command, and which heavy libraries it imports.

Each command runs in a fresh process (as a user types it), ``--repeat`` times; the table shows the median wall
time, the median CPU time (user + system: on a shared machine, less moved by the neighbours' load than the wall
time) and the largest peak resident memory. ``show`` and ``report --help`` should not need torch; ``--help`` should
answer in about 0.3 s. ``show`` reads the store in ``--results``; ``--make-store`` first trains the default grid
into it if it holds none, with ``--steps 20`` (the default grid's 69 runs and metric keys, in about 2 minutes on
2 cores: ``show``'s work depends on the grid's shape, not on how long each run trained).

    python benchmarks/cli_latency.py [--results results] [--repeat 3] [--make-store]

Run it from the root of the checkout to measure: the commands import ``lossbench`` from the current folder first.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HEAVY = ("torch", "pandas", "scipy", "matplotlib", "seaborn", "sklearn")
PROBE = """import sys, runpy
sys.argv = ['lossbench', *sys.argv[1:]]
try:
    runpy.run_module('lossbench.cli', run_name='__main__')
except SystemExit:
    pass
print('\\n#imported ' + ' '.join(m for m in {heavy!r} if m in sys.modules), file=sys.stderr)
"""


def measure(args: list[str]) -> tuple[float, float, float, str]:
    """(wall seconds, CPU seconds, peak MiB, heavy modules imported) of one ``lossbench ARGS`` in a fresh process."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    _pid, _status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    err = process.stderr.read() if process.stderr else ""
    imported = err.rsplit("#imported", 1)[-1].strip() if "#imported" in err else "?"
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, imported or "-"


def make_store(results: Path) -> None:
    """The default grid's store, short runs: what ``lossbench show`` is measured on."""
    print(f"training the default grid (--steps 20) into {results} ...", flush=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "lossbench.cli",
            "run",
            "--grid",
            "--steps",
            "20",
            "--no-report",
            "--results",
            str(results),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=Path("results"))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--make-store",
        action="store_true",
        help="Train the default grid (--steps 20) into --results first, if it holds no store.",
    )
    options = parser.parse_args()
    if options.make_store and not (options.results / "lossbench.db").exists():
        make_store(options.results)
    commands = [["--help"], ["run", "--help"], ["report", "--help"], ["list", "losses"]]
    if (options.results / "lossbench.db").exists():
        commands.append(["show", "--results", str(options.results)])
    else:
        print(f"(no store in {options.results}: `show` not measured)")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{'command':<28} {'wall s (median)':>15} {'CPU s (median)':>14} {'peak MiB':>9}  heavy imports")
    for args in commands:
        runs = [measure(args) for _ in range(options.repeat)]
        wall = statistics.median(run[0] for run in runs)
        cpu = statistics.median(run[1] for run in runs)
        peak = max(run[2] for run in runs)
        print(f"{'lossbench ' + ' '.join(args[:2]):<28} {wall:>15.2f} {cpu:>14.2f} {peak:>9.0f}  {runs[-1][3]}")


if __name__ == "__main__":
    main()
