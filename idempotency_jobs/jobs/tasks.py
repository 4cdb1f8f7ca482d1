"""Running jobs through ``django.tasks``: the task, how it is sent, and what a worker does.

The job row is the source of truth. A delivery of ``run_job`` only *asks* for the job to run:
the worker claims it with a compare-and-set (``queued -> running``), so a duplicate or late
delivery finds nothing to do.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from typing import Any

from django.db import DatabaseError, router, transaction
from django.utils import timezone

from idempotency_jobs.conf import idempotency_settings
from idempotency_jobs.jobs.errors import JobError
from idempotency_jobs.jobs.failures import close_broken_connections, is_transient
from idempotency_jobs.jobs.kinds import JobFailed, JobLeaseLost, JobRun, get_job_kind, to_json
from idempotency_jobs.jobs.models import Job
from idempotency_jobs.jobs.tasks_compat import (
    Task,
    TaskResultStatus,
    build_task,
    reports_waiting,
    same_status,
    task_backends,
)

__all__ = ["enqueue_job", "execute_job", "run_job", "send_job", "task_is_waiting"]

logger = logging.getLogger(__name__)


def _job_task(func: Callable[[str], str]) -> Task:
    """``@task``, but always the framework's own ``Task``: see ``tasks_compat.build_task``."""
    return build_task(
        func,
        backend=idempotency_settings.JOB_TASK_BACKEND,
        queue_name=idempotency_settings.JOB_QUEUE_NAME,
    )


@_job_task
def run_job(job_id: str) -> str:
    """Task: run job ``job_id`` if it is still queued; returns what happened to it."""
    return execute_job(job_id)


def send_job(job: Job) -> None:
    """Enqueue ``run_job`` for ``job`` on ``JOB_TASK_BACKEND`` / ``JOB_QUEUE_NAME``."""
    task = run_job.using(
        backend=idempotency_settings.JOB_TASK_BACKEND,
        queue_name=idempotency_settings.JOB_QUEUE_NAME,
    )
    result = task.enqueue(str(job.pk))
    job.mark_enqueued(str(result.id))


def task_is_waiting(job: Job) -> bool:
    """Whether the task last enqueued for ``job`` is still waiting in its queue.

    ``False`` when the backend cannot tell: recovery then enqueues again, which is harmless.
    """
    if not job.task_id:
        return False
    backend = task_backends[idempotency_settings.JOB_TASK_BACKEND]
    if not reports_waiting(backend):
        return False
    try:
        result = backend.get_result(job.task_id)
    except Exception:  # unknown or pruned result, broker down: treat as lost
        return False
    return same_status(result.status, TaskResultStatus.READY)


def execute_job(job_id: str) -> str:
    """Claim the job, run its handler, record the outcome (all guarded by the claim)."""
    job = Job.objects.filter(pk=job_id).only("kind", "status").first()
    if job is None or job.status != Job.Status.QUEUED:
        return "skipped"
    kind = get_job_kind(job.kind, default=None)
    if kind is None:
        # Likely a worker older than the web process (rolling deploy): leave the job queued
        # for recovery to send again, rather than failing it for good.
        logger.error("Job %s: no job kind %r in this worker; left queued.", job_id, job.kind)
        return "unknown_kind"
    token = secrets.token_hex(16)
    claimed = Job.objects.claim(job_id, token=token, lease=idempotency_settings.JOB_HEARTBEAT_LEASE)
    if claimed is None:
        return "skipped"
    return _run(claimed, kind.handler)


def _run(job: Job, handler: Callable[[dict[str, Any], JobRun], Any]) -> str:
    run = JobRun(job)
    result: dict[str, Any] | None = None
    error: JobError | None = None
    try:
        result = to_json(handler(job.params, run) or {})
    except JobLeaseLost:
        logger.warning("Job %s was taken over by another worker; dropping this run.", job.pk)
        return "superseded"
    except JobFailed as exc:
        outcome, error = Job.Status.FAILED, exc.error
    except Exception as exc:
        if is_transient(exc):
            return _interrupted(job, run, exc)
        logger.exception("Job %s (%s) crashed.", job.pk, job.kind)
        outcome, error = Job.Status.FAILED, JobError.crashed()
    else:
        outcome = Job.Status.SUCCEEDED
    if not job.finish(outcome, result=result, error=error, progress=run.current):
        logger.warning("Job %s was taken over by another worker; outcome dropped.", job.pk)
        return "superseded"
    return str(outcome)


def _interrupted(job: Job, run: JobRun, exc: Exception) -> str:
    """A transient failure: back to the queue, for recovery to send again after
    ``JOB_STALE_AFTER``; failed once started ``JOB_MAX_ATTEMPTS`` times. Should even that write
    fail (the database is still away), the lease runs out and recovery takes the job."""
    close_broken_connections()
    last = job.attempts >= idempotency_settings.JOB_MAX_ATTEMPTS
    try:
        if last:
            error = JobError.interrupted_too_often(job.attempts)
            recorded = job.finish(Job.Status.FAILED, error=error, progress=run.current)
        else:
            recorded = job.retry_later(timezone.now())
    except DatabaseError:
        logger.exception("Job %s: could not record a transient failure; left to recovery.", job.pk)
        return "interrupted"
    if not recorded:
        logger.warning("Job %s was taken over by another worker; outcome dropped.", job.pk)
        return "superseded"
    if last:
        logger.error("Job %s (%s) failed on its last attempt.", job.pk, job.kind, exc_info=exc)
        return str(Job.Status.FAILED)
    logger.warning("Job %s (%s) interrupted; to be run again.", job.pk, job.kind, exc_info=exc)
    return "retry"


def enqueue_job(job: Job) -> None:
    """Hand ``job`` to the task backend once the current transaction commits.

    A job is never run before its row is committed. If the enqueue itself fails (broker
    down), the job stays ``queued`` and ``recover_jobs`` enqueues it again later.
    """
    alias = router.db_for_write(Job)
    transaction.on_commit(lambda: send_job(job), using=alias, robust=True)
