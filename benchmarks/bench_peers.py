"""Benchmark 3: the same view under drf-idempotency and django-idempotency-key, and ours.

Runs in benchmarks/.venv-peers (``python -m benchmarks.peers`` creates it). Latency of a first
execution (a fresh key per request), interleaved, through gunicorn on PostgreSQL; then bursts
of 50 identical concurrent requests (same caller, key and body) against 4 workers x 16 threads,
and a slow request retried after its lease ran out, counting the executions (Widget rows) in
the database.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable

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

USER = {"X-User": "alice"}
WSGI = "benchmarks.wsgi:application"
# name: (path, key store of our package for that server)
PACKAGES = {
    "ours (database store)": ("/ours", "database"),
    "ours (Redis store)": ("/ours", "redis"),
    "drf-idempotency (database)": ("/drf-idempotency", "database"),
    "django-idempotency-key (Redis cache + lock)": ("/django-idempotency-key", "database"),
}
BURST = 50


def body(name: str) -> bytes:
    return json.dumps({"name": name, "payload": {"colour": "blue", "size": 3}}).encode()


def run(args: argparse.Namespace, report: Report) -> None:
    samples, warmup, bursts = (30, 5, 1) if args.smoke else (400, 30, 5)
    with pg_database("peers") as url:
        setup_django("benchmarks.settings", BENCH_DATABASE_URL=url, BENCH_PEERS="1")
        flush_redis()
        latency(report, samples, warmup)
        for name, (path, store) in PACKAGES.items():
            concurrency(report, name, path, store, bursts)
        for name, (path, store) in PACKAGES.items():
            lease_race(report, name, path, store, 1 if args.smoke else 3)
        flush_redis()


def latency(report: Report, samples: int, warmup: int) -> None:
    with gunicorn(WSGI) as port, gunicorn(WSGI, env={"BENCH_STORE": "redis"}) as redis_port:
        clients = {"database": Client(port), "redis": Client(redis_port)}

        def post(path: str, store: str) -> Callable[[], None]:
            def call() -> None:
                headers = {**USER, "Idempotency-Key": f"bench-{uuid.uuid4().hex}"}
                status, content = clients[store].post(path, body("widget"), headers)
                assert status == 201, content

            return call

        variants = {name: post(path, store) for name, (path, store) in PACKAGES.items()}
        timings = interleave(
            {"no idempotency": post("/plain", "database"), **variants},
            samples=samples,
            warmup=warmup,
        )
    report.add(
        "3",
        f"median latency, first execution, HTTP, n={samples} each",
        ", ".join(f"{name} {ms(median(values))}" for name, values in timings.items()),
    )
    ours = timings["ours (database store)"]
    for name in PACKAGES:
        if name.startswith("ours"):
            continue
        ratio, low, high = ratio_spread(ours, timings[name])
        report.add(
            "3",
            f"ours (database) / {name}",
            f"{ratio:.2f}x (blocks {low:.2f}-{high:.2f}); ours (Redis) / it "
            f"{median(timings['ours (Redis store)']) / median(timings[name]):.2f}x",
            "<= 1.00x",
            ratio <= 1.0,
        )


def concurrency(report: Report, name: str, path: str, store: str, bursts: int) -> None:
    """Fire BURST identical requests at once, ``bursts`` times; count the executions."""
    from tests.testapp.models import Widget

    env = {"BENCH_STORE": store, "BENCH_CONN_MAX_AGE": "0"}
    executions: list[int] = []
    statuses: Counter[int] = Counter()
    with gunicorn(WSGI, workers=4, threads=16, env=env) as port:
        for _ in range(bursts):
            token = uuid.uuid4().hex
            headers = {**USER, "Idempotency-Key": f"burst-{token}"}
            statuses.update(burst(port, path, body(token), headers))
            executions.append(Widget.objects.filter(name=token).count())
    exactly_once = all(count == 1 for count in executions)
    report.add(
        "3",
        f"{BURST} concurrent identical requests x {bursts}: {name}",
        f"executions {executions}; answers {dict(sorted(statuses.items()))}",
        "exactly 1 (ours only)",
        exactly_once if name.startswith("ours") else None,
    )
    if name.startswith("ours"):
        report.check(
            exactly_once, f"{name}: {executions} executions for {BURST} identical requests"
        )


def lease_race(report: Report, name: str, path: str, store: str, trials: int) -> None:
    """A request slower than the lease, and its retry once the lease ran out (3 s view, 1 s
    lease, retry after 2 s): the retry takes the key over; only one of the two may commit."""
    from tests.testapp.models import Widget

    env = {"BENCH_STORE": store, "BENCH_CONN_MAX_AGE": "0", "BENCH_LEASE_SECONDS": "1"}
    executions: list[int] = []
    with gunicorn(WSGI, threads=4, env=env) as port:
        send_once(port, "/plain", body("warm-up"), USER)  # the worker's first request loads Django
        for _ in range(trials):
            token = uuid.uuid4().hex
            headers = {**USER, "Idempotency-Key": f"slow-{token}"}

            content = body(token)
            first = threading.Thread(
                target=send_once, args=(port, f"{path}?sleep=2", content, headers)
            )
            first.start()
            time.sleep(1.5)
            send_once(port, f"{path}?sleep=2", content, headers)
            first.join()
            executions.append(Widget.objects.filter(name=token).count())
    exactly_once = all(count == 1 for count in executions)
    report.add(
        "3",
        f"retry after the lease ran out, first still running, x {trials}: {name}",
        f"executions {executions}",
        "exactly 1 (ours only)",
        exactly_once if name.startswith("ours") else None,
    )
    if name.startswith("ours"):
        report.check(exactly_once, f"{name}: {executions} executions after a lease takeover")


def send_once(port: int, path: str, content: bytes, headers: dict[str, str]) -> None:
    client = Client(port)
    client.post(path, content, headers)
    client.close()


def burst(port: int, path: str, content: bytes, headers: dict[str, str]) -> list[int]:
    clients = [Client(port) for _ in range(BURST)]
    for client in clients:
        client.connection.connect()
    start = threading.Barrier(BURST)
    statuses: list[int] = []

    def send(client: Client) -> None:
        start.wait()
        status, _ = client.post(path, content, headers)
        statuses.append(status)
        client.close()

    threads = [threading.Thread(target=send, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


if __name__ == "__main__":
    main(run, __doc__ or "")
