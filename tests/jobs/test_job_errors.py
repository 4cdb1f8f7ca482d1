"""One value type for a failed job's ``error``, whichever way it failed."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from idempotency_jobs.jobs.errors import JobError
from idempotency_jobs.jobs.kinds import JobFailed

DOCS = Path(__file__).resolve().parents[2] / "docs" / "jobs.md"


def test_an_error_is_frozen_and_renders_code_message_and_details() -> None:
    error = JobError("invalid_csv", "Row without email.", {"row": 3})
    with pytest.raises(dataclasses.FrozenInstanceError):
        error.code = "other"  # type: ignore[misc]
    assert error.as_json() == {
        "code": "invalid_csv",
        "message": "Row without email.",
        "details": {"row": 3},
    }
    assert JobError("x", "y").as_json()["details"] == {}


def test_a_handler_s_job_failed_is_a_job_error_with_json_ready_details() -> None:
    import uuid

    pk = uuid.UUID(int=7)
    error = JobFailed("Row without email.", code="invalid_csv", row=3, subscriber=pk).error
    assert error == JobError("invalid_csv", "Row without email.", {"row": 3, "subscriber": str(pk)})
    assert JobFailed("No.").error.code == "job_failed"


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (JobError.crashed(), "job_crashed"),
        (JobError.attempts_exhausted(5), "job_attempts_exhausted"),
        (JobError.interrupted_too_often(5), "job_attempts_exhausted"),
        (JobError.cancelled(), "job_cancelled"),
    ],
)
def test_the_library_s_own_errors_carry_documented_codes(error: JobError, code: str) -> None:
    assert error.code == code
    assert re.search(rf"^\| `{code}`", DOCS.read_text(), re.M), code
    assert error.message.endswith(".")
    if code == "job_attempts_exhausted":
        assert error.details == {"attempts": 5} and "5 times" in error.message
