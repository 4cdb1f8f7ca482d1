"""The database store's last completion in a transaction: on PostgreSQL its UPDATE and the
view's COMMIT go in one round trip; everywhere, the writes commit with the outcome or not at all.
"""

from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from idempotency_jobs.keys.responses import StoredResponse
from idempotency_jobs.keys.stores import LeaseLost, get_store
from idempotency_jobs.models import IdempotencyKey
from tests.helpers import CORE_DB, KEY, configure, widgets
from tests.testapp.models import Widget

pytestmark = CORE_DB

HOUR = timedelta(hours=1)


@pytest.fixture(autouse=True)
def database_store(settings):
    configure(settings, STORE="database")


def claim():
    return get_store().claim("user:1", KEY, "fp", ttl=24 * HOUR, lease=HOUR)


def test_last_completion_commits_with_the_views_writes_and_runs_on_commit_hooks():
    owner = claim()
    hooks = []
    with CaptureQueriesContext(connection) as captured, transaction.atomic():
        Widget.objects.create(owner="alice", name="w")
        transaction.on_commit(lambda: hooks.append("ran"))
        get_store().complete_and_commit(owner, StoredResponse(201, b"done"))
    sent_along = [q["sql"] for q in captured.captured_queries if q["sql"].endswith("; COMMIT")]
    assert len(sent_along) == (1 if connection.vendor == "postgresql" else 0)
    assert widgets() == 1
    assert hooks == ["ran"]
    assert claim().response.body == b"done"


def test_last_completion_after_a_takeover_rolls_the_views_writes_back():
    old = claim()
    IdempotencyKey.objects.update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    new = claim()
    hooks = []
    with pytest.raises(LeaseLost), transaction.atomic():
        Widget.objects.create(owner="alice", name="w")
        transaction.on_commit(lambda: hooks.append("ran"))
        get_store().complete_and_commit(old, StoredResponse(201, b"old"))
    assert widgets() == 0
    assert hooks == []
    row = IdempotencyKey.objects.get()
    assert (row.owner_token, row.state) == (new.token, IdempotencyKey.State.IN_PROGRESS)
    with transaction.atomic():  # the connection is fine afterwards
        get_store().complete_and_commit(new, StoredResponse(201, b"new"))
    assert claim().response.body == b"new"


def test_last_completion_inside_an_outer_transaction_leaves_the_commit_to_it():
    """Under ATOMIC_REQUESTS the view's block is a savepoint: nothing may commit early."""
    owner = claim()
    with pytest.raises(RuntimeError), transaction.atomic():
        with transaction.atomic():
            Widget.objects.create(owner="alice", name="w")
            get_store().complete_and_commit(owner, StoredResponse(201, b"done"))
        raise RuntimeError("the request fails after the view")
    assert widgets() == 0
    assert IdempotencyKey.objects.get().state == IdempotencyKey.State.IN_PROGRESS


@pytest.mark.postgresql
def test_the_commit_rides_along_only_with_client_side_binding():
    """With server-side binding a query string holds one statement: the COMMIT stays apart."""
    import psycopg

    from idempotency_jobs.keys.stores.database import _binds_client_side

    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    for factory, expected in ((psycopg.ClientCursor, True), (psycopg.Cursor, False)):
        with psycopg.connect(**params, cursor_factory=factory) as raw:
            assert _binds_client_side(raw) is expected
    connection.ensure_connection()
    assert _binds_client_side(connection.connection)  # Django's default
