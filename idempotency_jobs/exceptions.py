"""Errors a client sees, as RFC 9457 problem details, and the configuration error.

Every client error subclasses :class:`IdempotencyError` (a DRF ``APIException``), so projects can
catch one base. ``code`` is stable: clients branch on it, never on ``title`` or ``detail``.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, HttpResponse
from rest_framework import exceptions, status
from rest_framework.views import exception_handler

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
    "problem_exception_handler",
    "problem_response",
]

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://idempotency-jobs.readthedocs.io/problems/"


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
        code = self.default_code
        return {
            "type": PROBLEM_TYPE_BASE + code.replace("_", "-"),
            "title": self.title,
            "status": self.status_code,
            "detail": str(self.detail),
            "code": code,
        }


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


def problem_response(exc: IdempotencyError) -> HttpResponse:
    """Render an idempotency error as ``application/problem+json``."""
    response = HttpResponse(
        json.dumps(exc.problem), status=exc.status_code, content_type=PROBLEM_CONTENT_TYPE
    )
    for name, value in exc.headers.items():
        response[name] = value
    return response


def problem_exception_handler(exc: Exception, context: dict[str, Any]) -> Any:
    """DRF ``EXCEPTION_HANDLER`` that answers every API error as problem details.

    Optional: idempotency errors are problem details with or without it.
    """
    if isinstance(exc, Http404):  # as DRF's own handler does, so they get problem bodies too
        exc = exceptions.NotFound(*exc.args)
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(*exc.args)
    response = exception_handler(exc, context)
    if response is None or not isinstance(exc, exceptions.APIException):
        return response
    if isinstance(exc, IdempotencyError):
        problem = exc.problem
    else:
        data = response.data
        detail = data.get("detail") if isinstance(data, dict) else None
        problem = {
            "type": "about:blank",
            "title": response.status_text,
            "status": response.status_code,
            "detail": str(detail) if detail is not None else "The request is invalid.",
            "code": _code_of(exc),
        }
        if detail is None:
            problem["errors"] = data
    response.data = problem
    response.content_type = PROBLEM_CONTENT_TYPE
    return response


def _code_of(exc: exceptions.APIException) -> str:
    codes = exc.get_codes()
    return codes if isinstance(codes, str) else exc.default_code
