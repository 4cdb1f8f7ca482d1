"""Problem details (RFC 9457) for errors outside DRF views: malformed requests, unknown URLs,
crashes, and the database being unreachable."""

from __future__ import annotations

import json
import sys

from django.core.exceptions import RequestDataTooBig
from django.db.utils import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse

from idempotency_jobs.exceptions import PROBLEM_CONTENT_TYPE


def _problem(status: int, title: str, detail: str, code: str) -> HttpResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, "code": code}
    return HttpResponse(json.dumps(body), status=status, content_type=PROBLEM_CONTENT_TYPE)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """Requests Django refuses before any view: too big, too many fields, broken multipart."""
    if isinstance(exception, RequestDataTooBig):
        detail = "The request body is larger than this service accepts."
        return _problem(413, "Content Too Large", detail, "request_too_large")
    return _problem(400, "Bad Request", "The request is malformed.", "bad_request")


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _problem(404, "Not Found", "No such resource.", "not_found")


def server_error(request: HttpRequest) -> HttpResponse:
    """A crash; or, if the database cannot be reached, a 503 (SPEC §4: fail closed, retry)."""
    if isinstance(sys.exception(), OperationalError | InterfaceError):
        detail = "The service's database cannot be reached; nothing was done. Retry later."
        response = _problem(503, "Service Unavailable", detail, "database_unavailable")
        response["Retry-After"] = "1"
        return response
    return _problem(500, "Internal Server Error", "The server failed; retry later.", "error")
