"""Which failures of a job are transient (docs/jobs.md#transient-failures): run it again later
rather than fail it.

A transient failure is the database's, not the handler's: the connection was lost (a restart,
a proxy or an operator cut it), a deadlock or a serialization failure picked this transaction,
the database was busy. The same work can succeed when run again, and handlers are idempotent.
Anything else a handler raises (``JobFailed``, a bug, a query on a missing table) fails the job.
"""

from __future__ import annotations

import sqlite3

from django.db import InterfaceError, OperationalError, connections

__all__ = ["close_broken_connections", "is_transient"]

# SQLSTATE classes and codes (PostgreSQL) after which the same statements can succeed later:
# connection exception, transaction rollback (serialization failure, deadlock), insufficient
# resources (too many connections); admin or crash shutdown, cannot connect now, lock timeout.
TRANSIENT_SQLSTATE_CLASSES = frozenset({"08", "40", "53"})
TRANSIENT_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "55P03"})
SQLITE_BUSY, SQLITE_LOCKED = 5, 6


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is a database failure that running the job again may not meet.

    Django's ``OperationalError``/``InterfaceError`` and the drivers' own (a raw psycopg
    ``COPY`` raises those) count, by their SQLSTATE on PostgreSQL and their error code on
    SQLite ("database is locked"); on other databases every one of them counts.
    """
    if isinstance(exc, OperationalError | InterfaceError):
        error: BaseException = exc.__cause__ or exc
    elif isinstance(exc, _driver_errors()):
        error = exc
    else:
        return False
    if isinstance(error, sqlite3.Error):
        code = getattr(error, "sqlite_errorcode", 0) & 0xFF
        return code in (SQLITE_BUSY, SQLITE_LOCKED)
    if hasattr(error, "sqlstate") or hasattr(error, "pgcode"):  # psycopg 3, psycopg2
        sqlstate = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
        if not sqlstate:  # lost on the client's side: no answer from the server at all
            return True
        return sqlstate[:2] in TRANSIENT_SQLSTATE_CLASSES or sqlstate in TRANSIENT_SQLSTATES
    return True


def _driver_errors() -> tuple[type[BaseException], ...]:
    """The DB-API ``OperationalError`` and ``InterfaceError`` of every configured database."""
    modules = {getattr(connections[alias], "Database", None) for alias in connections}
    return tuple(
        error
        for module in modules
        if module is not None
        for error in (module.OperationalError, module.InterfaceError)
    )


def close_broken_connections() -> None:
    """Close the connections a failure left unusable, so that the next query opens a new one
    (Django does this between requests; a worker runs no requests)."""
    for connection in connections.all(initialized_only=True):
        if (
            connection.connection is not None
            and not connection.in_atomic_block
            and not connection.is_usable()
        ):
            connection.close()
