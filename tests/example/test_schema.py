"""OpenAPI 3 schema at /v1/schema and a docs page at /v1/docs that needs no network."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from django.contrib.staticfiles import finders
from drf_spectacular.validation import validate_schema
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


@pytest.fixture
def schema(settings: Any) -> dict[str, Any]:
    """The service's own schema: its URLconf, not the test suite's (which adds test views)."""
    settings.ROOT_URLCONF = "example_project.urls"
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
        "/v1/jobs/subscriber-exports/{id}/file",
        "/api/v1/letters/create",
        "/api/v1/letters/get/{id}",
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


RESOURCES = {"subscribers", "subscriber-imports", "subscriber-exports", "letters"}


def operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, methods in schema["paths"].items()
        for method, operation in methods.items()
    ]


def component(schema: dict[str, Any], ref: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = schema["components"]["schemas"][ref["$ref"].rsplit("/", 1)[1]]
    return found


def test_every_operation_has_a_summary_and_one_resource_tag(schema: dict[str, Any]) -> None:
    for method, path, operation in operations(schema):
        assert operation.get("summary"), (method, path)
        assert len(operation["tags"]) == 1 and operation["tags"][0] in RESOURCES, (method, path)
    assert {tag["name"] for tag in schema["tags"]} == RESOURCES
    assert all(tag["description"] for tag in schema["tags"])


def test_path_parameters_have_one_name(schema: dict[str, Any]) -> None:
    names = {
        parameter["name"]
        for _, _, operation in operations(schema)
        for parameter in operation.get("parameters", [])
        if parameter["in"] == "path"
    }
    assert names == {"id"}
    assert "/v1/jobs/subscriber-exports/{id}/file" in schema["paths"]
    assert "/api/v1/letters/get/{id}" in schema["paths"]


def test_gets_of_one_thing_document_their_404(schema: dict[str, Any]) -> None:
    gets = [(p, o) for m, p, o in operations(schema) if m == "GET" and "{id}" in p]
    assert len(gets) == 4
    for path, operation in gets:
        missing = operation["responses"]["404"]
        assert missing["description"], path
        problem = component(schema, missing["content"]["application/problem+json"]["schema"])
        assert {"type", "title", "status", "detail", "code"} <= set(problem["properties"])


def test_the_import_and_letter_examples_are_the_mailrith_and_stannp_ones(
    schema: dict[str, Any],
) -> None:
    from tests.example.test_seeds import MAILRITH_BODY, STANNP_FIELDS

    imports = schema["paths"]["/v1/jobs/subscriber-imports"]["post"]["requestBody"]["content"]
    [example] = imports["application/json"]["examples"].values()
    assert example["value"] == json.loads(MAILRITH_BODY)
    assert example["value"]["csv_text"] == "Email,Name\nada@example.com,Ada Lovelace"

    letters = schema["paths"]["/api/v1/letters/create"]["post"]["requestBody"]["content"]
    stannp = dict(field.split("=", 1) for field in STANNP_FIELDS)
    [form] = letters["application/x-www-form-urlencoded"]["examples"].values()
    assert form["value"] == stannp
    [as_json] = letters["application/json"]["examples"].values()
    recipient = {
        name.removeprefix("recipient[").removesuffix("]"): value
        for name, value in stannp.items()
        if name.startswith("recipient[")
    }
    assert as_json["value"] == {
        "test": True,
        "background": stannp["background"],
        "pages": stannp["pages"],
        "recipient": recipient,
    }


def test_recipient_requires_what_the_server_requires(schema: dict[str, Any]) -> None:
    from example_project.letters.serializers import LetterCreateSerializer

    recipient = schema["components"]["schemas"]["Recipient"]
    assert set(recipient["required"]) == {"address1", "postcode", "country"}
    assert recipient["anyOf"] == [
        {"required": ["town"], "properties": {"town": {"minLength": 1}}},
        {"required": ["city"], "properties": {"city": {"minLength": 1}}},
    ]
    base = {"address1": "1 Road", "postcode": "AB1 2CD", "country": "GB"}
    for town_or_city, valid in (
        ({}, False),
        ({"town": ""}, False),
        ({"city": ""}, False),
        ({"town": "Sampletown"}, True),
        ({"city": "Sampleton"}, True),
    ):
        letter = LetterCreateSerializer(data={"pages": "Hi", "recipient": {**base, **town_or_city}})
        assert letter.is_valid() is valid, (town_or_city, letter.errors)

    letter = schema["components"]["schemas"]["LetterCreate"]
    assert letter["anyOf"] == [{"required": [name]} for name in ("template", "pages", "file")]


@pytest.mark.parametrize(
    ("component_name", "member", "keyword"),
    [
        ("SubscriberImport", "csv_text", "minLength"),
        ("SubscriberImport", "mappings", "minItems"),
        ("SubscriberExport", "fields", "minItems"),
        ("ExportFilters", "status", "minItems"),
        ("LetterCreate", "pages", "minLength"),
    ],
)
def test_members_the_server_refuses_empty_say_so(
    schema: dict[str, Any], component_name: str, member: str, keyword: str
) -> None:
    assert schema["components"]["schemas"][component_name]["properties"][member][keyword] == 1


def test_page_size_is_documented_with_its_bounds(schema: dict[str, Any]) -> None:
    parameters = schema["paths"]["/v1/subscribers"]["get"]["parameters"]
    [page_size] = [p for p in parameters if p["name"] == "page_size"]
    assert page_size["schema"] == {"type": "integer", "minimum": 1, "maximum": 1000}
    assert "100" in page_size["description"]


def test_mappings_show_both_bounds(schema: dict[str, Any]) -> None:
    from example_project.subscribers.bulk.imports import MAX_MAPPINGS

    mappings = schema["components"]["schemas"]["SubscriberImport"]["properties"]["mappings"]
    assert (mappings["minItems"], mappings["maxItems"]) == (1, MAX_MAPPINGS)


def test_no_description_is_a_developer_docstring(schema: dict[str, Any]) -> None:
    """Docstrings become descriptions: those written for the code's readers (reST ``literals``)
    must not reach the API's."""

    def descriptions(node: Any) -> list[str]:
        if isinstance(node, dict):
            found = [node["description"]] if isinstance(node.get("description"), str) else []
            return found + [text for value in node.values() for text in descriptions(value)]
        if isinstance(node, list):
            return [text for value in node for text in descriptions(value)]
        return []

    assert [text for text in descriptions(schema) if "``" in text] == []
