"""Errors a client sees, as RFC 9457 problem details, and the configuration error.

Every client error subclasses :class:`IdempotencyError` (a DRF ``APIException``), so projects can
catch one base. ``code`` is stable: clients branch on it, never on ``title`` or ``detail``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, HttpResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.utils.encoders import JSONEncoder

from idempotency_jobs.conf import idempotency_settings

__all__ = [
    "PROBLEM_CONTENT_TYPE",
    "IdempotencyConfigurationError",
    "IdempotencyError",
    "IdempotencyKeyInUse",
    "IdempotencyKeyInvalid",
    "IdempotencyKeyMismatch",
    "IdempotencyKeyMissing",
    "IdempotencyKeyNotReplayable",
    "IdempotencyLeaseLost",
    "IdempotencyLengthRequired",
    "IdempotencyReplayNotAcceptable",
    "IdempotencyScopeMissing",
    "IdempotencyStoreUnavailable",
    "ProblemResponse",
    "problem_details",
    "problem_exception_handler",
    "problem_json",
    "problem_response",
    "problem_type",
]

PROBLEM_CONTENT_TYPE = "application/problem+json"


def problem_type(code: str) -> str:
    """``about:blank``; with ``PROBLEM_TYPE_BASE`` set, the anchor of ``code`` on the page
    that documents it (docs/problems.md)."""
    base = idempotency_settings.PROBLEM_TYPE_BASE
    return f"{base}#{code}" if base else "about:blank"


def problem_details(
    status: int, code: str, detail: str, title: str | None = None, **members: Any
) -> dict[str, Any]:
    """The body of every problem answer, the library's and the exception handler's alike."""
    return {
        "type": problem_type(code),
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "code": code,
        **members,
    }


def problem_json(problem: Mapping[str, Any]) -> bytes:
    """The one JSON rendering of problem details: compact and UTF-8, as DRF renders JSON."""
    text = json.dumps(problem, cls=JSONEncoder, ensure_ascii=False, separators=(",", ":"))
    return text.encode()


class IdempotencyConfigurationError(ImproperlyConfigured):
    """The project's idempotency settings or view options are wrong."""


class IdempotencyError(exceptions.APIException):
    """Base of every idempotency error a client can receive."""

    title = "Idempotency error"
    headers: dict[str, str]

    def __init__(self, detail: str | None = None, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.headers = headers or {}

    @property
    def problem(self) -> dict[str, Any]:
        return problem_details(self.status_code, self.default_code, str(self.detail), self.title)


class IdempotencyKeyInvalid(IdempotencyError):
    status_code = status.HTTP_400_BAD_REQUEST
    title = "Invalid idempotency key"
    default_detail = "The idempotency key is malformed."
    default_code = "idempotency_key_invalid"


class IdempotencyKeyMissing(IdempotencyError):
    status_code = status.HTTP_400_BAD_REQUEST
    title = "Idempotency key required"
    default_detail = "This endpoint requires an Idempotency-Key header."
    default_code = "idempotency_key_missing"


class IdempotencyScopeMissing(IdempotencyError):
    status_code = status.HTTP_400_BAD_REQUEST
    title = "Idempotency key needs a caller"
    default_detail = "Idempotency keys are only accepted from authenticated callers."
    default_code = "idempotency_key_unscoped"


class IdempotencyKeyMismatch(IdempotencyError):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    title = "Idempotency key reused"
    default_detail = (
        "This idempotency key was already used with a different request. "
        "Use a new key for a different request."
    )
    default_code = "idempotency_key_mismatch"


class IdempotencyKeyInUse(IdempotencyError):
    status_code = status.HTTP_409_CONFLICT
    title = "Request in progress"
    default_detail = "A request with this idempotency key is still being processed. Retry later."
    default_code = "idempotency_key_in_use"


class IdempotencyLeaseLost(IdempotencyError):
    status_code = status.HTTP_409_CONFLICT
    title = "Request superseded"
    default_detail = (
        "This request took too long and its idempotency key was taken over by a retry. "
        "Nothing from this request was applied."
    )
    default_code = "idempotency_lease_lost"


class IdempotencyKeyNotReplayable(IdempotencyError):
    status_code = status.HTTP_409_CONFLICT
    title = "Response not replayable"
    default_detail = (
        "The request with this idempotency key completed, but its response was streamed or too "
        "large to store. It was not run again."
    )
    default_code = "idempotency_key_not_replayable"


class IdempotencyReplayNotAcceptable(IdempotencyError):
    status_code = status.HTTP_406_NOT_ACCEPTABLE
    title = "Stored response not acceptable"
    default_detail = (
        "The request with this idempotency key completed with a response of a media type this "
        "request's Accept header excludes. It was not run again."
    )
    default_code = "idempotency_replay_not_acceptable"


class IdempotencyLengthRequired(IdempotencyError):
    status_code = status.HTTP_411_LENGTH_REQUIRED
    title = "Length required"
    default_detail = (
        "This server cannot read a chunked request body to its end. Nothing was run; send the "
        "body with a Content-Length header."
    )
    default_code = "idempotency_length_required"


class IdempotencyStoreUnavailable(IdempotencyError):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    title = "Idempotency store unavailable"
    default_detail = "The idempotency key store cannot be reached. Nothing was run; retry later."
    default_code = "idempotency_store_unavailable"


def problem_response(
    problem: IdempotencyError | Mapping[str, Any], headers: Mapping[str, str] | None = None
) -> HttpResponse:
    """An idempotency error, or a body from :func:`problem_details`, as
    ``application/problem+json``."""
    if isinstance(problem, IdempotencyError):
        headers = {**problem.headers, **(headers or {})}
        problem = problem.problem
    return HttpResponse(
        problem_json(problem),
        status=problem["status"],
        content_type=PROBLEM_CONTENT_TYPE,
        headers=headers,
    )


class ProblemResponse(Response):
    """A DRF ``Response`` of problem details: rendered by :func:`problem_json` whatever renderer
    the request negotiated, so that a browser gets the same bytes as a JSON client."""

    @property
    def rendered_content(self) -> bytes:  # type: ignore[override]  # Django's stub says str
        self["Content-Type"] = PROBLEM_CONTENT_TYPE
        return problem_json(self.data)


def problem_exception_handler(exc: Exception, context: dict[str, Any]) -> Any:
    """DRF ``EXCEPTION_HANDLER`` that answers every API error as problem details.

    Optional: idempotency errors are problem details with or without it.
    """
    # Imported here, not at the top: this module is on a worker's import path (the system
    # checks read its exceptions), and a worker never needs DRF's views.
    from rest_framework.views import exception_handler

    if isinstance(exc, Http404):  # as DRF's own handler does, so they get problem bodies too
        exc = exceptions.NotFound(*exc.args)
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(*exc.args)
    response = exception_handler(exc, context)
    if response is None or not isinstance(exc, exceptions.APIException):
        return response
    headers = {name: value for name, value in response.items() if name.lower() != "content-type"}
    if isinstance(exc, IdempotencyError):
        problem = exc.problem
        headers.update(exc.headers)
    else:
        data = response.data
        detail = data.get("detail") if isinstance(data, dict) else None
        problem = problem_details(
            response.status_code,
            _code_of(exc),
            str(detail) if detail is not None else "The request is invalid.",
        )
        if detail is None:
            problem["errors"] = data
    return ProblemResponse(
        problem, status=response.status_code, headers=headers, content_type=PROBLEM_CONTENT_TYPE
    )


def _code_of(exc: exceptions.APIException) -> str:
    codes = exc.get_codes()
    return codes if isinstance(codes, str) else exc.default_code
