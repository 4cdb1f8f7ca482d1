"""Where a keyed request's instructions go (issue 14): each part alone, counted by callgrind.

    .venv/bin/python -m benchmarks.count_parts

Each part runs in a fresh process under ``valgrind --tool=callgrind``, 20 and then 220 times;
the difference over 200 is one call's instructions, whatever else the machine does. On
PostgreSQL, like benchmark 8 (whose ``--serve`` also runs the keyed request with
:class:`NullStore`, a store that claims every key and stores nothing: the request flow alone).
Not part of ``run.py``.
"""

from __future__ import annotations

import os
import sys
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness import instructions_of, pg_database, setup_django
from idempotency_jobs.keys.stores.base import Claim, Store

PARTS = {
    "select1": "one statement through Django's cursor and psycopg (SELECT 1)",
    "atomic": "Django's transaction.atomic() around nothing",
    "atomic_select": "atomic() around SELECT 1 (adds the BEGIN psycopg sends)",
    "claim": "DatabaseStore.claim() of a new key",
    "store": "claim, atomic() with an on-commit hook and SELECT 1, complete_and_commit()",
}


class NullStore(Store):
    """Claims every key and stores nothing: what the request flow costs without a store."""

    expires_natively = True

    @classmethod
    def from_settings(cls, settings: Any) -> NullStore:
        return cls()

    def claim(self, scope: str, key: str, fingerprint: str, *, ttl: Any, lease: Any) -> Claim:
        return Claim(scope, key, fingerprint, "t" * 32, 1)

    def complete(self, claim: Claim, response: Any) -> None:
        pass

    def after_commit(self, claim: Claim, response: Any) -> None:
        pass

    def release(self, claim: Claim) -> None:
        pass


def serve(part: str, calls: int) -> None:
    import django

    django.setup()
    from django.db import connection, transaction

    from idempotency_jobs.keys.responses import StoredResponse
    from idempotency_jobs.keys.stores.database import DatabaseStore

    store = DatabaseStore()
    stored = StoredResponse(201, b'{"id": 1}', [("Content-Type", "application/json")])

    def claim() -> Any:
        day, minutes = timedelta(hours=24), timedelta(minutes=5)
        return store.claim("user:1", uuid.uuid4().hex, "f" * 64, ttl=day, lease=minutes)

    def select1() -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()

    def run() -> None:
        if part == "select1":
            select1()
        elif part == "atomic":
            with transaction.atomic():
                pass
        elif part == "atomic_select":
            with transaction.atomic():
                select1()
        elif part == "claim":
            claim()
        elif part == "store":
            owner = claim()
            with transaction.atomic():
                transaction.on_commit(lambda: None)
                select1()
                store.complete_and_commit(owner, stored)

    for _ in range(20 + calls):
        run()


def count(part: str, calls: int) -> int:
    return instructions_of("count_parts", "--serve", part, str(calls))


def main() -> None:
    from benchmarks.bench_lean import count_instructions

    with pg_database("parts") as url:
        setup_django("benchmarks.settings", BENCH_DATABASE_URL=url)
        for part, what in PARTS.items():
            print(f"{what}: {(count(part, 220) - count(part, 20)) / 200 / 1e6:.3f} M", flush=True)
        os.environ["BENCH_STORE"] = "benchmarks.count_parts.NullStore"
        for case in ("unkeyed", "keyed"):
            per = (count_instructions(case, 120) - count_instructions(case, 20)) / 100
            print(f"lean view, {case}, with a store that does nothing: {per / 1e6:.3f} M")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        serve(sys.argv[2], int(sys.argv[3]))
    else:
        main()
