"""docs/semantics.md#answers: "key store unreachable → 503, nothing run", with real refused
connections.

PostgreSQL and Redis are reached through a TCP proxy in this process (tests/reliability/
test_support.py); ``down()`` closes its port, so the service meets a real
"connection refused" (and open connections are cut), and ``up()`` brings the same server back.
The shared servers themselves are never stopped.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from example_project.subscribers.models import Subscriber
from idempotency_jobs.models import IdempotencyKey, Job
from tests.helpers import redis_records
from tests.reliability.test_support import (
    Background,
    Service,
    TcpProxy,
    assert_problem,
    import_body,
    redis_url,
    run_manage,
    service,
    test_database_url,
    wait_for,
    workspace_secret,
)

__all__ = ["service"]

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

KEY = "import-2026-04-11-dependency-down"
RQ_WORKER = ["rqworker", "default", "--burst", "--job-class", "django_tasks_rq.Job"]


@pytest.fixture
def postgres_proxy() -> Iterator[TcpProxy]:
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (set DATABASE_URL)")
    proxy = TcpProxy(int(connection.settings_dict["PORT"] or 5432))
    yield proxy
    proxy.down()


@pytest.fixture
def redis_proxy(redis_client: Any) -> Iterator[TcpProxy]:
    port = redis_client.connection_pool.connection_kwargs["port"]
    proxy = TcpProxy(port)
    yield proxy
    proxy.down()


def rq_queued(redis_client: Any) -> int:
    from rq import Queue

    return Queue("default", connection=redis_client).count


# PostgreSQL -------------------------------------------------------------------------------------


@pytest.mark.postgresql
def test_key_store_database_refusing_connections_is_503_and_runs_nothing(
    service: Callable[..., Service], postgres_proxy: TcpProxy
) -> None:
    """The key store is a second database alias (``keys``) behind the proxy; the rest of the
    service uses the database directly."""
    server = service(IJ_TEST_KEYS_DATABASE_URL=test_database_url(port=postgres_proxy.port))
    secret = workspace_secret()
    body = import_body(3)

    postgres_proxy.down()
    for _ in range(3):
        assert_problem(server.post_import(secret, KEY, body), 503, "idempotency_store_unavailable")
    assert Job.objects.count() == 0
    assert IdempotencyKey.objects.count() == 0
    # Requests without a key do not need the key store.
    assert server.post_import(secret, None, body).status == 202
    assert Job.objects.count() == 1

    postgres_proxy.up()
    first = server.post_import(secret, KEY, body)
    assert first.status == 202 and not first.replayed, first.body
    replay = server.post_import(secret, KEY, body)
    assert replay.status == 202 and replay.replayed and replay.body == first.body
    assert Job.objects.count() == 2
    assert IdempotencyKey.objects.get().state == "completed"


@pytest.mark.postgresql
def test_the_whole_database_refusing_connections_is_503_and_runs_nothing(
    service: Callable[..., Service], postgres_proxy: TcpProxy
) -> None:
    """With the database store the key store *is* the service's database: authentication
    cannot even look the API key up. Still a 503 problem, never a 500."""
    server = service(DATABASE_URL=test_database_url(port=postgres_proxy.port))
    secret = workspace_secret()
    body = import_body(3)

    postgres_proxy.down()
    for key in (KEY, None):
        down = server.post_import(secret, key, body)
        assert_problem(down, 503, "database_unavailable")
        assert down.header("Retry-After")
    assert Job.objects.count() == 0
    assert IdempotencyKey.objects.count() == 0

    postgres_proxy.up()
    first = server.post_import(secret, KEY, body)
    assert first.status == 202 and not first.replayed, first.body
    assert server.post_import(secret, KEY, body).replayed
    assert Job.objects.count() == 1


# A PostgreSQL that accepts connections and answers nothing: the proxy is frozen. The client
# waits at most HUNG (far less than gunicorn's timeout here, 120 s): an answer at all is the test.
HUNG = 30


@pytest.mark.postgresql
def test_key_store_database_answering_nothing_is_503_and_runs_nothing(
    service: Callable[..., Service], postgres_proxy: TcpProxy
) -> None:
    server = service(IJ_TEST_KEYS_DATABASE_URL=test_database_url(port=postgres_proxy.port))
    secret = workspace_secret()
    body = import_body(3)

    postgres_proxy.freeze()
    hung = server.post_import(secret, KEY, body, timeout=HUNG)
    assert_problem(hung, 503, "idempotency_store_unavailable")
    assert Job.objects.count() == 0
    assert IdempotencyKey.objects.count() == 0

    postgres_proxy.down()  # cuts what the frozen proxy held, unsent
    postgres_proxy.up()
    first = server.post_import(secret, KEY, body)
    assert first.status == 202 and not first.replayed, first.body
    assert server.post_import(secret, KEY, body).replayed
    assert Job.objects.count() == 1


@pytest.mark.postgresql
def test_the_whole_database_answering_nothing_is_503_and_runs_nothing(
    service: Callable[..., Service], postgres_proxy: TcpProxy
) -> None:
    server = service(DATABASE_URL=test_database_url(port=postgres_proxy.port))
    secret = workspace_secret()
    body = import_body(3)

    postgres_proxy.freeze()
    for key in (KEY, None):
        hung = server.post_import(secret, key, body, timeout=HUNG)
        assert_problem(hung, 503, "database_unavailable")
        assert hung.header("Retry-After")
    assert Job.objects.count() == 0
    assert IdempotencyKey.objects.count() == 0

    postgres_proxy.down()
    postgres_proxy.up()
    first = server.post_import(secret, KEY, body)
    assert first.status == 202 and not first.replayed, first.body
    assert server.post_import(secret, KEY, body).replayed
    assert Job.objects.count() == 1


# Redis ------------------------------------------------------------------------------------------


@pytest.mark.redis
def test_redis_store_and_rq_down_is_503_and_runs_nothing(
    service: Callable[..., Service], redis_proxy: TcpProxy, redis_client: Any, tmp_path: Path
) -> None:
    """Key store and task queue on one Redis, as deployments usually have them."""
    server = service(
        IDEMPOTENCY_STORE="redis",
        TASKS_BACKEND="rq",
        REDIS_URL=redis_url(port=redis_proxy.port),
    )
    secret = workspace_secret()
    body = import_body(3)

    redis_proxy.down()
    for _ in range(3):
        assert_problem(server.post_import(secret, KEY, body), 503, "idempotency_store_unavailable")
    assert Job.objects.count() == 0
    assert redis_records(redis_client) == []
    assert rq_queued(redis_client) == 0

    redis_proxy.up()
    first = server.post_import(secret, KEY, body)
    assert first.status == 202 and not first.replayed, first.body
    assert server.post_import(secret, KEY, body).replayed
    assert Job.objects.count() == 1
    assert rq_queued(redis_client) == 1

    run_manage(tmp_path, *RQ_WORKER, env={"TASKS_BACKEND": "rq"})
    job = Job.objects.get()
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert Subscriber.objects.count() == 3


@pytest.mark.redis
def test_redis_store_answering_nothing_is_503_and_runs_nothing(
    service: Callable[..., Service], redis_proxy: TcpProxy, redis_client: Any
) -> None:
    server = service(IDEMPOTENCY_STORE="redis", REDIS_URL=redis_url(port=redis_proxy.port))
    secret = workspace_secret()
    body = import_body(3)

    redis_proxy.freeze()
    hung = server.post_import(secret, KEY, body, timeout=HUNG)
    assert_problem(hung, 503, "idempotency_store_unavailable")
    assert Job.objects.count() == 0
    assert redis_records(redis_client) == []

    redis_proxy.down()
    redis_proxy.up()
    first = server.post_import(secret, KEY, body)
    assert first.status == 202 and not first.replayed, first.body
    assert server.post_import(secret, KEY, body).replayed
    assert Job.objects.count() == 1


@pytest.mark.redis
def test_redis_store_lost_mid_request_is_503_and_the_writes_roll_back(
    service: Callable[..., Service], redis_proxy: TcpProxy, redis_client: Any, tmp_path: Path
) -> None:
    """Redis goes away after the claim, while the view runs: its completion cannot be
    checked, so the view's writes roll back and the client hears 503. The claim it could not
    release blocks the key until its lease ends; then the retry runs once."""
    lease = 6.0
    server = service(
        IDEMPOTENCY_STORE="redis",
        REDIS_URL=redis_url(port=redis_proxy.port),
        IJ_TEST_IDEMPOTENCY_JOBS=json.dumps({"LEASE": lease}),
    )
    secret = workspace_secret()
    body = import_body(3)
    first = Background(lambda: server.post_import(secret, KEY, body, **{"X-Test-Hold": "mid"}))
    wait_for((tmp_path / "mid.held").exists, what="the request to reach its view")
    redis_proxy.down()
    (tmp_path / "mid.release").touch()
    assert_problem(first.result(), 503, "idempotency_store_unavailable")
    assert Job.objects.count() == 0

    redis_proxy.up()
    (name,) = redis_records(redis_client)
    assert redis_client.hget(name, "state") == b"in_progress"  # its release failed too
    wait_for(
        lambda: (
            not redis_client.exists(name)
            or redis_client.hget(name, "state") is None
            or int(redis_client.hget(name, "lease")) < redis_now_ms(redis_client)
        ),
        timeout=lease + 30,
        what="the lease to end",
    )
    retry = server.post_import(secret, KEY, body)
    assert retry.status == 202 and not retry.replayed, retry.body
    assert server.post_import(secret, KEY, body).replayed
    assert Job.objects.count() == 1


def redis_now_ms(redis_client: Any) -> int:
    seconds, micros = redis_client.time()
    return int(seconds) * 1000 + int(micros) // 1000


@pytest.mark.redis
def test_rq_down_with_the_database_store_is_202_and_recovery_enqueues_the_job(
    service: Callable[..., Service], redis_proxy: TcpProxy, redis_client: Any, tmp_path: Path
) -> None:
    """Only the broker is down: the job row and the key commit together, the enqueue after the
    commit fails, and the client still gets its 202 (docs/jobs.md: the row is the source of truth).
    Recovery enqueues the job once the broker is back; it runs once."""
    proxied = {"TASKS_BACKEND": "rq", "REDIS_URL": redis_url(port=redis_proxy.port)}
    server = service(**proxied)
    secret = workspace_secret()
    body = import_body(3)

    redis_proxy.down()
    first = server.post_import(secret, KEY, body)
    assert first.status == 202 and not first.replayed, first.body
    replay = server.post_import(secret, KEY, body)
    assert replay.replayed and replay.body == first.body
    job = Job.objects.get()
    assert (job.status, job.task_id) == (Job.Status.QUEUED, "")  # the enqueue was lost
    assert rq_queued(redis_client) == 0

    redis_proxy.up()
    recovered = run_manage(
        tmp_path,
        "recover_jobs",
        # A millisecond: every queued job is stale (zero is a check error, E009).
        env={**proxied, "IJ_TEST_IDEMPOTENCY_JOBS": json.dumps({"JOB_STALE_AFTER": 0.001})},
    )
    assert "Re-enqueued 1 stale and 0 orphaned jobs" in recovered
    assert rq_queued(redis_client) == 1
    run_manage(tmp_path, *RQ_WORKER, env={"TASKS_BACKEND": "rq"})
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert job.attempts == 1
    assert Subscriber.objects.count() == 3
