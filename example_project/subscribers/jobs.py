"""The subscriber job kinds. Found by workers through ``get_job_kind``'s autodiscovery."""

from __future__ import annotations

from typing import Any

from example_project.workspaces.models import Workspace
from idempotency_jobs.jobs import JobFailed, JobKind, JobRun, register_job_kind

from .exports import export_subscribers
from .imports import CsvProblem, import_subscribers
from .serializers import SubscriberExportSerializer, SubscriberImportSerializer

__all__ = ["EXPORT", "IMPORT"]


def run_import(params: dict[str, Any], run: JobRun) -> dict[str, Any]:
    workspace_id = Workspace.id_from_scope(run.job.owner)
    try:
        return import_subscribers(workspace_id, params["csv_text"], params["mappings"], run)
    except CsvProblem as exc:
        raise JobFailed(str(exc), code="invalid_csv") from None


def run_export(params: dict[str, Any], run: JobRun) -> dict[str, Any]:
    workspace_id = Workspace.id_from_scope(run.job.owner)
    return export_subscribers(workspace_id, run.job.pk, params["fields"], params["filters"], run)


IMPORT = register_job_kind(
    JobKind(
        name="subscriber_import",
        object="subscriber_import_job",
        serializer_class=SubscriberImportSerializer,
        handler=run_import,
    )
)
EXPORT = register_job_kind(
    JobKind(
        name="subscriber_export",
        object="subscriber_export_job",
        serializer_class=SubscriberExportSerializer,
        handler=run_export,
    )
)
