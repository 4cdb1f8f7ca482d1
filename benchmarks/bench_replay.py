"""Benchmark 2: replay vs first execution of the example service's import-job create.

``POST /v1/jobs/subscriber-imports`` (100-row CSV) with a fresh ``Idempotency-Key`` each time
(first execution: checks the CSV, creates the job, enqueues it with django-tasks-db) against
the same key again (replay), interleaved; in-process and through gunicorn, on PostgreSQL.
"""

from __future__ import annotations

import argparse
import io
import json
import uuid
from collections.abc import Callable

from benchmarks.harness import (
    Client,
    Report,
    gunicorn,
    interleave,
    main,
    median,
    ms,
    pg_database,
    ratio_spread,
    setup_django,
)

PATH = "/v1/jobs/subscriber-imports"
ROWS = 100
TARGET = 2.0
BODY = json.dumps(
    {
        "csv_text": "email,name\n"
        + "".join(f"person{i}@example.com,Person {i}\n" for i in range(ROWS)),
        "mappings": [
            {"csv_column": "email", "field": {"type": "email"}},
            {"csv_column": "name", "field": {"type": "name"}},
        ],
    }
).encode()


def run(args: argparse.Namespace, report: Report) -> None:
    samples, warmup = (30, 5) if args.smoke else (400, 30)
    with pg_database("replay") as url:
        setup_django(
            "benchmarks.example_settings",
            DATABASE_URL=url,
            CONN_MAX_AGE="600",
            TASKS_BACKEND="db",
            LOG_LEVEL="WARNING",
            ALLOWED_HOSTS="127.0.0.1,testserver",
        )
        from django.core.management import call_command

        out = io.StringIO()
        call_command("create_api_key", "bench", stdout=out, stderr=io.StringIO())
        auth = {"Authorization": f"Bearer {out.getvalue().strip()}"}
        in_process(report, auth, samples, warmup)
        over_http(report, auth, samples, warmup)


def variants(
    post: Callable[[dict[str, str]], tuple[int, bytes]], auth: dict[str, str]
) -> dict[str, Callable[[], None]]:
    replay_key = {**auth, "Idempotency-Key": f"bench-{uuid.uuid4().hex}"}
    status, first = post(replay_key)
    assert status == 202, first

    def first_execution() -> None:
        status, content = post({**auth, "Idempotency-Key": f"bench-{uuid.uuid4().hex}"})
        assert status == 202, content

    def replay() -> None:
        status, content = post(replay_key)
        assert status == 202 and content == first, content

    return {"first": first_execution, "replay": replay}


def summarize(report: Report, where: str, timings: dict[str, list[float]], samples: int) -> None:
    ratio, low, high = ratio_spread(timings["first"], timings["replay"])
    report.add(
        "2",
        f"import-job create, {where}, n={samples} each",
        f"first {ms(median(timings['first']))}, replay {ms(median(timings['replay']))}: "
        f"replay {ratio:.2f}x faster (blocks {low:.2f}-{high:.2f})",
        f">= {TARGET:.0f}x",
        ratio >= TARGET,
    )


def in_process(report: Report, auth: dict[str, str], samples: int, warmup: int) -> None:
    from django.test import Client as DjangoClient

    client = DjangoClient()

    def post(headers: dict[str, str]) -> tuple[int, bytes]:
        response = client.post(PATH, BODY, content_type="application/json", headers=headers)
        return response.status_code, response.content

    timings = interleave(variants(post, auth), samples=samples, warmup=warmup)
    summarize(report, "in-process", timings, samples)


def over_http(report: Report, auth: dict[str, str], samples: int, warmup: int) -> None:
    with gunicorn("example_project.wsgi:application") as port:
        client = Client(port)

        def post(headers: dict[str, str]) -> tuple[int, bytes]:
            return client.post(PATH, BODY, headers)

        timings = interleave(variants(post, auth), samples=samples, warmup=warmup)
        client.close()
    summarize(report, "HTTP (gunicorn)", timings, samples)


if __name__ == "__main__":
    main(run, __doc__ or "")
