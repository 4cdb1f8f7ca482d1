"""Subscriber import: check a CSV when the job is created, upsert its rows when the job runs.

The run streams the CSV (from storage: ``files``) in three steps, so that its memory
does not grow with the row count:

1. *Stage*: rows are read a slice at a time and sorted column by column (``Chunk``): the
   candidates (a valid email; a cell too long is noted) and the rest (blank lines, ragged rows,
   bad emails, each with its ``Problem``). All of them go to a temporary table (``stage``),
   so errors and counts are kept by the database, not in Python.
2. *Duplicates*: one statement marks each row whose email a valid earlier row already had.
3. *Apply*: the rows are upserted by ranges of row numbers, each range in its own transaction
   (progress moves, a worker that dies loses at most one range), by (workspace, email): running
   the same job twice creates no duplicates, and an empty cell never erases a stored value.
   On PostgreSQL, outside a transaction, over several connections at once (``lanes``).
"""

from __future__ import annotations

import _csv
import csv
import functools
import io
import itertools
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, Protocol

from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator
from django.db import connection
from django.utils import timezone

from example_project.conf import setting
from example_project.subscribers.models import Subscriber

from .lanes import Lanes
from .shared import (
    FORMULA_STARTS,
    MAX_LENGTHS,
    Chunk,
    CsvProblem,
    ImportPlan,
    Problem,
    Rejected,
    RowError,
)

__all__ = ["CsvProblem", "ImportPlan", "check_csv", "import_subscribers"]

FIELD_TYPES = ("email", "name", "first_name", "last_name", "custom")
MAX_MAPPINGS = 100  # mapped columns per import (each is a column of the import's stage)
MAX_REPORTED_RAGGED_ROWS = 5
ANALYZE_AFTER = 50_000  # rows created by one import
CHUNK_ROWS = 20_000  # rows read, sorted and staged at a time
MESSAGES = {
    Problem.EMAIL_EMPTY: "Email is empty.",
    Problem.EMAIL_TOO_LONG: f"Longer than {MAX_LENGTHS['email']} characters.",
    Problem.EMAIL_INVALID: "Not a valid email address.",
}


class Progress(Protocol):
    def progress(self, **fields: Any) -> None: ...


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
    rows = _reader(io.StringIO(csv_text, newline=""))
    line = 0  # the last physical line of the last whole record read
    try:
        header = next(rows, [])
        if len(header) > (most := setting("SUBSCRIBER_IMPORT_MAX_COLUMNS")):
            raise CsvProblem(f"The CSV header has {len(header)} columns; the limit is {most}.")
        plan = ImportPlan.build(header, mappings)
        ragged: list[int] = []
        ragged_count = 0
        number, line = 1, rows.line_num
        for number, row in enumerate(rows, start=2):
            line = rows.line_num  # the last physical line of this record
            if row and len(row) != plan.width:
                ragged_count += 1
                if len(ragged) < MAX_REPORTED_RAGGED_ROWS:
                    ragged.append(number)
    except csv.Error as exc:
        raise CsvProblem(
            f"csv_text is not valid CSV (the record starting on line {line + 1}): {exc}."
        ) from None
    if ragged_count:
        shown = ", ".join(map(str, ragged)) + (", …" if ragged_count > len(ragged) else "")
        raise CsvProblem(
            f"{ragged_count} row(s) do not have the header's {plan.width} fields (rows {shown})."
        )
    return number - 1


@dataclass
class Counts:
    rows: int = 0
    created: int = 0
    updated: int = 0
    skipped: int = 0
    failed: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)

    def tally(self) -> dict[str, int]:
        return {
            "created": self.created,
            "updated": self.updated,
            "skipped": self.skipped,
            "failed": self.failed,
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            **self.tally(),
            "errors": self.errors,
            "errors_truncated": self.failed > len(self.errors),
        }


def import_subscribers(
    workspace_id: int,
    csv_file: Iterable[str],
    mappings: Sequence[dict[str, Any]],
    run: Progress,
    *,
    rows_total: int | None = None,
) -> dict[str, Any]:
    """Upsert the CSV's rows into the workspace; return the counts and row errors.

    ``csv_file``: the CSV's lines (a text file opened with ``newline=""``), read once, a slice
    at a time. ``rows_total`` (what ``check_csv`` counted) is shown until all are read.
    """
    rows = _reader(csv_file)
    try:
        plan = ImportPlan.build(next(rows, ()), mappings)
    except csv.Error as exc:
        raise CsvProblem(f"csv_text is not valid CSV: {exc}.") from None
    counts = Counts()
    batch = setting("SUBSCRIBER_IMPORT_BATCH_SIZE")
    max_errors = setting("SUBSCRIBER_IMPORT_MAX_ERRORS")
    with Lanes.opened(plan) as stage:
        for chunk in _chunks(rows, plan):
            stage.load(chunk)
            counts.rows = chunk.end - 2
            run.progress(rows_total=rows_total or counts.rows, rows_processed=0, **counts.tally())
        stage.mark_duplicates()
        now = timezone.now()
        for start in range(2, counts.rows + 2, batch):
            stop = min(start + batch, counts.rows + 2)
            tally = stage.apply(workspace_id, start, stop, now)
            counts.created += tally.created
            counts.updated += tally.updated
            counts.skipped += tally.skipped
            counts.failed += tally.failed
            if tally.failed and len(counts.errors) < max_errors:
                wanted = max_errors - len(counts.errors)
                counts.errors += [
                    _error(plan, found) for found in stage.errors(start, stop, wanted)
                ]
            run.progress(rows_total=counts.rows, rows_processed=stop - 2, **counts.tally())
    run.progress(rows_total=counts.rows, rows_processed=counts.rows, **counts.tally())
    if connection.vendor == "postgresql" and counts.created >= ANALYZE_AFTER:
        # Fresh statistics, or the next export of this workspace may sort on disk.
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {connection.ops.quote_name(Subscriber._meta.db_table)}")
    return counts.as_dict()


def _error(plan: ImportPlan, found: RowError) -> dict[str, Any]:
    """The row error a client sees, from what the stage holds about the row."""
    column: str | None = plan.email.column
    if found.duplicate_of is not None:
        message = f"Duplicate of row {found.duplicate_of}; this row was not imported."
    elif found.problem == Problem.RAGGED:
        column, message = None, f"Expected {plan.width} fields, found {found.detail}."
    elif found.problem == Problem.VALUE_TOO_LONG and found.detail is not None:
        value = plan.values[found.detail]
        column, message = value.column, f"Longer than {value.limit} characters."
    else:
        message = MESSAGES[Problem(found.problem or Problem.EMAIL_INVALID)]
    return {"row": found.number, "column": column, "message": message}


def _reader(csv_file: Iterable[str]) -> _csv.Reader:
    return csv.reader(csv_file, strict=True)


def _chunks(rows: Iterator[list[str]], plan: ImportPlan) -> Iterator[Chunk]:
    """Read ``rows`` a slice at a time, sorting each slice with a few passes over whole
    columns: almost all of the work per row is done by ``map`` and regular expressions."""
    start = 2
    while True:
        try:
            part = list(itertools.islice(rows, CHUNK_ROWS))
        except csv.Error as exc:
            raise CsvProblem(f"csv_text is not valid CSV: {exc}.") from None
        except UnicodeDecodeError as exc:
            raise CsvProblem(f"csv_text is not valid UTF-8 text ({exc.reason}).") from None
        if not part:
            return
        yield _sort(part, start, plan)
        start += len(part)


def _sort(rows: list[list[str]], start: int, plan: ImportPlan) -> Chunk:
    end = start + len(rows)
    numbers: Sequence[int] = range(start, end)
    rejected: list[Rejected] = []
    if set(map(len, rows)) != {plan.width}:
        kept = []
        for number, row in zip(numbers, rows, strict=True):
            if len(row) == plan.width:
                kept.append((number, row))
            elif _blank(row):
                rejected.append(Rejected(number, Problem.BLANK))
            else:
                rejected.append(Rejected(number, Problem.RAGGED, len(row)))
        numbers, rows = [n for n, _ in kept], [row for _, row in kept]
    emails = list(map(str.lower, _cells(rows, plan.email.column_index, emails=True)))
    dropped = set()
    for i in _not_plain(emails):
        problem = _email_problem(emails[i])
        if problem is not None:
            dropped.add(i)
            rejected.append(Rejected(numbers[i], Problem.BLANK if _blank(rows[i]) else problem))
    if dropped:
        keep = [i for i in range(len(rows)) if i not in dropped]
        numbers = [numbers[i] for i in keep]
        emails = [emails[i] for i in keep]
        rows = [rows[i] for i in keep]
    values = [_cells(rows, value.column_index) for value in plan.values]
    too_long: list[int | None] | None = None
    for position, (value, cells) in enumerate(zip(plan.values, values, strict=True)):
        if cells and max(map(len, cells)) > value.limit:
            too_long = too_long or [None] * len(cells)
            for i, cell in enumerate(cells):
                if len(cell) > value.limit:
                    too_long[i] = position  # the last column wins, as it always did
    return Chunk(end, numbers, emails, values, too_long, rejected)


_TRIMMED_FORMULA_OR_QUOTE = re.compile(r"\x00['=+\-@]")
_QUOTE_PREFIXED = re.compile(rf"'+[{re.escape(FORMULA_STARTS)}]")


def _cells(rows: list[list[str]], index: int, *, emails: bool = False) -> list[str]:
    """Column ``index``'s cells, trimmed, as a spreadsheet reads them: a leading ' before a
    formula is a quote prefix, not data; leading whitespace that hides a formula is kept
    (``\\t=1+1`` never becomes ``=1+1``), except in an email, never part of an address.

    Almost no column has a cell starting with one of ``'=+-@`` once trimmed: one search over
    the whole column finds that out; the others are read cell by cell.
    """
    cells = list(map(str.strip, map(itemgetter(index), rows)))
    if not _TRIMMED_FORMULA_OR_QUOTE.search("\x00" + "\x00".join(cells)):
        return cells
    return [
        _cell(raw, cell, emails)
        for raw, cell in zip(map(itemgetter(index), rows), cells, strict=True)
    ]


def _cell(raw: str, cell: str, email: bool) -> str:
    if _QUOTE_PREFIXED.match(cell):
        return cell[1:]
    if not email and cell[:1] in FORMULA_STARTS and cell[:1] != raw[:1]:
        return raw.rstrip()
    return cell


def _blank(row: list[str]) -> bool:
    return not any(cell.strip() for cell in row)


# Addresses Django's EmailValidator accepts, in the plain form almost all have: lower-case
# ASCII dot-atom, host names and a letters-only top-level domain, at most 254 characters. It is
# a subset of Django's rules (tests/example/test_hostile_properties.py checks it), so an
# address that does not match is only a *suspect*: Django's validator decides.
_USER = r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
_DOMAIN = (
    r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.(?!-)[a-z0-9-]{1,63}(?<!-))*"
    r"\.(?!-)[a-z-]{2,63}(?<!-)"
)
PLAIN_ADDRESS = rf"{_USER}@{_DOMAIN}"
PLAIN_EMAIL = rf"(?=.{{1,254}}$){PLAIN_ADDRESS}"
_PLAIN = re.compile(PLAIN_EMAIL)
_ALL_PLAIN = re.compile(rf"(?:(?=[^\n]{{1,254}}\n){PLAIN_ADDRESS}\n)*")
_NOT_PLAIN_LINE = re.compile(rf"^(?!{PLAIN_EMAIL}$)", re.MULTILINE)


def _not_plain(emails: list[str]) -> list[int]:
    """Indexes of the emails that are not plainly valid (usually none): one regular
    expression over the whole column instead of one call per row."""
    lines = "\n".join(emails) + "\n"
    if lines.count("\n") != len(emails):  # a line break inside an address
        return [i for i, email in enumerate(emails) if not _PLAIN.fullmatch(email)]
    if _ALL_PLAIN.fullmatch(lines):
        return []
    suspects, index, position = [], 0, 0
    for match in _NOT_PLAIN_LINE.finditer(lines, 0, len(lines) - 1):
        index += lines.count("\n", position, match.start())
        position = match.start()
        suspects.append(index)
    return suspects


@functools.cache
def _email_validator() -> EmailValidator:
    """Django's rules, its patterns compiled once per process and then kept: through the lazy
    proxies every address pays for the lookup (benchmark 4, benchmarks/RESULTS.md)."""
    validator = EmailValidator()
    for name in ("user_regex", "domain_regex", "literal_regex"):
        lazy = getattr(EmailValidator, name)
        setattr(validator, name, re.compile(lazy.pattern, lazy.flags))
    return validator


def _email_problem(email: str) -> Problem | None:
    if not email:
        return Problem.EMAIL_EMPTY
    if len(email) > MAX_LENGTHS["email"]:
        return Problem.EMAIL_TOO_LONG
    try:
        _email_validator()(email)
    except ValidationError:
        return Problem.EMAIL_INVALID
    return None
