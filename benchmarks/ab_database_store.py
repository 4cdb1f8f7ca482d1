"""A/B of the database store against an earlier version of it (benchmarks/RESULTS.md, 1).

The current ``DatabaseStore`` against the one in an earlier commit (``AB_BEFORE``, loaded
from git), keyed POSTs creating one row, in-process on PostgreSQL, interleaved with unkeyed ones.
Not part of ``run.py``; run it by hand:
``[AB_BEFORE=<git rev>] .venv/bin/python -m benchmarks.ab_database_store``.
"""

from __future__ import annotations

import argparse
import json
import os
import uuid
from typing import Any

from benchmarks.harness import (
    Report,
    interleave,
    main,
    median,
    module_at,
    ms,
    pg_database,
    ratio_spread,
    setup_django,
)

BODY = json.dumps({"name": "widget", "payload": {"colour": "blue", "size": 3}}).encode()
USER = {"X-User": "alice"}
# The last commit before this session's changes to the store.
DEFAULT_BEFORE = "28772b2"


def run(args: argparse.Namespace, report: Report) -> None:
    samples = 40 if args.smoke else 1000
    before_rev = os.environ.get("AB_BEFORE", DEFAULT_BEFORE)
    with pg_database("ab") as url:
        setup_django("benchmarks.settings", BENCH_DATABASE_URL=url)
        from django.test import Client

        from idempotency_jobs.keys import core
        from idempotency_jobs.keys.stores.database import DatabaseStore, State
        from idempotency_jobs.models import IdempotencyKey

        old = module_at(before_rev, "idempotency_jobs/keys/stores/database.py")

        class Before(old.DatabaseStore):  # type: ignore[name-defined,misc]
            def complete(self, claim: Any, response: Any, *, last: bool = False) -> None:
                super().complete(claim, response)  # it knew no ``last``

            def after_commit(self, claim: Any, response: Any) -> None:
                """Nor this step: the outcome committed with the view's writes."""

        stores: dict[str, Any] = {"before": Before(), "now": DatabaseStore()}
        current = ["now"]
        core.get_store = lambda: stores[current[0]]  # type: ignore[assignment]
        client = Client()

        def post(store: str | None) -> Any:
            def call() -> None:
                current[0] = store or "now"
                headers = USER if store is None else {**USER, "Idempotency-Key": uuid.uuid4().hex}
                response = client.post(
                    "/ours", BODY, content_type="application/json", headers=headers
                )
                assert response.status_code == 201, response.content

            return call

        timings = interleave(
            {"unkeyed": post(None), "before": post("before"), "now": post("now")},
            samples=samples,
            warmup=30,
        )
        assert IdempotencyKey.objects.filter(state=State.COMPLETED).count() == 2 * (samples + 30)
    medians = ", ".join(f"{name} {ms(median(values))}" for name, values in timings.items())
    report.add("1", f"A/B database store, {before_rev} vs now, in-process, n={samples}", medians)
    for name in ("before", "now"):
        ratio, low, high = ratio_spread(timings[name], timings["unkeyed"])
        report.add("1", f"{name} / unkeyed", f"{ratio:.2f}x (blocks {low:.2f}-{high:.2f})")
    ratio, low, high = ratio_spread(timings["now"], timings["before"])
    report.add("1", "now / before", f"{ratio:.2f}x (blocks {low:.2f}-{high:.2f})")


if __name__ == "__main__":
    main(run, __doc__ or "")
