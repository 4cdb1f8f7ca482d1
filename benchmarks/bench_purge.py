"""Benchmark 6: purge_idempotency_keys over 1M expired and 100k live keys, inserts beside it.

The keys are loaded with one INSERT ... SELECT generate_series each, then analyzed. The purge
runs as its own process (as cron would run it) while a thread of this process claims new keys
through the database store every few milliseconds and times each claim.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta

from benchmarks.harness import ROOT, Report, main, pg_database, setup_django

TARGET_SECONDS = 20.0
MAX_INSERT_WAIT = 1.0
# g numbers the row. Expired: completed, first used 25-26 h ago.
EXPIRED = """
INSERT INTO idempotency_jobs_idempotencykey
(scope, key, fingerprint, state, owner_token, lease_expires_at, created_at, expires_at,
  response_status, response_headers, response_body, replayable)
SELECT 'auth.user:' || (g %% 5000), 'expired-' || g, md5(g::text) || md5((-g)::text),
       'completed', left(md5((g * 7)::text), 32), NULL,
       now() - interval '25 hours' - (g %% 3600) * interval '1 second',
       now() - interval '1 hour' - (g %% 3600) * interval '1 second',
       201, '[["Content-Type", "application/json"], ["Location", "/v1/jobs/1"]]'::jsonb,
       convert_to(repeat('x', 200), 'UTF8'), true
FROM generate_series(1, %s) AS g
"""
# Live: within their TTL; every 5th still in progress with a live lease, and 1 in 100 of those
# past its TTL but still running (a live claim: never purged either).
LIVE = """
INSERT INTO idempotency_jobs_idempotencykey
(scope, key, fingerprint, state, owner_token, lease_expires_at, created_at, expires_at,
  response_status, response_headers, response_body, replayable)
SELECT 'auth.user:' || (g %% 5000), 'live-' || g, md5(g::text) || md5((-g)::text),
       CASE WHEN g %% 5 = 0 THEN 'in_progress' ELSE 'completed' END,
       left(md5((g * 7)::text), 32),
       CASE WHEN g %% 5 = 0 THEN now() + interval '5 minutes' END,
       now() - (g %% 3600) * interval '1 second',
       CASE WHEN g %% 500 = 0 THEN now() - interval '1 minute' ELSE now() + interval '20 hours' END,
       CASE WHEN g %% 5 = 0 THEN NULL ELSE 201 END, '[]'::jsonb,
       CASE WHEN g %% 5 = 0 THEN NULL ELSE convert_to(repeat('x', 200), 'UTF8') END, true
FROM generate_series(1, %s) AS g
"""


def run(args: argparse.Namespace, report: Report) -> None:
    expired, live = (20_000, 2_000) if args.smoke else (1_000_000, 100_000)
    with pg_database("purge") as url:
        setup_django("benchmarks.settings", BENCH_DATABASE_URL=url)
        from django.db import connection

        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute(EXPIRED, [expired])
            cursor.execute(LIVE, [live])
            cursor.execute("VACUUM ANALYZE idempotency_jobs_idempotencykey")
        load = time.perf_counter() - started
        report.notes.append(f"6: loaded {expired:,} expired + {live:,} live keys in {load:.1f} s")
        purge(report, expired, live)


@contextlib.contextmanager
def claims_beside() -> Iterator[tuple[list[float], list[str]]]:
    """A thread claiming a new key through the database store every 10 ms while the block runs;
    yields the claims' wait times and keys, filled in as it goes."""
    from django.db import connection

    from idempotency_jobs.keys.stores.base import Claim
    from idempotency_jobs.keys.stores.database import DatabaseStore

    waits: list[float] = []
    inserted: list[str] = []
    done = threading.Event()

    def insert_beside() -> None:
        store = DatabaseStore()
        while not done.is_set():
            key = f"new-{uuid.uuid4().hex}"
            start = time.perf_counter()
            claim = store.claim(
                "auth.user:1", key, "f" * 64, ttl=timedelta(hours=24), lease=timedelta(minutes=5)
            )
            waits.append(time.perf_counter() - start)
            assert isinstance(claim, Claim), claim
            inserted.append(key)
            time.sleep(0.01)
        connection.close()

    inserter = threading.Thread(target=insert_beside)
    inserter.start()
    time.sleep(0.5)  # the inserts' pace before the purge starts
    try:
        yield waits, inserted
    finally:
        time.sleep(0.5)
        done.set()
        inserter.join()


def purge(report: Report, expired: int, live: int) -> None:
    from idempotency_jobs.models import IdempotencyKey

    command = [sys.executable, "-m", "django", "purge_idempotency_keys"]
    with claims_beside() as (waits, inserted):
        start = time.perf_counter()
        run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
        elapsed = time.perf_counter() - start
    output = run.stdout

    keys = IdempotencyKey.objects
    expired_left = keys.filter(key__startswith="expired-").count()
    live_left = keys.filter(key__startswith="live-").count()
    new_left = keys.filter(key__in=inserted).count()
    report.add(
        "6",
        f"purge {expired:,} expired among {expired + live:,} keys",
        f"{elapsed:.1f} s ({expired / elapsed:,.0f} keys/s); said: {output.strip()!r}",
        f"< {TARGET_SECONDS:.0f} s",
        elapsed < TARGET_SECONDS,
    )
    worst = max(waits)
    report.add(
        "6",
        f"claims beside the purge (n={len(waits)})",
        f"median {statistics.median(waits) * 1000:.1f} ms, "
        f"p99 {sorted(waits)[int(len(waits) * 0.99)] * 1000:.1f} ms, max {worst * 1000:.0f} ms",
        f"max < {MAX_INSERT_WAIT:.0f} s",
        worst < MAX_INSERT_WAIT,
    )
    untouched = live_left == live and new_left == len(inserted)
    report.add(
        "6",
        "live keys untouched",
        f"{live_left:,}/{live:,} live and {new_left}/{len(inserted)} new left; "
        f"{expired_left} expired left",
        "all live left, no expired",
        untouched and expired_left == 0,
    )
    report.check(
        untouched, f"purge deleted live keys: {live_left}/{live}, {new_left}/{len(inserted)}"
    )
    report.check(expired_left == 0, f"purge left {expired_left} expired keys")


if __name__ == "__main__":
    main(run, __doc__ or "")
