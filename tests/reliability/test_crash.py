"""docs/semantics.md#leases-and-owner-tokens and
docs/semantics.md#exactly-once-what-each-store-promises when a server process dies: a gunicorn
worker is SIGKILLed while it holds a key's claim, in the middle of its transaction (the job row
written, not committed).

A retry before the lease ends gets 409; after it, the operation runs for real, once. The dead
process's writes never appear. A client that hangs up, by contrast, does not stop the view: the
response is stored and the retry replays it (docs/semantics.md).
"""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from idempotency_jobs.models import IdempotencyKey, Job
from tests.example import urls as example_urls
from tests.helpers import redis_records
from tests.reliability.test_support import (
    IMPORT_URL,
    Answer,
    Background,
    Service,
    TcpProxy,
    assert_problem,
    import_body,
    redis_url,
    service,
    wait_for,
    workspace_secret,
)

__all__ = ["service"]

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

KEY = "import-2026-04-11-crash-test"
LEASE = 8.0  # seconds: long enough for the retry that must meet the dead claim
STORES = ["database", pytest.param("redis", marks=pytest.mark.redis)]


class Record:
    """The key's record in either store, as this test sees it."""

    def __init__(self, store: str, redis: Any) -> None:
        self.store = store
        self.redis = redis

    def _hash(self) -> dict[str, str]:
        names = redis_records(self.redis)
        assert len(names) <= 1, names
        if not names:
            return {}
        return {k.decode(): v.decode() for k, v in self.redis.hgetall(names[0]).items()}

    def state(self) -> str | None:
        if self.store == "redis":
            return self._hash().get("state")
        row = IdempotencyKey.objects.filter(key=KEY).first()
        return row.state if row else None

    def lease_left(self) -> float:
        """Seconds until the claim's lease ends, by the clock that decides it."""
        if self.store == "redis":
            seconds, micros = self.redis.time()
            return (int(self._hash()["lease"]) - (seconds * 1000 + micros // 1000)) / 1000
        row = IdempotencyKey.objects.get(key=KEY)
        return (row.lease_expires_at - timezone.now()).total_seconds()

    def owner(self) -> str:
        if self.store == "redis":
            return self._hash()["token"]
        return IdempotencyKey.objects.get(key=KEY).owner_token


def held(tmp_path: Path, name: str) -> int:
    """Wait until the request held as ``name`` is in its view; its worker's pid."""
    marker = tmp_path / f"{name}.held"
    wait_for(marker.exists, what=f"request {name!r} to reach its view")
    return int(marker.read_text())


@pytest.fixture
def record(request: pytest.FixtureRequest, store: str) -> Record:
    redis = request.getfixturevalue("redis_client") if store == "redis" else None
    return Record(store, redis)


@pytest.fixture
def server(service: Callable[..., Service], store: str) -> Service:
    return service(
        workers=2,
        IDEMPOTENCY_STORE=store,
        TASKS_BACKEND="db",
        IJ_TEST_IDEMPOTENCY_JOBS=json.dumps({"LEASE": LEASE}),
    )


@pytest.mark.parametrize("store", STORES)
def test_a_worker_killed_holding_a_claim_blocks_until_its_lease_ends_then_runs_once(
    server: Service, record: Record, tmp_path: Path, store: str
) -> None:
    secret = workspace_secret()
    body = import_body(3)
    first = Background(lambda: server.post_import(secret, KEY, body, **{"X-Test-Hold": "crash"}))
    pid = held(tmp_path, "crash")
    assert record.state() == "in_progress"
    dead_owner = record.owner()
    assert Job.objects.count() == 0  # written inside the request's transaction, not committed

    server.kill_worker(pid)
    outcome = first.result()
    assert isinstance(outcome, ConnectionError | OSError), outcome  # no answer at all

    # Before the lease ends: the dead process still holds the key.
    assert record.lease_left() > 0
    early = server.post_import(secret, KEY, body)
    assert_problem(early, 409, "idempotency_key_in_use")
    assert early.header("Retry-After")
    assert Job.objects.count() == 0  # the dead transaction rolled back

    # After the lease: the retry takes the key over and runs the operation, once.
    wait_for(lambda: record.lease_left() < 0, timeout=LEASE + 30, what="the lease to end")
    late = server.post_import(secret, KEY, body)
    assert late.status == 202, late.body
    assert not late.replayed
    assert record.owner() != dead_owner
    job = Job.objects.get()
    assert late.json()["id"] == str(job.pk)

    replay = server.post_import(secret, KEY, body)
    assert replay.status == 202 and replay.replayed and replay.body == late.body
    assert Job.objects.count() == 1
    assert record.state() == "completed"


@pytest.mark.parametrize("store", STORES)
def test_a_client_that_hangs_up_mid_request_gets_the_stored_response_on_retry(
    server: Service, record: Record, tmp_path: Path, store: str
) -> None:
    """The view is not stopped by the client leaving (sync WSGI cannot tell): it completes and
    its response is stored, so the retry is a replay, never a second execution."""
    secret = workspace_secret()
    body = import_body(3)
    with socket.create_connection(("127.0.0.1", server.port)) as raw:
        head = (
            f"POST /v1/jobs/subscriber-imports HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {secret}\r\nIdempotency-Key: {KEY}\r\n"
            f"X-Test-Hold: hangup\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        raw.sendall(head.encode() + body)
        held(tmp_path, "hangup")
    # The client is gone; let the view finish.
    (tmp_path / "hangup.release").touch()
    wait_for(lambda: record.state() == "completed", what="the hung-up request to complete")

    retry: Answer = server.post_import(secret, KEY, body)
    assert retry.status == 202 and retry.replayed
    assert retry.json()["id"] == str(Job.objects.get().pk)
    assert Job.objects.count() == 1


# A worker timeout after the commit ---------------------------------------------------------------
# (docs/semantics.md#one-keyed-request-one-transaction)
#
# gunicorn's sync worker runs a request in its main thread: a request stuck past ``--timeout``
# is ended there by ``SystemExit``, which passes a robust ``on_commit`` hook. Here the job's
# enqueue hangs after the job row and the key's outcome committed; the retry must replay.


def attempt(send: Callable[[], Answer]) -> Answer | None:
    """The answer, or ``None`` when the server dropped the connection (its worker ended)."""
    try:
        return send()
    except (OSError, http.client.HTTPException):
        return None


@pytest.mark.postgresql
def test_a_worker_timeout_while_the_enqueue_waits_on_a_lock_keeps_the_outcome(
    service: Callable[..., Service],
) -> None:
    """The example's default backend (django-tasks-db): its enqueue INSERT waits on a lock."""
    # The statement timeout would end the wait first (the enqueue fails, the job stays queued).
    server = service(worker_class="sync", timeout=3, DATABASE_STATEMENT_TIMEOUT="0")
    secret = workspace_secret()
    body = import_body(3)
    db = connection.settings_dict
    with psycopg.connect(
        host=db["HOST"] or "127.0.0.1",
        port=db["PORT"] or 5432,
        user=db["USER"],
        password=db["PASSWORD"] or None,
        dbname=db["NAME"],
    ) as blocker:
        blocker.execute("LOCK TABLE django_tasks_database_dbtaskresult IN SHARE MODE")
        first = attempt(lambda: server.post_import(secret, KEY, body))
        assert first is None or first.status >= 500, first
        blocker.rollback()

    assert IdempotencyKey.objects.get().state == "completed"
    retry = server.post_import(secret, KEY, body)
    assert retry.status == 202 and retry.replayed, retry.body
    job = Job.objects.get()  # one job for one key
    assert (job.status, job.task_id) == (Job.Status.QUEUED, "")  # for recovery to send


@pytest.mark.redis
def test_a_worker_timeout_while_the_rq_enqueue_hangs_keeps_the_outcome(
    service: Callable[..., Service], redis_client: Any
) -> None:
    """RQ on a Redis that accepts connections and answers nothing; keys in the database."""
    proxy = TcpProxy(redis_client.connection_pool.connection_kwargs["port"])
    try:
        server = service(
            worker_class="sync",
            timeout=3,
            TASKS_BACKEND="rq",
            REDIS_URL=redis_url(port=proxy.port),
        )
        secret = workspace_secret()
        body = import_body(3)
        proxy.freeze()
        first = attempt(lambda: server.post_import(secret, KEY, body))
        assert first is None or first.status >= 500, first
        proxy.down()
        proxy.up()

        assert IdempotencyKey.objects.get().state == "completed"
        retry = server.post_import(secret, KEY, body)
        assert retry.status == 202 and retry.replayed, retry.body
        assert Job.objects.count() == 1
        assert redis_client.llen("rq:queue:default") == 0  # lost: recovery sends it
    finally:
        proxy.down()


# The Redis store's documented window ------------------------------------------------------------


@pytest.fixture
def redis_goes_down_at_commit(settings: Any, redis_client: Any) -> Iterator[TcpProxy]:
    """Keys in Redis through a proxy, which a request sent with ``X-Test-On-Commit`` closes
    right after its database transaction commits, before the store records the outcome."""
    proxy = TcpProxy(redis_client.connection_pool.connection_kwargs["port"])
    settings.CACHES = {
        **settings.CACHES,
        "redis": {**settings.CACHES["redis"], "LOCATION": redis_url(port=proxy.port)},
    }
    settings.TASKS = {"default": {"BACKEND": "django.tasks.backends.dummy.DummyBackend"}}
    example_urls.ON_COMMIT[:] = [proxy.down]
    yield proxy
    example_urls.ON_COMMIT.clear()
    proxy.down()


@pytest.mark.redis
@pytest.mark.urls("tests.example.urls")
@pytest.mark.parametrize("store", STORES)
def test_the_outcome_lost_between_commit_and_store_write(
    settings: Any, redis_goes_down_at_commit: TcpProxy, redis_client: Any, store: str
) -> None:
    """The window docs/semantics.md names, made to happen: the view's transaction commits, then
    the key store cannot be written. The database store wrote the outcome *in* that
    transaction: the retry replays. The Redis store could not: its claim stays in progress,
    and once its lease ends the retry runs the operation a second time (docs/guarantees.md)."""
    settings.IDEMPOTENCY_JOBS = {
        **settings.IDEMPOTENCY_JOBS,
        "STORE": store,
        "CACHE_ALIAS": "redis",
        "SCOPE_FUNCTION": "example_project.workspaces.auth.workspace_scope",
        "LEASE": 1,
    }
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {workspace_secret()}")
    body = import_body(3)

    def create(**headers: str) -> Any:
        return api.post(
            IMPORT_URL, body, content_type="application/json", HTTP_IDEMPOTENCY_KEY=KEY, **headers
        )

    first = create(HTTP_X_TEST_ON_COMMIT="1")
    assert first.status_code == 202  # the client heard of its job
    assert Job.objects.count() == 1
    redis_goes_down_at_commit.up()

    if store == "database":
        retry = create()
        assert retry.get("Idempotent-Replayed") == "true" and retry.content == first.content
        assert Job.objects.count() == 1
        return
    (name,) = redis_records(redis_client)
    assert redis_client.hget(name, "state") == b"in_progress"
    assert create().status_code == 409  # while the lease lasts
    wait_for(
        lambda: int(redis_client.hget(name, "lease")) < redis_now_ms(redis_client),
        what="the lease to end",
    )
    retry = create()
    assert retry.status_code == 202 and retry.get("Idempotent-Replayed") is None
    assert Job.objects.count() == 2  # the operation ran twice: the Redis store's limit


def redis_now_ms(redis_client: Any) -> int:
    seconds, micros = redis_client.time()
    return int(seconds) * 1000 + int(micros) // 1000
