"""Recovery: jobs whose enqueue was lost or whose worker died are sent again, or given up.

Task backends do not do this for us (django-tasks-db leaves a killed worker's task ``RUNNING``
for ever; RQ moves it to its failed registry). Call :func:`recover_jobs` periodically:
``manage.py recover_jobs`` from cron, ``manage.py recover_jobs --every 60`` as a sidecar, or
from any scheduler you already run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from django.utils import timezone

from idempotency_jobs.conf import idempotency_settings
from idempotency_jobs.jobs.errors import JobError
from idempotency_jobs.jobs.models import Job
from idempotency_jobs.jobs.tasks import send_job, task_is_waiting

__all__ = ["RecoveryReport", "recover_jobs"]

logger = logging.getLogger(__name__)


@dataclass
class RecoveryReport:
    """What one recovery pass did (or, with ``dry_run``, would do), by job id."""

    requeued_stale: list[str] = field(default_factory=list)
    requeued_orphaned: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.requeued_stale) + len(self.requeued_orphaned) + len(self.failed)


def recover_jobs(*, now: datetime | None = None, dry_run: bool = False) -> RecoveryReport:
    """One recovery pass over stale ``queued`` and orphaned ``running`` jobs.

    * ``queued`` for longer than ``JOB_STALE_AFTER`` and its task no longer waiting in the
      queue: enqueued again.
    * ``running`` past its heartbeat lease: back to ``queued`` and enqueued again, or
      ``failed`` once it has been started ``JOB_MAX_ATTEMPTS`` times.

    Each change is a compare-and-set on the state this pass read, so concurrent passes, and
    a worker that was only slow, never lose a job or run it twice at once.
    """
    now = now or timezone.now()
    report = RecoveryReport()
    max_attempts = idempotency_settings.JOB_MAX_ATTEMPTS

    for job in Job.objects.orphaned(now).order_by("lease_expires_at").iterator():
        if job.attempts >= max_attempts:
            if dry_run or job.give_up(now, JobError.attempts_exhausted(job.attempts)):
                report.failed.append(str(job.pk))
        elif dry_run or job.requeue(now):
            report.requeued_orphaned.append(str(job.pk))
            if not dry_run:
                _send(job)

    stale = Job.objects.stale_queued(now - idempotency_settings.JOB_STALE_AFTER)
    for job in stale.order_by("enqueued_at").iterator():
        if task_is_waiting(job):
            continue
        if dry_run or job.requeue(now):
            report.requeued_stale.append(str(job.pk))
            if not dry_run:
                _send(job)
    return report


def _send(job: Job) -> None:
    try:
        send_job(job)
    except Exception:  # still queued: the next pass tries again
        logger.exception("Could not enqueue job %s; will retry.", job.pk)
