"""docs/semantics.md#atomic_requests: everything holds with ``ATOMIC_REQUESTS = True`` as well.

With the database store the claim is then part of the request's transaction: a concurrent
duplicate waits for the first to commit and gets its replay (never a second execution).
"""

import time

import pytest
from rest_framework.test import APIClient

from tests.helpers import (
    CORE_DB,
    REDIS_LEASE,
    TWO_FACES,
    assert_executed,
    assert_problem,
    configure,
    in_flight,
    is_replay,
    post,
    run_concurrently,
    stored_keys,
    widgets,
)
from tests.testapp.models import Widget
from tests.testapp.views import Failures

pytestmark = [
    CORE_DB,
    pytest.mark.usefixtures("atomic_requests"),
]


@TWO_FACES
def test_replay(api, store, path):
    first = post(api, path)
    assert_executed(first)
    replay = post(api, path)
    assert is_replay(replay)
    assert replay.content == first.content
    assert_problem(post(api, path, body={"name": "x"}), 422, "idempotency_key_mismatch")
    assert widgets() == 1


@TWO_FACES
def test_plain_exception_rolls_back_and_frees_the_key(store, path):
    client = APIClient(raise_request_exception=False)
    Failures.armed.append("runtime")
    assert post(client, path).status_code == 500
    assert widgets() == 0
    assert stored_keys(store) == 0
    assert_executed(post(client, path))
    assert widgets() == 1


@TWO_FACES
def test_5xx_rolls_back_and_frees_the_key(api, store, path):
    Failures.armed.append("500")
    assert post(api, path).status_code == 500
    assert widgets() == 0
    assert stored_keys(store) == 0
    assert_executed(post(api, path))
    assert widgets() == 1


@pytest.mark.parametrize("path", ["/store-4xx-widgets/", "/view-widgets"])
def test_stored_4xx(api, store, path):
    Failures.armed.append("404")
    first = post(api, path)
    replay = post(api, path)
    assert replay.status_code == 404
    assert replay.content == first.content
    assert is_replay(replay)
    assert widgets() == 1


@TWO_FACES
def test_streaming_response_is_not_replayable(api, store, path):
    path = "/widgets/stream/" if path == "/widgets/" else "/stream-fn-widgets"
    assert post(api, path).status_code == 201
    assert_problem(post(api, path), 409, "idempotency_key_not_replayable")
    assert widgets() == 1


@TWO_FACES
def test_concurrent_identical_requests_run_once(store, path, on_postgresql):
    """On SQLite a request transaction that read cannot start writing while another writes:
    SQLite refuses at once ("database is locked"), and the request fails closed (503)."""
    responses = run_concurrently(30, lambda client: post(client, f"{path}?sleep=0.1"))
    executed = [r for r in responses if r.status_code == 201 and not is_replay(r)]
    assert len(executed) == 1
    for response in responses:
        if response.status_code == 409:
            assert_problem(response, 409, "idempotency_key_in_use")
        elif response.status_code == 503 and not on_postgresql:
            assert_problem(response, 503, "idempotency_store_unavailable")
        else:
            assert response.content == executed[0].content
    assert widgets() == 1


@pytest.mark.redis
@pytest.mark.postgresql  # SQLite: the held request's read lock would block the new one's commit
@TWO_FACES
def test_redis_store_in_flight_409_and_lease_takeover(api, settings, redis_client, path):
    configure(settings, STORE="redis", CACHE_ALIAS="redis", LEASE=REDIS_LEASE)
    with in_flight(path) as old:
        assert_problem(post(api, f"{path}?gate=g"), 409, "idempotency_key_in_use")
        time.sleep(REDIS_LEASE + 0.2)
        new = post(api, f"{path}?gate=g")
        assert_executed(new)
    assert_problem(old.result(), 409, "idempotency_lease_lost")
    assert list(Widget.objects.values_list("pk", flat=True)) == [new.json()["id"]]
