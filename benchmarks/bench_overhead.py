"""Benchmarks 1 and 7: what a key costs on a POST creating one row, and per key store.

Same view (benchmarks/views.py ``OurWidgetViewSet``) with and without ``Idempotency-Key``,
on PostgreSQL, in-process (Django's test client) and through gunicorn on 127.0.0.1; the
database and the Redis store side by side.
"""

from __future__ import annotations

import argparse
import json
import uuid
from collections.abc import Callable, Iterable

from benchmarks.harness import (
    Client,
    Report,
    flush_redis,
    gunicorn,
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
TARGET = 1.15


def new_key() -> dict[str, str]:
    return {**USER, "Idempotency-Key": f"bench-{uuid.uuid4().hex}"}


def run(args: argparse.Namespace, report: Report) -> None:
    samples, warmup = (40, 5) if args.smoke else (600, 40)
    with pg_database("overhead") as url:
        setup_django("benchmarks.settings", BENCH_DATABASE_URL=url)
        flush_redis()
        count_queries(report)
        store_alone(report, samples, warmup)
        in_process(report, samples, warmup)
        over_http(report, samples, warmup)
        flush_redis()


def count_queries(report: Report) -> None:
    from django.db import connection
    from django.test import Client as DjangoClient
    from django.test.utils import CaptureQueriesContext

    client = DjangoClient()
    client.post("/ours", BODY, content_type="application/json", headers=new_key())  # warm
    headers = new_key()
    counts = {}
    for name, request_headers in (("unkeyed", USER), ("keyed", headers), ("replay", headers)):
        with CaptureQueriesContext(connection) as captured:
            response = client.post(
                "/ours", BODY, content_type="application/json", headers=request_headers
            )
        report.check(response.status_code == 201, f"{name} POST answered {response.status_code}")
        counts[name] = round_trips(query["sql"] for query in captured.captured_queries)
    extra = len(counts["keyed"]) - len(counts["unkeyed"])
    report.add(
        "1",
        "DB round trips, first request (PostgreSQL)",
        f"unkeyed {len(counts['unkeyed'])} ({', '.join(counts['unkeyed'])}); "
        f"keyed {len(counts['keyed'])} ({', '.join(counts['keyed'])}): +{extra}; "
        f"replay {len(counts['replay'])} ({', '.join(counts['replay'])})",
    )


def round_trips(statements: Iterable[str]) -> list[str]:
    """Django's query log as round trips: the store sends the completion's UPDATE and the
    COMMIT as one query string, after which Django logs a COMMIT that psycopg never sends
    (the connection is idle)."""
    trips: list[str] = []
    committed = False
    for sql in statements:
        if committed and sql == "COMMIT":
            committed = False
            continue
        committed = sql.rstrip().endswith("; COMMIT")
        trips.append("UPDATE+COMMIT" if committed else sql.split()[0])
    return trips


def store_alone(report: Report, samples: int, warmup: int) -> None:
    """The database work alone, no request: the floor under what a key can cost."""
    from datetime import timedelta

    from django.db import transaction

    from idempotency_jobs.responses import StoredResponse
    from idempotency_jobs.stores.base import Claim
    from idempotency_jobs.stores.database import DatabaseStore
    from tests.testapp.models import Widget

    store, response = DatabaseStore(), StoredResponse(201, BODY, [("Location", "/widgets/1")])

    def unkeyed() -> None:
        Widget.objects.create(owner="alice", name="widget")

    def keyed() -> None:
        claim = store.claim(
            "auth.user:1",
            uuid.uuid4().hex,
            "f" * 64,
            ttl=timedelta(hours=24),
            lease=timedelta(minutes=5),
        )
        assert isinstance(claim, Claim)
        with transaction.atomic():
            Widget.objects.create(owner="alice", name="widget")
            store.complete(claim, response)

    timings = interleave({"unkeyed": unkeyed, "keyed": keyed}, samples=samples, warmup=warmup)
    report.add(
        "1",
        "database work alone (create a row; + claim, transaction, complete)",
        f"unkeyed {ms(median(timings['unkeyed']))}, keyed {ms(median(timings['keyed']))}: "
        f"+{ms(median(timings['keyed']) - median(timings['unkeyed']))}",
    )


def in_process(report: Report, samples: int, warmup: int) -> None:
    """Django's test client: the full handler and middleware, no HTTP, no server."""
    from django.test import Client as DjangoClient

    from idempotency_jobs import core
    from idempotency_jobs.conf import idempotency_settings
    from idempotency_jobs.stores.database import DatabaseStore
    from idempotency_jobs.stores.redis import RedisStore

    # The store is a project-wide setting; switching it per request needs the lookup patched.
    stores = {
        "database": DatabaseStore.from_settings(idempotency_settings),
        "redis": RedisStore.from_settings(idempotency_settings),
    }
    current = ["database"]
    core.get_store = lambda: stores[current[0]]  # type: ignore[assignment]
    client = DjangoClient()
    replay_headers = new_key()

    def post(path: str, headers: Callable[[], dict[str, str]], store: str) -> Callable[[], None]:
        def call() -> None:
            current[0] = store
            response = client.post(path, BODY, content_type="application/json", headers=headers())
            assert response.status_code == 201, response.content

        return call

    timings = interleave(
        {
            "plain": post("/plain", lambda: USER, "database"),
            "unkeyed": post("/ours", lambda: USER, "database"),
            "keyed": post("/ours", new_key, "database"),
            "keyed-redis": post("/ours", new_key, "redis"),
            "replay": post("/ours", lambda: replay_headers, "database"),
        },
        samples=samples,
        warmup=warmup,
    )
    summarize(report, "in-process", timings, samples)


def over_http(report: Report, samples: int, warmup: int) -> None:
    with (
        gunicorn("benchmarks.wsgi:application") as port,
        gunicorn("benchmarks.wsgi:application", env={"BENCH_STORE": "redis"}) as redis_port,
    ):
        database_client, redis_client = Client(port), Client(redis_port)
        replay_headers = new_key()

        def post(
            client: Client, path: str, headers: Callable[[], dict[str, str]]
        ) -> Callable[[], None]:
            def call() -> None:
                status, body = client.post(path, BODY, headers())
                assert status == 201, body

            return call

        timings = interleave(
            {
                "plain": post(database_client, "/plain", lambda: USER),
                "unkeyed": post(database_client, "/ours", lambda: USER),
                "keyed": post(database_client, "/ours", new_key),
                "keyed-redis": post(redis_client, "/ours", new_key),
                "replay": post(database_client, "/ours", lambda: replay_headers),
            },
            samples=samples,
            warmup=warmup,
        )
        database_client.close()
        redis_client.close()
    summarize(report, "HTTP (gunicorn)", timings, samples)


def summarize(report: Report, where: str, timings: dict[str, list[float]], samples: int) -> None:
    medians = ", ".join(f"{name} {ms(median(values))}" for name, values in timings.items())
    report.add("1", f"median latency, {where}, n={samples} each", medians)
    keyed, low, high = ratio_spread(timings["keyed"], timings["unkeyed"])
    report.add(
        "1",
        f"keyed / unkeyed, {where}",
        f"{keyed:.2f}x (blocks {low:.2f}-{high:.2f}); vs no mixin "
        f"{median(timings['keyed']) / median(timings['plain']):.2f}x",
        f"<= {TARGET}x",
        keyed <= TARGET,
    )
    redis, low, high = ratio_spread(timings["keyed-redis"], timings["keyed"])
    report.add(
        "7",
        f"Redis store / database store, keyed, {where}",
        f"{redis:.2f}x (blocks {low:.2f}-{high:.2f}); Redis keyed / unkeyed "
        f"{median(timings['keyed-redis']) / median(timings['unkeyed']):.2f}x",
    )


if __name__ == "__main__":
    main(run, __doc__ or "")
