"""Real database failures for a job handler to run into (``interrupt`` in ``jobs.py``).

Each fault takes the job's owner and two widget names the run has already written, and makes
the database itself fail the handler's next statement: no exception is made up here.

* ``connection``: another connection terminates this one's backend (PostgreSQL);
* ``deadlock``: this run and another transaction lock the two widgets in opposite order, and
  PostgreSQL's deadlock detector picks this run (40P01);
* ``serialization``: a repeatable-read transaction updates a widget that another transaction
  changed after its snapshot (40001);
* ``locked``: SQLite's write lock is held by another connection ("database is locked");
* ``bug``: a query on a table that does not exist (the handler's own failure, not transient).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from django.db import connection, connections, transaction

from .models import Widget

__all__ = ["FAULTS"]

TIMEOUT = 30


def elsewhere(work: Callable[[], Any]) -> threading.Thread:
    """Start ``work`` in a thread, and so on a database connection of its own."""

    def run() -> None:
        try:
            work()
        finally:
            connections.close_all()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return int(cursor.fetchone()[0])


def lose_connection(owner: str, first: str, second: str) -> None:
    pid = backend_pid()

    def terminate() -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s, %s)", [pid, TIMEOUT * 1000])

    elsewhere(terminate).join(TIMEOUT)


def deadlock(owner: str, first: str, second: str) -> None:
    widgets = Widget.objects.filter(owner=owner).select_for_update()
    other_pid: list[int] = []
    locked = threading.Event()

    def lock_in_the_other_order() -> None:
        with transaction.atomic():
            with connection.cursor() as cursor:  # never the one to give up
                cursor.execute("SET LOCAL deadlock_timeout = '60s'")
            other_pid.append(backend_pid())
            widgets.get(name=second)
            locked.set()
            widgets.get(name=first)  # waits until this run's transaction is gone

    other = None
    try:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL deadlock_timeout = '10ms'")
            widgets.get(name=first)
            other = elsewhere(lock_in_the_other_order)
            assert locked.wait(TIMEOUT), "the other transaction never locked its widget"
            _wait_until_blocked_by_me(other_pid[0])
            widgets.get(name=second)  # the deadlock: this transaction is chosen to fail
    finally:
        if other is not None:
            other.join(TIMEOUT)


def _wait_until_blocked_by_me(pid: int) -> None:
    for _ in range(TIMEOUT * 100):
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid() = ANY(pg_blocking_pids(%s))", [pid])
            if cursor.fetchone()[0]:
                return
        threading.Event().wait(0.01)
    raise AssertionError("the other transaction never waited for this one")


def serialization_failure(owner: str, first: str, second: str) -> None:
    widgets = Widget.objects.filter(owner=owner, name=first)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        widgets.get()  # the snapshot is taken
        elsewhere(lambda: widgets.update(payload={"changed": "meanwhile"})).join(TIMEOUT)
        widgets.update(payload={"changed": "here"})  # changed since the snapshot: 40001


def database_locked(owner: str, first: str, second: str) -> None:
    widgets = Widget.objects.filter(owner=owner, name=first)
    holding, release = threading.Event(), threading.Event()

    def hold_the_write_lock() -> None:
        with transaction.atomic():
            widgets.update(payload={"changed": "meanwhile"})
            holding.set()
            release.wait(TIMEOUT)

    other = elsewhere(hold_the_write_lock)
    try:
        assert holding.wait(TIMEOUT), "the other connection never took the write lock"
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA busy_timeout")
            (waited,) = cursor.fetchone()
            cursor.execute("PRAGMA busy_timeout = 0")  # fail at once instead of waiting
            try:
                widgets.update(payload={"changed": "here"})
            finally:
                cursor.execute(f"PRAGMA busy_timeout = {int(waited)}")
    finally:
        release.set()
        other.join(TIMEOUT)


def bug(owner: str, first: str, second: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM no_such_table")


FAULTS: dict[str, Callable[[str, str, str], None]] = {
    "connection": lose_connection,
    "deadlock": deadlock,
    "serialization": serialization_failure,
    "locked": database_locked,
    "bug": bug,
}
