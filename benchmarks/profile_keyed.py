"""Where a keyed request's time goes: the phases of the core, timed inside real requests.

Keyed and unkeyed POSTs creating one row (benchmark 1's view), interleaved, in-process on
PostgreSQL. Each phase of the request flow is wrapped with a timer; the medians are printed
(benchmarks/RESULTS.md, 1).
Not part of ``run.py``; run it by hand:

    .venv/bin/python -m benchmarks.profile_keyed [--requests N] [--pyinstrument]

``--pyinstrument`` (``pip install pyinstrument``) also prints a sampled call tree of the same
requests; its sampling slows them down, so its times are shares, not latencies.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness import interleave, pg_database, setup_django

BODY = json.dumps({"name": "widget", "payload": {"colour": "blue", "size": 3}}).encode()


def timed(owner: Any, name: str, label: str, times: dict[str, list[float]]) -> None:
    """Replace ``owner.name`` with a wrapper recording each call's duration under ``label``."""
    function: Callable[..., Any] = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            times[label].append(time.perf_counter() - start)

    setattr(owner, name, wrapper)


def fingerprint_alone() -> float:
    """The default fingerprint of the benchmark's body, timed on its own (median of 7 x 2000)."""
    from rest_framework.parsers import JSONParser
    from rest_framework.request import Request
    from rest_framework.test import APIRequestFactory

    from idempotency_jobs.keys.fingerprint import default_fingerprint

    factory = APIRequestFactory()
    request = Request(
        factory.post("/ours", BODY, content_type="application/json"), parsers=[JSONParser()]
    )
    rounds = []
    for _ in range(7):
        start = time.perf_counter()
        for _ in range(2000):
            default_fingerprint(request)
        rounds.append((time.perf_counter() - start) / 2000)
    return statistics.median(rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--pyinstrument", action="store_true")
    args = parser.parse_args()
    with pg_database("profile") as url:
        setup_django("benchmarks.settings", BENCH_DATABASE_URL=url)
        from django.test import Client

        from benchmarks import views
        from idempotency_jobs.keys import core, drf
        from idempotency_jobs.keys.stores import database

        times: dict[str, list[float]] = defaultdict(list)
        # (owner, attribute, label), in the order a request meets them
        phases = [
            (drf, "handle", "the whole keyed handler"),
            (core, "parse_key", "parse the key"),
            (drf.IdempotencyMixin, "get_idempotency_scope", "scope"),
            (drf.IdempotencyMixin, "get_idempotency_fingerprint", "fingerprint"),
            (core.IdempotentRequest, "claim", "claim"),
            (database.DatabaseStore, "_claim_or_read", "  of which the claim's statement"),
            (core.IdempotentRequest, "execute", "view, in its transaction, and completion"),
            (views.PlainWidgetViewSet, "create", "  the view"),
            (core.IdempotentRequest, "render", "  render the response"),
            (core.IdempotentRequest, "capture", "  capture it"),
            (database.DatabaseStore, "complete_and_commit", "  complete (UPDATE + COMMIT)"),
        ]
        for owner, name, label in phases:
            timed(owner, name, label, times)
        client = Client()

        def post(keyed: bool) -> Callable[[], None]:
            def call() -> None:
                headers = {"X-User": "alice"}
                if keyed:
                    headers["Idempotency-Key"] = f"profile-{uuid.uuid4().hex}"
                before = {label: len(values) for label, values in times.items()}
                response = client.post(
                    "/ours", BODY, content_type="application/json", headers=headers
                )
                assert response.status_code == 201, response.content
                if not keyed:  # only the view's time is kept, on a line of its own
                    view = times["  the view"][before.get("  the view", 0) :]
                    for label, values in times.items():
                        del values[before.get(label, 0) :]
                    times["the view, unkeyed"] += view

            return call

        requests = interleave(
            {"keyed request": post(True), "unkeyed request": post(False)},
            samples=args.requests,
            warmup=200,
        )
        # the warm-up's phases too were recorded: keep the last ``requests`` of each
        print(f"medians over {args.requests} keyed and {args.requests} unkeyed requests:")
        for label, values in requests.items():
            print(f"  {label:44s} {statistics.median(values) * 1e6:8.0f} us")
        for label in [label for _, _, label in phases] + ["the view, unkeyed"]:
            values = times[label][-args.requests :]
            if not values:  # a renamed phase: say which, rather than a median of nothing
                raise SystemExit(f"profile_keyed: no request went through {label.strip()!r}")
            print(f"  {label:44s} {statistics.median(values) * 1e6:8.0f} us")
        print(f"  {'fingerprint alone, outside a request':44s} {fingerprint_alone() * 1e6:8.0f} us")
        if args.pyinstrument:
            from pyinstrument import Profiler

            profiler = Profiler(interval=0.0005)
            keyed = post(True)
            with profiler:
                for _ in range(args.requests):
                    keyed()
            print(profiler.output_text(color=False))


if __name__ == "__main__":
    main()
