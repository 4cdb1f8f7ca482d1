"""A/B of the subscriber export's perf work (benchmarks/RESULTS.md, benchmark 5).

The shipped ``export_subscribers`` against the code before it (``exports.py`` as it was at
``AB_BEFORE``, default 28772b2, loaded from git), on the same 1M rows as benchmark 5
(PostgreSQL with created_at spread and alike, SQLite spread). Each export runs through
``execute_job`` in a fresh process, so that its peak RSS is its own; each round runs both, in a
shuffled order. Reported: medians of the time (and rows/s), peak RSS, CPU seconds of the worker
process and of its PostgreSQL backend, and the ratio of the median times with its lowest and
highest value over the rounds. Not part of ``run.py``:
``[AB_BEFORE=<git rev>] .venv/bin/python -m benchmarks.ab_export``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from benchmarks.bench_export import CREATED
from benchmarks.harness import (
    VAR,
    Report,
    child,
    example_django,
    main,
    module_at,
    peak_rss_mb,
    pg_database,
    sqlite_database,
)

ROUNDS = 5
VARIANTS = ("before", "shipped")
BEFORE = "28772b2"  # the last commit before the export's perf work


@contextmanager
def database(vendor: str) -> Iterator[str]:
    with (
        pg_database("ab_export") if vendor == "postgresql" else sqlite_database("ab_export") as url
    ):
        yield url


def run(args: argparse.Namespace, report: Report) -> None:
    rows, rounds = (20_000, 1) if args.smoke else (1_000_000, ROUNDS)
    for vendor, created in CREATED:
        samples: dict[str, list[dict[str, float]]] = {name: [] for name in VARIANTS}
        with database(vendor) as url:
            job_id = child("bench_export", "--prepare", url, str(rows), created)["job_id"]
            for _ in range(rounds):
                for name in random.sample(VARIANTS, len(VARIANTS)):
                    outcome = child("ab_export", "--execute", url, job_id, name)
                    report.check(
                        outcome["status"] == "succeeded" and outcome["row_count"] == rows,
                        f"{name} export on {vendor}: {outcome['status']}, {outcome['row_count']}",
                    )
                    samples[name].append(outcome)
        shutil.rmtree(VAR / "media", ignore_errors=True)
        values = {
            name: ", ".join(
                f"{key} {statistics.median(s[key] for s in runs):.2f}"
                for key in ("seconds", "cpu", "backend_cpu", "peak_mb")
            )
            for name, runs in samples.items()
        }
        before = [s["seconds"] for s in samples["before"]]
        shipped = [s["seconds"] for s in samples["shipped"]]
        ratios = [b / a for a, b in zip(before, shipped, strict=True)]
        speed = {
            name: rows / statistics.median(s["seconds"] for s in runs)
            for name, runs in samples.items()
        }
        report.add(
            "5",
            f"A/B export of {rows:,} rows, {vendor}, created_at {created}, {rounds} rounds",
            f"before {speed['before']:,.0f} rows/s ({values['before']}); shipped "
            f"{speed['shipped']:,.0f} rows/s ({values['shipped']}); shipped / before time "
            f"{statistics.median(shipped) / statistics.median(before):.2f}x "
            f"(rounds {min(ratios):.2f}-{max(ratios):.2f})",
        )


def backend_cpu(pid: int | None) -> float:
    """CPU seconds of a PostgreSQL backend on this machine (0 where it cannot be read)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def execute(url: str, job_id: str, variant: str) -> None:
    example_django(url)
    from django.db import connection

    from example_project.subscribers import jobs
    from idempotency_jobs.jobs.tasks import execute_job
    from idempotency_jobs.models import Job

    # Loaded in both, so that neither pays for it while timed.
    rev = os.environ.get("AB_BEFORE", BEFORE)
    # That exports.py lived beside imports.py, which moved into subscribers/bulk/ since.
    from example_project.subscribers.bulk import imports

    sys.modules.setdefault("example_project.subscribers.imports", imports)
    before = module_at(rev, "example_project/subscribers/exports.py")
    if variant == "before":
        jobs.export_subscribers = before.export_subscribers
    Job.objects.filter(pk=job_id).update(status=Job.Status.QUEUED)
    pid = None
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            pid = cursor.fetchone()[0]
    backend, cpu, start = backend_cpu(pid), own_cpu(), time.perf_counter()
    execute_job(job_id)
    seconds, cpu, backend = time.perf_counter() - start, own_cpu() - cpu, backend_cpu(pid) - backend
    job = Job.objects.get(pk=job_id)
    result = job.result or {}
    outcome = {
        "seconds": seconds,
        "cpu": cpu,
        "backend_cpu": backend,
        "status": job.status,
        "row_count": result.get("row_count"),
        "peak_mb": peak_rss_mb(),
    }
    print(json.dumps(outcome))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--execute"]:
        execute(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        main(run, __doc__ or "")
