"""Problem details (RFC 9457) for errors outside DRF views: malformed requests, unknown URLs,
crashes, and the database being unreachable. Built and rendered as the library's own."""

from __future__ import annotations

import sys

from django.core.exceptions import RequestDataTooBig
from django.db.utils import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse

from idempotency_jobs.exceptions import problem_details, problem_response


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """Requests Django refuses before any view: too big, too many fields, broken multipart."""
    if isinstance(exception, RequestDataTooBig):
        detail = "The request body is larger than this service accepts."
        return problem_response(
            problem_details(413, "request_too_large", detail, "Content Too Large")
        )
    return problem_response(problem_details(400, "bad_request", "The request is malformed."))


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return problem_response(problem_details(404, "not_found", "No such resource."))


def server_error(request: HttpRequest) -> HttpResponse:
    """A crash; or, if the database cannot be reached, a 503 (docs/semantics.md#answers: fail
    closed, retry)."""
    if isinstance(sys.exception(), OperationalError | InterfaceError):
        detail = "The service's database cannot be reached; nothing was done. Retry later."
        problem = problem_details(503, "database_unavailable", detail)
        return problem_response(problem, headers={"Retry-After": "1"})
    return problem_response(problem_details(500, "error", "The server failed; retry later."))
