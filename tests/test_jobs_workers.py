"""Jobs run by real worker processes: ``manage.py db_worker`` (django-tasks-db) on SQLite and
PostgreSQL, ``manage.py rqworker`` on Redis, and a worker killed with SIGKILL mid-job."""

from __future__ import annotations

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

import django.tasks
import pytest
from django.core.management import call_command
from django.db import connection
from django.tasks import task_backends
from django.utils import timezone
from django_tasks_db.models import DBTaskResult
from rest_framework.test import APIClient

from idempotency_jobs.models import Job
from idempotency_jobs.recovery import recover_jobs
from idempotency_jobs.tasks import send_job
from tests.helpers import configure
from tests.testapp.models import Widget

ROOT = Path(__file__).resolve().parent.parent
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
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": database_url(),
        "PYTHONPATH": str(ROOT),
        "IJ_JOBS_SETTINGS": json.dumps(job_settings),
    }
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "django", *args],
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
        assert result.status == django.tasks.TaskResultStatus.SUCCESSFUL
        assert result.return_value == "succeeded"


def rq_example_task() -> None:
    """Module level, as tasks must be."""


def test_the_rq_adapter_builds_djangos_own_tasks() -> None:
    adapted = django.tasks.task(backend="rq", queue_name=RQ_QUEUE)(rq_example_task)
    stock = django.tasks.task(backend="rq-stock", queue_name=RQ_QUEUE)(rq_example_task)

    assert isinstance(adapted, django.tasks.Task)
    assert not isinstance(stock, django.tasks.Task)  # the django_tasks backport's Task
