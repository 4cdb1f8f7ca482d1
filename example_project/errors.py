"""Problem details (RFC 9457) for errors outside DRF views: unknown URLs and crashes."""

from __future__ import annotations

import json

from django.http import HttpRequest, HttpResponse

from idempotency_jobs.exceptions import PROBLEM_CONTENT_TYPE


def _problem(status: int, title: str, detail: str, code: str) -> HttpResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, "code": code}
    return HttpResponse(json.dumps(body), status=status, content_type=PROBLEM_CONTENT_TYPE)


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _problem(404, "Not Found", "No such resource.", "not_found")


def server_error(request: HttpRequest) -> HttpResponse:
    return _problem(500, "Internal Server Error", "The server failed; retry later.", "error")
