"""docs/semantics.md#exactly-once-what-each-store-promises under load: 200 concurrent identical job
creates against four gunicorn worker processes on PostgreSQL make exactly one job, with either key
store.

The requests are real HTTP from 200 threads of this process, released together. Jobs go to
django-tasks-db and nobody works them off, so the counts are of creations and enqueues alone.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import pytest
from django_tasks_db.models import DBTaskResult

from idempotency_jobs.models import IdempotencyKey, Job
from tests.helpers import redis_records
from tests.reliability.test_support import (
    Answer,
    assert_problem,
    import_body,
    service,
    workspace_secret,
)

__all__ = ["service"]

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.postgresql]

BURST = 200
KEY = "import-2026-04-11-website-signups"
STORES = ["database", pytest.param("redis", marks=pytest.mark.redis)]


def burst(count: int, send: Any) -> list[Answer | BaseException]:
    """``count`` calls of ``send()`` from as many threads, released together."""
    barrier = threading.Barrier(count)
    answers: list[Answer | BaseException | None] = [None] * count

    def go(index: int) -> None:
        try:
            barrier.wait(timeout=60)
            answers[index] = send()
        except BaseException as exc:  # reported below, never lost
            answers[index] = exc

    threads = [threading.Thread(target=go, args=(n,), daemon=True) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
    assert all(answer is not None for answer in answers), "a request never finished"
    return [answer for answer in answers if answer is not None]


def stored_records(store: str, redis_client: Any) -> int:
    if store == "redis":
        return len(redis_records(redis_client))
    return IdempotencyKey.objects.count()


@pytest.mark.parametrize("store", STORES)
def test_200_identical_job_creates_on_four_processes_make_one_job(
    service: Any, request: pytest.FixtureRequest, store: str
) -> None:
    redis_client = request.getfixturevalue("redis_client") if store == "redis" else None
    server = service(workers=4, threads=4, IDEMPOTENCY_STORE=store, TASKS_BACKEND="db")
    secret = workspace_secret("acme")
    body = import_body(5)
    # The one request that runs pauses 0.3 s after writing its job, so twins meet it in flight.
    answers = burst(BURST, lambda: server.post_import(secret, KEY, body, **{"X-Test-Sleep": "0.3"}))

    errors = [answer for answer in answers if isinstance(answer, BaseException)]
    assert not errors, errors[:3]
    replies = [answer for answer in answers if isinstance(answer, Answer)]
    assert [a.status for a in replies if a.status >= 500] == []
    originals = [a for a in replies if a.status == 202 and not a.replayed]
    assert len(originals) == 1, Counter(a.status for a in replies)
    original = originals[0]
    kinds: Counter[str] = Counter()
    for answer in replies:
        if answer is original:
            kinds["original"] += 1
        elif answer.status == 202:
            assert answer.replayed
            assert answer.body == original.body
            assert answer.header("Location") == original.header("Location")
            kinds["replay"] += 1
        else:
            assert_problem(answer, 409, "idempotency_key_in_use")
            assert answer.header("Retry-After")
            kinds["in_flight"] += 1
    print(f"{store}: {BURST} requests -> {dict(kinds)}")

    job = Job.objects.get()  # exactly one job row
    assert original.json()["id"] == str(job.pk)
    assert DBTaskResult.objects.count() == 1  # enqueued once
    assert stored_records(store, redis_client) == 1

    # A late retry is a replay, and still nothing more runs.
    late = server.post_import(secret, KEY, body)
    assert late.status == 202 and late.replayed and late.body == original.body
    assert Job.objects.count() == 1
    assert DBTaskResult.objects.count() == 1
