"""Job kinds and what a handler sees (docs/jobs.md): the registry, :class:`JobRun`, and the
exceptions a handler raises. Workers import this module; it imports nothing of DRF's views.

A project declares a :class:`JobKind` (what the POST body looks like, what runs), registers it,
and exposes it with a :class:`~idempotency_jobs.jobs.views.JobViewSet` subclass.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.core.serializers.json import DjangoJSONEncoder
from django.utils.module_loading import autodiscover_modules

from idempotency_jobs.conf import idempotency_settings
from idempotency_jobs.jobs.errors import JobError

if TYPE_CHECKING:
    from rest_framework import serializers

    from idempotency_jobs.jobs.models import Job

__all__ = [
    "JobError",
    "JobFailed",
    "JobKind",
    "JobLeaseLost",
    "JobRun",
    "get_job_kind",
    "register_job_kind",
    "to_json",
]

Handler = Callable[[dict[str, Any], "JobRun"], dict[str, Any] | None]
_NO_DEFAULT: Any = object()


@dataclass(frozen=True)
class JobKind:
    """What a kind of job takes (``serializer_class``) and what it runs (``handler``).

    ``handler(params, run)`` returns the result dict, or raises :class:`JobFailed`. It may run
    more than once for one job (a worker died, a delivery was duplicated), so it must be
    idempotent: upsert rather than insert, rewrite rather than append.
    """

    name: str
    object: str
    serializer_class: type[serializers.Serializer[Any]]
    handler: Handler


_registry: dict[str, JobKind] = {}
_discovered = False


def register_job_kind(kind: JobKind) -> JobKind:
    """Make ``kind`` known to the views and the workers (by its ``name``)."""
    existing = _registry.get(kind.name)
    if existing is not None and existing != kind:
        raise ImproperlyConfigured(f"Another job kind is already registered as {kind.name!r}.")
    _registry[kind.name] = kind
    return kind


def get_job_kind(name: str, default: Any = _NO_DEFAULT) -> JobKind:
    """The registered kind ``name``, importing every app's ``jobs`` module on the first miss.

    A worker never imports the URLconf, so it finds kinds the way the admin finds
    ``admin.py``: each installed app's ``jobs`` module is imported once.
    """
    global _discovered
    if name not in _registry and not _discovered and apps.ready:
        _discovered = True
        autodiscover_modules("jobs")
    try:
        return _registry[name]
    except KeyError:
        if default is not _NO_DEFAULT:
            return default
        raise LookupError(f"No job kind {name!r} is registered.") from None


class JobFailed(Exception):
    """Raise from a handler to fail the job cleanly; ``message`` and ``details`` reach the client.

    The job's ``error`` becomes ``{"code": code, "message": message, "details": details}``
    (:attr:`error`).
    """

    def __init__(self, message: str, *, code: str = "job_failed", **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.details = details

    @property
    def error(self) -> JobError:
        return JobError(self.code, self.message, to_json(self.details))


class JobLeaseLost(Exception):
    """The job was handed to another worker (this one was presumed dead): stop working on it."""


class JobRun:
    """Passed to a handler: the job being run, and a way to report progress.

    Every progress write also renews the worker's lease, so a handler that reports progress at
    least once per ``JOB_HEARTBEAT_LEASE`` is never mistaken for a dead worker.
    """

    def __init__(self, job: Job) -> None:
        self.job = job
        self.current: dict[str, Any] = dict(job.progress or {})
        self._last_write = time.monotonic()
        self._dirty = False

    def progress(self, **fields: Any) -> None:
        """Merge ``fields`` into the job's progress; written at most every
        ``JOB_PROGRESS_INTERVAL`` (the final progress is always written with the outcome).

        Raises :class:`JobLeaseLost` if the job has been handed to another worker.
        """
        self.current.update(to_json(fields))
        self._dirty = True
        interval = idempotency_settings.JOB_PROGRESS_INTERVAL.total_seconds()
        if time.monotonic() - self._last_write >= interval:
            self.flush()

    def flush(self) -> None:
        """Write pending progress and renew the lease now."""
        progress = dict(self.current) if self._dirty else None
        lease = idempotency_settings.JOB_HEARTBEAT_LEASE
        if not self.job.heartbeat(lease=lease, progress=progress):
            raise JobLeaseLost(f"Job {self.job.pk} was taken over by another worker.")
        self._last_write = time.monotonic()
        self._dirty = False


def to_json(data: Any) -> Any:
    """``data`` as plain JSON types (dates, decimals and UUIDs become strings)."""
    return json.loads(json.dumps(data, cls=DjangoJSONEncoder))
