"""Bugs in idempotency_jobs found while building the example project, now fixed."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied
from django.http import Http404

from idempotency_jobs.exceptions import PROBLEM_CONTENT_TYPE, problem_exception_handler


@pytest.mark.parametrize("exc", [Http404("gone"), PermissionDenied()], ids=["404", "403"])
def test_problem_handler_answers_django_errors_as_problem_details(exc: Exception) -> None:
    response = problem_exception_handler(
        exc, {"view": None, "request": None, "args": (), "kwargs": {}}
    )
    assert response is not None
    assert response.content_type == PROBLEM_CONTENT_TYPE
    assert response.data["status"] == response.status_code
