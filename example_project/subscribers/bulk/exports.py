"""Subscriber export: write the selected subscribers as CSV into Django's storage.

Memory stays flat whatever the row count: the cursor's chunks of rows go through
``csv.writer`` into a temporary file, or on PostgreSQL the server writes the CSV itself
(``COPY (SELECT ...) TO STDOUT``) and its bytes go to the file as they come. The file is then
handed to the storage, which on a local ``FileSystemStorage`` is a rename. Running the job
again rewrites the same file.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import selectors
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import IO, Any, Protocol

from django.core.files import File
from django.core.files.storage import Storage, storages
from django.db import DatabaseError, connection
from django.db.models import CharField, F, Field, Func, QuerySet, Value
from django.db.models.fields.json import KeyTextTransform
from django.db.models.lookups import GreaterThan, LessThanOrEqual
from django.urls import reverse
from django.utils.dateparse import parse_datetime

from example_project.conf import setting
from example_project.subscribers.models import Subscriber

from .shared import FORMULA_STARTS

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
TEXT_FIELDS = frozenset({"email", "name", "first_name", "last_name"})
WRITE_BUFFER = 1024 * 1024  # bytes: the file is written in large pieces, never row by row


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
        with os.fdopen(handle, "wb", buffering=WRITE_BUFFER) as out:
            header = io.StringIO(newline="")
            csv.writer(header).writerow(fields)
            out.write(header.getvalue().encode())
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
    url = reverse("subscriber-export-file", kwargs={"id": str(job_id)})
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
        # Django stores "YYYY-MM-DD HH:MM:SS[.ffffff]" in UTC, without the fraction when it is
        # 0: add the point if needed and pad to six digits.
        sql, params = compiler.compile(self.source_expressions[0])
        point = f"CASE WHEN length({sql}) = 19 THEN '.' ELSE '' END"
        text = f"replace(substr({sql} || {point} || '000000', 1, 26), ' ', 'T') || 'Z'"
        return text, (*params, *params)


class CustomFieldText(KeyTextTransform):
    """A custom field's value as text. Its key is always an object key: Django's own transform
    takes a key that reads as an integer (``"0"``, ``"1_000"``) for an array index."""

    def _get_json_path(self, connection: Any, key_transforms: list[str] | None) -> str:
        """The JSON path of SQLite (and MySQL, Oracle): every key quoted, ``$."0"``."""
        return "$" + "".join(f".{json.dumps(key)}" for key in key_transforms or ())

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        lhs, params, keys = self.preprocess_lhs(compiler, connection)
        return f"({lhs} #>> %s::text[])", (*params, keys)


class FormulaSafe(Func):
    """Text that a spreadsheet shows as text (docs/jobs.md#cells-that-would-start-a-formula):
    OWASP's leading ``'`` before a value that would start a formula (``=``, ``+``, ``-``, ``@``,
    tab, CR), and before the quotes of one neutralised already (``'=1`` exports as ``''=1``), so
    that the import, which reads a leading ``'`` before a formula as a quote prefix, gets every
    value back. Decided in SQL on the first character's code: no Python per row on either export
    path."""

    output_field = CharField()
    codes = ", ".join(str(ord(start)) for start in FORMULA_STARTS)

    def as_sql(self, compiler: Any, connection: Any, *args: Any, **extra: Any) -> Any:
        return self._case(compiler, "ascii")

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return self._case(compiler, "unicode")

    def _case(self, compiler: Any, first: str) -> tuple[str, tuple[Any, ...]]:
        """Letters and most other characters come after every one of these (code 65 and up):
        one comparison settles almost every value."""
        value, params = compiler.compile(self.source_expressions[0])
        quote = "''''"
        sql = (
            f"CASE WHEN {first}({value}) >= 65 THEN {value} "
            f"WHEN {first}({value}) IN ({self.codes}) OR {first}({value}) = 39 "
            f"AND {first}(ltrim({value}, {quote})) IN ({self.codes}) "
            f"THEN {quote} || {value} ELSE {value} END"
        )
        return sql, tuple(params) * 7


def _columns(subscribers: QuerySet[Subscriber], fields: Sequence[str]) -> QuerySet[Subscriber, Any]:
    """``values_list`` of the fields: custom keys as text, timestamps as ISO 8601 where the
    database can format them (``formatted_in_sql``), text neutralised (``FormulaSafe``) unless
    ``SUBSCRIBER_EXPORT_NEUTRALISE_FORMULAS`` is off."""
    annotations: dict[str, Any] = {}
    names: list[str] = []
    neutralise = setting("SUBSCRIBER_EXPORT_NEUTRALISE_FORMULAS")
    for position, name in enumerate(fields):
        alias = f"export_column_{position}"
        if name.startswith(CUSTOM_PREFIX):
            value = CustomFieldText(name.removeprefix(CUSTOM_PREFIX), "custom_fields")
            annotations[alias] = FormulaSafe(value) if neutralise else value
        elif name in TEXT_FIELDS and neutralise:
            annotations[alias] = FormulaSafe(F(name))
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
    """Portable path: the cursor's chunks of rows straight into ``csv.writer``.

    Memory holds one chunk (``SUBSCRIBER_EXPORT_CHUNK_SIZE`` rows); progress is written after
    every ``SUBSCRIBER_EXPORT_PROGRESS_EVERY`` rows, between two fetches.
    """
    stamps = [i for i, name in enumerate(fields) if name in TIMESTAMPS]
    reformat = bool(stamps) and not formatted_in_sql()
    every = setting("SUBSCRIBER_EXPORT_PROGRESS_EVERY")
    text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=False)
    writer = csv.writer(text)
    written = reported = 0
    for rows in _fetch_chunks(_columns(subscribers, fields)):
        writer.writerows(_format_timestamps(rows, stamps) if reformat else rows)
        written += len(rows)
        if written - reported >= every:
            run.progress(rows_total=total, rows_written=written)
            reported = written
    text.flush()
    text.detach()
    return written


def _fetch_chunks(rows: QuerySet[Subscriber, Any]) -> Iterator[list[Sequence[Any]]]:
    """The query's rows as the cursor returns them, ``SUBSCRIBER_EXPORT_CHUNK_SIZE`` at a time.

    No model field converters: the selected columns are text already (``_columns``), except
    timestamps where the database cannot format them, which ``_format_timestamps`` does.
    ``chunked_cursor`` is a server-side cursor on PostgreSQL, a plain one on SQLite.
    """
    size = setting("SUBSCRIBER_EXPORT_CHUNK_SIZE")
    sql, params = rows.query.sql_with_params()
    with connection.chunked_cursor() as cursor:
        cursor.execute(sql, params)
        while chunk := cursor.fetchmany(size):
            yield chunk


def _format_timestamps(rows: Iterable[Sequence[Any]], stamps: list[int]) -> Iterator[list[Any]]:
    for row in rows:
        values = list(row)
        for i in stamps:
            values[i] = f"{values[i]:%Y-%m-%dT%H:%M:%S.%fZ}"
        yield values


def _copy_csv(
    subscribers: QuerySet[Subscriber],
    fields: Sequence[str],
    out: IO[bytes],
    total: int,
    run: Progress,
) -> int:
    """PostgreSQL path: the server formats the CSV; we only move bytes.

    One ``COPY`` per ``SUBSCRIBER_EXPORT_PROGRESS_EVERY`` rows, each a range of the
    (created_at, id) index whose upper end is looked up first: progress (the worker's
    heartbeat) is written between two, never on the connection while a ``COPY`` holds it.
    Rows added or deleted meanwhile move no boundary, so no other row is lost or repeated.
    """
    step = setting("SUBSCRIBER_EXPORT_PROGRESS_EVERY")
    written = 0
    after: tuple[datetime, int] | None = None
    while True:
        part = subscribers if after is None else subscribers.filter(_key(GreaterThan, after))
        last = part.values_list("created_at", "id")[step - 1 : step]
        upto = last[0] if last else None
        if upto is not None:
            part = part.filter(_key(LessThanOrEqual, upto))
        sql, params = _columns(part, fields).query.sql_with_params()
        written += _copy_out(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv)", params, out)
        run.progress(rows_total=total, rows_written=written)
        if upto is None:
            return written
        after = upto


def _key(
    compare: type[GreaterThan | LessThanOrEqual], value: tuple[datetime, int]
) -> GreaterThan | LessThanOrEqual:
    """``(created_at, id) <compare> (%s, %s)``: a row comparison, which the index seeks to
    (``created_at > %s OR (created_at = %s AND id > %s)`` would scan every tie again)."""
    key = Func(F("created_at"), F("id"), function="", output_field=Field())
    return compare(key, Func(*map(Value, value), function="", output_field=Field()))


def _copy_out(sql: str, params: Sequence[Any], out: IO[bytes]) -> int:
    """Run one ``COPY ... TO STDOUT``, write its data to ``out`` and return its row count.

    Straight on libpq (psycopg's ``pgconn``): the server sends one message per row, and
    psycopg's ``Copy`` iterator spends more time on each message than the server on each row.
    """
    from psycopg import ClientCursor
    from psycopg.pq import ExecStatus

    connection.ensure_connection()
    query = ClientCursor(connection.connection).mogrify(sql, params)  # COPY takes no parameters
    pgconn = connection.connection.pgconn
    try:
        with selectors.DefaultSelector() as selector:  # waits without holding the GIL
            selector.register(pgconn.socket, selectors.EVENT_WRITE)
            pgconn.send_query(query.encode())
            while pgconn.flush():
                selector.select()
            selector.modify(pgconn.socket, selectors.EVENT_READ)

            def receive() -> None:
                selector.select()
                pgconn.consume_input()

            ended = _read_copy(pgconn, receive, out)
    except BaseException:
        # The connection may be mid-COPY: drop it rather than leave the server writing to it.
        connection.close()
        raise
    if ended is None or ended.status != ExecStatus.COMMAND_OK:
        message = ended.get_error_message() if ended is not None else "no result"
        raise DatabaseError(f"Export COPY failed: {message}")
    return int(ended.command_tuples or 0)


def _read_copy(pgconn: Any, receive: Callable[[], None], out: IO[bytes]) -> Any:
    """Write the rows of the running ``COPY`` to ``out``; return its final result (the first
    one if it never started), with every result read so that the connection is idle again."""
    from psycopg.pq import ExecStatus

    ended = started = _result(pgconn, receive)
    if started is not None and started.status == ExecStatus.COPY_OUT:
        read, write = pgconn.get_copy_data, out.write
        while True:
            size, data = read(1)  # 1: never blocks; 0 means no whole row received yet
            if size > 0:
                write(data)
            elif size == 0:
                receive()
            else:
                break
        ended = _result(pgconn, receive)
    while _result(pgconn, receive) is not None:
        pass
    return ended


def _result(pgconn: Any, receive: Callable[[], None]) -> Any:
    """libpq's next result of the running query, ``None`` after the last one."""
    while pgconn.is_busy():
        receive()
    return pgconn.get_result()


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
