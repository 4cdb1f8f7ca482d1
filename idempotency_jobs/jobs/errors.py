"""The ``error`` of a failed job, one value type for every way a job fails."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["JobError"]


@dataclass(frozen=True, slots=True)
class JobError:
    """Why a job failed: its JSON's ``error`` member is ``{"code", "message", "details"}``.

    ``code`` is stable (clients branch on it), ``message`` is for people, ``details`` holds
    JSON-ready values. The library's own codes are built by the class methods; a handler's
    ``JobFailed`` gives its own.
    """

    code: str
    message: str
    details: Mapping[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": dict(self.details)}

    @classmethod
    def crashed(cls) -> JobError:
        """The handler raised something other than ``JobFailed`` (logged, never shown)."""
        return cls("job_crashed", "The job stopped on an unexpected error.")

    @classmethod
    def attempts_exhausted(cls, attempts: int) -> JobError:
        """Started ``attempts`` times, and its worker stopped responding every time."""
        return cls(
            "job_attempts_exhausted",
            f"The job was started {attempts} times and its worker stopped responding each "
            "time; it will not be retried.",
            {"attempts": attempts},
        )

    @classmethod
    def interrupted_too_often(cls, attempts: int) -> JobError:
        """Started ``attempts`` times, the last run cut short by a transient failure."""
        return cls(
            "job_attempts_exhausted",
            f"The job was started {attempts} times without finishing, the last time "
            "interrupted by a transient failure (such as a lost database connection or a "
            "deadlock); it will not be retried.",
            {"attempts": attempts},
        )

    @classmethod
    def cancelled(cls) -> JobError:
        """An operator cancelled it before it started."""
        return cls("job_cancelled", "The job was cancelled before it started.")
