"""Subscriber export jobs: the CSV matches the workspace's subscribers, and only it can get it."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.test import TestCase
from rest_framework.test import APIClient

from example_project.subscribers.models import Subscriber
from example_project.workspaces.models import Workspace
from idempotency_jobs.models import Job
from idempotency_jobs.tasks import execute_job
from tests.test_example_support import export_media, make_key, no_jobs_run, workspace_client

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
    assert result["url"] == f"{URL}/{job['id']}/file"
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


def test_an_empty_selection_is_a_header_only_file(
    workspace_client: Callable[..., APIClient], export_path: str
) -> None:
    api = workspace_client("acme")
    result = run_export(api, {"fields": ["email"]})["result"]
    assert result["row_count"] == 0
    assert download(api, result["url"]) == [["email"]]


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
