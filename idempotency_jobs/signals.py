"""What the app tells a project as it goes: Django signals, and one log line per key outcome.

Every signal and its arguments are documented in ``docs/observability.md``. Receivers run
synchronously, in the request's (or the worker's) thread; an exception in one is logged and
never changes an outcome (``send_robust``).
"""

from __future__ import annotations

import logging
from typing import Any

from django.dispatch import Signal

__all__ = [
    "OUTCOME_LOGGER",
    "job_finished",
    "job_started",
    "key_in_use",
    "key_lease_lost",
    "key_mismatch",
    "key_replayed",
]

OUTCOME_LOGGER = "idempotency_jobs.outcomes"

# sender: the view class; arguments: request, view, scope, key, and for a replay, response.
key_replayed = Signal()
key_in_use = Signal()
key_mismatch = Signal()
key_lease_lost = Signal()
# sender: Job; arguments: job, and for job_finished, status.
job_started = Signal()
job_finished = Signal()

outcome_logger = logging.getLogger(OUTCOME_LOGGER)

KEY_SIGNALS = {
    "replayed": key_replayed,
    "in_use": key_in_use,
    "mismatch": key_mismatch,
    "lease_lost": key_lease_lost,
}
WARNING_OUTCOMES = frozenset({"mismatch", "lease_lost"})


def key_outcome(
    outcome: str, *, view: Any, request: Any, scope: str, key: str, status: int | None, **extra: Any
) -> None:
    """Log one keyed request's outcome, and send its signal if it has one."""
    level = logging.WARNING if outcome in WARNING_OUTCOMES else logging.INFO
    outcome_logger.log(
        level,
        "Idempotency key %r of %s: %s (%s)",
        key,
        scope,
        outcome,
        status,
        extra={"outcome": outcome, "scope": scope, "key": key, "status_code": status},
    )
    signal = KEY_SIGNALS.get(outcome)
    if signal is not None:
        signal.send_robust(
            sender=type(view), request=request, view=view, scope=scope, key=key, **extra
        )
