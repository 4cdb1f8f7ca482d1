"""Benchmark 8: what a key costs on the leanest create, on PostgreSQL.

A DRF ``ViewSet`` whose create is one INSERT, JSON parser and renderer only (benchmarks/views.py
``LeanViewSet``), with and without ``IdempotencyMixin``: a heavier view would hide the key's own
cost. Four cases, interleaved in shuffled rounds: *no mixin*, *unkeyed* (the mixin's view, no
key), *keyed* (a new key each time) and *replay* (one key again and again). In-process (Django's
test client) and over HTTP (gunicorn, one worker with one thread, one keep-alive connection,
persistent database connections), medians; then the Python each case runs, counted in
instructions by ``valgrind --tool=callgrind``, which gives the same count whatever else the
machine does (the database server's work is not counted: it is another process;
``BENCH_INSTRUCTIONS=0`` skips the count, e.g. for rounds of ``ab_revisions``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from collections.abc import Callable

from benchmarks.harness import (
    Client,
    Report,
    ensure_tool,
    gunicorn,
    instructions_of,
    interleave,
    main,
    median,
    ms,
    pg_database,
    ratio_spread,
    setup_django,
)

BODY = json.dumps({"name": "widget"}).encode()
USER = {"X-User": "alice"}
CASES = ("no mixin", "unkeyed", "keyed", "replay")
PATHS = {case: "/lean" if case == "no mixin" else "/lean-keyed" for case in CASES}
KEYED_TARGET = 1.50  # keyed / unkeyed
REPLAY_TARGET = 1.10  # replay / unkeyed
# Requests counted under callgrind: the difference between two runs, so that start-up cancels.
FEW, MANY = 20, 120


def new_key() -> dict[str, str]:
    return {**USER, "Idempotency-Key": f"lean-{uuid.uuid4().hex}"}


def headers_of(case: str) -> Callable[[], dict[str, str]]:
    """Each case's request headers: a new key per call for *keyed*, one key for *replay*."""
    if case == "keyed":
        return new_key
    if case == "replay":
        replayed = new_key()
        return lambda: replayed
    return lambda: USER


def run(args: argparse.Namespace, report: Report) -> None:
    samples, warmup = (40, 5) if args.smoke else (600, 40)
    with pg_database("lean") as url:
        setup_django("benchmarks.settings", BENCH_DATABASE_URL=url)
        round_trips(report)
        timings = {
            "in-process": in_process(samples, warmup),
            "HTTP": over_http(samples, warmup),
        }
        for where, timing in timings.items():
            summarize(report, where, timing, samples)
        if os.environ.get("BENCH_INSTRUCTIONS", "1") != "0":  # deterministic: once is enough
            smoke = ("no mixin", "keyed")  # each count starts Django under valgrind: ~20 s
            cases = smoke if args.smoke else CASES
            instructions(report, *cases, many=FEW + 10 if args.smoke else MANY)


def round_trips(report: Report) -> None:
    """The statements each case sends, as round trips."""
    from django.db import connection
    from django.test import Client as DjangoClient
    from django.test.utils import CaptureQueriesContext

    from benchmarks.bench_overhead import round_trips as as_round_trips

    client = DjangoClient()
    counted = {}
    for case in CASES:
        headers = headers_of(case)
        client.post(PATHS[case], BODY, content_type="application/json", headers=headers())
        with CaptureQueriesContext(connection) as captured:
            response = client.post(
                PATHS[case], BODY, content_type="application/json", headers=headers()
            )
        report.check(response.status_code == 201, f"{case}: answered {response.status_code}")
        counted[case] = as_round_trips(query["sql"] for query in captured.captured_queries)
    report.add(
        "8",
        "DB round trips per request",
        "; ".join(f"{case} {len(trips)} ({', '.join(trips)})" for case, trips in counted.items()),
    )


def in_process(samples: int, warmup: int) -> dict[str, list[float]]:
    from django.test import Client as DjangoClient

    client = DjangoClient()

    def post(case: str) -> Callable[[], None]:
        path, headers = PATHS[case], headers_of(case)

        def call() -> None:
            response = client.post(path, BODY, content_type="application/json", headers=headers())
            assert response.status_code == 201, response.content

        return call

    return interleave({case: post(case) for case in CASES}, samples=samples, warmup=warmup)


def over_http(samples: int, warmup: int) -> dict[str, list[float]]:
    with gunicorn("benchmarks.wsgi:application", workers=1, threads=1) as port:
        client = Client(port)

        def post(case: str) -> Callable[[], None]:
            path, headers = PATHS[case], headers_of(case)

            def call() -> None:
                status, body = client.post(path, BODY, headers())
                assert status == 201, body

            return call

        timings = interleave({case: post(case) for case in CASES}, samples=samples, warmup=warmup)
        client.close()
    return timings


def summarize(report: Report, where: str, timings: dict[str, list[float]], samples: int) -> None:
    medians = ", ".join(f"{case} {ms(median(timings[case]))}" for case in CASES)
    report.add("8", f"median latency, {where}, n={samples} each", medians)
    keyed, low, high = ratio_spread(timings["keyed"], timings["unkeyed"])
    report.add(
        "8",
        f"keyed / unkeyed, {where}",
        f"{keyed:.2f}x (blocks {low:.2f}-{high:.2f}); unkeyed / no mixin "
        f"{median(timings['unkeyed']) / median(timings['no mixin']):.2f}x",
        f"<= {KEYED_TARGET}x",
        keyed <= KEYED_TARGET,
    )
    replay, low, high = ratio_spread(timings["replay"], timings["unkeyed"])
    report.add(
        "8",
        f"replay / unkeyed, {where}",
        f"{replay:.2f}x (blocks {low:.2f}-{high:.2f})",
        f"<= {REPLAY_TARGET}x",
        replay <= REPLAY_TARGET,
    )


def instructions(report: Report, *cases: str, few: int = FEW, many: int = MANY) -> None:
    """Instructions per request of ``cases``, in the serving process (Python and C), by
    callgrind."""
    if not ensure_tool("valgrind"):
        report.notes.append("instructions: skipped, valgrind is not installed (apt: valgrind)")
        return
    per_request = {
        case: (count_instructions(case, many) - count_instructions(case, few)) / (many - few)
        for case in cases
    }
    base = per_request["no mixin"]
    for case in cases:
        added = "" if case == "no mixin" else f" (+{(per_request[case] - base) / 1e6:.3f} M)"
        report.add(
            "8",
            f"instructions per request (callgrind), {case} (+ over no mixin)",
            f"{per_request[case] / 1e6:.3f} M{added}",
        )


def count_instructions(case: str, requests: int) -> int:
    """Instructions a fresh process runs to serve ``requests`` requests of ``case`` (after as
    many warm-up requests), as callgrind counts them."""
    return instructions_of("bench_lean", "--serve", case, str(requests))


def serve(case: str, requests: int) -> None:
    """The measured process: Django set up on the benchmark's database, ``FEW`` warm-up
    requests of ``case``, then ``requests`` more."""
    import django

    django.setup()
    from django.test import Client as DjangoClient

    client, path, headers = DjangoClient(), PATHS[case], headers_of(case)
    for _ in range(FEW + requests):
        response = client.post(path, BODY, content_type="application/json", headers=headers())
        assert response.status_code == 201, response.content


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        serve(sys.argv[2], int(sys.argv[3]))
    else:
        main(run, __doc__ or "")
