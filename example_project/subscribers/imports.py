"""Subscriber import: check a CSV when the job is created, upsert its rows when the job runs.

Rows are applied in batches, each in its own transaction, as upserts keyed by (workspace, email):
running the same job twice (a retry, a recovered worker) creates no duplicates. An empty cell
never erases a stored value, so a partial re-import only adds information.

On PostgreSQL a batch is staged with ``COPY`` into a temporary table and applied with one
``INSERT ... ON CONFLICT DO UPDATE ... RETURNING``; elsewhere (SQLite) it is one ``SELECT`` of
the batch's existing rows plus one ``executemany`` of ``INSERT ... ON CONFLICT DO UPDATE``.

Memory is one batch plus the set of emails seen (to report duplicates); the CSV itself is
capped by ``SUBSCRIBER_IMPORT_MAX_BYTES``.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator
from django.db import connection, transaction
from django.utils import timezone

from example_project.conf import setting

from .models import Subscriber

__all__ = ["CsvProblem", "ImportPlan", "check_csv", "import_subscribers"]

FIELD_TYPES = ("email", "name", "first_name", "last_name", "custom")
# Longest value per stored field: longer cells are row errors, not truncated data.
MAX_LENGTHS = {"email": 254, "name": 255, "first_name": 150, "last_name": 150, "custom": 1000}
MAX_REPORTED_RAGGED_ROWS = 5
ANALYZE_AFTER = 50_000  # rows created by one import


class CsvProblem(ValueError):
    """The CSV or its mappings can't be imported at all: a 400 when the job is created."""


class Progress(Protocol):
    def progress(self, **fields: Any) -> None: ...


@dataclass(frozen=True)
class ImportPlan:
    """Which CSV column feeds which subscriber field."""

    width: int
    email: tuple[int, str]
    fields: tuple[tuple[str, int, str], ...]  # (field name, column index, column name)
    custom: tuple[tuple[str, int, str], ...]  # (custom key, column index, column name)

    @classmethod
    def build(cls, header: Sequence[str], mappings: Sequence[dict[str, Any]]) -> ImportPlan:
        columns = [name.strip() for name in header]
        if columns and columns[0].startswith("\ufeff"):
            columns[0] = columns[0][1:].strip()
        if not any(columns):
            raise CsvProblem("csv_text has no header row.")
        named = [name for name in columns if name]
        duplicates = sorted({name for name in named if named.count(name) > 1})
        if duplicates:
            raise CsvProblem(f"Duplicate column names in the header: {', '.join(duplicates)}.")
        index = {name: i for i, name in enumerate(columns) if name}
        email: list[tuple[int, str]] = []
        fields: list[tuple[str, int, str]] = []
        custom: list[tuple[str, int, str]] = []
        targets: set[str] = set()
        for mapping in mappings:
            column = mapping["csv_column"].strip()
            kind = mapping["field"]["type"]
            if column not in index:
                raise CsvProblem(
                    f"Mapped column {column!r} is not in the CSV header "
                    f"(columns: {', '.join(named)})."
                )
            target = f"custom:{mapping['field']['key']}" if kind == "custom" else kind
            if target in targets:
                raise CsvProblem(f"Two mappings write the same field ({target}).")
            targets.add(target)
            if kind == "email":
                email.append((index[column], column))
            elif kind == "custom":
                custom.append((mapping["field"]["key"], index[column], column))
            else:
                fields.append((kind, index[column], column))
        if not email:
            raise CsvProblem("No column is mapped to the email field.")
        return cls(len(columns), email[0], tuple(fields), tuple(custom))


def check_csv(csv_text: str, mappings: Sequence[dict[str, Any]]) -> int:
    """Everything knowable before running: encoding, size, header, mappings, row shapes.

    Returns the number of rows after the header.
    """
    try:
        size = len(csv_text.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise CsvProblem(
            f"csv_text is not valid UTF-8 text (undecodable character at offset {exc.start})."
        ) from None
    limit = setting("SUBSCRIBER_IMPORT_MAX_BYTES")
    if size > limit:
        raise CsvProblem(f"csv_text is {size} bytes; the limit is {limit} bytes.")
    if "\x00" in csv_text:
        raise CsvProblem("csv_text contains a NUL character.")
    rows = _reader(csv_text)
    try:
        plan = ImportPlan.build(next(rows, ()), mappings)
        ragged: list[int] = []
        ragged_count = 0
        number = 1
        for number, row in enumerate(rows, start=2):
            if row and len(row) != plan.width:
                ragged_count += 1
                if len(ragged) < MAX_REPORTED_RAGGED_ROWS:
                    ragged.append(number)
    except csv.Error as exc:
        raise CsvProblem(f"csv_text is not valid CSV: {exc}.") from None
    if ragged_count:
        shown = ", ".join(map(str, ragged)) + (", …" if ragged_count > len(ragged) else "")
        raise CsvProblem(
            f"{ragged_count} row(s) do not have the header's {plan.width} fields (rows {shown})."
        )
    return number - 1


class ParsedRow(NamedTuple):
    email: str
    values: dict[str, str]  # name / first_name / last_name; empty cells left out
    custom: dict[str, str]


@dataclass
class Counts:
    rows: int = 0
    created: int = 0
    updated: int = 0
    skipped: int = 0
    failed: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)

    def fail(self, row: int, column: str | None, message: str) -> None:
        self.failed += 1
        if len(self.errors) < setting("SUBSCRIBER_IMPORT_MAX_ERRORS"):
            self.errors.append({"row": row, "column": column, "message": message})

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "created": self.created,
            "updated": self.updated,
            "skipped": self.skipped,
            "failed": self.failed,
            "errors": self.errors,
            "errors_truncated": self.failed > len(self.errors),
        }


def import_subscribers(
    workspace_id: int, csv_text: str, mappings: Sequence[dict[str, Any]], run: Progress
) -> dict[str, Any]:
    """Upsert the CSV's rows into the workspace; return the counts and row errors."""
    total = check_csv(csv_text, mappings)
    rows = _reader(csv_text)
    plan = ImportPlan.build(next(rows), mappings)
    use_copy = connection.vendor == "postgresql" and setting("SUBSCRIBER_IMPORT_USE_COPY")
    batch_size = setting(
        "SUBSCRIBER_IMPORT_COPY_BATCH_SIZE" if use_copy else "SUBSCRIBER_IMPORT_BATCH_SIZE"
    )
    upsert = _upsert_copy if use_copy else _upsert_portable
    counts = Counts()
    run.progress(rows_total=total, rows_processed=0, **_tally(counts))
    for batch in _batches(_parse(rows, plan, counts), batch_size):
        with transaction.atomic():
            created, updated = upsert(workspace_id, batch)
        counts.created += created
        counts.updated += updated
        counts.skipped += len(batch) - created - updated
        run.progress(rows_total=total, rows_processed=counts.rows, **_tally(counts))
    run.progress(rows_total=total, rows_processed=counts.rows, **_tally(counts))
    if use_copy and counts.created >= ANALYZE_AFTER:
        # Fresh statistics, or the next export of this workspace may sort on disk.
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {connection.ops.quote_name(Subscriber._meta.db_table)}")
    return counts.as_dict()


def _tally(counts: Counts) -> dict[str, int]:
    return {
        "created": counts.created,
        "updated": counts.updated,
        "skipped": counts.skipped,
        "failed": counts.failed,
    }


def _reader(csv_text: str) -> Iterator[list[str]]:
    return csv.reader(io.StringIO(csv_text, newline=""), strict=True)


def _batches(rows: Iterator[ParsedRow], size: int) -> Iterator[list[ParsedRow]]:
    batch: list[ParsedRow] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _parse(rows: Iterator[list[str]], plan: ImportPlan, counts: Counts) -> Iterator[ParsedRow]:
    """Valid rows, in order; invalid ones become row errors, blank lines are skipped."""
    seen: dict[str, int] = {}
    email_index, email_column = plan.email
    for number, row in enumerate(rows, start=2):
        counts.rows += 1
        if not any(cell.strip() for cell in row):
            counts.skipped += 1
            continue
        if len(row) != plan.width:
            counts.fail(number, None, f"Expected {plan.width} fields, found {len(row)}.")
            continue
        email = row[email_index].strip().lower()
        problem = _email_problem(email)
        if problem is None and email in seen:
            problem = f"Duplicate of row {seen[email]}; this row was not imported."
        if problem is not None:
            counts.fail(number, email_column, problem)
            continue
        values: dict[str, str] = {}
        custom: dict[str, str] = {}
        too_long = None
        for name, index, column in plan.fields:
            cell = row[index].strip()
            if len(cell) > MAX_LENGTHS[name]:
                too_long = (column, MAX_LENGTHS[name])
            elif cell:
                values[name] = cell
        for key, index, column in plan.custom:
            cell = row[index].strip()
            if len(cell) > MAX_LENGTHS["custom"]:
                too_long = (column, MAX_LENGTHS["custom"])
            elif cell:
                custom[key] = cell
        if too_long is not None:
            counts.fail(number, too_long[0], f"Longer than {too_long[1]} characters.")
            continue
        seen[email] = number
        yield ParsedRow(email, values, custom)


class _EagerEmailValidator(EmailValidator):
    """Django's rules, with its lazily compiled patterns compiled once: checking 100k
    addresses through the lazy proxies costs about a second."""

    user_regex = re.compile(EmailValidator.user_regex.pattern, EmailValidator.user_regex.flags)
    domain_regex = re.compile(
        EmailValidator.domain_regex.pattern, EmailValidator.domain_regex.flags
    )
    literal_regex = re.compile(
        EmailValidator.literal_regex.pattern, EmailValidator.literal_regex.flags
    )


validate_email = _EagerEmailValidator()


def _email_problem(email: str) -> str | None:
    if not email:
        return "Email is empty."
    if len(email) > MAX_LENGTHS["email"]:
        return f"Longer than {MAX_LENGTHS['email']} characters."
    try:
        validate_email(email)
    except ValidationError:
        return "Not a valid email address."
    return None


STAGE = "pg_temp.subscriber_import_stage"
UPDATABLE = ("name", "first_name", "last_name", "custom_fields")
INSERTED = ("workspace", "email", *UPDATABLE, "status", "created_at", "updated_at")


def _upsert_portable(workspace_id: int, batch: list[ParsedRow]) -> tuple[int, int]:
    """Read the batch's existing rows, then write only new or changed ones, merged, with one
    ``executemany`` of ``INSERT ... ON CONFLICT DO UPDATE`` (``bulk_create`` spends most of
    its time building SQL for each object)."""
    existing = {
        email: (name, first_name, last_name, custom)
        for email, name, first_name, last_name, custom in Subscriber.objects.filter(
            workspace_id=workspace_id, email__in=[row.email for row in batch]
        ).values_list("email", *UPDATABLE)
    }
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    status = Subscriber.Status.ACTIVE.value
    to_json = _json_parameter()
    created = updated = 0
    changed: list[tuple[Any, ...]] = []
    for row in batch:
        old = existing.get(row.email)
        if old is None:
            created += 1
            new = (
                row.values.get("name", ""),
                row.values.get("first_name", ""),
                row.values.get("last_name", ""),
                row.custom,
            )
        else:
            new = (
                row.values.get("name", old[0]),
                row.values.get("first_name", old[1]),
                row.values.get("last_name", old[2]),
                {**old[3], **row.custom},
            )
            if new == old:
                continue
            updated += 1
        name, first_name, last_name, custom = new
        changed.append(
            (
                workspace_id,
                row.email,
                name,
                first_name,
                last_name,
                to_json(custom),
                status,
                now,
                now,
            )
        )
    if changed:
        with connection.cursor() as cursor:
            cursor.executemany(_portable_statement(connection.vendor), changed)
    return created, updated


def _json_parameter() -> Callable[[dict[str, str]], Any]:
    """How to pass a JSON value: SQLite stores text; elsewhere let the field adapt it."""
    if connection.vendor == "sqlite":
        return json.dumps
    field = Subscriber._meta.get_field("custom_fields")
    return lambda value: field.get_db_prep_save(value, connection)


@functools.cache
def _portable_statement(vendor: str) -> str:
    table, column = _names()
    targets = ", ".join(column[name] for name in INSERTED)
    values = ", ".join(["%s"] * len(INSERTED))
    assignments = ", ".join(
        f"{column[name]} = excluded.{column[name]}" for name in (*UPDATABLE, "updated_at")
    )
    return (
        f"INSERT INTO {table} ({targets}) VALUES ({values}) "  # noqa: S608
        f"ON CONFLICT ({column['workspace']}, {column['email']}) DO UPDATE SET {assignments}"
    )


def _names() -> tuple[str, dict[str, str]]:
    """The quoted table and column names. Identifiers only: values are always parameters."""
    quote = connection.ops.quote_name
    columns = {f.name: quote(str(f.column)) for f in Subscriber._meta.concrete_fields}
    return quote(Subscriber._meta.db_table), columns


def _upsert_copy(workspace_id: int, batch: list[ParsedRow]) -> tuple[int, int]:
    """PostgreSQL path: COPY the batch into a temporary table, upsert it in one statement.

    ``RETURNING (xmax = 0)`` tells inserted rows from updated ones; unchanged rows are filtered
    by the ``WHERE`` of ``DO UPDATE`` and come back not at all (skipped).
    """
    with connection.cursor() as cursor:
        # Dropped at commit; dropped here too when an outer transaction (a test) outlives it.
        cursor.execute(f"DROP TABLE IF EXISTS {STAGE}")
        cursor.execute(
            f"CREATE TEMPORARY TABLE {STAGE} "
            "(email text, name text, first_name text, last_name text, custom_fields jsonb) "
            "ON COMMIT DROP"
        )
        with cursor.copy(
            f"COPY {STAGE} (email, name, first_name, last_name, custom_fields) FROM STDIN"
        ) as copy:
            for row in batch:
                values = row.values
                copy.write_row(
                    (
                        row.email,
                        values.get("name"),
                        values.get("first_name"),
                        values.get("last_name"),
                        json.dumps(row.custom) if row.custom else None,
                    )
                )
        params: dict[str, Any] = {
            "workspace": workspace_id,
            "now": timezone.now(),
            "status": Subscriber.Status.ACTIVE.value,
        }
        cursor.execute(_upsert_statement(), params)
        inserted = [flag for (flag,) in cursor.fetchall()]
    created = sum(inserted)
    return created, len(inserted) - created


@functools.cache
def _upsert_statement() -> str:
    table, column = _names()
    merged = {
        name: f"coalesce(nullif(EXCLUDED.{column[name]}, ''), s.{column[name]})"
        for name in ("name", "first_name", "last_name")
    }
    merged["custom_fields"] = f"s.{column['custom_fields']} || EXCLUDED.{column['custom_fields']}"
    assignments = ", ".join(f"{column[name]} = {value}" for name, value in merged.items())
    old = ", ".join(f"s.{column[name]}" for name in merged)
    new = ", ".join(merged.values())
    targets = ", ".join(column[name] for name in INSERTED)
    key = f"{column['workspace']}, {column['email']}"
    stamp = column["updated_at"]
    return (
        f"INSERT INTO {table} AS s ({targets}) "  # noqa: S608
        "SELECT %(workspace)s, t.email, coalesce(t.name, ''), coalesce(t.first_name, ''), "
        "coalesce(t.last_name, ''), coalesce(t.custom_fields, '{}'::jsonb), %(status)s, "
        f"%(now)s, %(now)s FROM {STAGE} t "
        f"ON CONFLICT ({key}) DO UPDATE SET {assignments}, {stamp} = EXCLUDED.{stamp} "
        f"WHERE ({old}) IS DISTINCT FROM ({new}) "
        "RETURNING (xmax = 0)"
    )
