"""Mailrith-like subscriber API: list, import jobs, export jobs and export downloads."""

from __future__ import annotations

import uuid
from typing import Any

from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import generics
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.serializers import Serializer
from rest_framework.views import APIView

from example_project.openapi import MAILRITH_IMPORT_EXAMPLE, not_found
from example_project.workspaces.api import WorkspaceAPIMixin
from idempotency_jobs.jobs.serializers import JobSerializer
from idempotency_jobs.jobs.views import JobViewSet
from idempotency_jobs.models import Job

from .bulk import delete_csv, export_file_name, export_storage, store_csv
from .jobs import EXPORT, IMPORT
from .models import Subscriber
from .serializers import (
    SubscriberListFiltersSerializer,
    SubscriberSerializer,
)

__all__ = [
    "SubscriberExportFileView",
    "SubscriberExportJobViewSet",
    "SubscriberImportJobViewSet",
    "SubscriberListView",
]


class SubscriberPagination(PageNumberPagination):
    """``?page_size=`` from 1 to 1000, else a 400 (DRF would quietly use its default, or cap
    it); empty means the default, as an empty filter filters nothing."""

    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000
    page_size_message = f"A whole number from 1 to {max_page_size} (default {page_size})."

    def get_page_size(self, request: Request) -> int:
        value = request.query_params.get(self.page_size_query_param, "").strip()
        if not value:
            return self.page_size
        digits = len(str(self.max_page_size))  # int() of thousands of digits is an error
        whole = value.isascii() and value.isdigit() and len(value) <= digits
        if not (whole and 1 <= int(value) <= self.max_page_size):
            raise ValidationError({self.page_size_query_param: [self.page_size_message]})
        return int(value)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["description"] = self.page_size_message
                most = self.max_page_size
                parameter["schema"] = {"type": "integer", "minimum": 1, "maximum": most}
        return parameters


@extend_schema_view(
    get=extend_schema(
        summary="List subscribers",
        tags=["subscribers"],
        parameters=[SubscriberListFiltersSerializer],
    )
)
class SubscriberListView(WorkspaceAPIMixin, generics.ListAPIView[Subscriber]):
    """The workspace's subscribers, oldest first; `?status=` and `?email=` filter."""

    serializer_class = SubscriberSerializer
    pagination_class = SubscriberPagination

    def get_queryset(self):  # type: ignore[no-untyped-def]
        subscribers = Subscriber.objects.filter(workspace=self.workspace)
        filters = SubscriberListFiltersSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        params = filters.validated_data
        if params.get("status"):
            subscribers = subscribers.filter(status=params["status"])
        if params.get("email"):
            subscribers = subscribers.filter(email=params["email"].strip().lower())
        return subscribers.order_by("created_at", "id")


# The job endpoints' request bodies (the job kind's serializer) and their 202 with Location are
# documented by idempotency_jobs itself: these say only what is the service's own.
@extend_schema_view(
    create=extend_schema(
        summary="Create a subscriber import job",
        tags=["subscriber-imports"],
        description="Queues an asynchronous subscriber import from CSV text.",
        examples=[MAILRITH_IMPORT_EXAMPLE],
    ),
    retrieve=extend_schema(
        summary="Get a subscriber import job",
        tags=["subscriber-imports"],
        description="Returns the current state of a previously created import job.",
        responses={200: JobSerializer, **not_found("No import job of this workspace has this id.")},
    ),
)
class SubscriberImportJobViewSet(WorkspaceAPIMixin, JobViewSet):
    job_kind = IMPORT

    def perform_create_job(self, params: Serializer[Any], owner: str) -> Job:
        """The CSV goes to storage and the job keeps a reference to it (``bulk/files.py``):
        a worker then streams it instead of loading it with the job's row."""
        data = params.validated_data
        reference = store_csv(data.pop("csv_text"), rows=data.pop("csv_rows"))
        data["csv_file"] = reference
        try:
            return super().perform_create_job(params, owner)
        except BaseException:
            delete_csv(reference)
            raise


class SubscriberExportJobSerializer(JobSerializer):
    """An export job; when it has succeeded, `result.url` is where its CSV is."""

    # The download url is made absolute, like the job's Location: the worker that wrote the
    # result knows no host (unless PUBLIC_BASE_URL names one), the request does.

    def to_representation(self, instance: Job) -> dict[str, Any]:
        data: dict[str, Any] = super().to_representation(instance)
        result, request = data.get("result"), self.context.get("request")
        if isinstance(result, dict) and isinstance(result.get("url"), str) and request:
            data["result"] = {**result, "url": request.build_absolute_uri(result["url"])}
        return data


@extend_schema_view(
    create=extend_schema(
        summary="Create a subscriber export job",
        tags=["subscriber-exports"],
        description="Queues an asynchronous subscriber export for the authenticated workspace.",
    ),
    retrieve=extend_schema(
        summary="Get a subscriber export job",
        tags=["subscriber-exports"],
        description="Returns the current state of a previously created export job.",
        responses={
            200: SubscriberExportJobSerializer,
            **not_found("No export job of this workspace has this id."),
        },
    ),
)
class SubscriberExportJobViewSet(WorkspaceAPIMixin, JobViewSet):
    job_kind = EXPORT
    serializer_class = SubscriberExportJobSerializer


class SubscriberExportFileView(WorkspaceAPIMixin, APIView):
    """The CSV of a finished export, streamed from storage; other workspaces get a 404."""

    @extend_schema(
        summary="Download a subscriber export",
        tags=["subscriber-exports"],
        responses={
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.BINARY, description="The CSV file."),
            **not_found("No finished export of this workspace has this id."),
        },
    )
    def get(self, request: Request, id: str) -> FileResponse:
        try:
            pk = uuid.UUID(id)
        except ValueError:
            raise NotFound("No such export.") from None
        finished = Job.objects.for_owner(self.workspace.scope).filter(
            pk=pk, kind=EXPORT.name, status=Job.Status.SUCCEEDED
        )
        storage = export_storage()
        name = export_file_name(pk)
        if not finished.exists() or not storage.exists(name):
            raise NotFound("No such export, or it has not finished yet.")
        return FileResponse(
            storage.open(name, "rb"),
            as_attachment=True,
            filename=f"subscribers-{pk}.csv",
            content_type="text/csv; charset=utf-8",
        )
