"""Asynchronous jobs behind idempotent POSTs (docs/jobs.md).

A project declares a :class:`JobKind` (what the POST body looks like, what runs), registers it,
and exposes it with a :class:`JobViewSet` subclass. ``POST`` answers ``202 Accepted`` with the
job JSON and a ``Location``; ``GET`` on that location returns the job's current state.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.core.serializers.json import DjangoJSONEncoder
from django.db import router, transaction
from django.utils.module_loading import autodiscover_modules
from rest_framework import exceptions, mixins, serializers, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from .conf import idempotency_settings
from .drf import IdempotencyMixin, idempotency_claim
from .job_errors import JobError
from .models import Job
from .serializers import JobSerializer
from .unknown_fields import unknown_fields

if TYPE_CHECKING:
    from django.db.models import QuerySet

__all__ = [
    "JobError",
    "JobFailed",
    "JobKind",
    "JobLeaseLost",
    "JobRun",
    "JobViewSet",
    "enqueue_job",
    "get_job_kind",
    "register_job_kind",
]

logger = logging.getLogger(__name__)

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


def enqueue_job(job: Job) -> None:
    """Hand ``job`` to the task backend once the current transaction commits.

    A job is never run before its row is committed. If the enqueue itself fails (broker
    down), the job stays ``queued`` and ``recover_jobs`` enqueues it again later.
    """
    from .tasks import send_job

    alias = router.db_for_write(Job)
    transaction.on_commit(lambda: send_job(job), using=alias, robust=True)


class JobViewSet(IdempotencyMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet[Job]):
    """``POST`` creates a job of ``job_kind`` (202 + ``Location``); ``GET {id}`` shows it.

    Subclasses set ``job_kind`` and, where jobs belong to something other than the caller's
    idempotency scope (e.g. a workspace), override :meth:`get_job_owner`. A body member the
    kind's serializer does not read is a 400 naming it, unless ``allow_unknown_fields``.
    """

    job_kind: JobKind
    allow_unknown_fields = False
    serializer_class = JobSerializer
    lookup_value_regex = "[0-9a-fA-F-]{32,36}"

    def get_job_owner(self, request: Request) -> str | None:
        """Whose jobs these are; ``None`` means an anonymous caller, who has none."""
        return self.get_idempotency_scope(request)

    def get_queryset(self) -> QuerySet[Job]:
        owner = self.get_job_owner(self.request)
        if owner is None:
            return Job.objects.none()
        return Job.objects.for_owner(owner).filter(kind=self.job_kind.name)

    def get_serializer_context(self) -> dict[str, Any]:
        return {**super().get_serializer_context(), "job_kind": self.job_kind}

    def get_params_serializer(self, *args: Any, **kwargs: Any) -> serializers.Serializer[Any]:
        """The serializer that validates the POST body (``job_kind.serializer_class``)."""
        kwargs.setdefault("context", self.get_serializer_context())
        return self.job_kind.serializer_class(*args, **kwargs)

    def validate_params(self, params: serializers.Serializer[Any]) -> None:
        """Raise a ``ValidationError`` naming every invalid and every unknown member at once:
        a misspelt option silently dropped would run a different job than the one asked for."""
        errors: dict[str, Any] = {}
        if not self.allow_unknown_fields:
            for name, taken in unknown_fields(params, params.initial_data).items():
                message = f"Unknown field. Fields taken here: {', '.join(taken)}."
                errors[name] = [exceptions.ErrorDetail(message, code="unknown_field")]
        if not params.is_valid() or errors:
            raise exceptions.ValidationError({**errors, **params.errors})

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        params = self.get_params_serializer(data=request.data)
        self.validate_params(params)
        owner = self.get_job_owner(request)
        if owner is None:
            raise exceptions.NotAuthenticated()
        job = self.perform_create_job(params, owner)
        data = self.get_serializer(job).data
        return Response(
            data, status=status.HTTP_202_ACCEPTED, headers={"Location": self.get_job_url(job)}
        )

    def perform_create_job(self, params: serializers.Serializer[Any], owner: str) -> Job:
        """Create the row and enqueue it on commit: with an idempotency key, in the same
        transaction as the key's completion
        (docs/semantics.md#exactly-once-what-each-store-promises)."""
        claim = idempotency_claim(self.request)
        with transaction.atomic(using=router.db_for_write(Job)):
            job = Job.objects.create(
                kind=self.job_kind.name,
                owner=owner,
                params=to_json(params.validated_data),
                idempotency_key=getattr(claim, "key", ""),
            )
            enqueue_job(job)
        return job

    def get_job_url(self, job: Job) -> str:
        """The job's ``GET`` URL, for the ``Location`` header."""
        lookup = self.lookup_url_kwarg or self.lookup_field or "pk"
        return self.reverse_action("detail", kwargs={lookup: str(job.pk)})
