"""A/B of the database store's perf fix (benchmarks/RESULTS.md, benchmark 1).

The shipped ``DatabaseStore`` against a subclass that restores the code before the fix: the
claim committed synchronously, the completion built through the ORM. Keyed POSTs creating one
row, in-process on PostgreSQL, interleaved. Not part of ``run.py``; run it by hand:
``.venv/bin/python -m benchmarks.ab_database_store``.
"""

from __future__ import annotations

import argparse
import json
import uuid
from datetime import datetime, timedelta
from typing import Any

from benchmarks.harness import (
    Report,
    interleave,
    main,
    median,
    ms,
    pg_database,
    ratio_spread,
    setup_django,
)

BODY = json.dumps({"name": "widget", "payload": {"colour": "blue", "size": 3}}).encode()
USER = {"X-User": "alice"}


def run(args: argparse.Namespace, report: Report) -> None:
    samples = 40 if args.smoke else 1000
    with pg_database("ab") as url:
        setup_django("benchmarks.settings", BENCH_DATABASE_URL=url)
        from django.db import connections
        from django.test import Client

        from idempotency_jobs import core
        from idempotency_jobs.exceptions import IdempotencyLeaseLost
        from idempotency_jobs.models import IdempotencyKey
        from idempotency_jobs.responses import StoredResponse
        from idempotency_jobs.stores.base import Claim
        from idempotency_jobs.stores.database import DatabaseStore, State

        class BeforeFix(DatabaseStore):
            def complete(self, claim: Claim, response: StoredResponse) -> None:
                updated = self.keys.filter(
                    pk=claim.record_id, owner_token=claim.token, state=State.IN_PROGRESS
                ).update(
                    state=State.COMPLETED,
                    lease_expires_at=None,
                    response_status=response.status,
                    response_headers=[list(header) for header in response.headers],
                    response_body=response.body,
                    replayable=response.replayable,
                )
                if not updated:
                    raise IdempotencyLeaseLost()

            def _insert(
                self, claim: Claim, *, now: datetime, ttl: timedelta, lease: timedelta
            ) -> int | None:
                # Seen as inside a transaction, the shipped code keeps the synchronous commit
                # (the autocommit INSERT itself is unchanged): the code before the fix.
                connection = connections[self.database_alias]
                in_atomic = connection.in_atomic_block
                connection.in_atomic_block = True
                try:
                    return super()._insert(claim, now=now, ttl=ttl, lease=lease)
                finally:
                    connection.in_atomic_block = in_atomic

        stores: dict[str, Any] = {"before fix": BeforeFix(), "shipped": DatabaseStore()}
        current = ["shipped"]
        core.get_store = lambda: stores[current[0]]  # type: ignore[assignment]
        client = Client()

        def post(store: str | None) -> Any:
            def call() -> None:
                current[0] = store or "shipped"
                headers = USER if store is None else {**USER, "Idempotency-Key": uuid.uuid4().hex}
                response = client.post(
                    "/ours", BODY, content_type="application/json", headers=headers
                )
                assert response.status_code == 201, response.content

            return call

        timings = interleave(
            {"unkeyed": post(None), "before fix": post("before fix"), "shipped": post("shipped")},
            samples=samples,
            warmup=30,
        )
        assert IdempotencyKey.objects.filter(state=State.COMPLETED).count() == 2 * (samples + 30)
    medians = ", ".join(f"{name} {ms(median(values))}" for name, values in timings.items())
    report.add("1", f"A/B database store fix, in-process, n={samples}", medians)
    for name in ("before fix", "shipped"):
        ratio, low, high = ratio_spread(timings[name], timings["unkeyed"])
        report.add("1", f"{name} / unkeyed", f"{ratio:.2f}x (blocks {low:.2f}-{high:.2f})")
    ratio, low, high = ratio_spread(timings["shipped"], timings["before fix"])
    report.add("1", "shipped / before fix", f"{ratio:.2f}x (blocks {low:.2f}-{high:.2f})")


if __name__ == "__main__":
    main(run, __doc__ or "")
