"""A/B of the purge command's perf fix (benchmarks/RESULTS.md, benchmark 6).

The shipped ``purge_idempotency_keys`` against the code before the fix (SELECT a batch of ids,
then DELETE ... WHERE id IN (those ids)), alternately, each on freshly loaded keys (1M expired
+ 100k live). Not part of ``run.py``: ``.venv/bin/python -m benchmarks.ab_purge``.
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from typing import Any

from benchmarks.bench_purge import EXPIRED, LIVE
from benchmarks.harness import Report, main, pg_database, setup_django


def before_fix(batch_size: int = 5000) -> int:
    from idempotency_jobs.models import IdempotencyKey

    keys, deleted = IdempotencyKey.objects, 0
    while True:
        batch = list(keys.purgeable().values_list("pk", flat=True)[:batch_size])
        if not batch:
            return deleted
        deleted += keys.purgeable().filter(pk__in=batch).delete()[0]


def shipped() -> int:
    from django.core.management import call_command

    out = io.StringIO()
    call_command("purge_idempotency_keys", stdout=out)
    return int(out.getvalue().split()[1])


def run(args: argparse.Namespace, report: Report) -> None:
    expired, live, rounds = (20_000, 2_000, 1) if args.smoke else (1_000_000, 100_000, 2)
    with pg_database("ab_purge") as url:
        setup_django("benchmarks.settings", BENCH_DATABASE_URL=url)
        from django.db import connection

        timings: dict[str, list[float]] = {"before fix": [], "shipped": []}
        variants: dict[str, Any] = {"before fix": before_fix, "shipped": shipped}
        for _ in range(rounds):
            for name, purge in variants.items():
                with connection.cursor() as cursor:
                    cursor.execute("TRUNCATE idempotency_jobs_idempotencykey CASCADE")
                    cursor.execute(EXPIRED, [expired])
                    cursor.execute(LIVE, [live])
                    cursor.execute("VACUUM ANALYZE idempotency_jobs_idempotencykey")
                start = time.perf_counter()
                count = purge()
                timings[name].append(time.perf_counter() - start)
                report.check(count == expired, f"{name} deleted {count} of {expired}")
    report.add(
        "6",
        f"A/B purge of {expired:,} expired keys, {rounds} alternate rounds",
        ", ".join(
            f"{name} {statistics.median(values):.1f} s ({', '.join(f'{v:.1f}' for v in values)})"
            for name, values in timings.items()
        ),
    )


if __name__ == "__main__":
    main(run, __doc__ or "")
