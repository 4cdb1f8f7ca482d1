"""What an import or export body may hold: a member the endpoint does not take is a 400 problem
naming it (JSON or form-encoded), never silently dropped; form bodies spell nested fields
``filters.status``."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.test import TestCase
from rest_framework.test import APIClient

from example_project.subscribers.models import Subscriber
from example_project.workspaces.models import Workspace
from idempotency_jobs.models import Job
from tests.example.test_support import export_media, make_key, workspace_client

__all__ = ["export_media", "make_key", "workspace_client"]

pytestmark = pytest.mark.django_db

EXPORTS = "/v1/jobs/subscriber-exports"
IMPORTS = "/v1/jobs/subscriber-imports"
FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
MAPPING = {"csv_column": "Email", "field": {"type": "email"}}
FILTERS = "filters.status, filters.created_after, filters.created_before"


def post(api: APIClient, url: str, body: str, content_type: str) -> Any:
    with TestCase.captureOnCommitCallbacks(execute=True):
        return api.post(url, body, content_type=content_type)


def unknown(response: Any) -> dict[str, str]:
    """The problem's unknown fields and their messages."""
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 400
    return {
        name: messages[0]
        for name, messages in problem["errors"].items()
        if isinstance(messages, list) and str(messages[0]).startswith("Unknown field.")
    }


@pytest.mark.parametrize(
    ("body", "content_type", "named"),
    [
        # The case: a form spells a nested field filters.status; this one was dropped
        # and the export had every subscriber in it.
        ("filters[status]=bogus", FORM, {"filters[status]": "fields, filters.<field>"}),
        (
            "filters.state=active&colour=red",
            FORM,
            {"filters.state": FILTERS, "colour": "fields, filters.<field>"},
        ),
        ('{"filters": {"state": ["active"]}}', JSON, {"filters.state": FILTERS}),
        (
            '{"filter": {"status": ["bogus"]}, "field": []}',
            JSON,
            {"filter": "fields, filters", "field": "fields, filters"},
        ),
    ],
)
def test_an_export_with_fields_it_does_not_take_is_a_400_naming_them(
    workspace_client: Callable[..., APIClient], body: str, content_type: str, named: dict
) -> None:
    api = workspace_client("acme")
    found = unknown(post(api, EXPORTS, body, content_type))

    assert set(found) == set(named)
    for name, taken in named.items():
        assert found[name] == f"Unknown field. Fields taken here: {taken}."
    assert Job.objects.count() == 0


def test_a_form_encoded_export_filters_with_dotted_names(
    workspace_client: Callable[..., APIClient], export_media: Any
) -> None:
    api = workspace_client("acme")
    acme = Workspace.objects.get(name="acme")
    Subscriber.objects.create(workspace=acme, email="a@example.com")
    Subscriber.objects.create(workspace=acme, email="u@example.com", status="unsubscribed")

    created = post(api, EXPORTS, "filters.status=unsubscribed&fields=email", FORM)

    assert created.status_code == 202, created.content
    job = api.get(created["Location"]).json()
    assert job["status"] == "succeeded", job
    assert job["result"]["row_count"] == 1


@pytest.mark.parametrize(
    ("body", "content_type", "named"),
    [
        (
            {"csv_text": "Email\na@example.com", "mappings": [MAPPING], "dry_run": True},
            JSON,
            {"dry_run": "csv_text, mappings"},
        ),
        (
            {"csv_text": "Email\na@b.co", "mappings": [{**MAPPING, "colum": "Email"}]},
            JSON,
            {"mappings[0].colum": "mappings[0].csv_column, mappings[0].field"},
        ),
        (
            {"csv_text": "E\na@b.co", "mappings": [{"csv_column": "E", "field": {"tipe": "x"}}]},
            JSON,
            {"mappings[0].field.tipe": "mappings[0].field.type, mappings[0].field.key"},
        ),
        (
            "csv_text=Email%0Aa%40b.co&mappings[0]csv_column=Email&mappings[0]field.type=email"
            "&mappings[0]field.kind=email&mapping=x",
            FORM,
            {
                "mappings[0]field.kind": "mappings[0]field.type, mappings[0]field.key",
                "mapping": "csv_text, mappings[<n>]<field>",
            },
        ),
    ],
)
def test_an_import_with_fields_it_does_not_take_is_a_400_naming_them(
    workspace_client: Callable[..., APIClient], body: Any, content_type: str, named: dict
) -> None:
    api = workspace_client("acme")
    text = body if isinstance(body, str) else json.dumps(body)
    found = unknown(post(api, IMPORTS, text, content_type))

    assert found == {name: f"Unknown field. Fields taken here: {t}." for name, t in named.items()}
    assert Job.objects.count() == 0


def test_a_form_encoded_import_runs(workspace_client: Callable[..., APIClient]) -> None:
    api = workspace_client("acme")
    body = (
        "csv_text=Email%0Aada%40example.com&mappings[0]csv_column=Email&mappings[0]field.type=email"
    )
    created = post(api, IMPORTS, body, FORM)

    assert created.status_code == 202, created.content
    job = api.get(created["Location"]).json()
    assert job["status"] == "succeeded", job
    assert job["result"]["created"] == 1
