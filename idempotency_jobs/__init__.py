"""Stripe-grade idempotency keys and asynchronous jobs for Django REST framework.

Public API: ``idempotency_jobs.keys.drf`` (``IdempotencyMixin``, ``idempotent``),
``idempotency_jobs.jobs`` (job kinds and their viewset), ``idempotency_jobs.exceptions``,
``idempotency_jobs.signals`` (what happened to a key or a job).
"""

import importlib.metadata

__all__ = ["__version__"]

try:
    __version__ = importlib.metadata.version("idempotency-jobs")
except importlib.metadata.PackageNotFoundError:  # pragma: no cover - running from a checkout
    __version__ = "0.0.0"
