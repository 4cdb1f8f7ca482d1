"""The job: an asynchronous unit of work, its row the source of truth (docs/jobs.md)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from idempotency_jobs.jobs.errors import JobError
from idempotency_jobs.signals import job_finished, job_started

__all__ = ["Job"]


class JobQuerySet(models.QuerySet["Job"]):
    def for_owner(self, owner: str) -> JobQuerySet:
        return self.filter(owner=owner)

    def stale_queued(self, before: datetime) -> JobQuerySet:
        """Queued since before ``before``: the enqueue was probably lost."""
        return self.filter(status=Job.Status.QUEUED, enqueued_at__lt=before)

    def orphaned(self, now: datetime | None = None) -> JobQuerySet:
        """Running, but the worker stopped sending heartbeats: it died."""
        return self.filter(status=Job.Status.RUNNING, lease_expires_at__lt=now or timezone.now())

    def claim(self, job_id: Any, *, token: str, lease: timedelta) -> Job | None:
        """Compare-and-set ``queued -> running`` for one worker; ``None`` if someone else won."""
        now = timezone.now()
        claimed = self.filter(pk=job_id, status=Job.Status.QUEUED).update(
            status=Job.Status.RUNNING,
            worker_token=token,
            attempts=F("attempts") + 1,
            lease_expires_at=now + lease,
            started_at=now,
            progress={},
        )
        job = self.filter(pk=job_id, worker_token=token).first() if claimed else None
        if job is not None:
            job_started.send_robust(sender=Job, job=job)
        return job


class Job(models.Model):
    """An asynchronous unit of work. The row is the source of truth, not the task queue.

    Every write a worker makes is guarded by its ``worker_token``: once recovery hands the job
    to another worker, the first one can no longer touch it.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=100)
    owner = models.CharField(max_length=255, help_text="Whose job it is: the caller's scope.")
    status = models.CharField(max_length=16, choices=Status, default=Status.QUEUED)
    params = models.JSONField(default=dict, blank=True)
    result = models.JSONField(null=True, blank=True)
    error = models.JSONField(null=True, blank=True)
    progress = models.JSONField(default=dict, blank=True)
    attempts = models.PositiveIntegerField(default=0, help_text="Runs started so far.")
    worker_token = models.CharField(max_length=32, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    task_id = models.CharField(
        max_length=64, blank=True, help_text="The django.tasks result id of the last enqueue."
    )
    idempotency_key = models.CharField(
        max_length=1024,
        blank=True,
        help_text="The idempotency key of the request that created the job, if it had one.",
    )
    created_at = models.DateTimeField(default=timezone.now)
    enqueued_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = JobQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["owner", "kind", "-created_at"], name="job_owner_kind_idx"),
            models.Index(
                fields=["enqueued_at"], name="job_queued_idx", condition=Q(status="queued")
            ),
            models.Index(
                fields=["lease_expires_at"], name="job_running_idx", condition=Q(status="running")
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.id} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in (self.Status.SUCCEEDED, self.Status.FAILED)

    def _guarded_update(self, **fields: Any) -> bool:
        """Write ``fields`` only while this worker still owns the running job."""
        updated = Job.objects.filter(
            pk=self.pk, status=Job.Status.RUNNING, worker_token=self.worker_token
        ).update(**fields)
        if updated:
            for name, value in fields.items():
                setattr(self, name, value)
        return bool(updated)

    def heartbeat(self, *, lease: timedelta, progress: dict[str, Any] | None = None) -> bool:
        """Extend the lease (and record progress); ``False``: the job is no longer ours."""
        fields: dict[str, Any] = {"lease_expires_at": timezone.now() + lease}
        if progress is not None:
            fields["progress"] = progress
        return self._guarded_update(**fields)

    def finish(
        self,
        status: Job.Status,
        *,
        result: dict[str, Any] | None = None,
        error: JobError | None = None,
        progress: dict[str, Any] | None = None,
    ) -> bool:
        """Record the outcome; ``False``: the job was taken over and the outcome is dropped."""
        fields: dict[str, Any] = {
            "status": status,
            "result": result,
            "error": error.as_json() if error is not None else None,
            "finished_at": timezone.now(),
            "lease_expires_at": None,
        }
        if progress is not None:
            fields["progress"] = progress
        return self._finished(self._guarded_update(**fields))

    def retry_later(self, now: datetime) -> bool:
        """Its worker met a transient failure: back to ``queued`` for recovery to send again
        (after ``JOB_STALE_AFTER``); ``False``: the job is no longer ours."""
        return self._guarded_update(
            status=Job.Status.QUEUED,
            worker_token="",
            lease_expires_at=None,
            task_id="",
            enqueued_at=now,
        )

    def requeue(self, now: datetime) -> bool:
        """Recovery: put a job back in the queue if it is still in the state recovery saw."""
        return self._recover(now, status=Job.Status.QUEUED, worker_token="", enqueued_at=now)

    def give_up(self, now: datetime, error: JobError) -> bool:
        """Recovery: fail a job that has used all its attempts."""
        return self._finished(
            self._recover(now, status=Job.Status.FAILED, error=error.as_json(), finished_at=now)
        )

    def retry(self) -> bool:
        """An operator runs a failed job again, with a fresh set of attempts; the caller
        enqueues it (``enqueue_job``)."""
        now = timezone.now()
        fields: dict[str, Any] = {
            "status": Job.Status.QUEUED,
            "attempts": 0,
            "result": None,
            "error": None,
            "progress": {},
            "worker_token": "",
            "lease_expires_at": None,
            "task_id": "",
            "enqueued_at": now,
            "started_at": None,
            "finished_at": None,
        }
        return self._change_from(Job.Status.FAILED, **fields)

    def cancel(self) -> bool:
        """An operator cancels a job that has not started: it fails with ``job_cancelled``. A
        delivery still in the queue then finds nothing to do; a running job is left alone."""
        fields = {
            "status": Job.Status.FAILED,
            "error": JobError.cancelled().as_json(),
            "finished_at": timezone.now(),
        }
        return self._finished(self._change_from(Job.Status.QUEUED, **fields))

    def _change_from(self, current: Job.Status, /, **fields: Any) -> bool:
        updated = Job.objects.filter(pk=self.pk, status=current).update(**fields)
        if updated:
            for name, value in fields.items():
                setattr(self, name, value)
        return bool(updated)

    def _finished(self, updated: bool) -> bool:
        if updated:
            job_finished.send_robust(sender=Job, job=self, status=self.status)
        return updated

    def _recover(self, now: datetime, **fields: Any) -> bool:
        fields.update(lease_expires_at=None, task_id="")
        if self.status == Job.Status.RUNNING:
            # Only if its worker has not sent a heartbeat since recovery looked.
            mine = Q(worker_token=self.worker_token, lease_expires_at__lt=now)
        else:
            mine = Q(enqueued_at=self.enqueued_at)
        updated = Job.objects.filter(mine, pk=self.pk, status=self.status).update(**fields)
        if updated:
            for name, value in fields.items():
                setattr(self, name, value)
        return bool(updated)

    def mark_enqueued(self, task_id: str) -> None:
        """Remember which task carries the job, so recovery can tell "waiting" from "lost"."""
        self.task_id = task_id
        Job.objects.filter(pk=self.pk, status=Job.Status.QUEUED).update(task_id=task_id)
