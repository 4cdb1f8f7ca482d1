"""The database store's claim statements alone, raw psycopg, interleaved (issue 14):

* a new key and a replay with the INSERT alone and, for a replay, the SELECT after it (before);
* the same with the INSERT and the SELECT in one query string (``_claim_sql``, shipped);
* the same with the INSERT in a CTE, one statement (tried, and dropped: planning it cost more).

    .venv/bin/python -m benchmarks.ab_claim_sql [--rounds 1500]

Prints the median of each, in microseconds. Not part of ``run.py``.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness import pg_database, setup_django


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1500)
    args = parser.parse_args()
    with pg_database("claim_sql") as url:
        setup_django("benchmarks.settings", BENCH_DATABASE_URL=url)
        import psycopg

        from idempotency_jobs.keys.stores.database import ROW_FIELDS, _claim_sql, _insert_sql
        from idempotency_jobs.models import IdempotencyKey

        table = IdempotencyKey._meta.db_table
        columns = ", ".join(str(field.column) for field in ROW_FIELDS)
        insert, shipped = _insert_sql("default", True), _claim_sql("default", True)
        select = f"SELECT {columns} FROM {table} WHERE scope = %s AND key = %s"  # noqa: S608
        nulls = ", ".join(["NULL"] * (len(ROW_FIELDS) - 1))
        cte = (
            f"WITH claimed AS ({insert}) SELECT TRUE, id, {nulls} FROM claimed UNION ALL "  # noqa: S608
            f"SELECT FALSE, {columns} FROM {table} WHERE scope = %s AND key = %s "
            "AND NOT EXISTS (SELECT FROM claimed)"
        )
        connection = psycopg.connect(url, autocommit=True, cursor_factory=psycopg.ClientCursor)
        cursor = connection.cursor()

        def params(key: str) -> tuple[object, ...]:
            now = datetime.now(UTC)
            token = uuid.uuid4().hex
            return (
                "user:1",
                key,
                "f" * 64,
                token,
                now + timedelta(minutes=5),
                now,
                now + timedelta(1),
            )

        replayed = f"replay-{uuid.uuid4().hex}"
        cursor.execute(insert, params(replayed)).fetchall()

        def insert_alone(key: str) -> None:
            if not cursor.execute(insert, params(key)).fetchall():
                cursor.execute(select, ("user:1", key)).fetchall()

        def two_statements(key: str) -> None:
            sent = params(key)
            cursor.execute(shipped, (*sent, "user:1", key, sent[3]))
            if not cursor.fetchall():
                cursor.nextset()
                cursor.fetchall()

        def one_cte(key: str) -> None:
            cursor.execute(cte, (*params(key), "user:1", key)).fetchall()

        variants: dict[str, Callable[[], None]] = {}
        for name, claim in (
            ("INSERT, then SELECT (before)", insert_alone),
            ("INSERT; SELECT in one query string (shipped)", two_statements),
            ("INSERT in a CTE (dropped)", one_cte),
        ):
            variants[f"{name}, new key"] = lambda claim=claim: claim(uuid.uuid4().hex)
            variants[f"{name}, replay"] = lambda claim=claim: claim(replayed)
        timings: dict[str, list[float]] = {name: [] for name in variants}
        names = list(variants)
        for round_number in range(100 + args.rounds):
            random.shuffle(names)
            for name in names:
                start = time.perf_counter()
                variants[name]()
                if round_number >= 100:
                    timings[name].append(time.perf_counter() - start)
        connection.close()
    for name, values in timings.items():
        print(f"{name}: {statistics.median(values) * 1e6:.0f} us")


if __name__ == "__main__":
    main()
