"""The subscriber job kinds. Found by workers through ``get_job_kind``'s autodiscovery."""

from __future__ import annotations

from typing import Any

from example_project.workspaces.models import Workspace
from idempotency_jobs.jobs.kinds import JobFailed, JobKind, JobRun, register_job_kind

from .bulk import CsvFileMissing, CsvProblem, export_subscribers, import_subscribers, open_csv
from .serializers import SubscriberExportSerializer, SubscriberImportSerializer

__all__ = ["EXPORT", "IMPORT"]


def run_import(params: dict[str, Any], run: JobRun) -> dict[str, Any]:
    workspace_id = Workspace.id_from_scope(run.job.owner)
    try:
        with open_csv(params["csv_file"]) as csv_file:
            return import_subscribers(
                workspace_id,
                csv_file,
                params["mappings"],
                run,
                rows_total=params["csv_file"]["rows"],
            )
    except CsvProblem as exc:
        raise JobFailed(str(exc), code="invalid_csv") from None
    except CsvFileMissing as exc:
        raise JobFailed(str(exc), code="csv_file_missing") from None


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
