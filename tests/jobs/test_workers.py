"""Jobs run by real worker processes: ``manage.py db_worker`` (django-tasks-db) on SQLite and
PostgreSQL, ``manage.py rqworker`` and ``celery worker`` (Django 6.0 and newer) on Redis, and
workers killed with SIGKILL mid-job."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.db import connection
from django.utils import timezone
from django_tasks_db.models import DBTaskResult
from rest_framework.test import APIClient

from idempotency_jobs.jobs import tasks_compat
from idempotency_jobs.jobs.recovery import recover_jobs
from idempotency_jobs.jobs.tasks import send_job
from idempotency_jobs.jobs.tasks_compat import TaskResultStatus, same_status, task_backends
from idempotency_jobs.models import Job
from tests.helpers import configure
from tests.testapp.models import Widget

ROOT = Path(__file__).resolve().parents[2]
JOBS = "/widget-jobs/"
DB_QUEUE = "ij-jobs-db"
RQ_QUEUE = "ij-jobs-rq"
DB_WORKER = ["db_worker", "--backend", "db", "--queue-name", DB_QUEUE, "--no-startup-delay"]
RQ_WORKER = ["rqworker", RQ_QUEUE, "--burst", "--job-class", "django_tasks_rq.Job"]
WAIT = 90  # seconds: the bound on every wait for another process


def database_url() -> str:
    """The test database, as ``DATABASE_URL`` for a worker process."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return "sqlite:///" + str(Path(db["NAME"]).resolve())
    credentials = db["USER"] + (":" + quote(db["PASSWORD"], safe="") if db["PASSWORD"] else "")
    return f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def manage(args: list[str], log: Path, **job_settings: Any) -> subprocess.Popen[bytes]:
    """Start ``manage.py <args>`` against the test database; output goes to ``log``."""
    return start(["-m", "django", *args], log, **job_settings)


def start(argv: list[str], log: Path, **job_settings: Any) -> subprocess.Popen[bytes]:
    """Start ``python <argv>`` with the test settings and database; output goes to ``log``."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": database_url(),
        "PYTHONPATH": str(ROOT),
        "IJ_JOBS_SETTINGS": json.dumps(job_settings),
    }
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, *argv],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def run_to_end(args: list[str], log: Path, **job_settings: Any) -> None:
    process = manage(args, log, **job_settings)
    try:
        code = process.wait(timeout=WAIT)
    finally:
        process.kill()
    assert code == 0, log.read_text()


def wait_until(condition: Callable[[], Any], what: str, process: Any = None) -> Any:
    deadline = time.monotonic() + WAIT
    while True:
        value = condition()
        if value:
            return value
        if process is not None and process.poll() is not None:
            pytest.fail(f"worker exited ({process.returncode}) before {what}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def create(api: APIClient, body: Any, key: str) -> Any:
    response = api.post(JOBS, body, format="json", HTTP_X_USER="alice", HTTP_IDEMPOTENCY_KEY=key)
    assert response.status_code == 202, response.content
    return response


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return tmp_path / "worker.log"


@pytest.fixture
def db_backend(settings: Any) -> None:
    configure(settings, JOB_TASK_BACKEND="db", JOB_QUEUE_NAME=DB_QUEUE)


# --- django-tasks-db ----------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_db_worker_runs_a_job_to_success(api: APIClient, log: Path, db_backend: None) -> None:
    response = create(api, {"names": ["a", "b", "c"]}, key="db-worker-job-0001")
    assert DBTaskResult.objects.ready().count() == 1

    run_to_end([*DB_WORKER, "--batch"], log)

    state = api.get(response["Location"], HTTP_X_USER="alice").json()
    assert state["status"] == "succeeded", log.read_text()
    assert state["result"] == {"created": 3, "updated": 0}
    assert state["progress"] == {"done": 3, "total": 3}
    assert Widget.objects.count() == 3
    task = DBTaskResult.objects.get()
    assert (task.status, task.return_value) == ("SUCCESSFUL", "succeeded")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_job_is_recovered(
    api: APIClient, log: Path, tmp_path: Path, settings: Any, db_backend: None
) -> None:
    gate = tmp_path / "gate"
    names = [f"w{i}" for i in range(10)]
    response = create(api, {"names": names, "pause_at": 5, "gate": str(gate)}, key="killed-0001")
    job = Job.objects.get()
    worker = manage([*DB_WORKER, "--interval", "0.1"], log, JOB_HEARTBEAT_LEASE=2)
    try:
        wait_until(Path(f"{gate}.reached").exists, "the job to reach row 5", worker)
        running = Job.objects.get()
        assert running.status == Job.Status.RUNNING
        assert running.progress == {"done": 5, "total": 10}
        assert Widget.objects.count() == 5
    finally:
        worker.kill()  # SIGKILL: no cleanup of any kind
        worker.wait(timeout=WAIT)

    # django-tasks-db leaves its task RUNNING for ever; the job's lease runs out instead.
    assert DBTaskResult.objects.get().status == "RUNNING"
    wait_until(lambda: recover_jobs(dry_run=True).requeued_orphaned, "the lease to run out")
    out = _call("recover_jobs")
    assert out == "Re-enqueued 0 stale and 1 orphaned jobs; failed 0 jobs.\n"
    assert Job.objects.get().status == Job.Status.QUEUED

    gate.touch()
    run_to_end([*DB_WORKER, "--batch"], log)

    state = api.get(response["Location"], HTTP_X_USER="alice").json()
    assert state["status"] == "succeeded", log.read_text()
    assert state["result"] == {"created": 5, "updated": 5}
    assert Widget.objects.count() == 10  # every row once, none twice
    assert Job.objects.get(pk=job.pk).attempts == 2
    assert sorted(DBTaskResult.objects.values_list("status", flat=True)) == [
        "RUNNING",
        "SUCCESSFUL",
    ]


@pytest.mark.slow
@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_competing_workers_and_duplicate_deliveries_run_each_job_once(
    tmp_path: Path, db_backend: None
) -> None:
    jobs = [
        Job.objects.create(
            kind="widget_batch", owner="auth.user:1", params={"names": [f"{i}-{k}" for k in "xyz"]}
        )
        for i in range(20)
    ]
    for job in jobs:
        send_job(job)
        send_job(job)  # a duplicate delivery of every job

    workers = [manage([*DB_WORKER, "--batch"], tmp_path / f"worker-{n}.log") for n in range(4)]
    try:
        codes = [worker.wait(timeout=WAIT) for worker in workers]
    finally:
        for worker in workers:
            worker.kill()
    assert codes == [0, 0, 0, 0]

    assert set(Job.objects.values_list("status", "attempts")) == {(Job.Status.SUCCEEDED, 1)}
    assert Widget.objects.count() == 60
    outcomes = sorted(DBTaskResult.objects.values_list("return_value", flat=True))
    assert outcomes == ["skipped"] * 20 + ["succeeded"] * 20


def _call(*args: str) -> str:
    from io import StringIO

    out = StringIO()
    call_command(*args, stdout=out, no_color=True)
    return out.getvalue()


# --- RQ -------------------------------------------------------------------------------------


@pytest.fixture
def rq_queue() -> Iterator[Any]:
    import django_rq

    queue = django_rq.get_queue(RQ_QUEUE)
    queue.empty()
    yield queue
    queue.empty()


@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("backend", ["rq", "rq-stock"])
def test_rq_worker_runs_a_job(
    api: APIClient, log: Path, settings: Any, rq_queue: Any, backend: str
) -> None:
    configure(settings, JOB_TASK_BACKEND=backend, JOB_QUEUE_NAME=RQ_QUEUE)
    response = create(api, {"names": ["a", "b", "c", "d"]}, key=f"rq-job-{backend}-1")
    job = Job.objects.get()
    assert job.task_id and rq_queue.count == 1

    report = recover_jobs(now=timezone.now() + timedelta(minutes=5))
    if backend == "rq":
        assert report.total == 0  # the adapter can see the task still waiting in Redis
    else:
        # The stock backend's get_result() needs RQ_QUEUES["default"]: recovery cannot tell
        # and sends the job again, a duplicate delivery the claim turns into a no-op.
        assert report.requeued_stale == [str(job.pk)]
        assert rq_queue.count == 2

    run_to_end(RQ_WORKER, log)

    state = api.get(response["Location"], HTTP_X_USER="alice").json()
    assert state["status"] == "succeeded", log.read_text()
    assert state["result"] == {"created": 4, "updated": 0}
    assert Job.objects.get().attempts == 1
    assert Widget.objects.count() == 4
    if backend == "rq":
        result = task_backends[backend].get_result(Job.objects.get().task_id)
        assert same_status(result.status, TaskResultStatus.SUCCESSFUL)
        assert result.return_value == "succeeded"


def rq_example_task() -> None:
    """Module level, as tasks must be."""


def test_the_rq_adapter_builds_the_frameworks_own_tasks() -> None:
    task = importlib.import_module(tasks_compat.MODULE).task
    adapted = task(backend="rq", queue_name=RQ_QUEUE)(rq_example_task)
    stock = task(backend="rq-stock", queue_name=RQ_QUEUE)(rq_example_task)

    assert type(adapted) is tasks_compat.Task
    assert tasks_compat.is_task(adapted) and tasks_compat.is_task(stock)
    # On Django 6 the stock backend builds the django_tasks backport's Task; on 5.2 that is
    # the framework itself.
    assert (type(stock) is tasks_compat.Task) is not tasks_compat.BUILTIN


# --- Celery (django-tasks-celery: Django 6.0 and newer) -------------------------------------

needs_celery = pytest.mark.skipif(
    "celery" not in django_settings.TASKS,
    reason="django-tasks-celery needs Django 6.0 or newer (and idempotency-jobs[celery])",
)


def celery_worker(log: Path, **job_settings: Any) -> subprocess.Popen[bytes]:
    """A real ``celery worker`` (one process: SIGKILL leaves nothing behind) on this run's
    queue, with the settings that make ``run_job`` a Celery task there."""
    queue = django_settings.CELERY_QUEUE
    argv = ["-m", "celery", "-A", "example_project", "worker", "--queues", queue, "--pool=solo"]
    argv += ["--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel=INFO"]
    job_settings = {"JOB_TASK_BACKEND": "celery", "JOB_QUEUE_NAME": queue, **job_settings}
    return start(argv, log, **job_settings)


def stop(worker: subprocess.Popen[bytes]) -> None:
    worker.terminate()  # Celery's warm shutdown
    try:
        worker.wait(timeout=WAIT)
    finally:
        worker.kill()


@pytest.fixture
def celery_backend(settings: Any) -> Iterator[None]:
    """Jobs go to Celery; afterwards every Redis key this run's Celery made is deleted (only
    those: their names carry the run's own prefix)."""
    import redis

    configure(settings, JOB_TASK_BACKEND="celery", JOB_QUEUE_NAME=settings.CELERY_QUEUE)
    yield
    client = redis.Redis.from_url(settings.REDIS_URL)
    prefix = settings.CELERY_BROKER_TRANSPORT_OPTIONS["global_keyprefix"]
    for name in client.scan_iter(match=f"{prefix}*"):
        client.delete(name)


def celery_outcomes(*task_ids: str) -> list[str]:
    backend = task_backends["celery"]
    return sorted(str(backend.get_result(task_id).return_value) for task_id in task_ids)


@needs_celery
@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_celery_worker_runs_a_job(api: APIClient, log: Path, celery_backend: None) -> None:
    response = create(api, {"names": ["a", "b", "c", "d"]}, key="celery-job-0001")
    first = Job.objects.get().task_id
    assert first

    # Celery answers PENDING for any task id, a lost one too: recovery cannot tell a waiting
    # task from a lost one and sends the job again, a duplicate the claim makes harmless.
    report = recover_jobs(now=timezone.now() + timedelta(minutes=5))
    assert report.requeued_stale == [str(Job.objects.get().pk)]
    second = Job.objects.get().task_id
    assert second and second != first

    worker = celery_worker(log)
    try:
        wait_until(
            lambda: Job.objects.get().status == Job.Status.SUCCEEDED, "the job to run", worker
        )
        results = task_backends["celery"]
        wait_until(
            lambda: all(
                same_status(results.get_result(task).status, TaskResultStatus.SUCCESSFUL)
                for task in (first, second)
            ),
            "both deliveries to finish",
            worker,
        )
    finally:
        stop(worker)

    state = api.get(response["Location"], HTTP_X_USER="alice").json()
    assert state["status"] == "succeeded", log.read_text()
    assert state["result"] == {"created": 4, "updated": 0}
    assert Job.objects.get().attempts == 1
    assert Widget.objects.count() == 4
    assert celery_outcomes(first, second) == ["skipped", "succeeded"]


@needs_celery
@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_a_celery_worker_killed_mid_job_is_recovered(
    api: APIClient, log: Path, tmp_path: Path, celery_backend: None
) -> None:
    gate = tmp_path / "gate"
    names = [f"w{i}" for i in range(10)]
    response = create(api, {"names": names, "pause_at": 5, "gate": str(gate)}, key="celery-kill-1")
    worker = celery_worker(log, JOB_HEARTBEAT_LEASE=2)
    try:
        wait_until(Path(f"{gate}.reached").exists, "the job to reach row 5", worker)
        running = Job.objects.get()
        assert running.status == Job.Status.RUNNING
        assert running.progress == {"done": 5, "total": 10}
        assert Widget.objects.count() == 5
    finally:
        worker.kill()  # SIGKILL: no cleanup of any kind
        worker.wait(timeout=WAIT)

    wait_until(lambda: recover_jobs(dry_run=True).requeued_orphaned, "the lease to run out")
    assert _call("recover_jobs") == "Re-enqueued 0 stale and 1 orphaned jobs; failed 0 jobs.\n"
    assert Job.objects.get().status == Job.Status.QUEUED

    gate.touch()
    worker = celery_worker(log)
    try:
        wait_until(lambda: Job.objects.get().is_finished, "the job to finish", worker)
    finally:
        stop(worker)

    state = api.get(response["Location"], HTTP_X_USER="alice").json()
    assert state["status"] == "succeeded", log.read_text()
    assert state["result"] == {"created": 5, "updated": 5}
    assert Widget.objects.count() == 10  # every row once, none twice
    assert Job.objects.get().attempts == 2
