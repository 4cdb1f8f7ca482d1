"""Benchmark 5: subscriber export, 1M rows to CSV, through the job handler.

One process fills a workspace with subscribers (one INSERT ... SELECT; created_at one second
apart, and on PostgreSQL also all alike, as one bulk load leaves them) and queues an export
job of the default fields; a fresh process runs it with ``execute_job``, timing it and reading
its own peak RSS. PostgreSQL takes the COPY path, SQLite the chunked-iterator path.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from benchmarks.harness import (
    VAR,
    Report,
    child,
    example_django,
    main,
    peak_rss_mb,
    pg_database,
    rss_now_mb,
    sqlite_database,
)

TARGET_SPEED = 300_000  # rows/s
TARGET_RSS = 150  # MB
FILL = """
INSERT INTO {table} (workspace_id, email, name, first_name, last_name, custom_fields, status,
                     created_at, updated_at)
SELECT %s, 'user' || g || '@example.com', 'First' || g || ' Last' || g, 'First' || g,
       'Last' || g, '{{"plan": "pro"}}', 'active', {created}, {created}
FROM {series}
"""
# Per vendor: the row numbers g, and created_at either one second apart (a list built over
# time) or all alike (one bulk load, as one import batch writes them).
SERIES = {
    "postgresql": "generate_series(1, %s) AS g",
    "sqlite": (
        "(WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < %s) "
        "SELECT g FROM s)"
    ),
}
CREATED = {
    ("postgresql", "spread"): "now() - g * interval '1 second'",
    ("postgresql", "alike"): "now()",
    ("sqlite", "spread"): "strftime('%%Y-%%m-%%d %%H:%%M:%%f', 'now', '-' || g || ' seconds')",
}


@contextmanager
def database(vendor: str) -> Iterator[str]:
    """Its own database, apart from benchmark 4's, so that the two can run side by side."""
    with pg_database("export") if vendor == "postgresql" else sqlite_database("export") as url:
        yield url


def run(args: argparse.Namespace, report: Report) -> None:
    rows = 20_000 if args.smoke else 1_000_000
    for vendor, created in CREATED:
        with database(vendor) as url:
            job_id = child("bench_export", "--prepare", url, str(rows), created)["job_id"]
            outcome = child("bench_export", "--execute", url, job_id)
        shutil.rmtree(VAR / "media", ignore_errors=True)
        report.check(
            outcome["status"] == "succeeded" and outcome["row_count"] == rows,
            f"export of {rows} rows on {vendor}: {outcome['status']}, {outcome['row_count']}",
        )
        speed = rows / outcome["seconds"]
        report.add(
            "5",
            f"export {rows:,} rows to CSV, {vendor}, created_at {created}",
            f"{outcome['seconds']:.1f} s = {speed:,.0f} rows/s, {outcome['size_mb']:.0f} MB file",
            f">= {TARGET_SPEED:,} rows/s",
            speed >= TARGET_SPEED,
        )
        report.add(
            "5",
            f"export peak RSS, {vendor}, created_at {created}",
            f"{outcome['peak_mb']:.0f} MB (before the job: {outcome['loaded_mb']:.0f} MB)",
            f"< {TARGET_RSS} MB",
            outcome["peak_mb"] < TARGET_RSS,
        )


def prepare(url: str, rows: int, created: str) -> None:
    example_django(url, migrate=True)
    from django.db import connection

    from example_project.subscribers.models import Subscriber
    from example_project.workspaces.models import Workspace
    from idempotency_jobs.models import Job

    workspace = Workspace.objects.create(name="bench")
    sql = FILL.format(
        table=Subscriber._meta.db_table,
        series=SERIES[connection.vendor],
        created=CREATED[connection.vendor, created],
    )
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":  # the set-up, not the code measured: no 5 s cap
            cursor.execute("SET statement_timeout = 0")
        cursor.execute(sql, [workspace.pk, rows])
        cursor.execute("ANALYZE")  # as autovacuum would have by the time anyone exports
    params = {"fields": ["email", "name", "first_name", "last_name", "status", "created_at"]}
    job = Job.objects.create(
        kind="subscriber_export", owner=workspace.scope, params={**params, "filters": {}}
    )
    print(json.dumps({"job_id": str(job.pk)}))


def execute(url: str, job_id: str) -> None:
    example_django(url)
    from idempotency_jobs.jobs.tasks import execute_job
    from idempotency_jobs.models import Job

    loaded_mb = rss_now_mb()
    start = time.perf_counter()
    execute_job(job_id)
    seconds = time.perf_counter() - start
    job = Job.objects.get(pk=job_id)
    result = job.result or {}
    outcome = {
        "seconds": seconds,
        "status": job.status,
        "row_count": result.get("row_count"),
        "size_mb": result.get("size_bytes", 0) / 2**20,
        "peak_mb": peak_rss_mb(),
        "loaded_mb": loaded_mb,
    }
    print(json.dumps(outcome))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--prepare"]:
        prepare(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    elif sys.argv[1:2] == ["--execute"]:
        execute(sys.argv[2], sys.argv[3])
    else:
        main(run, __doc__ or "")
