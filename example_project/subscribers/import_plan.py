"""The import's shared types: which column feeds which field (``ImportPlan``), a slice of the
CSV as it is staged (``Chunk``), and the one error that stops an import (``CsvProblem``).

A leaf module: ``imports``, ``import_stage`` and ``import_lanes`` all import it, and it imports
none of them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

__all__ = ["MAX_LENGTHS", "Chunk", "CsvProblem", "ImportPlan", "MappedValue"]

# Longest value per stored field: longer cells are row errors, not truncated data.
MAX_LENGTHS = {"email": 254, "name": 255, "first_name": 150, "last_name": 150, "custom": 1000}


class CsvProblem(ValueError):
    """The CSV or its mappings can't be imported at all: a 400 when the job is created, reported
    under ``field``, the member of the body the client has to change."""

    def __init__(self, message: str, *, field: str = "csv_text") -> None:
        super().__init__(message)
        self.field = field


class MappedValue(NamedTuple):
    """A CSV column that feeds a subscriber field other than the email."""

    field: str  # name, first_name, last_name or custom
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
    email: tuple[int, str]  # (column index, column name)
    values: tuple[MappedValue, ...]  # standard fields first, then custom ones

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
        email: list[tuple[int, str]] = []
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
                email.append((index[column], column))
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
    ``too_long`` describe the candidates; ``rejected`` the other rows as
    (row number, problem, fields found).
    """

    end: int  # the row number after the slice's last
    numbers: Sequence[int]
    emails: list[str]
    values: list[list[str]]
    too_long: list[int | None] | None  # None: no cell is too long
    rejected: list[tuple[int, int, int | None]]
