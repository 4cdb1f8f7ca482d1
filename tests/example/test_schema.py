"""OpenAPI 3 schema at /v1/schema and a docs page at /v1/docs that needs no network."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.staticfiles import finders
from drf_spectacular.validation import validate_schema
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


@pytest.fixture
def schema(settings: Any) -> dict[str, Any]:
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_SCHEMA_CLASS": "idempotency_jobs.schema.AutoSchema",
    }
    answer = APIClient().get("/v1/schema", {"format": "json"})
    assert answer.status_code == 200
    document: dict[str, Any] = answer.json()
    validate_schema(document)
    return document


def parameter_names(operation: dict[str, Any]) -> set[str]:
    return {p["name"] for p in operation.get("parameters", []) if p["in"] == "header"}


def test_schema_documents_the_service(schema: dict[str, Any]) -> None:
    assert schema["openapi"].startswith("3.")
    paths = schema["paths"]
    for path in (
        "/v1/subscribers",
        "/v1/jobs/subscriber-imports",
        "/v1/jobs/subscriber-imports/{id}",
        "/v1/jobs/subscriber-exports",
        "/v1/jobs/subscriber-exports/{id}",
        "/v1/jobs/subscriber-exports/{job_id}/file",
        "/api/v1/letters/create",
        "/api/v1/letters/get/{letter_id}",
    ):
        assert path in paths, path
    imports = paths["/v1/jobs/subscriber-imports"]["post"]
    assert imports["summary"] == "Create a subscriber import job"
    assert {"Idempotency-Key", "X-Idempotency-Key"} <= parameter_names(imports)
    assert "202" in imports["responses"] and "422" in imports["responses"]
    body = imports["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    import_schema = schema["components"]["schemas"][body.rsplit("/", 1)[1]]
    assert set(import_schema["properties"]) == {"csv_text", "mappings"}

    letters = paths["/api/v1/letters/create"]["post"]
    assert {"Idempotency-Key", "X-Idempotency-Key"} <= parameter_names(letters)
    assert {"200", "409"} <= set(letters["responses"])
    assert "application/x-www-form-urlencoded" in letters["requestBody"]["content"]

    schemes = schema["components"]["securitySchemes"]
    assert schemes["apiKey"]["scheme"] == "bearer" and schemes["apiKeyBasic"]["scheme"] == "basic"
    assert {"apiKey": []} in letters["security"] and {"apiKeyBasic": []} in letters["security"]


def test_docs_page_loads_only_local_assets() -> None:
    answer = APIClient().get("/v1/docs")
    assert answer.status_code == 200
    html = answer.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert assets, html
    for asset in assets:
        assert asset.startswith("/static/"), asset
        assert finders.find(asset.removeprefix("/static/")), asset
    assert "cdn" not in html.lower()
