"""docs/jobs.md when a worker dies mid-import: SIGKILL in the middle of a subscriber import, then
``recover_jobs`` and a new worker finish it, and every CSV row is stored exactly once; with
each task backend's real worker (db_worker, rqworker, and on Django 6 a celery worker). The same
when the worker lives but loses its database connections (a transient failure).

The import is stopped at a known row without any test hook in its code: this test holds a
PostgreSQL row lock on one subscriber that the CSV updates, so the worker blocks inside that
batch's upsert, with the batches before it committed. (The widget-job version of this test,
for both task backends' workers, is tests/jobs/test_workers.py.)
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from example_project.subscribers.models import Subscriber
from example_project.workspaces.models import Workspace
from idempotency_jobs.models import Job
from tests.reliability.test_support import (
    MAPPINGS,
    ROOT,
    Service,
    redis_url,
    run_manage,
    service,
    service_env,
    stop_process,
    wait_for,
    workspace_secret,
)

__all__ = ["service"]

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.postgresql]

ROWS = 1000
BATCH = 100
BLOCKED_ROW = 550  # in the sixth batch: five batches (500 rows) commit before the worker blocks
# These tests hold a row lock for as long as they need (the example's 5 s statement timeout
# would cancel the blocked worker's statement first): no statement timeout here.
KNOBS = {
    "DATABASE_STATEMENT_TIMEOUT": "0",
    "IJ_TEST_EXAMPLE": json.dumps({"SUBSCRIBER_IMPORT_BATCH_SIZE": BATCH}),
    "IJ_TEST_IDEMPOTENCY_JOBS": json.dumps(
        {"JOB_PROGRESS_INTERVAL": 0, "JOB_HEARTBEAT_LEASE": 2, "JOB_STALE_AFTER": 600}
    ),
}
WORKERS = {
    "db": ["-m", "django", "db_worker", "--no-startup-delay", "--interval", "0.1"],
    "rq": ["-m", "django", "rqworker", "default", "--job-class", "django_tasks_rq.Job"],
    "celery": [
        *("-m", "celery", "-A", "example_project", "worker", "--pool=solo", "--loglevel=INFO"),
        *("--without-gossip", "--without-mingle", "--without-heartbeat"),
    ],
}
BURST = {"db": ["--batch"], "rq": ["--burst"]}  # a celery worker has no such mode


def email(n: int) -> str:
    return f"user{n:05d}@example.com"


def csv_body() -> bytes:
    lines = ["Email,Name", *(f"{email(n)},User {n}" for n in range(ROWS))]
    return json.dumps({"csv_text": "\n".join(lines) + "\n", "mappings": MAPPINGS}).encode()


def children(pid: int) -> list[int]:
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            lines = status.read_text().splitlines()
        except OSError:  # gone meanwhile
            continue
        parent = next((line for line in lines if line.startswith("PPid:")), "PPid: 0")
        if int(parent.split()[1]) == pid:
            found.append(int(status.parent.name))
    return found


def blocker_connection() -> psycopg.Connection[Any]:
    db = connection.settings_dict
    return psycopg.connect(
        host=db["HOST"] or "127.0.0.1",
        port=db["PORT"] or 5432,
        user=db["USER"],
        password=db["PASSWORD"] or None,
        dbname=db["NAME"],
    )


def waiting_on_a_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        (count,) = cursor.fetchone()
    return bool(count)


def start_worker(tmp_path: Path, backend: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, *WORKERS[backend]],
        cwd=ROOT,
        env=service_env(tmp_path, **env),
        stdout=(tmp_path / "worker.log").open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def work_off(tmp_path: Path, backend: str, env: dict[str, str]) -> None:
    """Run a worker until the job is done: to its end (db, rq), or stopped once the job is."""
    if backend in BURST:
        run_manage(tmp_path, *WORKERS[backend][2:], *BURST[backend], env=env)
        return
    worker = start_worker(tmp_path, backend, env)
    try:
        wait_for(lambda: Job.objects.get().is_finished, timeout=120, what="the job to finish")
    finally:
        stop_process(worker)


@pytest.fixture
def celery_env() -> Iterator[dict[str, str]]:
    """Celery's Redis keys under a prefix of this test's own, deleted afterwards."""
    import redis

    prefix = f"ij-test-celery-{secrets.token_hex(4)}:"
    yield {"IJ_TEST_CELERY_PREFIX": prefix}
    client = redis.Redis.from_url(redis_url())
    for name in client.scan_iter(match=f"{prefix}*"):
        client.delete(name)


@pytest.mark.parametrize(
    "backend",
    [
        "db",
        pytest.param("rq", marks=pytest.mark.redis),
        pytest.param(
            "celery",
            marks=[
                pytest.mark.redis,
                pytest.mark.skipif(
                    "celery" not in settings.TASKS,
                    reason="django-tasks-celery needs Django 6.0 or newer",
                ),
            ],
        ),
    ],
)
def test_a_worker_killed_mid_import_is_recovered_and_every_row_lands_once(
    service: Callable[..., Service], request: pytest.FixtureRequest, tmp_path: Path, backend: str
) -> None:
    env = {**KNOBS, "TASKS_BACKEND": backend}
    if backend == "rq":
        request.getfixturevalue("redis_client")  # a clean queue
    if backend == "celery":
        env.update(request.getfixturevalue("celery_env"))
    server = service(**env)
    secret = workspace_secret("acme")
    workspace = Workspace.objects.get(name="acme")
    Subscriber.objects.create(workspace=workspace, email=email(BLOCKED_ROW), name="Before")

    created = server.post_import(secret, "import-2026-04-11-big-list", csv_body())
    assert created.status == 202, created.body
    job = Job.objects.get()

    with blocker_connection() as blocker:
        blocker.execute(
            "SELECT 1 FROM subscribers_subscriber WHERE email = %s FOR UPDATE",
            [email(BLOCKED_ROW)],
        )
        worker = start_worker(tmp_path, backend, env)
        try:
            wait_for(
                lambda: (Job.objects.get().progress or {}).get("rows_processed") == 500,
                timeout=90,
                what="five batches to commit",
            )
            wait_for(waiting_on_a_lock, what="the worker to block in the sixth batch")
            # The worker and what it forked (RQ's work horse runs in a session of its own).
            for pid in [*children(worker.pid), worker.pid]:
                os.kill(pid, signal.SIGKILL)
            worker.wait(timeout=30)
        finally:
            stop_process(worker, grace=0)
        blocker.rollback()

    running = Job.objects.get()
    assert running.status == Job.Status.RUNNING
    assert running.attempts == 1
    # Five batches, plus the row that was there; and, as the worker upserts each batch over
    # two connections (SUBSCRIBER_IMPORT_CONNECTIONS), maybe the sixth's rows of the other one.
    assert 501 <= Subscriber.objects.count() < 501 + BATCH
    assert Subscriber.objects.get(email=email(BLOCKED_ROW)).name == "Before"  # batch 6: none

    wait_for(
        lambda: Job.objects.get().lease_expires_at < timezone.now(),
        what="the dead worker's lease to end",
    )
    recovered = run_manage(tmp_path, "recover_jobs", env=env)
    assert "Re-enqueued 0 stale and 1 orphaned jobs" in recovered
    work_off(tmp_path, backend, env)

    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, (job.error, (tmp_path / "worker.log").read_text())
    assert job.attempts == 2
    result = job.result
    assert result["rows"] == ROWS and result["failed"] == 0
    assert result["created"] + result["updated"] + result["skipped"] == ROWS
    assert Subscriber.objects.count() == ROWS  # every row once, none twice
    assert Subscriber.objects.filter(workspace=workspace).count() == ROWS
    assert Subscriber.objects.get(email=email(BLOCKED_ROW)).name == f"User {BLOCKED_ROW}"
    assert job.progress["rows_processed"] == ROWS


def test_a_worker_that_loses_its_database_connections_mid_import_runs_it_again(
    service: Callable[..., Service], tmp_path: Path
) -> None:
    """The worker's connections are terminated while an import blocks in its sixth batch: the
    job goes back to the queue (attempts 1), the worker lives on, and once recovery sends the
    job again the same worker finishes it with every row stored once."""
    env = {**KNOBS, "TASKS_BACKEND": "db"}
    server = service(**env)
    secret = workspace_secret("acme")
    workspace = Workspace.objects.get(name="acme")
    Subscriber.objects.create(workspace=workspace, email=email(BLOCKED_ROW), name="Before")
    created = server.post_import(secret, "import-2026-04-11-big-list", csv_body())
    assert created.status == 202, created.body
    job = Job.objects.get()
    worker_log = tmp_path / "worker.log"
    worker = subprocess.Popen(
        [sys.executable, *WORKERS["db"]],
        cwd=ROOT,
        env=service_env(tmp_path, PGAPPNAME="ij-lost-connections", **env),
        stdout=worker_log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        with blocker_connection() as blocker:
            blocker.execute(
                "SELECT 1 FROM subscribers_subscriber WHERE email = %s FOR UPDATE",
                [email(BLOCKED_ROW)],
            )
            wait_for(
                lambda: (Job.objects.get().progress or {}).get("rows_processed") == 500,
                timeout=90,
                what="five batches to commit",
            )
            wait_for(waiting_on_a_lock, what="the worker to block in the sixth batch")
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(pg_terminate_backend(pid, 30000)) FROM pg_stat_activity "
                    "WHERE application_name = 'ij-lost-connections'"
                )
                (terminated,) = cursor.fetchone()
            assert terminated >= 2  # the worker's own and at least one lane's
            wait_for(
                lambda: Job.objects.get().status != Job.Status.RUNNING,
                what="the worker to give the job back",
            )
            blocker.rollback()

        queued = Job.objects.get()
        assert queued.status == Job.Status.QUEUED, (queued.error, worker_log.read_text())
        assert queued.attempts == 1
        assert Subscriber.objects.get(email=email(BLOCKED_ROW)).name == "Before"

        recovered = run_manage(
            tmp_path,
            "recover_jobs",
            env={**env, "IJ_TEST_IDEMPOTENCY_JOBS": json.dumps({"JOB_STALE_AFTER": 0.001})},
        )
        assert "Re-enqueued 1 stale and 0 orphaned jobs" in recovered
        wait_for(
            lambda: Job.objects.get().status != Job.Status.QUEUED,
            timeout=90,
            what="the same worker to run it again",
        )
        wait_for(lambda: Job.objects.get().is_finished, timeout=90, what="the second run")
        assert worker.poll() is None, worker_log.read_text()
    finally:
        stop_process(worker)

    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, (job.error, worker_log.read_text())
    assert job.attempts == 2
    result = job.result
    assert result["rows"] == ROWS and result["failed"] == 0
    assert result["created"] + result["updated"] + result["skipped"] == ROWS
    assert Subscriber.objects.count() == ROWS
    assert Subscriber.objects.filter(workspace=workspace).count() == ROWS
    assert Subscriber.objects.get(email=email(BLOCKED_ROW)).name == f"User {BLOCKED_ROW}"
