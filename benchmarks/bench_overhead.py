"""Benchmarks 1 and 7: what a key costs on a POST creating one row, and per key store.

Same view (benchmarks/views.py ``OurWidgetViewSet``) with and without ``Idempotency-Key``,
on PostgreSQL, in-process (Django's test client) and through gunicorn on 127.0.0.1; the
database and the Redis store side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from benchmarks.harness import (
    Client,
    Report,
    ensure_tool,
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
        floor = sql_floor(report, url, samples, warmup)
        requests = {
            "in-process": in_process(report, samples, warmup),
            "HTTP": over_http(report, samples, warmup),
        }
        best_case(report, floor, requests)
        under_load(report, seconds=1 if args.smoke else 3, rounds=1 if args.smoke else 5)
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

    from idempotency_jobs.keys.responses import StoredResponse
    from idempotency_jobs.keys.stores.base import Claim
    from idempotency_jobs.keys.stores.database import DatabaseStore
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


def sql_floor(report: Report, url: str, samples: int, warmup: int) -> dict[str, list[float]]:
    """The statements alone, sent by raw psycopg with no Django and no Python of ours: what
    a keyed request costs at the least, as shipped, with its statements prepared, and in the
    two designs that save a round trip on paper (benchmarks/RESULTS.md, 1)."""
    from datetime import UTC, datetime, timedelta

    import psycopg

    from idempotency_jobs.keys.stores.database import _complete_and_commit_sql, _insert_sql
    from idempotency_jobs.models import IdempotencyKey
    from tests.testapp.models import Widget

    keys, widgets = IdempotencyKey._meta.db_table, Widget._meta.db_table
    create = f"INSERT INTO {widgets} (owner, name, payload) VALUES (%s, %s, %s) RETURNING id"  # noqa: S608
    claim, complete = _insert_sql("default", True), _complete_and_commit_sql("default")
    # The same claim opening the view's transaction: what psycopg's own BEGIN prevents.
    claim_and_begin = f"{claim}; COMMIT; BEGIN"
    # A transaction-scoped advisory lock as the claim, and the key's row written once, at the
    # end. It cannot answer 422 to a different body while the first runs
    # (docs/semantics.md#identity): the body's fingerprint is nowhere another request could read
    # it.
    lock_and_look = (
        "BEGIN; SELECT pg_try_advisory_xact_lock(hashtextextended(%s, 0)); "  # noqa: S608
        f"SELECT fingerprint, state FROM {keys} WHERE scope = %s AND key = %s"
    )
    store_completed = (
        f"INSERT INTO {keys} (scope, key, fingerprint, state, owner_token, created_at, "  # noqa: S608
        "expires_at, response_status, response_headers, response_body, replayable) VALUES "
        "(%s, %s, %s, 'completed', '', %s, %s, 201, %s, %s, TRUE); COMMIT"
    )
    # The shipped statements prepared once per connection (PREPARE, then EXECUTE): the server
    # skips parsing and planning them.
    completion = complete.removesuffix("; COMMIT")
    prepare = "; ".join(
        f"PREPARE {name} AS {numbered(sql)}"
        for name, sql in (("ij_claim", claim), ("ij_complete", completion))
    )
    claim_prepared = f"EXECUTE ij_claim({', '.join(['%s'] * claim.count('%s'))})"
    complete_prepared = f"EXECUTE ij_complete({', '.join(['%s'] * completion.count('%s'))}); COMMIT"
    headers = json.dumps([["Content-Type", "application/json"], ["Location", "/widgets/1"]])
    row = ("alice", "widget", json.dumps({"colour": "blue", "size": 3}))
    connection = psycopg.connect(url, autocommit=True, cursor_factory=psycopg.ClientCursor)
    cursor = connection.cursor()
    cursor.execute(prepare)

    def claim_params(key: str) -> tuple[object, ...]:
        now = datetime.now(UTC)
        token = uuid.uuid4().hex
        return ("user:1", key, "f" * 64, token, now + timedelta(minutes=5), now, now + timedelta(1))

    def completion_params(record_id: int, token: object) -> tuple[object, ...]:
        return (201, headers, BODY, True, record_id, token)

    def unkeyed() -> None:
        cursor.execute(create, row).fetchone()

    def as_shipped() -> None:  # claim | BEGIN | the view's INSERT | UPDATE + COMMIT
        params = claim_params(uuid.uuid4().hex)
        (record_id,) = cursor.execute(claim, params).fetchone()  # type: ignore[misc]
        cursor.execute("BEGIN")
        cursor.execute(create, row).fetchone()
        cursor.execute(complete, completion_params(record_id, params[3]))

    def prepared() -> None:  # as shipped, each statement prepared
        params = claim_params(uuid.uuid4().hex)
        (record_id,) = cursor.execute(claim_prepared, params).fetchone()  # type: ignore[misc]
        cursor.execute("BEGIN")
        cursor.execute(create, row).fetchone()
        cursor.execute(complete_prepared, completion_params(record_id, params[3]))

    def claim_opens_transaction() -> None:  # claim + COMMIT + BEGIN | INSERT | UPDATE + COMMIT
        params = claim_params(uuid.uuid4().hex)
        (record_id,) = cursor.execute(claim_and_begin, params).fetchone()  # type: ignore[misc]
        cursor.execute(create, row).fetchone()
        cursor.execute(complete, completion_params(record_id, params[3]))

    def advisory_lock() -> None:  # BEGIN + lock + look up | INSERT | INSERT completed + COMMIT
        key = uuid.uuid4().hex
        cursor.execute(lock_and_look, (f"user:1 {key}", "user:1", key))
        cursor.nextset()  # past the BEGIN
        (got,) = cursor.fetchone()  # type: ignore[misc]
        cursor.nextset()
        assert got and cursor.fetchone() is None  # a new key, no twin: the view runs
        cursor.execute(create, row).fetchone()
        now = datetime.now(UTC)
        cursor.execute(store_completed, ("user:1", key, "f" * 64, now, now, headers, BODY))

    timings = interleave(
        {
            "unkeyed": unkeyed,
            "as shipped": as_shipped,
            "prepared": prepared,
            "claim opening the transaction": claim_opens_transaction,
            "advisory lock": advisory_lock,
        },
        samples=samples,
        warmup=warmup,
    )
    connection.close()
    base = median(timings["unkeyed"])
    report.add(
        "1",
        "SQL floor: the statements alone, raw psycopg (round trips)",
        "; ".join(
            f"{name} ({trips}) {ms(median(timings[name]))}"
            + ("" if name == "unkeyed" else f" +{ms(median(timings[name]) - base)}")
            for name, trips in (
                ("unkeyed", 1),
                ("as shipped", 4),
                ("prepared", 4),
                ("claim opening the transaction", 3),
                ("advisory lock", 3),
            )
        ),
    )
    return timings


def numbered(sql: str) -> str:
    """``sql`` with its ``%s`` placeholders as ``$1``, ``$2``...: for ``PREPARE``."""
    pieces = sql.split("%s")
    return pieces[0] + "".join(f"${number}{piece}" for number, piece in enumerate(pieces[1:], 1))


def best_case(
    report: Report, floor: dict[str, list[float]], requests: dict[str, dict[str, list[float]]]
) -> None:
    """keyed / unkeyed if the keyed request cost only its extra SQL: the unkeyed request plus
    the SQL floor's difference. Above the target, no Python can meet it."""
    extra = {
        name: median(values) - median(floor["unkeyed"])
        for name, values in floor.items()
        if name != "unkeyed"
    }
    for where, timings in requests.items():
        unkeyed = median(timings["unkeyed"])
        report.add(
            "1",
            f"best keyed / unkeyed with no Python cost, {where}",
            ", ".join(f"{name} {(unkeyed + cost) / unkeyed:.2f}x" for name, cost in extra.items())
            + f" (now {median(timings['keyed']) / unkeyed:.2f}x)",
        )


def in_process(report: Report, samples: int, warmup: int) -> dict[str, list[float]]:
    """Django's test client: the full handler and middleware, no HTTP, no server."""
    from django.test import Client as DjangoClient

    from idempotency_jobs.conf import idempotency_settings
    from idempotency_jobs.keys import core
    from idempotency_jobs.keys.stores.database import DatabaseStore
    from idempotency_jobs.keys.stores.redis import RedisStore

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
    return timings


def over_http(report: Report, samples: int, warmup: int) -> dict[str, list[float]]:
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
    return timings


WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = os.getenv("WRK_BODY")
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-User"] = "alice"
local prefix = os.getenv("WRK_KEY_PREFIX")
local sent = 0
request = function()
  if prefix ~= "" then
    sent = sent + 1
    wrk.headers["Idempotency-Key"] = prefix .. sent
  end
  return wrk.format(nil, "/ours")
end
local threads = {}
setup = function(thread)
  table.insert(threads, thread)
end
answers = {}
response = function(status)
  answers[status] = (answers[status] or 0) + 1
end
done = function(summary, latency)
  local statuses = {}
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("answers")) do
      table.insert(statuses, string.format('"%d": %d', status, count))
    end
  end
  io.write(string.format(
    '\\nRESULT {"requests": %d, "seconds": %f, "p50_us": %d, "p99_us": %d, "errors": %d, '
    .. '"statuses": {%s}}\\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50), latency:percentile(99),
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    table.concat(statuses, ", ")))
end
"""


def under_load(report: Report, *, seconds: int, rounds: int) -> None:
    """wrk, a load generator in C, keeps 4 connections busy against gunicorn (2 workers x 2
    threads) for ``seconds``, unkeyed and keyed runs alternating ``rounds`` times: requests per
    second and median latency, with every keyed request on a new key."""
    import subprocess
    import tempfile

    if not ensure_tool("wrk"):
        report.notes.append("under load: skipped, wrk is not installed (apt install wrk)")
        return
    from tests.testapp.models import Widget

    runs: dict[str, list[dict[str, Any]]] = {"unkeyed": [], "keyed": []}
    with (
        tempfile.NamedTemporaryFile("w", suffix=".lua") as script,
        gunicorn("benchmarks.wsgi:application", workers=2, threads=2) as port,
    ):
        script.write(WRK_SCRIPT)
        script.flush()
        for round_number in range(1 + rounds):  # round 0 warms the workers up
            for name in random.sample(list(runs), len(runs)):
                prefix = f"load-{uuid.uuid4().hex}-" if name == "keyed" else ""
                before = Widget.objects.count()
                output = subprocess.run(
                    [
                        "wrk",
                        "-t1",
                        "-c4",
                        f"-d{seconds}s",
                        "-s",
                        script.name,
                        f"http://127.0.0.1:{port}",
                    ],
                    env={**os.environ, "WRK_BODY": BODY.decode(), "WRK_KEY_PREFIX": prefix},
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
                result = json.loads(output.rsplit("RESULT ", 1)[1])
                created = Widget.objects.count() - before
                # wrk stops with a request in flight on each connection: those run uncounted,
                # and may commit after the next run's count began.
                report.check(
                    set(result["statuses"]) == {"201"}
                    and not result["errors"]
                    and 0 <= created - result["requests"] <= 8,
                    f"under load, {name}: answers {result['statuses']}, {result['errors']} socket "
                    f"errors, {created} rows created for {result['requests']} requests",
                )
                if round_number:
                    runs[name].append(result)
    rate = {
        name: median([r["requests"] / r["seconds"] for r in results])
        for name, results in runs.items()
    }
    p50 = {name: median([r["p50_us"] for r in results]) / 1000 for name, results in runs.items()}
    report.add(
        "1",
        f"under load: wrk, 4 connections, gunicorn 2x2, {rounds} x {seconds} s each",
        f"unkeyed {rate['unkeyed']:.0f} req/s, p50 {p50['unkeyed']:.2f} ms; "
        f"keyed {rate['keyed']:.0f} req/s, p50 {p50['keyed']:.2f} ms",
    )
    ratio = p50["keyed"] / p50["unkeyed"]
    report.add(
        "1",
        "keyed / unkeyed under load (median latency; throughput)",
        f"{ratio:.2f}x; {rate['keyed'] / rate['unkeyed']:.2f}x the requests per second",
        f"<= {TARGET}x",
        ratio <= TARGET,
    )


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
