"""The subscriber export as it was before its perf work (example_project/subscribers/exports.py
at commit 28772b2, unchanged but for one import), for ``benchmarks/ab_export.py`` only.

Subscriber export: write the selected subscribers as CSV into Django's storage.

Memory stays flat whatever the row count: rows are streamed from the database in chunks
(``values_list().iterator(chunk_size)``) through ``csv.writer`` into a temporary file, or on
PostgreSQL the server writes the CSV itself (``COPY (SELECT ...) TO STDOUT``). The file is
then handed to the storage, which on a local ``FileSystemStorage`` is a rename. Running the
job again rewrites the same file.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import tempfile
import uuid
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import IO, Any, Protocol

from django.core.files import File
from django.core.files.storage import Storage, storages
from django.db import connection
from django.db.models import CharField, F, Func, Q, QuerySet
from django.db.models.fields.json import KeyTextTransform
from django.urls import reverse
from django.utils.dateparse import parse_datetime

from example_project.conf import setting
from example_project.subscribers.models import Subscriber

__all__ = [
    "DEFAULT_FIELDS",
    "STANDARD_FIELDS",
    "export_file_name",
    "export_storage",
    "export_subscribers",
    "selection",
]

logger = logging.getLogger(__name__)

STANDARD_FIELDS = ("email", "name", "first_name", "last_name", "status", "created_at", "updated_at")
DEFAULT_FIELDS = ("email", "name", "first_name", "last_name", "status", "created_at")
CUSTOM_PREFIX = "custom:"
TIMESTAMPS = frozenset({"created_at", "updated_at"})


class Progress(Protocol):
    def progress(self, **fields: Any) -> None: ...


class _TemporaryFile(File):
    """Lets ``FileSystemStorage`` move the file into place instead of copying it."""

    def temporary_file_path(self) -> str:
        return str(self.name)


def export_storage() -> Storage:
    return storages[setting("SUBSCRIBER_EXPORT_STORAGE")]


def export_file_name(job_id: uuid.UUID | str) -> str:
    return f"exports/subscribers-{job_id}.csv"


def selection(workspace_id: int, filters: dict[str, Any]) -> QuerySet[Subscriber]:
    """The workspace's subscribers matching an export's ``filters``, oldest first."""
    subscribers = Subscriber.objects.filter(workspace_id=workspace_id)
    if filters.get("status"):
        subscribers = subscribers.filter(status__in=filters["status"])
    if filters.get("created_after"):
        subscribers = subscribers.filter(created_at__gte=_datetime(filters["created_after"]))
    if filters.get("created_before"):
        subscribers = subscribers.filter(created_at__lt=_datetime(filters["created_before"]))
    return subscribers.order_by("created_at", "id")


def _datetime(value: str | datetime) -> datetime:
    parsed = value if isinstance(value, datetime) else parse_datetime(value)
    if parsed is None:
        raise ValueError(f"{value!r} is not a date and time")
    return parsed


def export_subscribers(
    workspace_id: int,
    job_id: uuid.UUID,
    fields: Sequence[str],
    filters: dict[str, Any],
    run: Progress,
) -> dict[str, Any]:
    """Write the CSV file for a job and return its result: row count, size and download URL."""
    subscribers = selection(workspace_id, filters)
    total = subscribers.count()
    run.progress(rows_total=total, rows_written=0)
    use_copy = connection.vendor == "postgresql" and setting("SUBSCRIBER_EXPORT_USE_COPY")
    handle, path = tempfile.mkstemp(suffix=".csv", prefix="subscriber-export-")
    try:
        with os.fdopen(handle, "wb") as out:
            text = io.TextIOWrapper(out, encoding="utf-8", newline="")
            csv.writer(text).writerow(fields)
            text.flush()
            text.detach()
            if use_copy:
                rows = _copy_csv(subscribers, fields, out, total, run)
            else:
                rows = _write_csv(subscribers, fields, out, total, run)
        size = os.path.getsize(path)
        name = _store(export_file_name(job_id), path)
    finally:
        if os.path.exists(path):
            os.unlink(path)
    run.progress(rows_total=total, rows_written=rows)
    url = reverse("subscriber-export-file", kwargs={"job_id": str(job_id)})
    return {
        "row_count": rows,
        "fields": list(fields),
        "size_bytes": size,
        "content_type": "text/csv",
        "url": setting("PUBLIC_BASE_URL").rstrip("/") + url,
        "file_name": name.rsplit("/", 1)[-1],
    }


class IsoTimestamp(Func):
    """A timestamp as ISO 8601 text in UTC with microseconds (``2026-04-11T09:30:00.000000Z``),
    formatted by the database: formatting a million datetimes in Python costs seconds."""

    output_field = CharField()

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        template = (
            "to_char(%(expressions)s AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
        )
        return self.as_sql(compiler, connection, template=template, **extra)

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        # Django stores "YYYY-MM-DD HH:MM:SS[.ffffff]" in UTC; the fraction is left out when 0.
        sql, params = compiler.compile(self.source_expressions[0])
        text = (
            f"substr({sql}, 1, 10) || 'T' || substr({sql}, 12, 8) || '.' || "
            f"substr({sql} || '.000000', 21, 6) || 'Z'"
        )
        return text, (*params, *params, *params)


def _columns(subscribers: QuerySet[Subscriber], fields: Sequence[str]) -> QuerySet[Subscriber, Any]:
    """``values_list`` of the fields: custom keys as text, timestamps as ISO 8601 where the
    database can format them (``formatted_in_sql``)."""
    annotations: dict[str, Any] = {}
    names: list[str] = []
    for position, name in enumerate(fields):
        alias = f"export_column_{position}"
        if name.startswith(CUSTOM_PREFIX):
            annotations[alias] = KeyTextTransform(name.removeprefix(CUSTOM_PREFIX), "custom_fields")
        elif name in TIMESTAMPS and formatted_in_sql():
            annotations[alias] = IsoTimestamp(F(name))
        else:
            names.append(name)
            continue
        names.append(alias)
    return subscribers.annotate(**annotations).values_list(*names)


def formatted_in_sql() -> bool:
    return connection.vendor in {"postgresql", "sqlite"}


def _write_csv(
    subscribers: QuerySet[Subscriber],
    fields: Sequence[str],
    out: IO[bytes],
    total: int,
    run: Progress,
) -> int:
    """Portable path: chunked iteration through ``csv.writer``."""
    rows: Iterable[Sequence[Any]] = _columns(subscribers, fields).iterator(
        chunk_size=setting("SUBSCRIBER_EXPORT_CHUNK_SIZE")
    )
    stamps = [i for i, name in enumerate(fields) if name in TIMESTAMPS]
    if stamps and not formatted_in_sql():
        rows = _format_timestamps(rows, stamps)
    every = setting("SUBSCRIBER_EXPORT_PROGRESS_EVERY")
    text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=False)
    writer = csv.writer(text)
    written = 0
    for chunk in _chunks(rows, every):
        writer.writerows(chunk)
        written += len(chunk)
        run.progress(rows_total=total, rows_written=written)
    text.flush()
    text.detach()
    return written


def _format_timestamps(rows: Iterable[Sequence[Any]], stamps: list[int]) -> Iterator[list[Any]]:
    for row in rows:
        values = list(row)
        for i in stamps:
            values[i] = f"{values[i]:%Y-%m-%dT%H:%M:%S.%fZ}"
        yield values


def _chunks(rows: Iterable[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _copy_csv(
    subscribers: QuerySet[Subscriber],
    fields: Sequence[str],
    out: IO[bytes],
    total: int,
    run: Progress,
) -> int:
    """PostgreSQL path: the server formats the CSV; we only move bytes.

    One ``COPY`` per ``SUBSCRIBER_EXPORT_PROGRESS_EVERY`` rows, walking the (created_at, id)
    index: progress (the worker's heartbeat) is written between two, never on the connection
    while a ``COPY`` holds it.
    """
    step = setting("SUBSCRIBER_EXPORT_PROGRESS_EVERY")
    written = 0
    after: tuple[datetime, int] | None = None
    with connection.cursor() as cursor:
        while True:
            part = subscribers if after is None else _after(subscribers, *after)
            sql, params = _columns(part[:step], fields).query.sql_with_params()
            with cursor.copy(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv)", params) as copy:
                for data in copy:
                    out.write(data)
            rows: int = cursor.rowcount
            written += rows
            run.progress(rows_total=total, rows_written=written)
            last = part.values_list("created_at", "id")[step - 1 : step]
            if rows < step or not last:
                return written
            after = last[0]


def _after(
    subscribers: QuerySet[Subscriber], created_at: datetime, pk: int
) -> QuerySet[Subscriber]:
    """The rows after (created_at, pk) in export order."""
    return subscribers.filter(created_at__gte=created_at).filter(
        Q(created_at__gt=created_at) | Q(id__gt=pk)
    )


def _store(name: str, path: str) -> str:
    """Replace the job's file in the storage (a retry rewrites it, never adds a second one)."""
    storage = export_storage()
    if storage.exists(name):
        storage.delete(name)
    with open(path, "rb") as data:
        saved = storage.save(name, _TemporaryFile(data, name=path))
    if saved != name:
        # Another run of the same job stored the same rows first: keep that one.
        logger.warning("Export %s was written twice; dropping %s", name, saved)
        storage.delete(saved)
    return name
