"""Job failures (docs/jobs.md#transient-failures): a transient database failure (a lost connection,
a deadlock, a serialization failure, SQLite's lock) puts the job back for recovery to run again, up
to ``JOB_MAX_ATTEMPTS``; the handler's own failures (``JobFailed``, a bug) fail it.

The failures are real: the test handler makes the database fail it (tests/testapp/
database_faults.py). A worker process losing its connections mid-import is in
tests/reliability/test_jobs.py.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from idempotency_jobs.jobs.recovery import recover_jobs
from idempotency_jobs.jobs.tasks import execute_job
from idempotency_jobs.models import Job
from tests.helpers import configure
from tests.testapp.models import Widget

pytestmark = pytest.mark.django_db(transaction=True)

NAMES = ["a", "b", "c", "d"]
POSTGRESQL_ONLY = {"connection", "deadlock", "serialization"}
TRANSIENT = [
    pytest.param("connection", marks=pytest.mark.postgresql),
    pytest.param("deadlock", marks=pytest.mark.postgresql),
    pytest.param("serialization", marks=pytest.mark.postgresql),
    "locked",
]


def interrupted_job(fault: str, **params: Any) -> Job:
    """A queued job whose run meets ``fault`` at its third row (two widgets written)."""
    if fault == "locked" and connection.vendor != "sqlite":
        pytest.skip("SQLite's write lock")
    return Job.objects.create(
        kind="widget_batch",
        owner="auth.user:1",
        params={"names": NAMES, "interrupt_at": 2, "interrupt": fault, **params},
    )


def later() -> Any:
    return timezone.now() + timedelta(minutes=3)


@pytest.fixture(autouse=True)
def db_backend(settings: Any) -> None:
    """Recovery enqueues on django-tasks-db; the test then runs the task as a worker would."""
    configure(settings, JOB_TASK_BACKEND="db", JOB_QUEUE_NAME="ij-jobs-db")


def work_off_the_queue() -> list[str]:
    """What a ``db_worker`` does with each waiting task: run the job it names."""
    outcomes = []
    for task in DBTaskResult.objects.ready().order_by("enqueued_at"):
        outcomes.append(execute_job(*task.args_kwargs["args"]))
        task.delete()
    return outcomes


@pytest.mark.parametrize("fault", TRANSIENT)
def test_a_transient_failure_leaves_the_job_for_recovery_to_run_again(fault: str) -> None:
    job = interrupted_job(fault)

    assert execute_job(str(job.pk)) == "retry"

    job.refresh_from_db()
    assert job.status == Job.Status.QUEUED
    assert job.attempts == 1
    assert (job.worker_token, job.lease_expires_at, job.task_id) == ("", None, "")
    assert (job.error, job.result, job.finished_at) == (None, None, None)
    assert Widget.objects.count() == 2
    assert recover_jobs().total == 0  # not at once: after JOB_STALE_AFTER

    assert recover_jobs(now=later()).requeued_stale == [str(job.pk)]
    assert work_off_the_queue() == ["succeeded"]

    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert job.attempts == 2
    assert job.result == {"created": 2, "updated": 2}
    assert sorted(Widget.objects.values_list("name", flat=True)) == NAMES


@pytest.mark.parametrize("fault", TRANSIENT)
def test_a_job_interrupted_on_its_last_attempt_fails(settings: Any, fault: str) -> None:
    configure(settings, JOB_MAX_ATTEMPTS=2)
    job = interrupted_job(fault, interrupt_attempts=2)

    assert execute_job(str(job.pk)) == "retry"
    assert recover_jobs(now=later()).requeued_stale == [str(job.pk)]
    assert work_off_the_queue() == ["failed"]  # the second attempt, interrupted too

    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert job.attempts == 2
    assert job.finished_at is not None and job.lease_expires_at is None
    assert job.error["code"] == "job_attempts_exhausted"
    assert job.error["message"] == (
        "The job was started 2 times without finishing, the last time interrupted by a "
        "transient failure (such as a lost database connection or a deadlock); it will not "
        "be retried."
    )
    assert job.error["details"]["attempts"] == 2
    assert recover_jobs(now=later()).total == 0
    assert execute_job(str(job.pk)) == "skipped"


def test_a_database_error_of_the_handlers_own_fails_the_job() -> None:
    """A query on a missing table: ``OperationalError`` on SQLite too, yet no transient one."""
    job = interrupted_job("bug")

    assert execute_job(str(job.pk)) == "failed"

    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert job.attempts == 1
    assert job.error["code"] == "job_crashed"
    assert "no_such_table" not in str(job.error)
    assert recover_jobs(now=later()).total == 0
