"""The engines' shared types: which column feeds which field (``ImportPlan``), a slice of the
CSV as it is staged (``Chunk``), why a row is not imported (``Problem``, ``Rejected``,
``RowError``), the one error that stops an import (``CsvProblem``), and the cells a spreadsheet
would read as a formula (``FORMULA_STARTS``, which the export neutralises).

A leaf module: the package's other modules import it, and it imports none of them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, NamedTuple

__all__ = [
    "FORMULA_STARTS",
    "MAX_LENGTHS",
    "Chunk",
    "CsvProblem",
    "ImportPlan",
    "MappedValue",
    "Problem",
    "Rejected",
    "RowError",
]

# Longest value per stored field: longer cells are row errors, not truncated data.
MAX_LENGTHS = {"email": 254, "name": 255, "first_name": 150, "last_name": 150, "custom": 1000}

# A cell that starts with one of these would start a formula in a spreadsheet (OWASP): the
# export neutralises it with a leading ' (exports.FormulaSafe), which the import reads back as
# a quote prefix, as a spreadsheet does.
FORMULA_STARTS = "=+-@\t\r"


class Problem(IntEnum):
    """Why a CSV row is not upserted: the stage's ``problem`` column (NULL: a candidate).

    A blank line is skipped; every other problem is a row error the client is told about.
    """

    BLANK = 0
    RAGGED = 1  # ``detail``: how many fields the row has
    EMAIL_EMPTY = 2
    EMAIL_TOO_LONG = 3
    EMAIL_INVALID = 4
    VALUE_TOO_LONG = 5  # ``detail``: the position in ``ImportPlan.values`` of the cell


class Rejected(NamedTuple):
    """A row that is not a candidate, as it is staged."""

    number: int
    problem: Problem
    detail: int | None = None  # see ``Problem``


class RowError(NamedTuple):
    """A row error as the stage holds it."""

    number: int
    problem: Problem | None  # None: the row is a duplicate
    detail: int | None  # see ``Problem``
    duplicate_of: int | None


class CsvProblem(ValueError):
    """The CSV or its mappings can't be imported at all: a 400 when the job is created, reported
    under ``field``, the member of the body the client has to change."""

    def __init__(self, message: str, *, field: str = "csv_text") -> None:
        super().__init__(message)
        self.field = field


class MappedValue(NamedTuple):
    """A CSV column and the subscriber field it feeds."""

    field: str  # email, name, first_name, last_name or custom
    key: str  # the custom field's key; "" for the others
    column_index: int
    column: str

    @property
    def limit(self) -> int:
        return MAX_LENGTHS[self.field]


@dataclass(frozen=True)
class ImportPlan:
    """Which CSV column feeds which subscriber field."""

    width: int
    email: MappedValue
    values: tuple[MappedValue, ...]  # the other fields: standard ones first, then custom ones

    @classmethod
    def build(cls, header: Sequence[str], mappings: Sequence[dict[str, Any]]) -> ImportPlan:
        columns = [name.strip() for name in header]
        if columns and columns[0].startswith("\ufeff"):
            columns[0] = columns[0][1:].strip()
        if not any(columns):
            raise CsvProblem("csv_text has no header row.")
        named = [name for name in columns if name]
        duplicates = sorted(name for name, count in Counter(named).items() if count > 1)
        if duplicates:
            raise CsvProblem(f"Duplicate column names in the header: {', '.join(duplicates)}.")
        index = {name: i for i, name in enumerate(columns) if name}
        email: list[MappedValue] = []
        fields: list[MappedValue] = []
        custom: list[MappedValue] = []
        targets: set[str] = set()
        for mapping in mappings:
            column = mapping["csv_column"].strip()
            kind = mapping["field"]["type"]
            if column not in index:
                raise CsvProblem(
                    f"Mapped column {column!r} is not in the CSV header (columns: {_some(named)}).",
                    field="mappings",
                )
            target = f"custom:{mapping['field']['key']}" if kind == "custom" else kind
            if target in targets:
                raise CsvProblem(f"Two mappings write the same field ({target}).", field="mappings")
            targets.add(target)
            if kind == "email":
                email.append(MappedValue(kind, "", index[column], column))
            elif kind == "custom":
                custom.append(MappedValue(kind, mapping["field"]["key"], index[column], column))
            else:
                fields.append(MappedValue(kind, "", index[column], column))
        if not email:
            raise CsvProblem("No column is mapped to the email field.", field="mappings")
        return cls(len(columns), email[0], (*fields, *custom))


def _some(names: list[str], shown: int = 10) -> str:
    """The first few names, and how many there are if that is not all."""
    if len(names) <= shown:
        return ", ".join(names)
    return f"{', '.join(names[:shown])}, … {len(names)} in all"


@dataclass
class Chunk:
    """A slice of the CSV, column by column, as it is staged.

    ``numbers``, ``emails``, ``values`` (one list per ``plan.values``, cells stripped) and
    ``too_long`` describe the candidates; ``rejected`` the other rows.
    """

    end: int  # the row number after the slice's last
    numbers: Sequence[int]
    emails: list[str]
    values: list[list[str]]
    # Per candidate, the position in ``plan.values`` of its (last) cell that is too long, if
    # any: such a row is a ``VALUE_TOO_LONG`` error. None: no cell of the slice is too long.
    too_long: list[int | None] | None
    rejected: list[Rejected]
