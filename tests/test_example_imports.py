"""Subscriber import jobs: row errors, upserts, re-runs, progress, and CSVs refused up front."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.test import TestCase
from rest_framework.test import APIClient

from example_project.subscribers.jobs import IMPORT
from example_project.subscribers.models import Subscriber
from idempotency_jobs.jobs import JobRun
from idempotency_jobs.models import Job
from idempotency_jobs.tasks import execute_job
from tests.test_example_support import export_media, make_key, no_jobs_run, workspace_client

__all__ = ["export_media", "make_key", "no_jobs_run", "workspace_client"]

pytestmark = pytest.mark.django_db

URL = "/v1/jobs/subscriber-imports"
MAPPINGS = [
    {"csv_column": "Email", "field": {"type": "email"}},
    {"csv_column": "Name", "field": {"type": "name"}},
]


@pytest.fixture(params=["orm", pytest.param("copy", marks=pytest.mark.postgresql)])
def upsert_path(request: pytest.FixtureRequest, settings: Any) -> str:
    """Run the test through the portable upsert, and on PostgreSQL through COPY as well."""
    settings.EXAMPLE_SUBSCRIBER_IMPORT_USE_COPY = request.param == "copy"
    return str(request.param)


def create_import(
    api: APIClient, csv_text: str, mappings: list[dict[str, Any]] | None = None, **headers: str
) -> Any:
    body = {"csv_text": csv_text, "mappings": MAPPINGS if mappings is None else mappings}
    return api.post(URL, json.dumps(body), content_type="application/json", **headers)


def run_import(
    api: APIClient, csv_text: str, mappings: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Create an import, let the (immediate) task backend run it, return the finished job."""
    with TestCase.captureOnCommitCallbacks(execute=True):
        created = create_import(api, csv_text, mappings)
    assert created.status_code == 202, created.content
    job = api.get(created["Location"]).json()
    assert job["status"] == "succeeded", job
    return dict(job)


def test_import_creates_then_updates_then_skips(
    workspace_client: Callable[..., APIClient], upsert_path: str
) -> None:
    api = workspace_client("acme")
    first = run_import(api, "Email,Name\nada@example.com,Ada Lovelace\nALAN@Example.com,Alan\n")
    assert first["object"] == "subscriber_import_job"
    assert first["result"] == {
        "rows": 2,
        "created": 2,
        "updated": 0,
        "skipped": 0,
        "failed": 0,
        "errors": [],
        "errors_truncated": False,
    }
    second = run_import(api, "Email,Name\nada@example.com,Ada King\nalan@example.com,Alan\n\n")
    result = second["result"]
    assert (result["created"], result["updated"], result["skipped"]) == (0, 1, 2)
    rows = Subscriber.objects.order_by("email").values_list("email", "name")
    assert list(rows) == [("ada@example.com", "Ada King"), ("alan@example.com", "Alan")]


def test_row_errors_name_row_column_and_reason(
    workspace_client: Callable[..., APIClient], upsert_path: str
) -> None:
    api = workspace_client()
    csv_text = (
        "Email,Name\n"
        "ada@example.com,Ada\n"  # row 2
        "not-an-email,Nobody\n"  # row 3
        ",No Email\n"  # row 4
        "ada@example.com,Ada again\n"  # row 5: duplicate of row 2
        f"long@example.com,{'x' * 300}\n"  # row 6
        "grace@example.com,Grace\n"  # row 7
    )
    result = run_import(api, csv_text)["result"]
    assert (result["created"], result["failed"]) == (2, 4)
    assert result["errors"] == [
        {"row": 3, "column": "Email", "message": "Not a valid email address."},
        {"row": 4, "column": "Email", "message": "Email is empty."},
        {"row": 5, "column": "Email", "message": "Duplicate of row 2; this row was not imported."},
        {"row": 6, "column": "Name", "message": "Longer than 255 characters."},
    ]
    assert sorted(Subscriber.objects.values_list("email", flat=True)) == [
        "ada@example.com",
        "grace@example.com",
    ]


def test_row_errors_are_capped_but_counted(
    workspace_client: Callable[..., APIClient], settings: Any
) -> None:
    settings.EXAMPLE_SUBSCRIBER_IMPORT_MAX_ERRORS = 3
    api = workspace_client()
    csv_text = "Email,Name\n" + "".join(f"bad{i},B\n" for i in range(10)) + "ok@example.com,O\n"
    result = run_import(api, csv_text)["result"]
    assert (result["failed"], len(result["errors"]), result["errors_truncated"]) == (10, 3, True)
    assert result["created"] == 1


def test_custom_fields_merge_and_empty_cells_never_erase(
    workspace_client: Callable[..., APIClient], upsert_path: str
) -> None:
    api = workspace_client()
    mappings = [
        {"csv_column": "E-mail", "field": {"type": "email"}},
        {"csv_column": "First", "field": {"type": "first_name"}},
        {"csv_column": "Last", "field": {"type": "last_name"}},
        {"csv_column": "Plan", "field": {"type": "custom", "key": "plan"}},
        {"csv_column": "City", "field": {"type": "custom", "key": "city"}},
    ]
    run_import(
        api,
        '\ufeffE-mail,First,Last,Plan,City\r\nada@example.com,Ada,"Lovelace, A.",pro,\r\n',
        mappings,
    )
    result = run_import(api, "E-mail,First,Last,Plan,City\nada@example.com,,,,London\n", mappings)[
        "result"
    ]
    assert result["updated"] == 1
    ada = Subscriber.objects.get()
    assert (ada.first_name, ada.last_name, ada.name) == ("Ada", "Lovelace, A.", "")
    assert ada.custom_fields == {"plan": "pro", "city": "London"}
    assert ada.status == Subscriber.Status.ACTIVE


def test_running_the_same_job_twice_creates_no_duplicates(
    workspace_client: Callable[..., APIClient], upsert_path: str, no_jobs_run: None
) -> None:
    api = workspace_client()
    csv_text = "Email,Name\n" + "".join(f"user{i}@example.com,User {i}\n" for i in range(250))
    created = create_import(api, csv_text, HTTP_IDEMPOTENCY_KEY="import-2026-04-11-twice")
    job_id = created.json()["id"]
    assert execute_job(job_id) == "succeeded"
    # A second delivery of the same job (e.g. recovery after a lost worker) runs it again.
    Job.objects.filter(pk=job_id).update(status=Job.Status.QUEUED)
    assert execute_job(job_id) == "succeeded"
    job = Job.objects.get(pk=job_id)
    assert Subscriber.objects.count() == 250
    assert job.result["created"] == 0 and job.result["skipped"] == 250
    # And a retried POST with the same key neither creates a job nor runs anything.
    again = create_import(api, csv_text, HTTP_IDEMPOTENCY_KEY="import-2026-04-11-twice")
    assert again.status_code == 202 and again.json()["id"] == job_id
    assert Job.objects.filter(kind=IMPORT.name).count() == 1


class RecordingRun(JobRun):
    """A real ``JobRun`` that also notes the progress stored in the database at each write."""

    def __init__(self, job: Job) -> None:
        super().__init__(job)
        self.stored: list[dict[str, Any]] = []

    def flush(self) -> None:
        super().flush()
        self.stored.append(Job.objects.get(pk=self.job.pk).progress)


def test_progress_moves_while_the_import_runs(
    workspace_client: Callable[..., APIClient],
    settings: Any,
    no_jobs_run: None,
    upsert_path: str,
) -> None:
    settings.EXAMPLE_SUBSCRIBER_IMPORT_BATCH_SIZE = 100
    settings.IDEMPOTENCY_JOBS = {**settings.IDEMPOTENCY_JOBS, "JOB_PROGRESS_INTERVAL": 0}
    api = workspace_client()
    csv_text = "Email,Name\n" + "".join(f"user{i}@example.com,U\n" for i in range(1000))
    job_id = create_import(api, csv_text).json()["id"]
    job = Job.objects.claim(job_id, token="t" * 32, lease=timedelta(minutes=2))
    assert job is not None
    run = RecordingRun(job)
    result = IMPORT.handler(job.params, run)
    processed = [p["rows_processed"] for p in run.stored]
    assert processed == sorted(processed) and len(set(processed)) >= 10
    assert run.stored[-1] == {
        "rows_total": 1000,
        "rows_processed": 1000,
        "created": 1000,
        "updated": 0,
        "skipped": 0,
        "failed": 0,
    }
    assert result["created"] == 1000


BAD_CSVS = {
    "ragged rows": (
        "Email,Name\na@example.com,A\nb@example.com\nc@example.com,C,extra\n",
        MAPPINGS,
        "2 row(s) do not have the header's 2 fields (rows 3, 4)",
    ),
    "unknown column": (
        "Email,Name\na@example.com,A\n",
        [{"csv_column": "Mail", "field": {"type": "email"}}],
        "Mapped column 'Mail' is not in the CSV header",
    ),
    "no email mapping": (
        "Email,Name\na@example.com,A\n",
        [{"csv_column": "Name", "field": {"type": "name"}}],
        "No column is mapped to the email field",
    ),
    "duplicate columns": (
        "Email,Name,Email\na@example.com,A,b@example.com\n",
        MAPPINGS,
        "Duplicate column names in the header: Email",
    ),
    "undecodable text": (
        "Email,Name\na@example.com,\udc80\n",
        MAPPINGS,
        "Surrogate characters are not allowed",
    ),
    "NUL character": (
        "Email,Name\na@example.com,A\x00\n",
        MAPPINGS,
        "Null characters are not allowed",
    ),
    "unterminated quote": ('Email,Name\na@example.com,"Ada\n', MAPPINGS, "not valid CSV"),
    "empty": ("", MAPPINGS, "This field may not be blank"),
    "no header": ("\n\n", MAPPINGS, "no header row"),
    "two email mappings": (
        "Email,Name\na@example.com,A\n",
        [*MAPPINGS, {"csv_column": "Name", "field": {"type": "email"}}],
        "Two mappings write the same field (email)",
    ),
}


@pytest.mark.parametrize("case", BAD_CSVS)
def test_bad_csv_is_a_400_problem_at_creation(
    workspace_client: Callable[..., APIClient], case: str
) -> None:
    csv_text, mappings, message = BAD_CSVS[case]
    answer = create_import(
        workspace_client(),
        csv_text,
        mappings,
        HTTP_IDEMPOTENCY_KEY=f"bad-csv-{case.replace(' ', '-')}",
    )
    assert answer.status_code == 400
    assert answer["Content-Type"] == "application/problem+json"
    problem = answer.json()
    assert problem["status"] == 400 and problem["code"] == "invalid"
    assert message in json.dumps(problem["errors"], ensure_ascii=False)
    assert not Job.objects.exists()


def test_csv_over_the_size_limit_is_refused(
    workspace_client: Callable[..., APIClient], settings: Any
) -> None:
    settings.EXAMPLE_SUBSCRIBER_IMPORT_MAX_BYTES = 1000
    csv_text = "Email,Name\n" + "".join(f"user{i}@example.com,U\n" for i in range(100))
    answer = create_import(workspace_client(), csv_text)
    assert answer.status_code == 400
    assert "the limit is 1000 bytes" in answer.json()["errors"]["csv_text"][0]


def test_body_that_is_not_utf8_is_a_400_problem(workspace_client: Callable[..., APIClient]) -> None:
    body = b'{"csv_text": "Email\\nad\xe9@example.com", "mappings": []}'
    answer = workspace_client().post(URL, body, content_type="application/json")
    assert answer.status_code == 400
    assert answer["Content-Type"] == "application/problem+json"
    assert answer.json()["code"] == "parse_error"


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({"csv_column": "Email", "field": {"type": "phone"}}, "is not a valid choice"),
        ({"csv_column": "Email", "field": {"type": "custom"}}, "A custom field needs a key"),
        ({"csv_column": "Email", "field": {"type": "name", "key": "x"}}, "Only custom fields"),
        ({"csv_column": "Email", "field": {"type": "custom", "key": "a b"}}, "does not match"),
    ],
)
def test_malformed_mappings_are_400(
    workspace_client: Callable[..., APIClient], mapping: dict[str, Any], message: str
) -> None:
    answer = create_import(workspace_client(), "Email\na@example.com\n", [mapping])
    assert answer.status_code == 400
    assert message in json.dumps(answer.json()["errors"])


def test_jobs_belong_to_their_workspace(workspace_client: Callable[..., APIClient]) -> None:
    acme, other = workspace_client("acme"), workspace_client("other")
    location = f"{URL}/{run_import(acme, 'Email,Name\nada@example.com,Ada\n')['id']}"
    assert acme.get(location).status_code == 200
    stranger = other.get(location)
    assert stranger.status_code == 404
    assert stranger["Content-Type"] == "application/problem+json"
    assert Subscriber.objects.get().workspace.name == "acme"
    # The same email in another workspace is another subscriber.
    run_import(other, "Email,Name\nada@example.com,Ada (other)\n")
    assert Subscriber.objects.count() == 2
