"""The example service's own settings, with defaults; read at call time so tests can override."""

from __future__ import annotations

from typing import Any

from django.conf import settings

__all__ = ["DEFAULTS", "setting"]

DEFAULTS: dict[str, Any] = {
    # Largest csv_text accepted by a subscriber import (UTF-8 bytes).
    "SUBSCRIBER_IMPORT_MAX_BYTES": 20 * 1024 * 1024,
    # Most columns a subscriber import's CSV header may have.
    "SUBSCRIBER_IMPORT_MAX_COLUMNS": 1000,
    # Rows per upsert transaction (progress moves after each).
    "SUBSCRIBER_IMPORT_BATCH_SIZE": 50000,
    # On PostgreSQL, connections an import upserts over at once (rows dealt by email; outside
    # a transaction only). 1: the job's own connection only.
    "SUBSCRIBER_IMPORT_CONNECTIONS": 2,
    # On PostgreSQL, load the rows into the import's staging table with COPY (off: executemany).
    "SUBSCRIBER_IMPORT_USE_COPY": True,
    # Storage alias (settings.STORAGES) that holds the CSVs of import jobs.
    "SUBSCRIBER_IMPORT_STORAGE": "default",
    # Row errors kept in an import's result; the counts stay exact.
    "SUBSCRIBER_IMPORT_MAX_ERRORS": 100,
    # Rows fetched per round trip by an export, and rows between two progress writes.
    "SUBSCRIBER_EXPORT_CHUNK_SIZE": 10000,
    "SUBSCRIBER_EXPORT_PROGRESS_EVERY": 100000,
    # On PostgreSQL, let the server write the CSV (COPY ... TO STDOUT).
    "SUBSCRIBER_EXPORT_USE_COPY": True,
    # Exports put OWASP's leading ' before a cell that would start a formula in a spreadsheet
    # (=, +, -, @, tab, CR), and before the quotes of a cell neutralised already.
    "SUBSCRIBER_EXPORT_NEUTRALISE_FORMULAS": True,
    # Storage alias (settings.STORAGES) that holds export files.
    "SUBSCRIBER_EXPORT_STORAGE": "default",
    # Prefix for the download URL in an export's result, e.g. "https://api.example.com".
    "PUBLIC_BASE_URL": "",
}


def setting(name: str) -> Any:
    """``EXAMPLE_<name>`` from Django settings, else the default above."""
    return getattr(settings, f"EXAMPLE_{name}", DEFAULTS[name])
