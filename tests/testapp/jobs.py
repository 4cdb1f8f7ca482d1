"""A tiny job kind for the jobs tests: upsert one Widget per name, reporting progress.

Test knobs in the POST body:

* ``check_committed``: report whether another connection can see the job's row, i.e. whether
  it was committed before the job ran;
* ``fail_at``: raise ``JobFailed`` at that row; ``crash_at``: raise an unexpected error;
* ``pause_at`` + ``gate``: at that row, touch ``<gate>.reached`` and wait until the file
  ``gate`` exists ("the worker is mid-job");
* ``interrupt_at`` + ``interrupt``: at that row, make a real database failure happen to this
  run (``database_faults``), on its first ``interrupt_attempts`` attempts (default 1).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from django.db import connections
from rest_framework import serializers

from idempotency_jobs.jobs.kinds import JobFailed, JobKind, JobRun, register_job_kind
from idempotency_jobs.jobs.views import JobViewSet
from idempotency_jobs.models import Job

from .database_faults import FAULTS
from .models import Widget

GATE_TIMEOUT = 60


class WidgetBatchSerializer(serializers.Serializer):
    names = serializers.ListField(
        child=serializers.CharField(max_length=100), min_length=1, max_length=1000
    )
    check_committed = serializers.BooleanField(required=False)
    fail_at = serializers.IntegerField(required=False, min_value=0)
    crash_at = serializers.IntegerField(required=False, min_value=0)
    pause_at = serializers.IntegerField(required=False, min_value=0)
    gate = serializers.CharField(required=False)
    interrupt_at = serializers.IntegerField(required=False, min_value=2)
    interrupt = serializers.ChoiceField(choices=sorted(FAULTS), required=False)
    interrupt_attempts = serializers.IntegerField(required=False, min_value=1)


def wait_at_gate(gate: str, run: JobRun) -> None:
    run.flush()  # the test watches the progress made so far
    Path(gate + ".reached").touch()
    deadline = time.monotonic() + GATE_TIMEOUT
    while not Path(gate).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gate {gate} never opened")
        time.sleep(0.02)


def committed(job: Job) -> bool:
    """Whether another database connection sees the job's row."""
    seen: list[bool] = []

    def look() -> None:
        try:
            seen.append(Job.objects.filter(pk=job.pk).exists())
        finally:
            connections.close_all()

    thread = threading.Thread(target=look)
    thread.start()
    thread.join(timeout=30)
    return seen == [True]


def make_widgets(params: dict[str, Any], run: JobRun) -> dict[str, Any]:
    """Idempotent: a second run updates what the first created, and creates the rest."""
    names = params["names"]
    created = updated = 0
    run.progress(done=0, total=len(names))
    for index, name in enumerate(names):
        if index == params.get("pause_at"):
            wait_at_gate(params["gate"], run)
        if index == params.get("fail_at"):
            raise JobFailed(f"Row {index} was rejected.", row=index, name=name)
        if index == params.get("crash_at"):
            raise RuntimeError("secret internals")
        if index == params.get("interrupt_at") and run.job.attempts <= params.get(
            "interrupt_attempts", 1
        ):
            FAULTS[params["interrupt"]](run.job.owner, names[0], names[1])
        _, was_created = Widget.objects.update_or_create(
            owner=run.job.owner, name=name, defaults={"payload": {"job": str(run.job.pk)}}
        )
        created += was_created
        updated += not was_created
        run.progress(done=index + 1)
    result: dict[str, Any] = {"created": created, "updated": updated}
    if params.get("check_committed"):
        result["row_was_committed"] = committed(run.job)
    return result


widget_batch = register_job_kind(
    JobKind(
        name="widget_batch",
        object="widget_batch_job",
        serializer_class=WidgetBatchSerializer,
        handler=make_widgets,
    )
)


class WidgetJobViewSet(JobViewSet):
    job_kind = widget_batch
