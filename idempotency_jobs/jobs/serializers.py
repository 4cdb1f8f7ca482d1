"""The job JSON clients see (docs/jobs.md#the-job-json)."""

from __future__ import annotations

from rest_framework import serializers

from idempotency_jobs.jobs.kinds import get_job_kind
from idempotency_jobs.jobs.models import Job

__all__ = ["JobSerializer"]


class JobSerializer(serializers.ModelSerializer[Job]):
    """An asynchronous job: `status` moves from `queued` through `running` to `succeeded` or
    `failed`; `progress` is what it reported last, `result` or `error` its outcome."""

    # Its docstring is the job's description in OpenAPI documents (Markdown). ``object`` is
    # the job kind's JSON name (JobKind.object).

    object = serializers.SerializerMethodField()

    class Meta:
        model = Job
        fields = [
            "id",
            "object",
            "status",
            "created_at",
            "started_at",
            "finished_at",
            "progress",
            "result",
            "error",
        ]
        read_only_fields = fields

    def get_object(self, job: Job) -> str:
        kind = self.context.get("job_kind") or get_job_kind(job.kind, default=None)
        return kind.object if kind is not None else job.kind
