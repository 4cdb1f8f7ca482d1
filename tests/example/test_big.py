"""Big imports and exports complete with the right counts (sizes from the environment).

EXAMPLE_BIG_ROWS (default 100000) rows are imported; EXAMPLE_BIG_EXPORT_ROWS (default ten times
that) are exported. CI can run them smaller. Counts are asserted, never timings.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test import TestCase
from rest_framework.test import APIClient

from example_project.subscribers.bulk.exports import export_file_name
from example_project.subscribers.models import Subscriber
from example_project.workspaces.models import Workspace
from tests.example.test_support import export_media, make_key, workspace_client

__all__ = ["export_media", "make_key", "workspace_client"]

pytestmark = [pytest.mark.slow, pytest.mark.django_db]

IMPORT_ROWS = int(os.environ.get("EXAMPLE_BIG_ROWS", "100000"))
EXPORT_ROWS = int(os.environ.get("EXAMPLE_BIG_EXPORT_ROWS", str(10 * IMPORT_ROWS)))
T0 = datetime(2026, 4, 11, 9, 30, 0, 123456, tzinfo=UTC)


@pytest.fixture(params=["portable", pytest.param("copy", marks=pytest.mark.postgresql)])
def fast_path(request: pytest.FixtureRequest, settings: Any) -> str:
    settings.EXAMPLE_SUBSCRIBER_IMPORT_USE_COPY = request.param == "copy"
    settings.EXAMPLE_SUBSCRIBER_EXPORT_USE_COPY = request.param == "copy"
    return str(request.param)


def finished_job(api: APIClient, url: str, body: dict[str, Any]) -> dict[str, Any]:
    with TestCase.captureOnCommitCallbacks(execute=True):
        created = api.post(url, json.dumps(body), content_type="application/json")
    assert created.status_code == 202, created.content[:500]
    job: dict[str, Any] = api.get(created["Location"]).json()
    assert job["status"] == "succeeded", job["error"]
    return job


def test_big_import_with_errors_then_rerun(
    workspace_client: Callable[..., APIClient], fast_path: str, settings: Any
) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = None
    api = workspace_client("big")
    lines = ["Email,First name,Last name,Plan"]
    bad = 0
    for i in range(IMPORT_ROWS):
        if i % 997 == 13:
            lines.append(f"broken-{i},B,B,x")  # not an email
            bad += 1
        elif i % 1009 == 7 and (i - 1) % 997 != 13:
            lines.append(f"user{i - 1}@example.com,Dup,Dup,x")  # repeats the previous row
            bad += 1
        else:
            lines.append(f"user{i}@example.com,First {i},Last,{'pro' if i % 2 else 'free'}")
    body = {
        "csv_text": "\n".join(lines) + "\n",
        "mappings": [
            {"csv_column": "Email", "field": {"type": "email"}},
            {"csv_column": "First name", "field": {"type": "first_name"}},
            {"csv_column": "Last name", "field": {"type": "last_name"}},
            {"csv_column": "Plan", "field": {"type": "custom", "key": "plan"}},
        ],
    }
    url = "/v1/jobs/subscriber-imports"
    first = finished_job(api, url, body)
    result = first["result"]
    assert result["rows"] == IMPORT_ROWS
    assert (result["created"], result["updated"], result["skipped"]) == (IMPORT_ROWS - bad, 0, 0)
    assert result["failed"] == bad
    assert len(result["errors"]) == min(bad, 100)
    assert first["progress"]["rows_processed"] == IMPORT_ROWS
    assert Subscriber.objects.count() == IMPORT_ROWS - bad

    again = finished_job(api, url, body)["result"]
    assert (again["created"], again["updated"], again["skipped"]) == (0, 0, IMPORT_ROWS - bad)
    assert Subscriber.objects.count() == IMPORT_ROWS - bad
    assert Subscriber.objects.filter(custom_fields__plan="pro").count() > IMPORT_ROWS // 3


def fill(workspace: Workspace, rows: int) -> None:
    """``rows`` subscribers, written by the database itself (the ORM would take minutes)."""
    table = connection.ops.quote_name(Subscriber._meta.db_table)
    columns = "workspace_id, email, name, first_name, last_name, custom_fields, status, "
    columns += "created_at, updated_at"
    stamp = connection.ops.adapt_datetimefield_value(T0)
    values = "%s, 'big' || g || '@example.com', 'Name ' || g, 'F', '', '{}', 'active', %s, %s"
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"INSERT INTO {table} ({columns}) SELECT {values} "  # noqa: S608
                "FROM generate_series(1, %s) AS g",
                [workspace.pk, stamp, stamp, rows],
            )
            cursor.execute(f"ANALYZE {table}")
        else:
            sequence = (
                "WITH RECURSIVE seq(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM seq WHERE g < %s)"
            )
            cursor.execute(
                f"{sequence} INSERT INTO {table} ({columns}) SELECT {values} FROM seq",  # noqa: S608
                [rows, workspace.pk, stamp, stamp],
            )


def test_big_export_matches_and_streams(
    workspace_client: Callable[..., APIClient], fast_path: str, export_media: Path
) -> None:
    api = workspace_client("big")
    fill(Workspace.objects.get(name="big"), EXPORT_ROWS)
    fill(Workspace.objects.create(name="someone-else"), 10)
    job = finished_job(api, "/v1/jobs/subscriber-exports", {})
    assert job["result"]["row_count"] == EXPORT_ROWS
    assert Subscriber.objects.filter(workspace__name="big").count() == EXPORT_ROWS
    assert job["progress"] == {"rows_total": EXPORT_ROWS, "rows_written": EXPORT_ROWS}

    stamp = "2026-04-11T09:30:00.123456Z"
    path = export_media / export_file_name(job["id"])
    with path.open(newline="", encoding="utf-8") as file:
        reader = csv.reader(file)
        assert next(reader) == ["email", "name", "first_name", "last_name", "status", "created_at"]
        count = 0
        for count, row in enumerate(reader, start=1):
            if count == 1:
                assert row == ["big1@example.com", "Name 1", "F", "", "active", stamp]
        assert count == EXPORT_ROWS
        assert row == [
            f"big{EXPORT_ROWS}@example.com",
            f"Name {EXPORT_ROWS}",
            "F",
            "",
            "active",
            stamp,
        ]

    answer = api.get(job["result"]["url"])
    assert answer.status_code == 200
    assert sum(chunk.count(b"\n") for chunk in answer.streaming_content) == EXPORT_ROWS + 1
