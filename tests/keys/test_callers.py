"""docs/semantics.md#identity: keys belong to callers, and access control runs before any lookup or
replay."""

import pytest

from tests.helpers import (
    CORE_DB,
    MIXIN,
    TWO_FACES,
    assert_executed,
    in_flight,
    is_replay,
    post,
    stored_keys,
    widgets,
)
from tests.testapp.models import Revocation, Widget

pytestmark = CORE_DB

# The views that check NotRevoked: a mixin viewset and a decorated APIView method.
REVOCABLE = pytest.mark.parametrize("path", [MIXIN, "/view-widgets", "/throttled-fn-widgets"])
THROTTLED = pytest.mark.parametrize("path", ["/throttled-widgets/", "/throttled-fn-widgets"])


@TWO_FACES
def test_same_key_two_callers_two_independent_executions(api, store, path):
    alice = post(api, path, user="alice", body={"name": "alice's"})
    bob = post(api, path, user="bob", body={"name": "bob's"})
    assert_executed(alice)
    assert_executed(bob)  # not a 422: bob's key has never been used
    assert alice.json()["owner"] == "alice"
    assert bob.json()["owner"] == "bob"
    assert post(api, path, user="alice", body={"name": "alice's"}).content == alice.content
    assert post(api, path, user="bob", body={"name": "bob's"}).content == bob.content
    assert sorted(Widget.objects.values_list("owner", "name")) == [
        ("alice", "alice's"),
        ("bob", "bob's"),
    ]
    assert stored_keys(store) == 2


@TWO_FACES
def test_bug_drf_idempotency_leaks_one_users_stored_response_to_another(api, store, path):
    """A bug of drf-idempotency, absent here: the same key from another caller replayed the
    first caller's stored response."""
    alice = post(api, path, user="alice")
    bob = post(api, path, user="bob")  # same key, same body, another caller
    assert_executed(bob)
    assert bob.json()["owner"] == "bob"
    assert bob.content != alice.content
    assert sorted(Widget.objects.values_list("owner", flat=True)) == ["alice", "bob"]


@TWO_FACES
def test_caller_cannot_block_anothers_key_in_flight(api, store, path):
    with in_flight(path, user="alice") as first:
        bob = post(api, f"{path}?gate=g", user="bob")
        assert_executed(bob)  # neither a 409 nor a replay: alice's claim is invisible to bob
        assert bob.json()["owner"] == "bob"
    assert_executed(first.result())
    assert widgets() == 2


@TWO_FACES
def test_caller_cannot_learn_about_anothers_key(api, store, path):
    post(api, path, user="alice")
    # Identical request, same key: bob gets his own execution, nothing of alice's.
    bob = post(api, path, user="bob")
    assert_executed(bob)
    assert b"alice" not in bob.content
    assert widgets() == 2


@REVOCABLE
def test_revoked_caller_gets_403_not_the_stored_response(api, store, path):
    assert_executed(post(api, path))
    Revocation.objects.create(username="alice")
    response = post(api, path)
    assert response.status_code == 403
    assert not is_replay(response)
    assert b'"owner"' not in response.content
    Revocation.objects.all().delete()
    assert is_replay(post(api, path))  # the stored response survived the refusal
    assert widgets() == 1


@REVOCABLE
def test_revoked_caller_gets_403_while_the_first_is_in_flight(api, store, path):
    with in_flight(path):
        Revocation.objects.create(username="alice")
        response = post(api, f"{path}?gate=g")
        assert response.status_code == 403  # not the 409 that would reveal the claim


@pytest.mark.parametrize("path", ["/widgets/", "/view-widgets"])
def test_bug_drf_idempotencykey_replays_before_permission_checks(api, store, path):
    """A bug of drf-idempotencykey, absent here: a caller who lost permission still got the
    stored response replayed."""
    assert_executed(post(api, path))
    Revocation.objects.create(username="alice")
    refused = post(api, path)
    assert refused.status_code == 403
    assert not is_replay(refused)


@THROTTLED
def test_throttled_caller_gets_429_never_a_replay(api, store, path):
    first = post(api, path)
    assert_executed(first)
    assert is_replay(post(api, path))  # the replay counts against the rate, as any call
    throttled = post(api, path)
    assert throttled.status_code == 429
    assert not is_replay(throttled)
    assert throttled.content != first.content
    assert widgets() == 1


@TWO_FACES
def test_unauthenticated_caller_gets_401_never_a_replay(api, store, path):
    assert_executed(post(api, path))
    anonymous = post(api, path, user=None)
    assert anonymous.status_code == 401
    assert not is_replay(anonymous)
    assert widgets() == 1


@REVOCABLE
def test_a_refused_request_stores_nothing(api, store, path):
    Revocation.objects.create(username="alice")
    assert post(api, path).status_code == 403
    assert stored_keys(store) == 0
    Revocation.objects.all().delete()
    assert_executed(post(api, path))
    assert widgets() == 1


def stateless(api, user):
    return post(api, "/stateless-fn-widgets", user=None, HTTP_X_STATELESS_USER=user)


def test_callers_that_are_no_model_instances_are_scoped_apart(api, store):
    alice = stateless(api, "alice")
    bob = stateless(api, "bob")
    assert_executed(alice)
    assert_executed(bob)
    assert bob.json()["owner"] == "bob"
    assert stateless(api, "alice").content == alice.content
    assert widgets() == 2


def test_callers_without_a_pk_are_scoped_by_their_credential(api, store):
    alice = stateless(api, "user;token-of-alice")
    bob = stateless(api, "user;token-of-bob")
    assert_executed(alice)
    assert_executed(bob)  # the same (pk-less) user name, but another credential
    replay = stateless(api, "user;token-of-alice")
    assert is_replay(replay)
    assert replay.content == alice.content
    assert widgets() == 2
