"""The CSV of an import job, kept in Django's storage rather than in the job's row.

When the job is created the CSV is written to ``SUBSCRIBER_IMPORT_STORAGE`` under a new name,
and the job's params keep a reference: ``{"name", "size", "rows"}``. A worker streams the file
and never loads it whole (the row, and so the worker, would otherwise hold it all).

The file lives as long as its job: a job may run again (a worker died, a delivery was
duplicated) and must find its input, so the file is deleted with the job's row (the signal at
the bottom), not when the job finishes. That is how long the CSV lived when it was a param.
A file is also deleted when the job it was written for could not be created. The file is
written before the job's transaction commits (a worker must find it), so a transaction that
rolls back after the view returned (the key's lease was lost, the answer failed), or a process
that dies before the commit, leaves a file no job refers to: ``orphaned_csvs`` finds those,
and ``manage.py purge_import_files`` deletes them once they are older than any request.
"""

from __future__ import annotations

import io
import itertools
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, TextIO

from django.core.files.base import ContentFile
from django.core.files.storage import Storage, storages
from django.db import transaction
from django.db.models.signals import post_delete
from django.utils import timezone

from example_project.conf import setting
from idempotency_jobs.models import Job

__all__ = [
    "CsvFileMissing",
    "delete_csv",
    "import_storage",
    "open_csv",
    "orphaned_csvs",
    "store_csv",
]


class CsvFileMissing(Exception):
    """The job's CSV is not (all) in the storage any more."""


def import_storage() -> Storage:
    return storages[setting("SUBSCRIBER_IMPORT_STORAGE")]


PREFIX = "imports/subscribers-"


def store_csv(csv_text: str, *, rows: int) -> dict[str, Any]:
    """Write the CSV to the storage; return the reference a job keeps."""
    data = csv_text.encode("utf-8")
    name = import_storage().save(f"{PREFIX}{uuid.uuid4()}.csv", ContentFile(data))
    return {"name": name, "size": len(data), "rows": rows}


@contextmanager
def open_csv(reference: dict[str, Any]) -> Iterator[TextIO]:
    """The stored CSV as text, read from the storage as it is consumed."""
    storage = import_storage()
    try:
        size = storage.size(reference["name"])
    except FileNotFoundError:
        raise CsvFileMissing(f"The CSV of this import ({reference['name']}) is gone.") from None
    if size != reference["size"]:
        raise CsvFileMissing(
            f"The CSV of this import ({reference['name']}) has {size} bytes, not the "
            f"{reference['size']} it was stored with."
        )
    with storage.open(reference["name"], "rb") as data:
        # The file object itself where there is one: TextIOWrapper asks its buffer whether it
        # is closed for every line, and File.closed is a Python property (benchmark 4).
        stream = data.file if isinstance(data.file, io.IOBase) else data
        # newline="": the csv module sees line ends as they are (quoted ones included).
        yield io.TextIOWrapper(stream, encoding="utf-8", newline="")


def delete_csv(reference: dict[str, Any]) -> None:
    import_storage().delete(reference["name"])


def orphaned_csvs(older_than: timedelta, *, now: datetime | None = None) -> list[str]:
    """The stored CSVs no job refers to, written more than ``older_than`` ago (younger ones
    may belong to a request that has not committed yet)."""
    storage = import_storage()
    directory, _, prefix = PREFIX.rpartition("/")
    try:
        files = storage.listdir(directory)[1]
    except FileNotFoundError:
        return []
    before = (now or timezone.now()) - older_than
    names = sorted(
        f"{directory}/{file}" for file in files if file.startswith(prefix) and file.endswith(".csv")
    )
    old = [name for name in names if storage.get_modified_time(name) < before]
    referred: set[str] = set()
    for batch in itertools.batched(old, 500):
        jobs = Job.objects.filter(params__csv_file__name__in=batch)
        referred.update(jobs.values_list("params__csv_file__name", flat=True))
    return [name for name in old if name not in referred]


def delete_with_its_job(sender: type[Job], instance: Job, **kwargs: Any) -> None:
    """``post_delete`` of a job: its stored CSV goes too, once the deletion is committed."""
    reference = (instance.params or {}).get("csv_file")
    if isinstance(reference, dict) and str(reference.get("name", "")).startswith(PREFIX):
        transaction.on_commit(lambda: delete_csv(reference), robust=True)


def connect_signals() -> None:
    post_delete.connect(delete_with_its_job, sender=Job, dispatch_uid="subscriber-import-csv")
