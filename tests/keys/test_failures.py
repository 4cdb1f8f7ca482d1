"""docs/semantics.md#one-keyed-request-one-transaction and docs/semantics.md#answers: which outcomes
are stored, and failing closed when the store is down."""

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.db.utils import load_backend
from rest_framework.test import APIClient

from idempotency_jobs.keys.stores import Claim, get_store
from idempotency_jobs.models import IdempotencyKey
from tests.helpers import (
    CORE_DB,
    DECORATOR,
    KEY,
    MIXIN,
    TWO_FACES,
    assert_executed,
    assert_problem,
    closed_port,
    configure,
    is_replay,
    post,
    stored_keys,
    widgets,
)
from tests.testapp.views import Failures

pytestmark = CORE_DB

FACES_STORING_4XX = pytest.mark.parametrize("path", ["/store-4xx-widgets/", "/view-widgets"])


@pytest.fixture
def client() -> APIClient:
    """A client that answers an unhandled exception with a 500, as a server does."""
    return APIClient(raise_request_exception=False)


# Exceptions and 5xx ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", [MIXIN, DECORATOR, "/view-widgets"])
def test_plain_exception_frees_the_key_and_rolls_back(client, store, path):
    Failures.armed.append("runtime")
    assert post(client, path).status_code == 500
    assert widgets() == 0  # the view's write was rolled back
    assert stored_keys(store) == 0  # and the key freed
    retry = post(client, path)
    assert_executed(retry)  # the retry runs for real
    assert widgets() == 1
    assert is_replay(post(client, path))


@TWO_FACES
def test_plain_exception_propagates_to_the_server(api, store, path):
    Failures.armed.append("runtime")
    with pytest.raises(RuntimeError, match="boom"):
        post(api, path)
    assert stored_keys(store) == 0


@pytest.mark.parametrize("path", ["/widgets/", "/fn-widgets", "/view-widgets"])
def test_bug_drf_idempotencykey_leaves_keys_stuck_after_a_non_drf_exception(store, path):
    """A bug of drf-idempotencykey, absent here: after a plain exception in the view the key
    stayed in progress, and every retry was a 409."""
    client = APIClient(raise_request_exception=False)
    Failures.armed.append("runtime")
    assert post(client, path).status_code == 500
    assert stored_keys(store) == 0
    retry = post(client, path)
    assert_executed(retry)  # not a 409 "in progress" for ever
    assert widgets() == 1


@TWO_FACES
@pytest.mark.parametrize("status", ["500", "502", "503"])
def test_5xx_is_not_stored_rolled_back_and_the_key_freed(client, store, path, status):
    Failures.armed.append(status)
    assert post(client, path).status_code == int(status)
    assert widgets() == 0
    assert stored_keys(store) == 0
    assert_executed(post(client, path))
    assert widgets() == 1


# 4xx ------------------------------------------------------------------------------------------


@TWO_FACES
def test_4xx_is_not_stored_by_default(api, store, path):
    Failures.armed.append("400")
    assert post(api, path).status_code == 400
    assert widgets() == 0
    assert stored_keys(store) == 0
    assert_executed(post(api, path))


@TWO_FACES
@pytest.mark.parametrize("status", ["400", "404", "409", "422"])
def test_4xx_is_stored_with_the_store_4xx_setting(api, settings, store, path, status):
    configure(settings, STORE_4XX=True)
    Failures.armed.append(status)
    first = post(api, path)
    assert first.status_code == int(status)
    replay = post(api, path)
    assert replay.status_code == int(status)
    assert replay.content == first.content
    assert is_replay(replay)
    assert widgets() == 1  # a stored answer keeps the view's writes


@FACES_STORING_4XX
def test_4xx_is_stored_with_the_per_view_option(api, store, path):
    Failures.armed.append("400")
    first = post(api, path)
    replay = post(api, path)
    assert replay.status_code == 400
    assert replay.content == first.content
    assert is_replay(replay)
    assert widgets() == 1


@FACES_STORING_4XX
def test_drf_exception_4xx_is_stored_without_the_views_writes(api, store, path):
    Failures.armed.append("validation")
    first = post(api, path)
    assert first.status_code == 400
    replay = post(api, path)
    assert is_replay(replay)
    assert replay.content == first.content
    assert widgets() == 0  # raised after writing: rolled back, though the answer is kept


@FACES_STORING_4XX
@pytest.mark.parametrize("status", ["401", "403", "408", "429"])
def test_401_403_408_429_are_never_stored(api, settings, store, path, status):
    configure(settings, STORE_4XX=True)
    Failures.armed.append(status)
    assert post(api, path).status_code == int(status)
    assert stored_keys(store) == 0
    assert widgets() == 0
    assert_executed(post(api, path))
    assert widgets() == 1


@TWO_FACES
@pytest.mark.parametrize("store_4xx", [False, True])
def test_3xx_is_not_stored_and_rolled_back(api, settings, store, path, store_4xx):
    """Only 2xx (and, if asked, 4xx) answers are kept; any other is undone like a 5xx."""
    configure(settings, STORE_4XX=store_4xx)
    Failures.armed.append("303")
    assert post(api, path).status_code == 303
    assert widgets() == 0
    assert stored_keys(store) == 0
    assert_executed(post(api, path))


# Not replayable -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/widgets/stream/", "/stream-fn-widgets"])
def test_streaming_response_is_completed_but_not_replayable(api, store, path):
    first = post(api, path)
    assert first.status_code == 201
    assert b"".join(first.streaming_content) == b"ab"
    retry = post(api, path)
    assert_problem(retry, 409, "idempotency_key_not_replayable")
    assert widgets() == 1  # never a second execution
    assert stored_keys(store) == 1


@TWO_FACES
def test_oversized_response_is_completed_but_not_replayable(api, settings, store, path):
    configure(settings, MAX_STORED_BODY=10)
    first = post(api, path)
    assert_executed(first)
    assert len(first.content) > 10
    assert_problem(post(api, path), 409, "idempotency_key_not_replayable")
    assert widgets() == 1


@TWO_FACES
def test_body_at_the_limit_is_replayable(api, settings, store, path):
    first = post(api, path)
    configure(settings, MAX_STORED_BODY=len(first.content))
    # A new key for a new, equally long response (the id goes from 1 to 2).
    sized = post(api, path, key="key-sized-00001")
    assert len(sized.content) == len(first.content)
    assert is_replay(post(api, path, key="key-sized-00001"))


# After the commit: nothing frees or changes a committed outcome -----------------------------------
# (docs/semantics.md#one-keyed-request-one-transaction)


@pytest.mark.parametrize("path", [MIXIN, DECORATOR, "/view-widgets"])
def test_an_on_commit_hook_raising_after_the_commit_leaves_the_outcome_stored(client, store, path):
    """The view's writes and its outcome committed, then one of the view's own hooks raised
    (Django's default, not robust): the client hears the 500, yet every retry replays."""
    Failures.armed.extend(["on_commit"] * 3)  # each execution's hook would raise
    assert post(client, path).status_code == 500
    assert widgets() == 1
    for _ in range(2):
        retry = post(client, path)
        assert retry.status_code == 201 and is_replay(retry), retry.content
    assert widgets() == 1
    assert stored_keys(store) == 1


@TWO_FACES
def test_a_system_exit_in_a_robust_hook_after_the_commit_leaves_the_outcome_stored(
    api, store, path
):
    """A worker's timeout (gunicorn raises ``SystemExit``) while a robust hook, such as a job's
    enqueue, hangs after the commit: ``robust`` does not stop it, and it frees nothing."""
    Failures.armed.extend(["exit_on_commit"] * 2)
    with pytest.raises(SystemExit):
        post(api, path)
    assert widgets() == 1
    retry = post(api, path)
    assert retry.status_code == 201 and is_replay(retry), retry.content
    assert widgets() == 1


def mark_completed(store: str, claim: Claim) -> None:
    """The claim's outcome, written as its commit leaves it."""
    if store == "redis":
        keys = get_store()
        record = {"state": "completed", "status": 201, "headers": "[]", "body": b"done"}
        keys.client.hset(
            keys.record_key(claim.scope, claim.key), mapping=record | {"replayable": "1"}
        )  # type: ignore[attr-defined]
    else:
        IdempotencyKey.objects.filter(pk=claim.record_id).update(
            state="completed", lease_expires_at=None, response_status=201, response_body=b"done"
        )


def test_release_is_a_compare_and_delete_on_the_owner_token_and_the_in_progress_state(store):
    keys = get_store()
    hour = timedelta(hours=1)
    owner = keys.claim("user:1", KEY, "fp", ttl=hour, lease=hour)
    assert isinstance(owner, Claim)
    keys.release(replace(owner, token="not-the-owner"))
    assert stored_keys(store) == 1
    mark_completed(store, owner)
    keys.release(owner)  # e.g. from an exception raised after the commit
    assert stored_keys(store) == 1
    assert not isinstance(keys.claim("user:1", KEY, "fp", ttl=hour, lease=hour), Claim)


# The key store is unreachable -----------------------------------------------------------------


@pytest.fixture
def unreachable_database(settings) -> Iterator[str]:
    """A database alias whose server refuses connections: the key store, down.

    Set on this thread only, outside ``DATABASES``, so the test runner leaves it alone.
    """
    alias = "unreachable"
    broken = dict(connection.settings_dict)
    if connection.vendor == "postgresql":
        broken |= {"HOST": "127.0.0.1", "PORT": str(closed_port())}
    else:
        broken["NAME"] = "/nonexistent-directory/keys.sqlite3"
    connections[alias] = load_backend(broken["ENGINE"]).DatabaseWrapper(broken, alias)
    configure(settings, STORE="database", DATABASE_ALIAS=alias)
    yield alias
    connections[alias].close()
    del connections[alias]


@TWO_FACES
def test_database_store_unreachable_is_503_and_nothing_runs(api, unreachable_database, path):
    response = post(api, path)
    assert_problem(response, 503, "idempotency_store_unavailable")
    assert widgets() == 0
    assert_problem(post(api, path), 503, "idempotency_store_unavailable")
    assert widgets() == 0


@TWO_FACES
def test_redis_store_unreachable_is_503_and_nothing_runs(api, settings, path):
    redis_cache = settings.CACHES["redis"]
    settings.CACHES = {
        **settings.CACHES,
        "redis": {**redis_cache, "LOCATION": f"redis://127.0.0.1:{closed_port()}/1"},
    }
    configure(settings, STORE="redis", CACHE_ALIAS="redis")
    response = post(api, path)
    assert_problem(response, 503, "idempotency_store_unavailable")
    assert widgets() == 0


@TWO_FACES
def test_requests_without_a_key_do_not_need_the_store(api, unreachable_database, path):
    assert_executed(post(api, path, key=None))
    assert widgets() == 1
