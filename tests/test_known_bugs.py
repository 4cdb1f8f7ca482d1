"""Bugs known in other idempotency packages, each shown absent here (named after the bug)."""

import pytest
from rest_framework.test import APIClient

from tests.helpers import (
    CORE_DB,
    TWO_FACES,
    assert_executed,
    is_replay,
    post,
    run_concurrently,
    stored_keys,
    widgets,
)
from tests.testapp.models import Revocation, Widget
from tests.testapp.views import Failures

pytestmark = CORE_DB


@TWO_FACES
def test_drf_idempotency_leaks_one_users_stored_response_to_another(api, store, path):
    alice = post(api, path, user="alice")
    bob = post(api, path, user="bob")  # same key, same body, another caller
    assert_executed(bob)
    assert bob.json()["owner"] == "bob"
    assert bob.content != alice.content
    assert sorted(Widget.objects.values_list("owner", flat=True)) == ["alice", "bob"]


@pytest.mark.parametrize("path", ["/widgets/", "/fn-widgets", "/view-widgets"])
def test_drf_idempotencykey_leaves_keys_stuck_after_a_non_drf_exception(store, path):
    client = APIClient(raise_request_exception=False)
    Failures.armed.append("runtime")
    assert post(client, path).status_code == 500
    assert stored_keys(store) == 0
    retry = post(client, path)
    assert_executed(retry)  # not a 409 "in progress" for ever
    assert widgets() == 1


@pytest.mark.parametrize("path", ["/widgets/", "/view-widgets"])
def test_drf_idempotencykey_replays_before_permission_checks(api, store, path):
    assert_executed(post(api, path))
    Revocation.objects.create(username="alice")
    refused = post(api, path)
    assert refused.status_code == 403
    assert not is_replay(refused)


@TWO_FACES
def test_django_idempotency_key_runs_concurrent_duplicates(store, path):
    responses = run_concurrently(20, lambda client: post(client, f"{path}?sleep=0.2"))
    assert widgets() == 1
    assert sum(1 for r in responses if r.status_code == 201 and not is_replay(r)) == 1
