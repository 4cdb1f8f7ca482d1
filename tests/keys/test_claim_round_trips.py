"""The database store's claim is one statement, whatever it finds (docs/semantics.md#answers):
a new key is claimed, a completed one answered with its stored response, an in-progress one
with its fingerprint, each in one round trip (issue 14: a replay in one round trip)."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from idempotency_jobs.keys.responses import StoredResponse
from idempotency_jobs.keys.stores import Claim, Existing, get_store
from idempotency_jobs.models import IdempotencyKey
from tests.helpers import CORE_DB, KEY, configure, is_replay, post, widgets

pytestmark = CORE_DB

HOUR = timedelta(hours=1)
KEY_TABLE = IdempotencyKey._meta.db_table


@pytest.fixture(autouse=True)
def database_store(settings):
    configure(settings, STORE="database")


def claim(fingerprint="fp"):
    return get_store().claim("user:1", KEY, fingerprint, ttl=24 * HOUR, lease=HOUR)


def statements(captured):
    return [query["sql"] for query in captured.captured_queries]


def test_claiming_a_new_key_is_one_statement():
    with CaptureQueriesContext(connection) as captured:
        owner = claim()
    assert isinstance(owner, Claim) and owner.record_id is not None
    assert len(statements(captured)) == 1
    assert IdempotencyKey.objects.get().owner_token == owner.token


def test_a_replay_is_one_statement_and_carries_the_stored_response():
    owner = claim()
    stored = StoredResponse(
        201, b'{"id": 1}', [("Content-Type", "application/json"), ("Location", "/w/1")]
    )
    get_store().complete(owner, stored)
    with CaptureQueriesContext(connection) as captured:
        found = claim()
    assert len(statements(captured)) == 1
    assert isinstance(found, Existing) and found.completed and found.fingerprint == "fp"
    assert found.response == stored
    row = IdempotencyKey.objects.get()
    assert (row.owner_token, row.state) == (owner.token, IdempotencyKey.State.COMPLETED)


def test_an_unreplayable_outcome_is_found_in_one_statement_too():
    owner = claim()
    get_store().complete(owner, StoredResponse(201, b"", replayable=False))
    with CaptureQueriesContext(connection) as captured:
        found = claim()
    assert len(statements(captured)) == 1
    assert isinstance(found, Existing) and found.response is not None
    assert found.response.replayable is False


def test_an_in_flight_twin_is_one_statement_and_names_its_fingerprint():
    claim("first")
    with CaptureQueriesContext(connection) as captured:
        found = claim("second")
    assert len(statements(captured)) == 1
    assert found == Existing("first", completed=False)
    assert IdempotencyKey.objects.count() == 1


def test_an_expired_key_found_by_the_claim_is_taken_over_as_a_new_request():
    old = claim("old")
    get_store().complete(old, StoredResponse(201, b"old"))
    IdempotencyKey.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    new = claim("new")
    assert isinstance(new, Claim) and new.token != old.token
    row = IdempotencyKey.objects.get()
    assert (row.fingerprint, row.state, row.response_body) == ("new", "in_progress", None)


def test_a_lapsed_lease_found_by_the_claim_is_taken_over_by_the_same_body_only():
    old = claim("same")
    IdempotencyKey.objects.update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert claim("other") == Existing("same", completed=False)
    new = claim("same")
    assert isinstance(new, Claim) and new.token != old.token
    assert IdempotencyKey.objects.get().owner_token == new.token


def test_a_replayed_request_reads_the_key_table_once(api):
    first = post(api)
    with CaptureQueriesContext(connection) as captured:
        replay = post(api)
    assert is_replay(replay) and replay.content == first.content
    assert len([sql for sql in statements(captured) if KEY_TABLE in sql]) == 1
    assert widgets() == 1
