"""OpenAPI (drf-spectacular): idempotent operations document their headers and problem answers."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import include, path
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.utils import extend_schema
from drf_spectacular.validation import validate_schema
from rest_framework import mixins, serializers, viewsets
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter

import idempotency_jobs.schema_extension  # noqa: F401  (registers the view extension, as AppConfig.ready does)
from idempotency_jobs.keys.drf import IdempotencyMixin
from tests.helpers import JOB_FIELDS
from tests.testapp import views
from tests.testapp.jobs import WidgetJobViewSet

PROBLEM_REF = {"$ref": "#/components/schemas/IdempotencyProblem"}


class Receipt(serializers.Serializer):
    id = serializers.IntegerField()


class ExtendedViewSet(IdempotencyMixin, mixins.CreateModelMixin, viewsets.GenericViewSet):
    serializer_class = views.WidgetSerializer

    @extend_schema(responses={201: Receipt}, summary="Create, documented by hand")
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return Response({"id": 1}, status=201)


router = SimpleRouter()
router.register("widgets", views.WidgetViewSet, basename="widget")
router.register("listed-widgets", views.ListedWidgetViewSet, basename="listed-widget")
router.register("widget-jobs", WidgetJobViewSet, basename="widget-job")
router.register("extended", ExtendedViewSet, basename="extended")
PATTERNS = [
    path("", include(router.urls)),
    path("fn-widgets", views.widget_function),
    path("view-widgets", views.WidgetAPIView.as_view()),
    path("plain-widgets", views.NoKeyNeededView.as_view()),
    path("methods-fn-widgets", views.methods_function),
]


def generate(settings: Any, schema_class: str) -> dict[str, Any]:
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_SCHEMA_CLASS": schema_class}
    schema: dict[str, Any] = SchemaGenerator(patterns=PATTERNS).get_schema(None, public=True)
    validate_schema(schema)
    return schema


@pytest.fixture(
    params=["drf_spectacular.openapi.AutoSchema", "idempotency_jobs.schema.AutoSchema"],
    ids=["view-extension", "schema-class"],
)
def schema(request: pytest.FixtureRequest, settings: Any) -> dict[str, Any]:
    return generate(settings, request.param)


def key_headers(operation: dict[str, Any]) -> dict[str, bool]:
    return {
        p["name"]: p["required"]
        for p in operation.get("parameters", [])
        if p["in"] == "header" and "idempotency" in p["name"].lower()
    }


def is_documented(operation: dict[str, Any]) -> bool:
    responses = operation["responses"]
    problems = all(
        responses.get(code, {}).get("content", {}).get("application/problem+json")
        == {"schema": PROBLEM_REF}
        for code in ("400", "406", "409", "411", "422", "503")
    )
    headers = key_headers(operation)
    assert problems == bool(headers), operation  # all of it, or none of it
    return problems


def test_an_idempotent_post_documents_headers_and_problems(schema: dict[str, Any]) -> None:
    operation = schema["paths"]["/widgets/"]["post"]

    assert key_headers(operation) == {"Idempotency-Key": False, "X-Idempotency-Key": False}
    responses = operation["responses"]
    assert "Retry-After" in responses["409"]["headers"]
    assert responses["201"]["headers"]["Idempotent-Replayed"]["schema"]["enum"] == ["true"]
    assert "application/json" in responses["201"]["content"]  # the view's own answer stays
    problem = schema["components"]["schemas"]["IdempotencyProblem"]
    assert set(problem["required"]) == {"type", "title", "status", "detail", "code"}
    codes = problem["properties"]["code"]["description"]
    for code in (
        "idempotency_key_mismatch",
        "idempotency_replay_not_acceptable",
        "idempotency_length_required",
    ):
        assert code in codes


def test_a_required_key_is_documented_as_required(schema: dict[str, Any]) -> None:
    operation = schema["paths"]["/widgets/strict/"]["post"]
    assert key_headers(operation) == {"Idempotency-Key": True, "X-Idempotency-Key": False}


@pytest.mark.parametrize(
    ("route", "method"),
    [
        ("/fn-widgets", "post"),  # @api_view + @idempotent
        ("/view-widgets", "post"),  # APIView method with @idempotent
        ("/widget-jobs/", "post"),  # JobViewSet create
        ("/listed-widgets/", "post"),
        ("/methods-fn-widgets", "post"),
        ("/methods-fn-widgets", "patch"),  # @idempotent(methods=["POST", "PATCH"])
    ],
)
def test_idempotent_operations_are_documented(
    schema: dict[str, Any], route: str, method: str
) -> None:
    assert is_documented(schema["paths"][route][method])


@pytest.mark.parametrize(
    ("route", "method"),
    [
        ("/plain-widgets", "post"),  # not idempotent at all
        ("/widget-jobs/{id}/", "get"),
        ("/listed-widgets/", "get"),
        ("/listed-widgets/{id}/", "patch"),  # the mixin covers POST only by default
        ("/methods-fn-widgets", "get"),
    ],
)
def test_other_operations_are_left_alone(schema: dict[str, Any], route: str, method: str) -> None:
    assert not is_documented(schema["paths"][route][method])


def test_the_schema_class_also_covers_extend_schema_operations(settings: Any) -> None:
    schema = generate(settings, "idempotency_jobs.schema.AutoSchema")
    operation = schema["paths"]["/extended/"]["post"]

    assert operation["summary"] == "Create, documented by hand"
    assert is_documented(operation)


def test_a_job_create_documents_the_kind_body_and_the_202(schema: dict[str, Any]) -> None:
    operation = schema["paths"]["/widget-jobs/"]["post"]
    components = schema["components"]["schemas"]

    body = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert set(components[body.rsplit("/", 1)[1]]["properties"]) >= {"names", "fail_at"}
    answer = operation["responses"]["202"]
    assert set(answer["headers"]) == {"Location", "Idempotent-Replayed"}
    job = answer["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert set(components[job]["properties"]) == JOB_FIELDS
    assert "201" not in operation["responses"]
