"""The bulk-load engines behind the subscriber jobs: speed work, not the lesson.

Each engine is one function, which a job kind's handler (``subscribers/jobs.py``) calls:

* :func:`import_subscribers` upserts a CSV's rows into a workspace and returns the counts and
  row errors; :func:`check_csv` is what the create request checks before the job exists.
* :func:`export_subscribers` writes a workspace's subscribers as a CSV into storage and returns
  where it is.

An import's CSV is kept in storage, not in the job's row (``files``: :func:`store_csv`,
:func:`open_csv`, :func:`delete_csv`). Inside: ``imports`` reads and sorts the rows, ``stage``
keeps them in a temporary table, ``lanes`` upserts over several PostgreSQL connections,
``exports`` streams the export, and ``shared`` is the leaf module of the types they share.
"""

from __future__ import annotations

from .exports import (
    CUSTOM_PREFIX,
    DEFAULT_FIELDS,
    STANDARD_FIELDS,
    export_file_name,
    export_storage,
    export_subscribers,
)
from .files import CsvFileMissing, delete_csv, open_csv, store_csv
from .imports import FIELD_TYPES, MAX_MAPPINGS, check_csv, import_subscribers
from .shared import CsvProblem

__all__ = [
    "CUSTOM_PREFIX",
    "DEFAULT_FIELDS",
    "FIELD_TYPES",
    "MAX_MAPPINGS",
    "STANDARD_FIELDS",
    "CsvFileMissing",
    "CsvProblem",
    "check_csv",
    "delete_csv",
    "export_file_name",
    "export_storage",
    "export_subscribers",
    "import_subscribers",
    "open_csv",
    "store_csv",
]
