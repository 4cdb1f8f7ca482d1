"""SPEC §3.4-3.7: leases and their takeover, expiry, and the purge command."""

import time
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from idempotency_jobs.exceptions import IdempotencyLeaseLost
from idempotency_jobs.models import IdempotencyKey
from idempotency_jobs.responses import StoredResponse
from idempotency_jobs.stores import Claim, Existing, get_store
from tests.helpers import (
    CORE_DB,
    KEY,
    REDIS_LEASE,
    TWO_FACES,
    assert_executed,
    assert_problem,
    configure,
    in_flight,
    is_replay,
    post,
    stored_keys,
    widgets,
)
from tests.testapp.models import Widget

pytestmark = CORE_DB

HOUR = timedelta(hours=1)


def expire_leases(store):
    """Let every in-progress claim's lease run out."""
    if store == "redis":
        time.sleep(REDIS_LEASE + 0.2)
    else:
        IdempotencyKey.objects.update(lease_expires_at=timezone.now() - timedelta(seconds=1))


def expire_keys(store):
    """Let every key's TTL run out, without purging anything."""
    if store == "redis":
        from django_redis import get_redis_connection

        client = get_redis_connection("redis")
        for name in client.keys("idempotency:*"):
            client.pexpire(name, 1)
        for _ in range(100):
            if not client.keys("idempotency:*"):
                break
            time.sleep(0.01)
    else:
        past = timezone.now() - timedelta(seconds=1)
        IdempotencyKey.objects.update(expires_at=past, created_at=past - timedelta(hours=24))


# Lease takeover through the views ---------------------------------------------------------------


@TWO_FACES
def test_expired_lease_is_taken_over_and_the_old_owners_writes_roll_back(
    api, settings, store, path
):
    if store == "redis":
        configure(settings, LEASE=REDIS_LEASE)
    with in_flight(path) as old:
        assert_problem(post(api, f"{path}?gate=g"), 409, "idempotency_key_in_use")
        expire_leases(store)
        new = post(api, f"{path}?gate=g")
        assert_executed(new)  # the crashed-looking first request no longer blocks the key
    assert_problem(old.result(), 409, "idempotency_lease_lost")
    assert list(Widget.objects.values_list("pk", flat=True)) == [new.json()["id"]]
    replay = post(api, f"{path}?gate=g")
    assert is_replay(replay)
    assert replay.content == new.content


@TWO_FACES
def test_expired_lease_with_another_fingerprint_is_still_422(api, settings, store, path):
    if store == "redis":
        configure(settings, LEASE=REDIS_LEASE)
    with in_flight(path):
        expire_leases(store)
        assert_problem(post(api, path, body={"name": "x"}), 422, "idempotency_key_mismatch")


# Lease takeover through the store API -------------------------------------------------------------


def claim(store, lease=HOUR):
    return get_store().claim("user:1", KEY, "fp", ttl=24 * HOUR, lease=lease)


def test_old_owner_can_neither_complete_nor_release_after_takeover(settings, store):
    lease = timedelta(seconds=REDIS_LEASE) if store == "redis" else HOUR
    old = claim(store, lease)
    assert isinstance(old, Claim)
    assert claim(store) == Existing("fp", completed=False)  # a live lease is not taken over
    expire_leases(store)
    new = claim(store)
    assert isinstance(new, Claim)
    assert new.token != old.token

    with pytest.raises(IdempotencyLeaseLost):
        get_store().complete(old, StoredResponse(201, b"old"))
    get_store().release(old)
    assert claim(store) == Existing("fp", completed=False)  # the new owner's claim survived
    assert stored_keys(store) == 1
    if store == "database":
        assert IdempotencyKey.objects.get().owner_token == new.token

    get_store().complete(new, StoredResponse(201, b"new", [("Content-Type", "text/plain")]))
    get_store().release(old)
    found = claim(store)
    assert isinstance(found, Existing)
    assert found.completed
    assert found.response == StoredResponse(201, b"new", [("Content-Type", "text/plain")])
    with pytest.raises(IdempotencyLeaseLost):
        get_store().complete(old, StoredResponse(201, b"old"))


def test_takeover_after_a_stale_read_never_reopens_a_completed_key(settings):
    """claim() reads the row, then takes it over with a compare-and-set: if the slow owner
    completed in between, the key is done and must not be handed out to run again."""
    configure(settings, STORE="database")
    store = get_store()
    old = claim("database")
    expire_leases("database")
    stale = IdempotencyKey.objects.get()  # what a new claimer read: in progress, lease run out
    store.complete(old, StoredResponse(201, b"old"))  # the slow owner finishes just then
    taker = Claim("user:1", KEY, "fp", "new-token")
    assert not store._take_over(stale, taker, now=timezone.now(), lease=HOUR)
    found = claim("database")
    assert found.completed
    assert found.response.body == b"old"


def test_owner_cannot_complete_twice(store):
    owner = claim(store)
    get_store().complete(owner, StoredResponse(201, b"first"))
    with pytest.raises(IdempotencyLeaseLost):
        get_store().complete(owner, StoredResponse(201, b"second"))
    assert claim(store).response.body == b"first"


def test_release_frees_the_key_for_the_next_claim(store):
    owner = claim(store)
    get_store().release(owner)
    assert stored_keys(store) == 0
    assert isinstance(claim(store), Claim)


def test_completed_keys_are_not_taken_over_after_their_lease(store):
    owner = claim(store, timedelta(seconds=REDIS_LEASE) if store == "redis" else HOUR)
    get_store().complete(owner, StoredResponse(201, b"done"))
    expire_leases(store)
    found = claim(store)
    assert isinstance(found, Existing)
    assert found.completed


# TTL ----------------------------------------------------------------------------------------------


@TWO_FACES
def test_expired_key_is_a_new_request_before_any_purge(api, store, path):
    first = post(api, path)
    expire_keys(store)
    if store == "database":
        assert IdempotencyKey.objects.count() == 1  # not purged
    second = post(api, path)
    assert_executed(second)
    assert second.content != first.content
    assert widgets() == 2
    assert is_replay(post(api, path))


@TWO_FACES
def test_expired_key_with_another_body_is_a_new_request(api, store, path):
    post(api, path)
    expire_keys(store)
    assert_executed(post(api, path, body={"name": "other"}))
    assert widgets() == 2


def assert_ttl(store, ttl):
    if store == "redis":
        from django_redis import get_redis_connection

        client = get_redis_connection("redis")
        (name,) = client.keys("idempotency:*")
        assert ttl.total_seconds() * 1000 - 60_000 < client.pttl(name) <= ttl.total_seconds() * 1000
    else:
        row = IdempotencyKey.objects.get()
        assert row.expires_at - row.created_at == ttl


def test_ttl_is_24_hours_by_default(api, store):
    post(api)
    assert_ttl(store, 24 * HOUR)


def test_ttl_setting(api, settings, store):
    configure(settings, TTL=2 * HOUR)
    post(api)
    assert_ttl(store, 2 * HOUR)


@pytest.mark.parametrize("path", ["/short-lived-widgets/", "/short-lived-fn-widgets"])
def test_ttl_per_view_option(api, store, path):
    post(api, path)
    assert_ttl(store, HOUR)


# purge_idempotency_keys -----------------------------------------------------------------------


def make_key(name, *, age, state="completed", lease=None, ttl=timedelta(hours=24)):
    now = timezone.now()
    created = now - age
    return IdempotencyKey.objects.create(
        scope="user:1",
        key=name,
        fingerprint="fp",
        state=state,
        owner_token="t",
        lease_expires_at=now + lease if lease is not None else None,
        created_at=created,
        expires_at=created + ttl,
    )


def purge(*args):
    out = StringIO()
    call_command("purge_idempotency_keys", *args, stdout=out)
    return out.getvalue()


def remaining():
    return set(IdempotencyKey.objects.values_list("key", flat=True))


@pytest.fixture
def keys_of_all_ages():
    make_key("fresh", age=HOUR)
    make_key("old", age=25 * HOUR)
    make_key("older", age=30 * 24 * HOUR)
    make_key("dead-claim", age=25 * HOUR, state="in_progress", lease=-HOUR)
    make_key("live-claim", age=25 * HOUR, state="in_progress", lease=HOUR)
    make_key("short-ttl", age=3 * HOUR, ttl=2 * HOUR)


def test_purge_deletes_exactly_the_expired_keys(keys_of_all_ages):
    output = purge()
    assert remaining() == {"fresh", "live-claim"}
    assert "Deleted 4 idempotency keys." in output


def test_purge_never_deletes_a_live_claim(keys_of_all_ages):
    purge("--older-than", "1s")
    assert remaining() == {"live-claim"}


def test_purge_older_than(keys_of_all_ages):
    make_key("three-hours", age=3 * HOUR, ttl=48 * HOUR)
    output = purge("--older-than", "2h")
    assert remaining() == {"fresh", "live-claim"}
    assert "Deleted 5 idempotency keys." in output


@pytest.mark.parametrize(
    "value, kept",
    [
        ("90m", {"fresh", "live-claim"}),
        ("5400s", {"fresh", "live-claim"}),
        ("7d", {"fresh", "old", "dead-claim", "live-claim", "short-ttl"}),
    ],
)
def test_purge_older_than_units(keys_of_all_ages, value, kept):
    purge("--older-than", value)
    assert remaining() == kept


def test_purge_dry_run_counts_and_deletes_nothing(keys_of_all_ages):
    output = purge("--dry-run")
    assert "Would delete 4 idempotency keys." in output
    assert len(remaining()) == 6
    assert "Would delete 4" in purge("--dry-run", "--older-than=2h")
    assert len(remaining()) == 6


def test_purge_in_batches(keys_of_all_ages):
    for number in range(5):
        make_key(f"batch-{number}", age=48 * HOUR)
    out = StringIO()
    call_command("purge_idempotency_keys", "--batch-size=2", verbosity=2, stdout=out)
    lines = out.getvalue().splitlines()
    assert lines == [
        "Deleted 2 so far...",
        "Deleted 4 so far...",
        "Deleted 6 so far...",
        "Deleted 8 so far...",
        "Deleted 9 so far...",
        "Deleted 9 idempotency keys.",
    ]
    assert remaining() == {"fresh", "live-claim"}


def test_purge_with_nothing_to_delete():
    assert "Deleted 0 idempotency keys." in purge()


@pytest.mark.parametrize(
    "args",
    [
        ["--batch-size=0"],
        ["--batch-size=-5"],
        ["--batch-size=many"],
        ["--older-than=abc"],
        ["--older-than=0h"],
        ["--older-than=-2h"],
        ["--older-than=2 hours"],
        ["--older-than=2w"],
    ],
)
def test_purge_bad_arguments_are_command_errors(keys_of_all_ages, args):
    with pytest.raises(CommandError):
        purge(*args)
    assert len(remaining()) == 6


def test_purge_on_the_redis_store_still_cleans_the_database(settings, keys_of_all_ages):
    configure(settings, STORE="redis")
    output = purge()
    assert "expires keys by itself" in output
    assert "Deleted 4 idempotency keys." in output


def test_purged_key_is_a_new_request(api, settings):
    configure(settings, STORE="database")
    post(api)
    IdempotencyKey.objects.update(expires_at=timezone.now() - HOUR)
    assert "Deleted 1 idempotency keys." in purge()
    assert_executed(post(api))
    assert widgets() == 2
