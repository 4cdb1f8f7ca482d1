"""The PostgreSQL import's statements: plain inserts while emails are new, a split of new from
stored ones, the upsert when another import gets there first, and several connections."""

from __future__ import annotations

import io
import threading
import time
from typing import Any

import pytest
from django.db import connection, transaction

from example_project.subscribers.bulk import stage as import_stage
from example_project.subscribers.bulk.imports import import_subscribers
from example_project.subscribers.bulk.lanes import Lanes
from example_project.subscribers.models import Subscriber
from example_project.workspaces.models import Workspace

pytestmark = pytest.mark.postgresql

MAPPINGS = [
    {"csv_column": "Email", "field": {"type": "email"}},
    {"csv_column": "Name", "field": {"type": "name"}},
    {"csv_column": "Plan", "field": {"type": "custom", "key": "plan"}},
]


class Progress:
    def __init__(self) -> None:
        self.processed: list[int] = []

    def progress(self, **fields: Any) -> None:
        self.processed.append(fields["rows_processed"])


def run(workspace: Workspace, rows: list[str]) -> dict[str, Any]:
    text = "Email,Name,Plan\n" + "".join(f"{row}\n" for row in rows)
    return import_subscribers(workspace.pk, io.StringIO(text, newline=""), MAPPINGS, Progress())


@pytest.fixture
def attempts(monkeypatch: Any) -> list[bool]:
    """Whether each plain insert (of a whole range, or of its new emails) went through."""
    seen: list[bool] = []
    real = import_stage._unless_stored

    def noted(*args: Any) -> bool:
        seen.append(real(*args))
        return seen[-1]

    monkeypatch.setattr(import_stage, "_unless_stored", noted)
    return seen


def stored(workspace: Workspace) -> dict[str, tuple[str, dict[str, Any]]]:
    found = Subscriber.objects.filter(workspace=workspace).values_list(
        "email", "name", "custom_fields"
    )
    return {email: (name, custom) for email, name, custom in found}


@pytest.mark.django_db
def test_new_changed_and_unchanged_rows_are_counted_exactly(
    settings: Any, attempts: list[bool]
) -> None:
    settings.EXAMPLE_SUBSCRIBER_IMPORT_BATCH_SIZE = 10
    workspace = Workspace.objects.create(name="paths")
    for i in range(20, 30):
        Subscriber.objects.create(
            workspace=workspace, email=f"old{i}@example.com", name="Old", custom_fields={}
        )
    rows = [f"new{i}@example.com,New {i},free" for i in range(10)]  # rows 2-11: all new
    rows += [f"old{i}@example.com,Old,pro" for i in range(20, 25)]  # rows 12-16: changed
    rows += [f"old{i}@example.com,," for i in range(25, 30)]  # rows 17-21: unchanged
    rows += [f"new{i}@example.com,New {i},pro" for i in range(10, 20)]  # rows 22-31: all new
    rows += [f"new{i}@example.com,," for i in range(20, 30)]  # rows 32-41: all new
    result = run(workspace, rows)
    assert (result["created"], result["updated"], result["skipped"]) == (30, 5, 5)
    # The workspace had subscribers: range 1 upserted, all new. So range 2 was inserted
    # whole, met stored emails and was split (none new: range 3 upserted, all new); range 4
    # inserted whole.
    assert attempts == [False, True, True]
    assert Subscriber.objects.filter(workspace=workspace).count() == 40
    after = stored(workspace)
    assert after["old20@example.com"] == ("Old", {"plan": "pro"})
    assert after["old25@example.com"] == ("Old", {})
    assert after["new3@example.com"] == ("New 3", {"plan": "free"})
    assert after["new22@example.com"] == ("", {})


@pytest.mark.django_db
def test_a_range_inserted_whole_that_meets_a_stored_email_is_split(
    settings: Any, attempts: list[bool]
) -> None:
    settings.EXAMPLE_SUBSCRIBER_IMPORT_BATCH_SIZE = 10
    first, second = Workspace.objects.create(name="a"), Workspace.objects.create(name="b")
    rows = [f"user{i}@example.com,User {i},free" for i in range(20)]
    assert run(second, rows[:10])["created"] == 10  # another workspace's: no conflict
    assert run(first, rows[:10])["created"] == 10
    attempts.clear()
    result = run(first, [f"more{i}@example.com,More,pro" for i in range(10)] + rows[5:15])
    # Range 1 upserted (the workspace had subscribers), all new; so range 2 was inserted
    # whole, met user5-9 and was split, updating none of them.
    assert attempts == [False, True]
    assert (result["created"], result["updated"], result["skipped"]) == (15, 0, 5)
    assert len(stored(first)) == 25 and len(stored(second)) == 10


def blocked_on_a_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return bool(cursor.fetchone()[0])


@pytest.mark.parametrize("second_range", ["inserted whole", "split"])
@pytest.mark.django_db(transaction=True)
def test_an_email_another_import_adds_meanwhile_is_upserted(
    settings: Any, attempts: list[bool], second_range: str
) -> None:
    """Another connection inserts an email of the CSV's second range and commits only once
    the import waits for it: the import's plain insert fails on it, and the range is written
    another way."""
    settings.EXAMPLE_SUBSCRIBER_IMPORT_CONNECTIONS = 1
    settings.EXAMPLE_SUBSCRIBER_IMPORT_BATCH_SIZE = 4
    workspace = Workspace.objects.create(name="race")
    if second_range == "split":  # range 1 is upserted, finds more new emails than stored
        Subscriber.objects.create(workspace=workspace, email="user0@example.com", name="Old")
    inserted, release = threading.Event(), threading.Event()

    def other_import() -> None:
        try:
            with transaction.atomic():
                Subscriber.objects.create(
                    workspace=workspace, email="user5@example.com", name="Theirs"
                )
                inserted.set()
                release.wait(30)
        finally:
            connection.close()

    results: list[dict[str, Any]] = []

    def this_import() -> None:
        try:
            rows = [f"user{i}@example.com,User {i},free" for i in range(8)]
            results.append(run(workspace, rows))
        finally:
            connection.close()

    other = threading.Thread(target=other_import)
    other.start()
    assert inserted.wait(30)
    this = threading.Thread(target=this_import)
    this.start()
    deadline = time.monotonic() + 30
    while not blocked_on_a_lock():
        assert time.monotonic() < deadline, "the import never waited for the other insert"
        time.sleep(0.02)
    release.set()
    other.join(30)
    this.join(30)
    assert results, "the import failed"
    counts = (results[0]["created"], results[0]["updated"], results[0]["skipped"])
    if second_range == "split":  # then upserted whole: the split's insert met user5
        assert attempts == [False] and counts == (6, 2, 0)
    else:  # then split
        assert attempts == [True, False, True] and counts == (7, 1, 0)
    assert stored(workspace)["user5@example.com"] == ("User 5", {"plan": "free"})
    assert Subscriber.objects.filter(workspace=workspace).count() == 8


@pytest.mark.django_db(transaction=True)
def test_a_statement_that_deadlocks_is_undone_and_reported_for_the_next_way() -> None:
    """A real deadlock: this transaction holds subscriber a and, inside ``_unless_stored``,
    waits for b, which another transaction holds while it waits for a. This one waited first,
    so its deadlock check fires first and its statement is the one cancelled: the savepoint is
    undone, the rest of the transaction goes on, and the other transaction then gets a."""
    workspace = Workspace.objects.create(name="deadlock")
    a, b = (
        Subscriber.objects.create(workspace=workspace, email=f"{name}@example.com") for name in "ab"
    )
    holds_b, done = threading.Event(), threading.Event()

    def other() -> None:
        try:
            with transaction.atomic():
                Subscriber.objects.filter(pk=b.pk).update(name="Other")
                holds_b.set()
                deadline = time.monotonic() + 30
                while not blocked_on_a_lock():  # this one waits for b first
                    assert time.monotonic() < deadline
                    time.sleep(0.02)
                Subscriber.objects.filter(pk=a.pk).update(name="Other")  # waits for this one
            done.set()
        finally:
            connection.close()

    thread = threading.Thread(target=other)
    with transaction.atomic():
        Subscriber.objects.filter(pk=a.pk).update(name="This")
        thread.start()
        assert holds_b.wait(30)
        with connection.cursor() as cursor:
            went_through = import_stage._unless_stored(
                cursor,
                "UPDATE subscribers_subscriber SET name = 'This' WHERE id = %(b)s",
                {"b": b.pk},
            )
        assert went_through is False
        Subscriber.objects.filter(pk=a.pk).update(first_name="still in the transaction")
    thread.join(30)
    assert done.is_set()
    assert dict(Subscriber.objects.values_list("email", "name")) == {
        "a@example.com": "Other",
        "b@example.com": "Other",
    }
    assert Subscriber.objects.get(pk=a.pk).first_name == "still in the transaction"


def mixed_rows() -> list[str]:
    rows = [f"user{i}@example.com,User {i},{('free', 'pro')[i % 2]}" for i in range(400)]
    rows[30] = "not an email,X,free"  # row 32
    rows[77] = "USER5@example.com,Again,pro"  # row 79: a duplicate of row 7
    rows[150] = ",,"  # row 152: blank, skipped
    rows[201] = "user5@example.com,Once more,pro"  # row 203
    rows[333] = f"user333@example.com,{'x' * 300},free"  # row 335: too long
    return rows


@pytest.mark.django_db(transaction=True)
def test_several_connections_import_as_one_does(settings: Any) -> None:
    settings.EXAMPLE_SUBSCRIBER_IMPORT_BATCH_SIZE = 64
    settings.EXAMPLE_SUBSCRIBER_IMPORT_MAX_ERRORS = 3
    outcomes = []
    for connections in (1, 2):
        settings.EXAMPLE_SUBSCRIBER_IMPORT_CONNECTIONS = connections
        assert Lanes.count() == connections
        workspace = Workspace.objects.create(name=f"lanes {connections}")
        for i in range(0, 400, 7):  # some stored, half of them changed
            Subscriber.objects.create(
                workspace=workspace, email=f"user{i}@example.com", name=f"User {i}"
            )
        progress = Progress()
        text = "Email,Name,Plan\n" + "".join(f"{row}\n" for row in mixed_rows())
        result = import_subscribers(workspace.pk, io.StringIO(text, newline=""), MAPPINGS, progress)
        assert progress.processed == [0, *range(64, 400, 64), 400, 400]
        outcomes.append((result, stored(workspace)))
    (serial, serial_rows), (parallel, parallel_rows) = outcomes
    assert parallel == serial and parallel_rows == serial_rows
    assert [error["row"] for error in parallel["errors"]] == [32, 79, 203]
    assert parallel["errors_truncated"] and parallel["failed"] == 4
    # 395 candidates; 57 of the 58 stored emails are among them (not user77) and get a plan.
    assert (parallel["created"], parallel["updated"], parallel["skipped"]) == (338, 57, 1)
    assert len(parallel_rows) == 338 + 58
