"""docs/semantics.md#leases-and-owner-tokens and docs/semantics.md#expiry-and-purge: leases and
their takeover, expiry, and the purge command."""

import functools
import threading
import time
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from idempotency_jobs.keys.responses import StoredResponse
from idempotency_jobs.keys.stores import Claim, Existing, LeaseLost, get_store
from idempotency_jobs.models import IdempotencyKey, Job
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
    redis_records,
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
        for name in redis_records(client):
            client.pexpire(name, 1)
        for _ in range(100):
            if not redis_records(client):
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


def complete(owner, response):
    """As the request flow does it: in the view's transaction, then once it has committed."""
    with transaction.atomic():
        get_store().complete(owner, response)
    get_store().after_commit(owner, response)


def test_old_owner_can_neither_complete_nor_release_after_takeover(settings, store):
    lease = timedelta(seconds=REDIS_LEASE) if store == "redis" else HOUR
    old = claim(store, lease)
    assert isinstance(old, Claim)
    assert claim(store) == Existing("fp", completed=False)  # a live lease is not taken over
    expire_leases(store)
    new = claim(store)
    assert isinstance(new, Claim)
    assert new.token != old.token

    with pytest.raises(LeaseLost):
        get_store().complete(old, StoredResponse(201, b"old"))
    get_store().release(old)
    assert claim(store) == Existing("fp", completed=False)  # the new owner's claim survived
    assert stored_keys(store) == 1
    if store == "database":
        assert IdempotencyKey.objects.get().owner_token == new.token

    complete(new, StoredResponse(201, b"new", [("Content-Type", "text/plain")]))
    get_store().release(old)
    found = claim(store)
    assert isinstance(found, Existing)
    assert found.completed
    assert found.response == StoredResponse(201, b"new", [("Content-Type", "text/plain")])
    with pytest.raises(LeaseLost):
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
    complete(owner, StoredResponse(201, b"first"))
    with pytest.raises(LeaseLost):
        get_store().complete(owner, StoredResponse(201, b"second"))
    assert claim(store).response.body == b"first"


def test_release_frees_the_key_for_the_next_claim(store):
    owner = claim(store)
    get_store().release(owner)
    assert stored_keys(store) == 0
    assert isinstance(claim(store), Claim)


def test_completed_keys_are_not_taken_over_after_their_lease(store):
    owner = claim(store, timedelta(seconds=REDIS_LEASE) if store == "redis" else HOUR)
    complete(owner, StoredResponse(201, b"done"))
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
        (name,) = redis_records(client)
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


def key_row(name, *, age, state="completed", lease=None, ttl=timedelta(hours=24), now=None):
    """An unsaved key created ``age`` ago (before ``now``)."""
    now = now or timezone.now()
    created = now - age
    return IdempotencyKey(
        scope="user:1",
        key=name,
        fingerprint="fp",
        state=state,
        owner_token="t",
        lease_expires_at=now + lease if lease is not None else None,
        created_at=created,
        expires_at=created + ttl,
    )


def make_key(name, **options):
    key = key_row(name, **options)
    key.save()
    return key


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


# Jobs of purged keys: a job keeps its key's text; deleting keys touches no other table --------


@pytest.fixture
def jobs_of_all_ages(keys_of_all_ages):
    """Two jobs made with each key of ``keys_of_all_ages``."""
    for key in IdempotencyKey.objects.all():
        for _ in range(2):
            Job.objects.create(kind="widget_batch", owner="user:1", idempotency_key=key.key)


ALL_AGES = ["fresh", "old", "older", "dead-claim", "live-claim", "short-ttl"]


def job_keys():
    """The key each job was made with, sorted."""
    return sorted(Job.objects.values_list("idempotency_key", flat=True))


def statements_on_jobs(queries):
    return [query["sql"] for query in queries if Job._meta.db_table in query["sql"]]


@pytest.mark.parametrize(
    "args, said",
    [
        (["--batch-size=3"], "Deleted 4 idempotency keys."),
        (["--older-than", "1s"], "Deleted 5 idempotency keys."),
        (["--dry-run"], "Would delete 4 idempotency keys."),
    ],
)
def test_purge_leaves_the_jobs_of_purged_keys_alone(jobs_of_all_ages, args, said):
    with CaptureQueriesContext(connection) as queries:
        output = purge(*args)
    assert said in output
    assert job_keys() == sorted(ALL_AGES * 2)
    assert statements_on_jobs(queries) == []


def test_purge_without_subqueries_in_in(jobs_of_all_ages, monkeypatch):
    """Databases that cannot LIMIT a subquery inside IN (MySQL) purge from lists of ids."""
    monkeypatch.setattr(connection.features, "allow_sliced_subqueries_with_in", False)
    assert "Deleted 4 idempotency keys." in purge("--batch-size=3")
    assert remaining() == {"fresh", "live-claim"}
    assert job_keys() == sorted(ALL_AGES * 2)


def test_deleting_keys_through_the_orm_touches_only_the_key_table(jobs_of_all_ages):
    """Bulk deletes (the admin's "delete selected", the store's release) and one key's delete:
    nothing refers to a key row, so nothing else is read or written."""
    with CaptureQueriesContext(connection) as queries:
        deleted = IdempotencyKey.objects.filter(key__in=["old", "older", "no-such-key"]).delete()
        IdempotencyKey.objects.get(key="fresh").delete()
    assert deleted == (2, {"idempotency_jobs.IdempotencyKey": 2})
    assert remaining() == {"dead-claim", "live-claim", "short-ttl"}
    assert statements_on_jobs(queries) == []
    assert job_keys() == sorted(ALL_AGES * 2)


def test_deleting_keys_is_one_delete_with_its_own_condition(jobs_of_all_ages):
    """The store's release is a compare-and-delete on the owner token: the database must check
    the token when it deletes, not a SELECT before a DELETE by id."""
    live = IdempotencyKey.objects.get(key="live-claim")
    not_the_owner = IdempotencyKey.objects.filter(pk=live.pk, owner_token="someone-else")
    with CaptureQueriesContext(connection) as queries:
        assert not_the_owner.delete()[0] == 0
    statements = [query["sql"] for query in queries if query["sql"] not in ("BEGIN", "COMMIT")]
    assert len(statements) == 1
    assert "DELETE FROM" in statements[0] and "owner_token" in statements[0]
    assert remaining() >= {"live-claim"}


@pytest.mark.django_db(transaction=True)
def test_a_job_whose_key_was_purged_still_answers(api, admin_client, settings):
    configure(settings, STORE="database")
    headers = {"HTTP_X_USER": "alice", "HTTP_IDEMPOTENCY_KEY": "import-2026-04-11"}
    created = api.post("/widget-jobs/", {"names": ["a", "b"]}, format="json", **headers)
    assert created.status_code == 202
    job = Job.objects.get()
    assert job.idempotency_key == "import-2026-04-11"
    IdempotencyKey.objects.update(expires_at=timezone.now() - HOUR)

    assert "Deleted 1 idempotency keys." in purge()
    job.refresh_from_db()
    assert job.idempotency_key == "import-2026-04-11"
    shown = api.get(created["Location"], HTTP_X_USER="alice")
    assert shown.status_code == 200
    assert shown.json()["id"] == str(job.pk)
    assert admin_client.get(f"/admin/idempotency_jobs/job/{job.pk}/change/").status_code == 200

    again = api.post("/widget-jobs/", {"names": ["a", "b"]}, format="json", **headers)
    assert again.status_code == 202  # the purged key is a new request: a second job
    assert again.json()["id"] != str(job.pk)
    assert job_keys() == ["import-2026-04-11"] * 2


@pytest.mark.postgresql
def test_purge_skips_a_key_another_transaction_holds(keys_of_all_ages):
    """A key whose row an open transaction has locked (a takeover, say) is skipped, not waited
    for while the batch holds its own rows; the next run deletes it if it is still purgeable."""
    held, done = threading.Event(), threading.Event()

    def hold_old_key():
        try:
            with transaction.atomic():
                IdempotencyKey.objects.filter(key="old").update(response_status=201)
                held.set()
                done.wait(timeout=30)
        finally:
            connections.close_all()

    holder = threading.Thread(target=hold_old_key)
    holder.start()
    assert held.wait(timeout=10)
    try:
        output = purge()  # had it waited for the lock, "old" would be gone after 30 s
    finally:
        done.set()
        holder.join()
    assert "Deleted 3 idempotency keys." in output
    assert remaining() == {"fresh", "old", "live-claim"}
    assert "Deleted 1 idempotency keys." in purge()
    assert remaining() == {"fresh", "live-claim"}


@pytest.mark.postgresql
def test_purge_beside_new_claims_and_takeovers(settings):
    """While the purge runs in small batches, one thread claims new keys and another takes
    expired keys over (a client reusing its key after 24 h) and creates a job with each: every
    new and taken-over key is left, every other expired key is gone, and every job stays."""
    configure(settings, STORE="database")
    store = get_store()
    key = functools.partial(key_row, now=timezone.now())
    expired = [key(f"expired-{n}", age=25 * HOUR) for n in range(3000)]
    fresh = [key(f"fresh-{n}", age=HOUR) for n in range(300)]
    running = [
        key(f"running-{n}", age=25 * HOUR, state="in_progress", lease=HOUR) for n in range(30)
    ]
    IdempotencyKey.objects.bulk_create(expired + fresh + running)
    Job.objects.bulk_create(
        Job(kind="widget_batch", owner="user:1", idempotency_key=k.key)
        for k in expired[::3] + fresh + running
    )
    jobs_before = Job.objects.count()

    started, stop = threading.Barrier(3), threading.Event()
    new_keys, retaken, errors = [], [], []

    def claim_new_keys():
        try:
            started.wait()
            while not stop.is_set():
                name = f"new-{len(new_keys)}"
                claimed = store.claim("user:2", name, "fp", ttl=24 * HOUR, lease=HOUR)
                assert isinstance(claimed, Claim), claimed
                new_keys.append(name)
        except Exception as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    def take_over_expired_keys():
        try:
            started.wait()
            for n in reversed(range(0, 3000, 7)):  # to meet the purge, which starts at 0
                if stop.is_set():
                    break
                name = f"expired-{n}"
                claimed = store.claim("user:1", name, "fp-again", ttl=24 * HOUR, lease=HOUR)
                assert isinstance(claimed, Claim), claimed
                with transaction.atomic():
                    Job.objects.create(
                        kind="widget_batch",
                        owner="user:1",
                        params={"again": True},
                        idempotency_key=name,
                    )
                    store.complete(claimed, StoredResponse(201, b"again"))
                retaken.append(name)
        except Exception as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [
        threading.Thread(target=claim_new_keys),
        threading.Thread(target=take_over_expired_keys),
    ]
    for thread in threads:
        thread.start()
    started.wait()
    output = purge("--batch-size=10")
    stop.set()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert retaken and new_keys
    left = IdempotencyKey.objects
    assert left.filter(scope="user:2").count() == len(new_keys)
    assert set(left.filter(key__startswith="expired-").values_list("key", flat=True)) == set(
        retaken
    )
    assert left.filter(key__in=retaken, state="completed", fingerprint="fp-again").count() == len(
        retaken
    )
    assert left.filter(key__startswith="fresh-").count() == 300
    assert left.filter(key__startswith="running-", state="in_progress").count() == 30
    deleted = int(output.split()[1])
    assert deleted + len(retaken) >= 3000  # a retaken key may have been purged just before

    jobs = Job.objects
    assert jobs.count() == jobs_before + len(retaken)
    assert jobs.filter(params__again=True, idempotency_key__in=retaken).count() == len(retaken)
