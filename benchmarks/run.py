"""Run the benchmarks and print one table of medians and ratios.

    .venv/bin/python benchmarks/run.py            # full sizes (make bench)
    .venv/bin/python benchmarks/run.py --smoke    # tiny sizes, a few minutes (make bench-smoke)
    .venv/bin/python benchmarks/run.py --only 1,3 # some of them

Each benchmark runs in its own process; benchmark 3 in benchmarks/.venv-peers, created on first
use. Exits non-zero when a benchmark breaks (an error, or wrong behaviour such as two
executions), never because a timing target was missed.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness import VAR, machine, run_json, speed

# (numbers in the results table, module, needs the peers' venv)
BENCHMARKS = [
    ("1 7", "bench_overhead", False),
    ("2", "bench_replay", False),
    ("3", "bench_peers", True),
    ("4", "bench_import", False),
    ("5", "bench_export", False),
    ("6", "bench_purge", False),
    ("8", "bench_lean", False),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: does it still work?")
    parser.add_argument("--only", default="", help="comma-separated benchmark numbers, e.g. 1,3")
    parser.add_argument("--output", type=Path, default=VAR / "results.md", help="Markdown table")
    args = parser.parse_args()
    only = {number for number in args.only.split(",") if number}
    results, failures, lines = [], [], []
    started, speed_before = time.monotonic(), speed()
    for numbers, module, peers in BENCHMARKS:
        if only and not only & set(numbers.split()):
            continue
        print(f"== benchmark {numbers}: {module}", flush=True)
        begin = time.monotonic()
        try:
            python = sys.executable
            if peers:
                from benchmarks.peers import peers_python

                python = str(peers_python())
            report = run_json([python, "-m", f"benchmarks.{module}", *(["--smoke"] * args.smoke)])
        except Exception as exc:  # a broken setup is a broken benchmark
            report = {"results": [], "failures": [f"{type(exc).__name__}: {exc}"], "notes": []}
        results += report["results"]
        failures += [f"{module}: {failure}" for failure in report["failures"]]
        lines += report["notes"] + [f"{module}: {time.monotonic() - begin:.0f} s"]
    total = time.monotonic() - started
    table = render(results)
    header = (
        f"{'Smoke run' if args.smoke else 'Run'} finished {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
        f"{total:.0f} s; {machine()}; {platform.platform()}\n\n"
        f"Speed of the machine (lower is faster, `harness.speed`): {speed_before} at the "
        f"start; {speed()} at the end."
    )
    text = "\n".join([header, "", table, "", *(f"- {line}" for line in lines)])
    VAR.mkdir(exist_ok=True)
    args.output.write_text(text + "\n")
    print("\n" + text)
    for failure in failures:
        print(f"BROKEN: {failure}", file=sys.stderr)
    return 1 if failures else 0


def render(results: list[dict[str, object]]) -> str:
    rows = ["| # | measure | result | target | met |", "|---|---|---|---|---|"]
    for result in results:
        met = {True: "yes", False: "**no**", None: ""}[result["met"]]  # type: ignore[index]
        rows.append(
            f"| {result['bench']} | {result['measure']} | {result['value']} "
            f"| {result['target']} | {met} |"
        )
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())
