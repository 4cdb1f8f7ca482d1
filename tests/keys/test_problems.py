"""Problem details (issue 13 item 9): one builder, one rendering, one ``type`` rule, and a
documented section for every code the library can answer."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.core.checks import run_checks
from django.http import Http404

from idempotency_jobs.exceptions import (
    PROBLEM_CONTENT_TYPE,
    IdempotencyKeyInUse,
    problem_details,
    problem_exception_handler,
    problem_json,
    problem_response,
)
from tests.helpers import (
    CORE_DB,
    DECORATOR,
    DRF_EXCEPTIONS,
    MIXIN,
    configure,
    documented_codes,
    emittable_codes,
    in_flight,
    post,
)
from tests.keys.test_failures import unreachable_database

__all__ = ["unreachable_database"]

pytestmark = CORE_DB

BASE = "https://docs.example.com/idempotency/problems/"
HANDLER = "idempotency_jobs.exceptions.problem_exception_handler"


def bad_key(api: Any) -> Any:
    return post(api, MIXIN, key="short")


def mismatch(api: Any) -> Any:
    post(api, MIXIN)
    return post(api, MIXIN, body={"name": "other"})


def in_progress(api: Any) -> Any:
    with in_flight(MIXIN, gate="problem"):
        return post(api, f"{MIXIN}?gate=problem")


def not_acceptable_replay(api: Any) -> Any:
    post(api, MIXIN, HTTP_ACCEPT="text/html")
    return post(api, MIXIN, HTTP_ACCEPT="application/json")


def store_unavailable(api: Any) -> Any:
    return post(api, MIXIN)


# What the library answers by itself (with or without the exception handler)...
LIBRARY: dict[str, tuple[Callable[[Any], Any], int]] = {
    "idempotency_key_invalid": (bad_key, 400),
    "idempotency_key_mismatch": (mismatch, 422),
    "idempotency_key_in_use": (in_progress, 409),
    "idempotency_replay_not_acceptable": (not_acceptable_replay, 406),
    "idempotency_store_unavailable": (store_unavailable, 503),
}
# ... and DRF's own errors, with problem_exception_handler.
HANDLED: dict[str, tuple[Callable[[Any], Any], int]] = {
    "invalid": (lambda api: post(api, MIXIN, key=None, body={"name": ""}), 400),
    "not_authenticated": (lambda api: post(api, MIXIN, key=None, user=None), 401),
    "not_found": (
        lambda api: api.get(
            "/widget-jobs/00000000-0000-0000-0000-000000000000/", HTTP_X_USER="alice"
        ),
        404,
    ),
    "method_not_allowed": (lambda api: api.get(DECORATOR, HTTP_X_USER="alice"), 405),
    "unsupported_media_type": (
        lambda api: api.post(MIXIN, "x", content_type="text/plain", HTTP_X_USER="alice"),
        415,
    ),
}


@pytest.fixture(params=[None, BASE], ids=["about-blank", "base"])
def type_base(request: pytest.FixtureRequest, settings: Any) -> str | None:
    configure(settings, PROBLEM_TYPE_BASE=request.param)
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "EXCEPTION_HANDLER": HANDLER}
    return request.param


def assert_one_format(response: Any, status: int, code: str, base: str | None) -> None:
    """Byte for byte the one rendering, and the one ``type`` rule."""
    assert response.status_code == status, response.content
    assert response["Content-Type"] == PROBLEM_CONTENT_TYPE
    problem = json.loads(response.content)
    assert response.content == problem_json(problem)
    compact = json.dumps(problem, separators=(",", ":"), ensure_ascii=False).encode()
    assert response.content == compact
    assert problem["type"] == ("about:blank" if base is None else f"{BASE}#{code}")
    assert (problem["status"], problem["code"]) == (status, code)
    assert problem["title"] and problem["detail"]


@pytest.mark.parametrize("code", LIBRARY)
def test_every_library_problem_has_the_one_format(
    request: pytest.FixtureRequest, api: Any, type_base: str | None, code: str
) -> None:
    if code == "idempotency_store_unavailable":
        request.getfixturevalue("unreachable_database")
    send, status = LIBRARY[code]
    assert_one_format(send(api), status, code, type_base)


@pytest.mark.parametrize("code", HANDLED)
def test_drf_errors_have_the_same_format_with_the_handler(
    api: Any, type_base: str | None, code: str
) -> None:
    send, status = HANDLED[code]
    assert_one_format(send(api), status, code, type_base)


def test_the_handler_renders_problems_as_json_even_for_a_browser(api: Any, settings: Any) -> None:
    """Before, a browser's ``Accept: text/html`` had DRF's browsable API render the problem: an
    HTML page sent as ``application/problem+json``."""
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "EXCEPTION_HANDLER": HANDLER}
    response = post(api, MIXIN, key=None, body={"name": ""}, HTTP_ACCEPT="text/html")
    assert response["Content-Type"] == PROBLEM_CONTENT_TYPE
    assert response.content == problem_json(json.loads(response.content))


def test_the_handler_keeps_data_for_handlers_built_on_it() -> None:
    context = {"view": None, "request": None, "args": (), "kwargs": {}}
    response = problem_exception_handler(IdempotencyKeyInUse(headers={"Retry-After": "3"}), context)
    assert response.data == IdempotencyKeyInUse().problem
    assert response["Retry-After"] == "3"
    response.data["instance"] = "/widgets/1"
    response.render()
    assert json.loads(response.content)["instance"] == "/widgets/1"


def test_non_ascii_details_are_utf8_not_escaped(settings: Any) -> None:
    configure(settings, PROBLEM_TYPE_BASE="/problems/")
    response = problem_response(problem_details(404, "not_found", "Pas de « widget »."))
    assert "« widget »".encode() in response.content
    assert json.loads(response.content)["type"] == "/problems/#not_found"
    assert json.loads(response.content)["title"] == "Not Found"


def test_http404_through_the_handler_is_the_same_problem_as_built_directly(
    settings: Any,
) -> None:
    configure(settings, PROBLEM_TYPE_BASE=BASE)
    context = {"view": None, "request": None, "args": (), "kwargs": {}}
    response = problem_exception_handler(Http404("No such widget."), context)
    response.render()
    assert (
        response.content
        == problem_response(problem_details(404, "not_found", "No such widget.")).content
    )


def test_every_code_the_library_can_answer_is_documented() -> None:
    """A new problem code without a section in docs/problems.md fails here."""
    library = emittable_codes("idempotency_jobs")
    assert set(LIBRARY) <= library  # the collector sees the codes
    drf = {cls.default_code for cls in DRF_EXCEPTIONS.values()}
    assert set(HANDLED) <= drf
    assert sorted((library | drf) - documented_codes()) == []


@pytest.mark.parametrize(
    "base", ["https://docs.example.com/problems/", "/problems/", "https://x.example/p.html"]
)
def test_problem_type_base_accepts_an_address_or_a_path(settings: Any, base: str) -> None:
    configure(settings, PROBLEM_TYPE_BASE=base)
    assert [m.id for m in run_checks() if m.id == "idempotency_jobs.E011"] == []


@pytest.mark.parametrize(
    "base", ["", "problems", "/problems/#top", "https://x.example/a b", 42, ["/problems/"]]
)
def test_problem_type_base_must_be_none_or_a_uri_without_fragment(settings: Any, base: Any) -> None:
    configure(settings, PROBLEM_TYPE_BASE=base)
    errors = [m for m in run_checks() if m.id == "idempotency_jobs.E011"]
    assert len(errors) == 1
    assert repr(base) in errors[0].msg and "PROBLEM_TYPE_BASE" in errors[0].msg
