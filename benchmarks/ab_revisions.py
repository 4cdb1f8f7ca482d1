"""Benchmarks of ``run.py`` at an earlier commit and at this working tree, side by side.

    .venv/bin/python -m benchmarks.ab_revisions --before <rev> [--only 1,2,3,4,5] [--rounds 3]

``--same-benchmarks`` runs this tree's benchmarks/ at both sides (copied into the worktree),
so that only the code under test differs, and a benchmark added since ``--before`` runs too.

For a refactor that must not change speed: each round runs every chosen benchmark module once at
``--before`` (a detached git worktree under benchmarks/var/) and once here, in an order that
alternates from round to round, so that a machine that slows down during the run slows both
sides alike. Prints one Markdown table: per row of the results table, the median over the rounds
of the row's first number at each side and their ratio (after / before), with every round's
value beside it. Both sides run with this virtualenv's packages (benchmark 3: with the peers'
virtualenv, benchmarks/peers.py, each side's code first on its path).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness import ROOT, VAR, speed
from benchmarks.run import BENCHMARKS

NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def worktree_at(rev: str, *, same_benchmarks: bool = False) -> Path:
    """A detached worktree of ``rev`` (made once, reused by later runs); with
    ``same_benchmarks``, its benchmarks/ replaced by this tree's."""
    commit = subprocess.check_output(["git", "rev-parse", rev], cwd=ROOT, text=True).strip()
    path = VAR / f"ab-{commit[:12]}"
    if not (path / "benchmarks").is_dir():
        VAR.mkdir(exist_ok=True)
        add = ["git", "worktree", "add", "--detach", str(path), commit]
        subprocess.run(add, cwd=ROOT, check=True)
    if same_benchmarks:
        for source in (ROOT / "benchmarks").glob("*.py"):
            shutil.copy2(source, path / "benchmarks" / source.name)
    else:
        subprocess.run(["git", "checkout", "--", "benchmarks"], cwd=path, check=True)
    return path


def run_module(tree: Path, module: str, smoke: bool, python: str) -> list[dict[str, str]]:
    """One benchmark module's results, run from ``tree`` (its code first on sys.path)."""
    out = VAR / f"ab-{os.getpid()}-{time.monotonic_ns()}.json"
    command = [python, "-m", f"benchmarks.{module}", *(["--smoke"] * smoke)]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    subprocess.run([*command, "--json", str(out)], cwd=tree, env=env, check=False)
    try:
        results: list[dict[str, str]] = json.loads(out.read_text())["results"]
    except (OSError, ValueError, KeyError):
        results = []
    finally:
        out.unlink(missing_ok=True)
    return results


def first_number(value: str) -> float | None:
    match = NUMBER.search(value)
    return float(match.group()) if match else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="git revision to compare against")
    parser.add_argument("--only", default="1,2,3,4,5", help="benchmark numbers")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument(
        "--same-benchmarks", action="store_true", help="this tree's benchmarks/ at both sides"
    )
    parser.add_argument("--output", type=Path, default=VAR / "ab_revisions.md")
    args = parser.parse_args()
    only = set(args.only.split(","))
    modules = [(m, peers) for numbers, m, peers in BENCHMARKS if only & set(numbers.split())]
    pythons = {False: sys.executable}
    if any(peers for _, peers in modules):
        from benchmarks.peers import peers_python

        pythons[True] = str(peers_python())
    before = worktree_at(args.before, same_benchmarks=args.same_benchmarks)
    sides = {"before": before, "after": ROOT}
    values: dict[tuple[str, str], dict[str, list[str]]] = {}
    speed_before = speed()
    for round_ in range(args.rounds):
        order = ["before", "after"] if round_ % 2 == 0 else ["after", "before"]
        for module, peers in modules:
            for side in order:
                print(f"== round {round_ + 1}: {module} at {side}", flush=True)
                for result in run_module(sides[side], module, args.smoke, pythons[peers]):
                    row = values.setdefault((result["bench"], result["measure"]), {})
                    row.setdefault(side, []).append(result["value"])
    lines = [
        f"Before: {args.before}; after: the working tree; {args.rounds} rounds, alternating"
        + ("; both sides run this tree's benchmarks/. " if args.same_benchmarks else ". ")
        + f"Machine speed (`harness.speed`): {speed_before} at the start, {speed()} at the end.",
        "",
        "| # | measure | before (median) | after (median) | after / before "
        "| rounds: before; after |",
        "|---|---|---|---|---|---|",
    ]
    for (bench, measure), row in values.items():
        medians = {}
        for side in ("before", "after"):
            numbers = [n for n in map(first_number, row.get(side, [])) if n is not None]
            medians[side] = statistics.median(numbers) if numbers else None
        ratio = (
            f"{medians['after'] / medians['before']:.2f}"
            if medians["before"] and medians["after"] is not None
            else ""
        )
        rounds = "; ".join(" / ".join(row.get(side, [])) for side in ("before", "after"))
        lines.append(
            f"| {bench} | {measure} | {medians['before']} | {medians['after']} | {ratio} "
            f"| {rounds} |"
        )
    text = "\n".join(lines)
    args.output.write_text(text + "\n")
    print("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
