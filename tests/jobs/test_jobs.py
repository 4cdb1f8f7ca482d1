"""Jobs (docs/jobs.md) in one process: the viewset, enqueue after commit, the CAS claim, progress,
outcomes, and recovery. Worker processes are in test_workers.py."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.db import connections, transaction
from django.http import QueryDict
from django.utils import timezone
from django_tasks_db.models import DBTaskResult
from rest_framework import serializers
from rest_framework.test import APIClient

from idempotency_jobs.jobs.kinds import JobKind, JobRun, get_job_kind, register_job_kind
from idempotency_jobs.jobs.recovery import recover_jobs
from idempotency_jobs.jobs.tasks import enqueue_job, execute_job
from idempotency_jobs.jobs.unknown_fields import unknown_fields
from idempotency_jobs.models import Job
from tests.helpers import JOB_FIELDS, configure, is_replay, stored_keys
from tests.testapp.jobs import WidgetBatchSerializer, make_widgets
from tests.testapp.models import Widget

JOBS = "/widget-jobs/"
NAMES = ["a", "b", "c", "d"]


def create(api: APIClient, body: Any = None, *, user: str = "alice", key: str | None = None) -> Any:
    headers = {"HTTP_X_USER": user}
    if key is not None:
        headers["HTTP_IDEMPOTENCY_KEY"] = key
    return api.post(JOBS, body or {"names": NAMES}, format="json", **headers)


def get(api: APIClient, location: str, user: str = "alice") -> Any:
    return api.get(location, HTTP_X_USER=user)


def new_job(**params: Any) -> Job:
    """A queued job row, not enqueued anywhere (as if its enqueue was lost)."""
    return Job.objects.create(kind="widget_batch", owner="auth.user:1", params=params)


def reload(job: Job) -> Job:
    return Job.objects.get(pk=job.pk)


@pytest.fixture
def db_backend(settings: Any) -> None:
    """Jobs go to the django-tasks-db backend, where nothing runs them in this process."""
    configure(settings, JOB_TASK_BACKEND="db", JOB_QUEUE_NAME="ij-jobs-db")


@pytest.fixture
def gate(tmp_path: Path) -> Path:
    return tmp_path / "gate"


class Worker:
    """``execute_job`` in a thread, as a worker process would run a delivery."""

    def __init__(self, job_id: Any) -> None:
        self.outcome: str | None = None
        self.thread = threading.Thread(target=self._run, args=(str(job_id),), daemon=True)
        self.thread.start()

    def _run(self, job_id: str) -> None:
        try:
            self.outcome = execute_job(job_id)
        finally:
            connections.close_all()

    def result(self) -> str | None:
        self.thread.join(timeout=60)
        assert not self.thread.is_alive(), "worker thread hung"
        return self.outcome


@pytest.fixture
def paused(gate: Path) -> Iterator[Any]:
    """Start a worker thread on a job that pauses at row 2; yields (job, worker)."""
    started: list[Worker] = []

    def start(job: Job) -> Worker:
        worker = Worker(job.pk)
        started.append(worker)
        reached = Path(str(gate) + ".reached")
        for _ in range(3000):
            if reached.exists() or not worker.thread.is_alive():
                break
            worker.thread.join(timeout=0.02)
        assert reached.exists(), "the job never reached its gate"
        return worker

    yield start
    gate.touch()
    for worker in started:
        worker.thread.join(timeout=60)


# --- the viewset --------------------------------------------------------------------------


@pytest.mark.django_db
def test_create_answers_202_with_the_job_and_its_location(
    api: APIClient, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks() as callbacks:
        response = create(api)

    assert response.status_code == 202, response.content
    body = response.json()
    assert set(body) == JOB_FIELDS
    job = Job.objects.get()
    assert body["id"] == str(job.pk)
    assert body["object"] == "widget_batch_job"
    assert body["status"] == "queued"
    assert body["started_at"] is body["finished_at"] is body["result"] is body["error"] is None
    assert response["Location"] == f"http://testserver{JOBS}{job.pk}/"
    assert job.params == {"names": NAMES} and job.owner and job.kind == "widget_batch"
    assert len(callbacks) == 1  # the enqueue, waiting for the commit
    assert Widget.objects.count() == 0

    state = get(api, response["Location"])
    assert state.status_code == 200
    assert state.json() == body


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("key", [None, "run-after-commit-01"])
def test_a_created_job_runs_after_commit_and_get_shows_the_outcome(
    api: APIClient, store: str, key: str | None
) -> None:
    # ImmediateBackend: the task runs as soon as it is enqueued, i.e. in the commit hook.
    response = create(api, {"names": NAMES, "check_committed": True}, key=key)

    assert response.status_code == 202
    assert response.json()["status"] == "queued"
    state = get(api, response["Location"]).json()
    assert state["status"] == "succeeded"
    assert state["result"] == {"created": 4, "updated": 0, "row_was_committed": True}
    assert state["progress"] == {"done": 4, "total": 4}
    assert state["error"] is None
    assert state["started_at"] and state["finished_at"]
    assert Widget.objects.count() == 4


@pytest.mark.django_db
def test_another_callers_job_is_a_404(api: APIClient) -> None:
    location = create(api, user="alice")["Location"]

    assert get(api, location, user="mallory").status_code == 404
    assert get(api, location, user="alice").status_code == 200
    assert get(api, f"{JOBS}{uuid.uuid4()}/").status_code == 404
    assert api.get(location).status_code in (401, 403)


@pytest.mark.django_db
def test_a_job_of_another_kind_is_a_404(api: APIClient) -> None:
    job = Job.objects.create(kind="other", owner=new_job().owner, params={})
    assert get(api, f"{JOBS}{job.pk}/").status_code == 404


@pytest.mark.django_db
def test_an_invalid_body_is_a_400_and_creates_nothing(api: APIClient) -> None:
    response = create(api, {"names": []})

    assert response.status_code == 400
    assert "names" in response.json()
    assert Job.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_replaying_the_create_returns_the_same_job(api: APIClient, store: str) -> None:
    first = create(api, key="import-2026-04-11-widgets")
    second = create(api, key="import-2026-04-11-widgets")

    assert first.status_code == second.status_code == 202
    assert not is_replay(first) and is_replay(second)
    assert second.content == first.content
    assert second["Location"] == first["Location"]
    job = Job.objects.get()
    assert Widget.objects.count() == 4  # ran once
    assert stored_keys(store) == 1
    assert job.idempotency_key == "import-2026-04-11-widgets"  # with either store

    changed = create(api, {"names": ["x"]}, key="import-2026-04-11-widgets")
    assert changed.status_code == 422
    assert Job.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_creates_with_one_key_make_one_job(db_backend: None) -> None:
    barrier = threading.Barrier(6)
    responses: list[Any] = []

    def send() -> None:
        try:
            barrier.wait(timeout=30)
            responses.append(create(APIClient(), key="concurrent-job-key"))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=send) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert len(responses) == 6
    assert Job.objects.count() == 1
    assert DBTaskResult.objects.count() == 1
    ids = {r.json()["id"] for r in responses if r.status_code == 202}
    assert len(ids) == 1
    assert all(r.status_code in (202, 409) for r in responses)


# --- enqueue after commit -----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_job_never_runs_before_its_row_is_committed() -> None:
    with transaction.atomic():
        job = new_job(names=NAMES, check_committed=True)
        enqueue_job(job)  # ImmediateBackend would run it right here if not deferred
        assert reload(job).status == Job.Status.QUEUED
        assert Widget.objects.count() == 0

    job = reload(job)
    assert job.status == Job.Status.SUCCEEDED
    assert job.result["row_was_committed"] is True
    assert Widget.objects.count() == 4


@pytest.mark.django_db(transaction=True)
def test_the_commit_probe_sees_an_uncommitted_row() -> None:
    """The control for the tests above: run inside the transaction, the probe says so."""
    with transaction.atomic():
        job = new_job(names=NAMES, check_committed=True)
        execute_job(str(job.pk))
        assert reload(job).result["row_was_committed"] is False


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("key", [None, "atomic-requests-01"])
def test_with_atomic_requests_the_job_runs_after_the_request_commits(
    api: APIClient, atomic_requests: None, key: str | None
) -> None:
    response = create(api, {"names": NAMES, "check_committed": True}, key=key)

    assert response.status_code == 202
    state = get(api, response["Location"]).json()
    assert state["status"] == "succeeded"
    assert state["result"]["row_was_committed"] is True
    assert Widget.objects.count() == 4


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_job_is_never_enqueued(db_backend: None) -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        enqueue_job(new_job(names=NAMES))
        raise RuntimeError("the view failed after creating the job")

    assert Job.objects.count() == 0
    assert DBTaskResult.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_a_failed_enqueue_still_answers_202_and_recovery_sends_it(
    api: APIClient, settings: Any, db_backend: None
) -> None:
    configure(settings, JOB_QUEUE_NAME="no-such-queue")  # the backend refuses the task
    response = create(api, key="enqueue-lost-0001")

    assert response.status_code == 202
    job = Job.objects.get()
    assert job.status == Job.Status.QUEUED and not job.task_id
    assert DBTaskResult.objects.count() == 0

    configure(settings, JOB_QUEUE_NAME="ij-jobs-db")
    report = recover_jobs(now=timezone.now() + timedelta(minutes=3))
    assert report.requeued_stale == [str(job.pk)]
    assert reload(job).task_id == str(DBTaskResult.objects.get().pk)


# --- the CAS claim ------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_duplicate_delivery_does_nothing() -> None:
    job = new_job(names=NAMES)

    assert execute_job(str(job.pk)) == "succeeded"
    assert execute_job(str(job.pk)) == "skipped"
    assert execute_job(str(uuid.uuid4())) == "skipped"

    job = reload(job)
    assert job.attempts == 1
    assert job.result == {"created": 4, "updated": 0}
    assert Widget.objects.count() == 4


@pytest.mark.django_db(transaction=True)
def test_a_delivery_while_the_job_runs_does_nothing(gate: Path, paused: Any) -> None:
    job = new_job(names=NAMES, pause_at=2, gate=str(gate))
    first = paused(job)

    assert execute_job(str(job.pk)) == "skipped"
    gate.touch()
    assert first.result() == "succeeded"
    assert reload(job).attempts == 1
    assert Widget.objects.count() == 4


@pytest.mark.django_db(transaction=True)
def test_racing_claims_have_one_winner() -> None:
    job = new_job(names=NAMES)
    barrier = threading.Barrier(8)
    winners: list[Job] = []

    def claim(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            won = Job.objects.claim(job.pk, token=f"token-{index}", lease=timedelta(minutes=1))
            if won is not None:
                winners.append(won)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert len(winners) == 1
    job = reload(job)
    assert job.status == Job.Status.RUNNING
    assert job.attempts == 1
    assert job.worker_token == winners[0].worker_token


@pytest.mark.django_db(transaction=True)
def test_a_job_of_an_unknown_kind_stays_queued() -> None:
    job = Job.objects.create(kind="from_a_newer_release", owner="x", params={})

    assert execute_job(str(job.pk)) == "unknown_kind"
    assert reload(job).status == Job.Status.QUEUED


# --- progress and outcomes ----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_progress_moves_while_the_job_runs(gate: Path, paused: Any) -> None:
    job = new_job(names=NAMES, pause_at=2, gate=str(gate))
    worker = paused(job)

    running = reload(job)
    assert running.status == Job.Status.RUNNING
    assert running.progress == {"done": 2, "total": 4}
    assert running.lease_expires_at > timezone.now()
    gate.touch()
    assert worker.result() == "succeeded"
    assert reload(job).progress == {"done": 4, "total": 4}


@pytest.mark.django_db(transaction=True)
def test_progress_is_seen_through_get(
    api: APIClient, gate: Path, paused: Any, db_backend: None
) -> None:
    response = create(api, {"names": NAMES, "pause_at": 1, "gate": str(gate)})
    worker = paused(Job.objects.get())

    state = get(api, response["Location"]).json()
    assert state["status"] == "running"
    assert state["progress"] == {"done": 1, "total": 4}
    assert state["started_at"] and not state["finished_at"]
    gate.touch()
    assert worker.result() == "succeeded"
    assert get(api, response["Location"]).json()["progress"] == {"done": 4, "total": 4}


@pytest.mark.django_db
def test_progress_writes_are_throttled(settings: Any) -> None:
    configure(settings, JOB_PROGRESS_INTERVAL=3600)
    job = Job.objects.claim(new_job().pk, token="t" * 32, lease=timedelta(minutes=1))
    assert job is not None
    run = JobRun(job)

    run.progress(done=1, total=9)
    run.progress(done=2)
    assert reload(job).progress == {}  # within the interval: not written yet
    run.flush()
    assert reload(job).progress == {"done": 2, "total": 9}

    configure(settings, JOB_PROGRESS_INTERVAL=0)
    run.progress(done=3)
    assert reload(job).progress == {"done": 3, "total": 9}


@pytest.mark.django_db(transaction=True)
def test_a_clean_failure_is_reported_with_its_details() -> None:
    job = new_job(names=NAMES, fail_at=2)

    assert execute_job(str(job.pk)) == "failed"

    job = reload(job)
    assert job.status == Job.Status.FAILED
    assert job.error == {
        "code": "job_failed",
        "message": "Row 2 was rejected.",
        "details": {"row": 2, "name": "c"},
    }
    assert job.result is None
    assert job.finished_at is not None and job.lease_expires_at is None
    assert job.progress == {"done": 2, "total": 4}


@pytest.mark.django_db(transaction=True)
def test_an_unexpected_error_fails_the_job_without_leaking_internals() -> None:
    job = new_job(names=NAMES, crash_at=1)

    assert execute_job(str(job.pk)) == "failed"

    job = reload(job)
    assert job.error["code"] == "job_crashed"
    assert "secret" not in json.dumps(job.error)


@pytest.mark.django_db(transaction=True)
def test_a_worker_whose_job_was_taken_over_stops_and_writes_nothing(
    settings: Any, gate: Path, paused: Any, db_backend: None
) -> None:
    configure(settings, JOB_PROGRESS_INTERVAL=0)  # every progress report checks the claim
    job = new_job(names=NAMES, pause_at=2, gate=str(gate))
    first = paused(job)

    # Its lease ran out (as far as recovery can tell): the job goes back to the queue.
    report = recover_jobs(now=timezone.now() + timedelta(hours=1))
    assert report.requeued_orphaned == [str(job.pk)]
    gate.touch()

    assert first.result() == "superseded"
    job = reload(job)
    assert job.status == Job.Status.QUEUED
    assert job.result is None
    assert execute_job(str(job.pk)) == "succeeded"
    job = reload(job)
    assert job.attempts == 2
    # The first run wrote row 2, then its progress report found the job gone and it stopped.
    assert job.result == {"created": 1, "updated": 3}
    assert Widget.objects.count() == 4


# --- recovery -----------------------------------------------------------------------------


def later(minutes: int = 3) -> Any:
    return timezone.now() + timedelta(minutes=minutes)


@pytest.mark.django_db(transaction=True)
def test_recovery_sends_a_job_whose_enqueue_was_lost() -> None:
    job = new_job(names=NAMES)  # never enqueued

    assert recover_jobs().total == 0  # not stale yet
    report = recover_jobs(now=later())

    assert report.requeued_stale == [str(job.pk)]
    assert reload(job).status == Job.Status.SUCCEEDED  # ImmediateBackend ran the new task
    assert Widget.objects.count() == 4


@pytest.mark.django_db(transaction=True)
def test_recovery_leaves_alone_a_job_still_waiting_in_its_queue(db_backend: None) -> None:
    with transaction.atomic():
        job = new_job(names=NAMES)
        enqueue_job(job)
    assert DBTaskResult.objects.ready().count() == 1

    assert recover_jobs(now=later()).total == 0  # its task is READY: only the queue is slow

    DBTaskResult.objects.all().delete()  # now the task is lost
    assert recover_jobs(now=later()).requeued_stale == [str(job.pk)]
    assert DBTaskResult.objects.ready().count() == 1


@pytest.mark.django_db(transaction=True)
def test_recovery_sends_again_a_job_whose_worker_died(db_backend: None) -> None:
    job = new_job(names=NAMES)
    Job.objects.claim(job.pk, token="dead" * 8, lease=timedelta(minutes=2))  # then it died

    assert recover_jobs(now=timezone.now() + timedelta(minutes=1)).total == 0  # lease holds
    report = recover_jobs(now=later())

    assert report.requeued_orphaned == [str(job.pk)]
    job = reload(job)
    assert job.status == Job.Status.QUEUED and job.worker_token == ""
    assert job.task_id == str(DBTaskResult.objects.get().pk)
    assert execute_job(str(job.pk)) == "succeeded"
    assert reload(job).attempts == 2


@pytest.mark.django_db(transaction=True)
def test_recovery_gives_up_after_max_attempts(settings: Any, db_backend: None) -> None:
    configure(settings, JOB_MAX_ATTEMPTS=2)
    job = new_job(names=NAMES)
    for attempt in (1, 2):
        Job.objects.claim(job.pk, token=f"dead-{attempt}", lease=timedelta(minutes=2))
        report = recover_jobs(now=later(attempt * 10))
        assert reload(job).attempts == attempt

    assert report.failed == [str(job.pk)] and not report.requeued_orphaned
    job = reload(job)
    assert job.status == Job.Status.FAILED
    assert job.error == {
        "code": "job_attempts_exhausted",
        "message": (
            "The job was started 2 times and its worker stopped responding each time; "
            "it will not be retried."
        ),
        "details": {"attempts": 2},
    }
    assert job.finished_at is not None
    assert DBTaskResult.objects.count() == 1  # requeued once, never after giving up
    assert execute_job(str(job.pk)) == "skipped"


@pytest.mark.django_db(transaction=True)
def test_recovery_dry_run_changes_nothing(db_backend: None) -> None:
    stale = new_job(names=NAMES)
    orphan = new_job(names=NAMES)
    Job.objects.claim(orphan.pk, token="dead" * 8, lease=timedelta(minutes=2))

    report = recover_jobs(now=later(), dry_run=True)

    assert report.requeued_stale == [str(stale.pk)]
    assert report.requeued_orphaned == [str(orphan.pk)]
    assert reload(orphan).status == Job.Status.RUNNING
    assert DBTaskResult.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_recover_jobs_command(settings: Any, db_backend: None) -> None:
    configure(settings, JOB_STALE_AFTER=0)
    new_job(names=NAMES)
    out = _call("recover_jobs", "--dry-run")
    assert out == "Would re-enqueue 1 stale and 0 orphaned jobs, and fail 0 jobs.\n"

    out = _call("recover_jobs", verbosity=2)
    assert out.startswith("Re-enqueued 1 stale and 0 orphaned jobs; failed 0 jobs.\n  stale: ")
    assert DBTaskResult.objects.count() == 1

    for args in (["--every", "0"], ["--every", "5", "--dry-run"]):
        with pytest.raises(CommandError):
            call_command("recover_jobs", *args)


def _call(*args: str, **options: Any) -> str:
    from io import StringIO

    out = StringIO()
    call_command(*args, stdout=out, no_color=True, **options)
    return out.getvalue()


# --- kinds --------------------------------------------------------------------------------


def test_job_kinds_are_registered_by_name() -> None:
    kind = get_job_kind("widget_batch")
    assert kind.handler is make_widgets
    assert register_job_kind(kind) is kind  # the same kind again (module re-import) is fine
    with pytest.raises(ImproperlyConfigured):
        register_job_kind(JobKind("widget_batch", "other", WidgetBatchSerializer, make_widgets))
    with pytest.raises(LookupError):
        get_job_kind("no_such_kind")
    assert get_job_kind("no_such_kind", default=None) is None


# --- unknown fields in a job's body ----------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("encoding", ["json", "form"])
def test_a_field_the_job_does_not_take_is_a_400_naming_it(api: APIClient, encoding: str) -> None:
    """A misspelt option is not silently dropped (the job would run without it)."""
    body = {"names": "a", "colour": "red", "check_commited": "true"}
    if encoding == "json":
        response = create(api, {**body, "names": ["a"]})
    else:
        response = api.post(JOBS, body, HTTP_X_USER="alice")  # multipart, like a form

    assert response.status_code == 400, response.content
    errors = response.json()
    assert set(errors) == {"colour", "check_commited"}
    assert errors["colour"] == [f"Unknown field. Fields taken here: {KNOWN_WIDGET_FIELDS}."]
    assert Job.objects.count() == 0


KNOWN_WIDGET_FIELDS = (
    "names, check_committed, fail_at, crash_at, pause_at, gate, interrupt_at, interrupt, "
    "interrupt_attempts"
)


@pytest.mark.django_db
def test_unknown_fields_are_reported_with_the_body_s_other_errors(api: APIClient) -> None:
    response = create(api, {"names": [], "colour": "red"})

    assert response.status_code == 400
    assert set(response.json()) == {"names", "colour"}


@pytest.mark.django_db
def test_a_job_view_may_take_unknown_fields(api: APIClient, monkeypatch: Any) -> None:
    from tests.testapp.jobs import WidgetJobViewSet

    monkeypatch.setattr(WidgetJobViewSet, "allow_unknown_fields", True, raising=False)
    response = create(api, {"names": ["a"], "colour": "red"})

    assert response.status_code == 202, response.content
    assert Job.objects.get().params == {"names": ["a"]}


class Field(serializers.Serializer):
    type = serializers.CharField()
    key = serializers.CharField(required=False)


class Mapping(serializers.Serializer):
    csv_column = serializers.CharField()
    field = Field()


class Filters(serializers.Serializer):
    status = serializers.ListField(child=serializers.CharField(), required=False)
    created_after = serializers.DateTimeField(required=False)


class Nested(serializers.Serializer):
    mappings = Mapping(many=True)
    filters = Filters(required=False)
    fields = serializers.ListField(child=serializers.CharField(), required=False)
    meta = serializers.DictField(required=False)
    id = serializers.CharField(read_only=True)


def form(text: str) -> QueryDict:
    return QueryDict(text)


@pytest.mark.parametrize(
    ("data", "unknown"),
    [
        ({"mappings": [{"csv_column": "Email", "field": {"type": "email"}}]}, []),
        ({"mappings": [], "filters": {"status": ["a"]}, "fields": ["x"], "meta": {"a": 1}}, []),
        ({"mappings": [], "id": "x", "colour": 1}, ["colour", "id"]),
        ({"mappings": [], "filters": {"bogus": 1, "status": []}}, ["filters.bogus"]),
        (
            {"mappings": [{"csv_column": "E", "colum": 1, "field": {"type": "email", "k": 1}}]},
            ["mappings[0].colum", "mappings[0].field.k"],
        ),
        # DRF's own checks report values of the wrong shape; nothing to add here.
        ({"mappings": "no list", "filters": ["no", "dict"]}, []),
        ([1, 2], []),
        (form("mappings[0]csv_column=E&mappings[0]field.type=email&fields=a&fields=b"), []),
        (form("filters.status=active&filters.created_after=2026-01-01&meta.x=1&fields[0]=a"), []),
        (
            form("filters[status]=bogus&filters.statu=active&colour=red"),
            ["filters[status]", "filters.statu", "colour"],
        ),
        (
            form("mappings[0]csv_column=E&mappings[0]field.tipe=email&mappings[1]x=1"),
            ["mappings[0]field.tipe", "mappings[1]x"],
        ),
        (form("filters=x&mappings=y&mappings[a]=z"), ["filters", "mappings", "mappings[a]"]),
    ],
)
def test_unknown_fields_are_named_as_the_client_spelt_them(data: Any, unknown: list[str]) -> None:
    assert sorted(unknown_fields(Nested(), data)) == sorted(unknown)


def test_unknown_fields_come_with_what_is_taken_in_their_place() -> None:
    assert unknown_fields(Nested(), {"mappings": [{"field": {"tipe": "email"}}]}) == {
        "mappings[0].field.tipe": ["mappings[0].field.type", "mappings[0].field.key"]
    }
    assert unknown_fields(Nested(), form("filters[status]=bogus")) == {
        "filters[status]": ["mappings[<n>]<field>", "filters.<field>", "fields", "meta"]
    }
