"""The job endpoint (docs/jobs.md): ``POST`` answers ``202 Accepted`` with the job JSON and a
``Location``; ``GET`` on that location returns the job's current state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import router, transaction
from rest_framework import exceptions, mixins, serializers, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from idempotency_jobs.jobs.kinds import JobKind, to_json
from idempotency_jobs.jobs.models import Job
from idempotency_jobs.jobs.serializers import JobSerializer
from idempotency_jobs.jobs.tasks import enqueue_job
from idempotency_jobs.jobs.unknown_fields import unknown_fields
from idempotency_jobs.keys.drf import IdempotencyMixin, idempotency_claim

if TYPE_CHECKING:
    from django.db.models import QuerySet

__all__ = ["JobViewSet"]


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
