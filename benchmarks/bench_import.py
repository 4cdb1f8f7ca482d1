"""Benchmark 4: subscriber import, 100k and 1M rows, through the job handler.

For each database and size: one process creates a queued import job as the create endpoint
does (the CSV checked, then written to storage; the job's params refer to the file), then a
fresh process runs the job with ``execute_job`` (claim, handler, finish), timing it and reading
its own peak RSS, and deletes the job (and so its file). PostgreSQL stages the rows with
``COPY``, SQLite with ``executemany``. Columns: email, first_name, last_name and a custom field.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Iterator

from benchmarks.harness import (
    Report,
    child,
    example_django,
    main,
    peak_rss_mb,
    pg_database,
    rss_now_mb,
    sqlite_database,
)

TARGETS = {"postgresql": 100_000, "sqlite": 40_000}  # rows/s
MAPPINGS = [
    {"csv_column": "email", "field": {"type": "email"}},
    {"csv_column": "first_name", "field": {"type": "first_name"}},
    {"csv_column": "last_name", "field": {"type": "last_name"}},
    {"csv_column": "plan", "field": {"type": "custom", "key": "plan"}},
]


def csv_text(rows: int) -> str:
    lines = ["email,first_name,last_name,plan"]
    lines += (f"user{i}@example.com,First{i},Last{i},{('free', 'pro')[i % 2]}" for i in range(rows))
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def database(vendor: str) -> Iterator[str]:
    with pg_database("import") if vendor == "postgresql" else sqlite_database("import") as url:
        yield url


def run(args: argparse.Namespace, report: Report) -> None:
    sizes = (2_000, 20_000) if args.smoke else (100_000, 1_000_000)
    for vendor, target in TARGETS.items():
        peaks = []
        for rows in sizes:
            with database(vendor) as url:
                job_id = child("bench_import", "--prepare", url, str(rows))["job_id"]
                outcome = child("bench_import", "--execute", url, job_id)
            result = outcome["result"]
            report.check(
                outcome["status"] == "succeeded" and result["created"] == rows,
                f"import of {rows} rows on {vendor}: {outcome['status']}, {result}",
            )
            speed = rows / outcome["seconds"]
            peaks.append(outcome["peak_mb"])
            report.add(
                "4",
                f"import {rows:,} rows, {vendor}",
                f"{outcome['seconds']:.1f} s = {speed:,.0f} rows/s; peak RSS "
                f"{outcome['peak_mb']:.0f} MB (job loaded: {outcome['loaded_mb']:.0f} MB, "
                f"CSV file {outcome['csv_mb']:.0f} MB)",
                f">= {target:,} rows/s",
                speed >= target,
            )
        growth = peaks[1] / peaks[0]
        report.add(
            "4",
            f"import peak RSS, {sizes[1]:,} / {sizes[0]:,} rows, {vendor}",
            f"{growth:.2f}x ({peaks[0]:.0f} -> {peaks[1]:.0f} MB)",
            "flat (<= 1.25x)",
            growth <= 1.25,
        )


def prepare(url: str, rows: int) -> None:
    example_django(url, migrate=True)
    from example_project.subscribers.bulk.files import store_csv
    from example_project.subscribers.bulk.imports import check_csv
    from example_project.workspaces.models import Workspace
    from idempotency_jobs.models import Job

    workspace = Workspace.objects.create(name="bench")
    text = csv_text(rows)
    params = {"csv_file": store_csv(text, rows=check_csv(text, MAPPINGS)), "mappings": MAPPINGS}
    job = Job.objects.create(kind="subscriber_import", owner=workspace.scope, params=params)
    print(json.dumps({"job_id": str(job.pk)}))


def execute(url: str, job_id: str) -> None:
    example_django(url)
    from idempotency_jobs.jobs.tasks import execute_job
    from idempotency_jobs.models import Job

    csv_mb = Job.objects.get(pk=job_id).params["csv_file"]["size"] / 2**20
    loaded_mb = rss_now_mb()  # Django, plus the job's params as the worker holds them
    start = time.perf_counter()
    execute_job(job_id)
    seconds = time.perf_counter() - start
    job = Job.objects.get(pk=job_id)
    outcome = {
        "seconds": seconds,
        "status": job.status,
        "result": {key: value for key, value in (job.result or {}).items() if key != "errors"},
        "peak_mb": peak_rss_mb(),
        "loaded_mb": loaded_mb,
        "csv_mb": csv_mb,
    }
    job.delete()  # and its CSV file
    print(json.dumps(outcome))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--prepare"]:
        prepare(sys.argv[2], int(sys.argv[3]))
    elif sys.argv[1:2] == ["--execute"]:
        execute(sys.argv[2], sys.argv[3])
    else:
        main(run, __doc__ or "")
