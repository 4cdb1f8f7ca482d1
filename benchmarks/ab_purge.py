"""A/B of the purge without a database constraint on the job's key (RESULTS.md, benchmark 6).

Before: the previous purge, one DELETE of a LIMITed subquery of ids per batch, with
``Job.idempotency_key`` a database foreign key (``ON DELETE SET NULL``: a trigger fired per
deleted key). After: the shipped ``purge_idempotency_keys``: no constraint; each batch locks its
rows with SKIP LOCKED, deletes them by address (ctid) and unlinks their jobs, in one transaction.
Alternately, each on freshly loaded keys (1M expired + 100k live), without jobs and with 100k
jobs linked to expired keys (and 10k to live ones), a thread claiming a new key every 10 ms
beside the purge. Not part of ``run.py``: ``.venv/bin/python -m benchmarks.ab_purge``.
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from collections.abc import Callable

from benchmarks.bench_purge import EXPIRED, LIVE, claims_beside
from benchmarks.harness import Report, main, pg_database, setup_django

KEYS, JOBS = "idempotency_jobs_idempotencykey", "idempotency_jobs_job"
# The constraint migration 0001 made and 0002 dropped.
CONSTRAINT = (
    f"ALTER TABLE {JOBS} ADD CONSTRAINT ab_purge_job_key_fk FOREIGN KEY (idempotency_key_id) "
    f"REFERENCES {KEYS} (id) ON DELETE SET NULL DEFERRABLE INITIALLY DEFERRED"
)
# A job linked to every 10th key, by the number that ends its name.
LINKED_JOBS = """
INSERT INTO idempotency_jobs_job (id, kind, owner, status, params, progress, attempts,
  worker_token, task_id, created_at, enqueued_at, finished_at, result, idempotency_key_id)
SELECT gen_random_uuid(), 'import', scope, 'succeeded', '{}', '{}', 1, '', '',
       created_at, created_at, created_at, '{"created": 1}', id
FROM idempotency_jobs_idempotencykey WHERE mod(substring(key from '[0-9]+$')::int, 10) = 0
"""


def before(batch_size: int = 5000) -> int:
    """The previous command's loop: each batch one DELETE, the jobs left to the foreign key."""
    from django.db import DEFAULT_DB_ALIAS, transaction
    from django.utils import timezone

    from idempotency_jobs.models import IdempotencyKey

    keys, deleted, now = IdempotencyKey.objects, 0, timezone.now()
    while True:
        batch = keys.purgeable(now=now).values_list("pk", flat=True)[:batch_size]
        with transaction.atomic():  # what the collector's fast delete did
            count = keys.purgeable(now=now).filter(pk__in=batch)._raw_delete(DEFAULT_DB_ALIAS)
        if not count:
            return deleted
        deleted += count


def after() -> int:
    from django.core.management import call_command

    out = io.StringIO()
    call_command("purge_idempotency_keys", stdout=out)
    return int(out.getvalue().split()[1])


def load(expired: int, live: int, *, jobs: bool, constraint: bool) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {KEYS}, {JOBS}")
        cursor.execute(f"ALTER TABLE {JOBS} DROP CONSTRAINT IF EXISTS ab_purge_job_key_fk")
        if constraint:
            cursor.execute(CONSTRAINT)
        cursor.execute(EXPIRED, [expired])
        cursor.execute(LIVE, [live])
        if jobs:
            cursor.execute(LINKED_JOBS)
        cursor.execute(f"VACUUM ANALYZE {KEYS}")
        cursor.execute(f"VACUUM ANALYZE {JOBS}")


def check(report: Report, name: str, expired: int, live: int, inserted: list[str]) -> None:
    """No expired key left, every live and new key left; jobs all kept, linked only to keys."""
    from idempotency_jobs.models import IdempotencyKey, Job

    keys = IdempotencyKey.objects
    expired_left = keys.filter(key__startswith="expired-").count()
    live_left = keys.filter(key__startswith="live-").count()
    new_left = keys.filter(key__in=inserted).count()
    report.check(expired_left == 0, f"{name}: {expired_left} expired keys left")
    report.check(live_left == live, f"{name}: {live_left} of {live} live keys left")
    report.check(new_left == len(inserted), f"{name}: {new_left} of {len(inserted)} new keys left")
    jobs = Job.objects
    linked = jobs.exclude(idempotency_key=None)
    dangling = linked.exclude(idempotency_key__in=keys.values("pk")).count()
    report.check(dangling == 0, f"{name}: {dangling} jobs linked to deleted keys")
    if jobs.exists():
        want = (expired + live) // 10, live // 10
        got = jobs.count(), linked.count()
        report.check(got == want, f"{name}: (jobs, linked) {got}, expected {want}")


def run(args: argparse.Namespace, report: Report) -> None:
    expired, live, rounds = (20_000, 2_000, 1) if args.smoke else (1_000_000, 100_000, 3)
    variants: dict[str, Callable[[], int]] = {"before": before, "after": after}
    with pg_database("ab_purge") as url:
        setup_django("benchmarks.settings", BENCH_DATABASE_URL=url)
        for jobs in (False, True):
            seconds: dict[str, list[float]] = {name: [] for name in variants}
            waits: dict[str, list[float]] = {name: [] for name in variants}
            for _ in range(rounds):
                for name, purge in variants.items():
                    load(expired, live, jobs=jobs, constraint=name == "before")
                    with claims_beside() as (claim_waits, inserted):
                        start = time.perf_counter()
                        count = purge()
                        seconds[name].append(time.perf_counter() - start)
                    waits[name].append(max(claim_waits))
                    report.check(count == expired, f"{name} deleted {count} of {expired}")
                    check(report, name, expired, live, inserted)
            data = f"{expired // 10:,} linked jobs" if jobs else "no jobs"
            report.add(
                "6",
                f"A/B purge of {expired:,} expired keys, {data}, {rounds} alternate rounds",
                "; ".join(
                    f"{name} median {statistics.median(values):.1f} s "
                    f"({', '.join(f'{v:.1f}' for v in values)}), "
                    f"claims beside waited at most {max(waits[name]) * 1000:.0f} ms"
                    for name, values in seconds.items()
                ),
            )


if __name__ == "__main__":
    main(run, __doc__ or "")
