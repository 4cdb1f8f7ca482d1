"""The database side of a subscriber import: every CSV row in a temporary table.

The table lives in the connection's own temporary schema (no other connection sees it; it goes
with the connection), across the import's transactions, and is dropped at the end. Columns:
``number`` (the CSV row number), ``email``, ``problem`` (a ``Problem``: ``BLANK``, a blank
line, is skipped, the others are row errors; NULL: a candidate for the upsert), ``detail`` (what
the ``Problem`` says it holds), ``duplicate_of`` (set by :meth:`Stage.mark_duplicates`) and
``v0``, ``v1``... (the mapped cells, stripped; '' when empty, and an empty cell never erases a
stored value).

PostgreSQL loads the table with ``COPY`` (``executemany`` when ``SUBSCRIBER_IMPORT_USE_COPY``
is off), inserts new emails with a plain ``INSERT`` and upserts the others, telling created
from updated rows by ``RETURNING (xmax = 0)`` (see :meth:`PostgresStage.upsert`). SQLite
loads it with ``executemany``; the rows an upsert created are those with an id above the
largest before it (AUTOINCREMENT ids only grow, and SQLite has one writer at a time).
"""

from __future__ import annotations

import functools
import itertools
import logging
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from django.db import DatabaseError, IntegrityError, OperationalError, connection, transaction

from example_project.conf import setting
from example_project.subscribers.models import Subscriber

from .shared import Problem, RowError

if TYPE_CHECKING:
    from .shared import Chunk, ImportPlan

__all__ = ["Stage", "Tally"]

logger = logging.getLogger(__name__)

BLANK = Problem.BLANK.value  # in SQL: ``problem > BLANK`` is a row error
PAIRS_PER_OBJECT = 50  # custom fields per call building their JSON (see Stage.insert)

NAME = "subscriber_import_stage"
STANDARD = ("name", "first_name", "last_name")
INSERTED = ("workspace", "email", *STANDARD, "custom_fields", "status", "created_at", "updated_at")
# PostgreSQL's SQLSTATEs after which a range is undone and written the next, safer way: a plain
# INSERT met a stored email (unique violation), or the split statement, whose two parts lock
# rows in two email orders, met a concurrent import of the same emails (deadlock).
RETRY_NEXT_WAY = {"23505", "40P01"}


class Tally(NamedTuple):
    """What happened to one range of rows."""

    created: int
    updated: int
    skipped: int  # blank, or unchanged
    failed: int


class Stage:
    """One import's rows in a temporary table (see the module docstring)."""

    table: str  # qualified with the temporary schema

    def __init__(self, plan: ImportPlan) -> None:
        self.plan = plan
        self.values = [f"v{position}" for position in range(len(plan.values))]
        self.columns = ["number", "email", "problem", "detail", *self.values]

    @staticmethod
    def new(plan: ImportPlan) -> Stage:
        """A new, empty stage for ``plan`` on this thread's connection."""
        stages: dict[str, type[Stage]] = {"postgresql": PostgresStage, "sqlite": SqliteStage}
        if connection.vendor not in stages:
            raise NotImplementedError(
                f"Imports need PostgreSQL or SQLite, not {connection.vendor}."
            )
        stage = stages[connection.vendor](plan)
        stage.create()
        return stage

    def create(self) -> None:
        values = "".join(f", {name} text" for name in self.values)
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {self.table}")
            cursor.execute(
                f"CREATE TEMPORARY TABLE {NAME} (number integer PRIMARY KEY, email text, "
                f"problem smallint, detail integer, duplicate_of integer{values})"
            )

    def drop(self) -> None:
        """Drop the table; if the connection is lost or its transaction broken (the table goes
        with them), log it rather than hide the error that got the import there."""
        try:
            with connection.cursor() as cursor:
                cursor.execute(f"DROP TABLE IF EXISTS {self.table}")
        except DatabaseError:
            logger.warning("Could not drop %s.", self.table, exc_info=True)

    def load(self, chunk: Chunk) -> None:
        """Add a slice of rows."""
        self.write(self.prepared(chunk))

    def prepared(self, chunk: Chunk) -> Any:
        """The slice as :meth:`write` sends it (no database needed: another thread may
        build it): here rows for ``executemany``."""
        return list(_rows(chunk, len(self.values), null=None))

    def write(self, rows: Any) -> None:
        """Send a prepared slice: one ``executemany`` in one transaction."""
        insert = (
            f"INSERT INTO {self.table} ({', '.join(self.columns)}) "  # noqa: S608
            f"VALUES ({', '.join(['%s'] * len(self.columns))})"
        )
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.executemany(insert, rows)

    def mark_duplicates(self) -> None:
        """Set ``duplicate_of`` on each row whose email an earlier candidate had, the first
        candidate that had it (the row a client is told about).

        Most CSVs have no duplicate: finding that out (hashing the emails) costs about half
        of finding them (sorting them, which the window function does).
        """
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                f"SELECT EXISTS (SELECT 1 FROM {self.table} WHERE email IS NOT NULL "  # noqa: S608
                "GROUP BY email HAVING count(*) > 1)"
            )
            if not cursor.fetchone()[0]:
                return
            cursor.execute(
                f"UPDATE {self.table} AS s SET duplicate_of = d.first FROM ("  # noqa: S608
                "SELECT number, min(number) FILTER (WHERE problem IS NULL) "
                f"OVER (PARTITION BY email) AS first FROM {self.table} WHERE email IS NOT NULL"
                ") AS d WHERE s.number = d.number AND d.first < d.number"
            )

    def apply(self, workspace_id: int, start: int, stop: int, now: datetime) -> Tally:
        """Upsert the candidates among rows ``start`` to ``stop`` (excluded) and count."""
        params = {
            "workspace": workspace_id,
            "status": Subscriber.Status.ACTIVE.value,
            "now": connection.ops.adapt_datetimefield_value(now),
            "start": start,
            "stop": stop,
            **{f"k{position}": value.key for position, value in enumerate(self.plan.values)},
        }
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FILTER (WHERE problem IS NULL AND duplicate_of IS NULL), "  # noqa: S608
                f"count(*) FILTER (WHERE problem = {BLANK}), "
                f"count(*) FILTER (WHERE problem > {BLANK} OR duplicate_of IS NOT NULL) "
                f"FROM {self.table} WHERE number >= %s AND number < %s",
                [start, stop],
            )
            candidates, blank, failed = cursor.fetchone()
            created, updated = self.upsert(cursor, params, candidates)
        return Tally(created, updated, blank + candidates - created - updated, failed)

    def upsert(self, cursor: Any, params: dict[str, Any], candidates: int) -> tuple[int, int]:
        """Upsert a range (``candidates`` rows to upsert); return how many it created and
        updated."""
        raise NotImplementedError

    def errors(self, start: int, stop: int, limit: int) -> list[RowError]:
        """The first ``limit`` row errors among rows ``start`` to ``stop`` (excluded), in row
        order."""
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT number, problem, detail, duplicate_of "  # noqa: S608
                f"FROM {self.table} WHERE number >= %s AND number < %s "
                f"AND (problem > {BLANK} OR duplicate_of IS NOT NULL) ORDER BY number LIMIT %s",
                [start, stop, limit],
            )
            return [
                RowError(number, None if problem is None else Problem(problem), detail, first)
                for number, problem, detail, first in cursor.fetchall()
            ]

    def insert(
        self,
        custom: str,
        no_custom: str,
        merge: str,
        *,
        key_type: str = "",
        source: str = "",
        where: str = "",
        order: str = "",
    ) -> str:
        """``INSERT ... SELECT`` of the candidates of a range, for ``upsert`` to complete.

        ``custom`` builds a JSON object without NULLs from ``{pairs}`` (``key, value, ...``,
        keys as parameters cast to ``key_type``, NULL for an empty cell); ``no_custom`` when
        none is mapped. A function takes at most 100 arguments on PostgreSQL (127 on SQLite):
        past ``PAIRS_PER_OBJECT`` custom fields, objects of that many are joined with ``merge``
        (``{0}`` and ``{1}``). ``source`` (the range's candidates as ``t``) and ``where``
        replace reading them from the stage.
        """
        table, column = _names()
        mapped = self._mapped()
        pairs = [
            f"%(k{position})s{key_type}, nullif(t.{name}, '')"
            for position, name in enumerate(self.values)
            if self.plan.values[position].field == "custom"
        ]
        objects = [
            custom.format(pairs=", ".join(part))
            for part in itertools.batched(pairs, PAIRS_PER_OBJECT)
        ]
        selected = [
            "%(workspace)s",
            "t.email",
            *(f"t.{mapped[name]}" if name in mapped else "''" for name in STANDARD),
            functools.reduce(merge.format, objects) if objects else no_custom,
            "%(status)s",
            "%(now)s",
            "%(now)s",
        ]
        if not source:
            source = f"{self.table} t"
            where = f"WHERE {self.candidates()} {where}"
        return (
            f"INSERT INTO {table} AS s ({', '.join(column[name] for name in INSERTED)}) "  # noqa: S608
            f"SELECT {', '.join(selected)} FROM {source} {where} {order}"
        )

    @staticmethod
    def candidates() -> str:
        """The condition on a stage row ``t`` to be upserted by the range's statement."""
        return (
            "t.number >= %(start)s AND t.number < %(stop)s "
            "AND t.problem IS NULL AND t.duplicate_of IS NULL"
        )

    def _mapped(self) -> dict[str, str]:
        """Standard field -> its stage column, for the fields the import maps."""
        return {
            value.field: name
            for value, name in zip(self.plan.values, self.values, strict=True)
            if value.field in STANDARD
        }

    def _custom_positions(self) -> list[int]:
        return [i for i, value in enumerate(self.plan.values) if value.field == "custom"]


class PostgresStage(Stage):
    table = f"pg_temp.{NAME}"
    next_write = ""  # how :meth:`upsert` writes the next range: insert, split or upsert

    def prepared(self, chunk: Chunk) -> Any:
        """``COPY``'s text format, the lines built a column at a time."""
        if not setting("SUBSCRIBER_IMPORT_USE_COPY"):
            return super().prepared(chunk)
        line = "\t".join(["{}"] * len(self.columns)) + "\n"
        rejected = _rows(chunk, len(self.values), null=r"\N", candidates=False)
        return "".join(map(line.format, *_copy_columns(chunk))) + "".join(
            line.format(*row) for row in rejected
        )

    def write(self, rows: Any) -> None:
        if not setting("SUBSCRIBER_IMPORT_USE_COPY"):
            super().write(rows)
            return
        with connection.cursor() as cursor:
            copy_in = f"COPY {self.table} ({', '.join(self.columns)}) FROM STDIN"
            with cursor.copy(copy_in) as copy:
                copy.write(rows)

    def upsert(self, cursor: Any, params: dict[str, Any], candidates: int) -> tuple[int, int]:
        """New emails are inserted with a plain ``INSERT`` (cheaper than ``ON CONFLICT``) when
        that pays: how a range is written depends on the range before (at first, on whether
        the workspace has subscribers). After a range of new emails only, the next is inserted
        whole; after one with more new emails than stored ones, it is split by whether each
        email is stored (a plain insert of the new ones, the upsert of the others, one
        statement); otherwise upserted whole. A plain insert that meets a stored email (a
        unique violation: the range had some, or another import adds one meanwhile) is
        undone and the range written the next way."""
        # Room to sort a range by email in memory (4 MB, the usual default, spills to disk).
        cursor.execute("SET LOCAL work_mem = '64MB'")
        if not self.next_write:
            table, column = _names()
            cursor.execute(
                f"SELECT EXISTS (SELECT 1 FROM {table} "  # noqa: S608
                f"WHERE {column['workspace']} = %(workspace)s)",
                params,
            )
            self.next_write = "upsert" if cursor.fetchone()[0] else "insert"
        insert = self.insert(**self._insert_sql())
        if self.next_write == "insert" and _unless_stored(cursor, insert, params):
            created, updated = cursor.rowcount, 0
        elif self.next_write != "upsert" and _unless_stored(cursor, self._split(), params):
            created, updated = cursor.fetchone()
        else:
            cursor.execute(self._statement(), params)
            created, updated = cursor.fetchone()
        stored = candidates - created
        self.next_write = "insert" if not stored else "split" if created > stored else "upsert"
        return int(created), int(updated)

    def _split(self) -> str:
        """One statement, so one snapshot: the range's candidates with whether their email is
        stored (``t``, read once), a plain insert of the others, the upsert of those, and
        their counts."""
        table, column = _names()
        stored = (
            f"EXISTS (SELECT 1 FROM {table} x WHERE x.{column['workspace']} = %(workspace)s "  # noqa: S608
            f"AND x.{column['email']} = t.email)"
        )
        new = self.insert(**self._insert_sql(), source="t", where="WHERE NOT t.stored")
        old = self._statement(self.insert(**self._insert_sql(), source="t", where="WHERE t.stored"))
        return (
            f"WITH t AS MATERIALIZED (SELECT t.*, {stored} AS stored "  # noqa: S608
            f"FROM {self.table} t WHERE {self.candidates()}), "
            f"new AS ({new} RETURNING 1), up AS ({old}) "
            "SELECT (SELECT count(*) FROM new) + count(*) FILTER (WHERE created), "
            "count(*) FILTER (WHERE NOT created) FROM up"
        )

    def _insert_sql(self) -> dict[str, str]:
        return {
            "custom": "jsonb_strip_nulls(jsonb_build_object({pairs}))",
            "no_custom": "'{}'::jsonb",
            "merge": "{0} || {1}",
            "key_type": "::text",
            "order": "ORDER BY t.email",
        }

    def _statement(self, insert: str = "") -> str:
        """The upsert, in email order (two imports that meet lock rows in the same order),
        returning whether each row was created; an unchanged row is not updated, so not
        returned. Alone (no ``insert`` given, all the range's candidates), with its counts."""
        _, column = _names()
        new = {
            column[name]: f"coalesce(nullif(EXCLUDED.{column[name]}, ''), s.{column[name]})"
            for name in self._mapped()
        }
        if self._custom_positions():
            fields = column["custom_fields"]
            new[fields] = f"s.{fields} || EXCLUDED.{fields}"
        if new:
            stamp = column["updated_at"]
            update = (
                f"DO UPDATE SET {', '.join(f'{name} = {value}' for name, value in new.items())}, "
                f"{stamp} = EXCLUDED.{stamp} "
                f"WHERE ({', '.join(f's.{name}' for name in new)}) "
                f"IS DISTINCT FROM ({', '.join(new.values())})"
            )
        else:
            update = "DO NOTHING"
        upsert = (
            f"{insert or self.insert(**self._insert_sql())} "
            f"ON CONFLICT ({column['workspace']}, {column['email']}) {update} "
            "RETURNING (xmax = 0) AS created"
        )
        if insert:
            return upsert
        return (
            f"WITH up AS ({upsert}) "  # noqa: S608
            "SELECT count(*) FILTER (WHERE created), count(*) FILTER (WHERE NOT created) FROM up"
        )


class SqliteStage(Stage):
    table = f"temp.{NAME}"

    def upsert(self, cursor: Any, params: dict[str, Any], candidates: int) -> tuple[int, int]:
        table, column = _names()
        cursor.execute(f"SELECT coalesce(max({column['id']}), 0) FROM {table}")  # noqa: S608
        (before,) = cursor.fetchone()
        cursor.execute(self._statement(), params)
        changed = cursor.rowcount
        cursor.execute(f"SELECT count(*) FROM {table} WHERE {column['id']} > %s", [before])  # noqa: S608
        (created,) = cursor.fetchone()
        return created, changed - created

    def _statement(self) -> str:
        """Custom fields are JSON text: ``json_patch`` merges them (an empty cell is a NULL,
        which ``json_patch`` onto '{}' leaves out); a custom value has changed when its key
        does not hold that very string yet."""
        _, column = _names()
        assignments, changed = [], []
        for name in self._mapped():
            new = f"coalesce(nullif(EXCLUDED.{column[name]}, ''), s.{column[name]})"
            assignments.append(f"{column[name]} = {new}")
            changed.append(f"s.{column[name]} <> {new}")
        if self._custom_positions():
            fields = column["custom_fields"]
            assignments.append(f"{fields} = json_patch(s.{fields}, EXCLUDED.{fields})")
            for position in self._custom_positions():
                path = f"'$.\"' || %(k{position})s || '\"'"
                new = f"json_extract(EXCLUDED.{fields}, {path})"
                changed.append(
                    f"({new} IS NOT NULL AND (json_type(s.{fields}, {path}) IS NOT 'text' "
                    f"OR json_extract(s.{fields}, {path}) IS NOT {new}))"
                )
        if assignments:
            stamp = column["updated_at"]
            update = (
                f"DO UPDATE SET {', '.join(assignments)}, {stamp} = EXCLUDED.{stamp} "
                f"WHERE {' OR '.join(changed)}"
            )
        else:
            update = "DO NOTHING"
        insert = self.insert(
            custom="json_patch('{{}}', json_object({pairs}))",
            no_custom="'{}'",
            merge="json_patch({0}, {1})",
        )
        return f"{insert} ON CONFLICT ({column['workspace']}, {column['email']}) {update}"


def _unless_stored(cursor: Any, statement: str, params: dict[str, Any]) -> bool:
    """Run ``statement`` in a savepoint; False (and undone) if it met a stored email or a
    concurrent import of the same emails."""
    try:
        with transaction.atomic():
            cursor.execute(statement, params)
    except (IntegrityError, OperationalError) as exc:
        if getattr(exc.__cause__, "sqlstate", None) not in RETRY_NEXT_WAY:
            raise
        return False
    return True


def _names() -> tuple[str, dict[str, str]]:
    """The quoted table and column names. Identifiers only: values are always parameters."""
    quote = connection.ops.quote_name
    columns = {f.name: quote(str(f.column)) for f in Subscriber._meta.concrete_fields}
    return quote(Subscriber._meta.db_table), columns


def _rows(
    chunk: Chunk, values: int, *, null: Any, candidates: bool = True
) -> Iterator[tuple[Any, ...]]:
    """The chunk's rows as tuples of the stage's columns: its candidates, then the rest."""
    if candidates:
        yield from zip(
            chunk.numbers,
            chunk.emails,
            *_too_long(chunk, null=None),
            *chunk.values,
            strict=False,
        )
    for number, problem, detail in chunk.rejected:
        yield (number, null, problem.value, null if detail is None else detail, *[null] * values)


def _too_long(chunk: Chunk, *, null: Any) -> tuple[Iterable[Any], Iterable[Any]]:
    """The candidates' ``problem`` and ``detail`` columns: ``VALUE_TOO_LONG`` and the position
    of the cell for a row with a cell too long, NULLs for the others."""
    if not chunk.too_long:
        return itertools.repeat(null), itertools.repeat(null)
    problem = Problem.VALUE_TOO_LONG.value
    return (
        [null if p is None else problem for p in chunk.too_long],
        [null if p is None else p for p in chunk.too_long],
    )


def _copy_columns(chunk: Chunk) -> list[Iterable[Any]]:
    """The candidates' columns as ``COPY`` text: cells escaped, NULL as ``\\N``."""
    return [
        chunk.numbers,
        _copy_escaped(chunk.emails),
        *_too_long(chunk, null=r"\N"),
        *map(_copy_escaped, chunk.values),
    ]


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_escaped(cells: list[str]) -> list[str]:
    """Escape what ``COPY``'s text format gives a meaning to; most columns have none of it."""
    joined = "".join(cells)
    if "\\" in joined or "\t" in joined or "\n" in joined or "\r" in joined:
        return [cell.translate(_COPY_ESCAPES) for cell in cells]
    return cells
