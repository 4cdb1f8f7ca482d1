"""docs/semantics.md#answers, row by row, for the mixin and the decorator, on both key stores."""

import json
import threading
import time

import pytest
from django.core.exceptions import PermissionDenied
from django.http import Http404

from idempotency_jobs.exceptions import PROBLEM_CONTENT_TYPE, problem_exception_handler
from idempotency_jobs.keys import core
from idempotency_jobs.keys.responses import accepts
from tests.helpers import (
    BODY,
    CORE_DB,
    DECORATOR,
    FACES,
    KEY,
    MIXIN,
    TWO_FACES,
    Background,
    assert_executed,
    assert_problem,
    configure,
    in_flight,
    is_replay,
    post,
    stored_keys,
    widgets,
)

pytestmark = CORE_DB


@FACES
def test_first_request_gets_the_views_own_answer(api, store, path):
    response = post(api, path)
    assert_executed(response)
    assert response.json() == {"id": response.json()["id"], "owner": "alice", **BODY}
    assert response["Set-Cookie"] == "session=secret"  # the live answer is untouched
    assert widgets() == 1
    assert stored_keys(store) == 1


@FACES
def test_replay_is_the_stored_response_byte_for_byte(api, store, path):
    first = post(api, path)
    second = post(api, path)
    third = post(api, path)
    for replay in (second, third):
        assert replay.status_code == 201
        assert replay.content == first.content
        assert is_replay(replay)
        assert replay["Content-Type"] == first["Content-Type"]
        assert replay["Location"] == first["Location"]
    assert widgets() == 1


@FACES
def test_replay_never_carries_cookies_or_unlisted_headers(api, store, path):
    post(api, path)
    replay = post(api, path)
    assert is_replay(replay)
    assert "Set-Cookie" not in replay
    assert not replay.cookies
    assert "X-Trace" not in replay


@TWO_FACES
def test_replay_headers_setting_adds_configured_headers(api, settings, store, path):
    configure(settings, REPLAY_HEADERS=["X-Trace", "Set-Cookie"])
    post(api, path)
    replay = post(api, path)
    assert replay["X-Trace"] == "trace-1"
    assert "Set-Cookie" not in replay  # never, whatever the configuration says


@TWO_FACES
def test_replay_status_setting_answers_409_with_the_original_body(api, settings, store, path):
    configure(settings, REPLAY_STATUS=409)
    first = post(api, path)
    assert_executed(first)
    replay = post(api, path)
    assert replay.status_code == 409
    assert replay.content == first.content
    assert is_replay(replay)
    assert widgets() == 1


@pytest.mark.parametrize("path", ["/stannp-widgets/", "/stannp-fn-widgets", "/widgets/strict/"])
def test_replay_status_per_view_option(api, store, path):
    first = post(api, path)
    assert_executed(first)
    replay = post(api, path)
    assert replay.status_code == 409
    assert replay.content == first.content
    assert replay["Location"] == first["Location"]
    assert is_replay(replay)
    assert widgets() == 1


@FACES
def test_a_retry_whose_accept_excludes_the_stored_media_type_is_406(api, store, path):
    # The browsable API's page (with a CSRF token in it) is no answer for a JSON client.
    first = post(api, path, HTTP_ACCEPT="text/html")
    assert_executed(first)
    assert first["Content-Type"].startswith("text/html")
    problem = assert_problem(
        post(api, path, HTTP_ACCEPT="application/json"), 406, "idempotency_replay_not_acceptable"
    )
    assert "text/html" in problem["detail"]
    for accept in ("text/html", "*/*", "application/json, text/*;q=0.1", None):
        extra = {"HTTP_ACCEPT": accept} if accept else {}
        replay = post(api, path, **extra)
        assert is_replay(replay), accept
        assert replay.content == first.content
    assert widgets() == 1


@TWO_FACES
def test_a_json_replay_to_a_retry_that_excludes_json_is_406(api, store, path):
    first = post(api, path, HTTP_ACCEPT="application/json")
    assert_executed(first)
    for accept in ("text/html", "application/json;q=0, */*"):
        assert_problem(
            post(api, path, HTTP_ACCEPT=accept), 406, "idempotency_replay_not_acceptable"
        )
    assert is_replay(post(api, path, HTTP_ACCEPT="text/html, application/*;q=0.5"))
    assert widgets() == 1


@pytest.mark.parametrize(
    ("accept", "content_type", "accepted"),
    [
        (None, "text/html; charset=utf-8", True),
        ("", "text/html", True),
        ("application/json", "application/json", True),
        ("application/json", "text/html; charset=utf-8", False),
        ("Application/JSON", "application/json", True),
        ("text/*", "text/html; charset=utf-8", True),
        ("*/*;q=0.1", "image/png", True),
        ("text/html;q=0, */*", "text/html", False),  # the most specific range decides
        ("text/*;q=0, text/html", "text/html", True),
        ("text/*;q=0, text/html", "text/plain", False),
        ("text/html;q=0.000", "text/html", False),
        ("text/html;charset=latin-1", "text/html; charset=utf-8", False),
        ("text/html;charset=utf-8", "text/html; charset=UTF-8", True),
        ("application/json", "application/problem+json", True),  # RFC 6839 suffix
        ("application/json;q=0", "application/problem+json", False),
        ("application/problem+json", "application/json", False),
        ("not a media range, application/json", "application/json", True),
        ("text/html;q=bad", "text/html", True),
    ],
)
def test_accepts(accept, content_type, accepted):
    assert accepts(accept, content_type) is accepted


@pytest.mark.parametrize("path", ["/store-4xx-widgets/", "/view-widgets"])
def test_a_stored_problem_is_replayed_to_a_json_client(api, settings, store, path):
    # application/problem+json is JSON (RFC 6839's +json suffix): what the view answered then.
    handler = "idempotency_jobs.exceptions.problem_exception_handler"
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "EXCEPTION_HANDLER": handler}
    first = post(api, path, body={"payload": {}}, HTTP_ACCEPT="application/json")
    assert first.status_code == 400
    assert first["Content-Type"] == PROBLEM_CONTENT_TYPE
    retry = post(api, path, body={"payload": {}}, HTTP_ACCEPT="application/json")
    assert is_replay(retry)
    assert retry.content == first.content


@FACES
def test_different_fingerprint_is_422_and_runs_nothing(api, store, path):
    first = post(api, path)
    mismatch = post(api, path, body={"name": "other"})
    problem = assert_problem(mismatch, 422, "idempotency_key_mismatch")
    assert problem["type"] == "about:blank"  # no PROBLEM_TYPE_BASE (tests/keys/test_problems.py)
    assert widgets() == 1
    # The stored response is still there for the original request.
    assert post(api, path).content == first.content


@TWO_FACES
def test_different_fingerprint_is_422_while_the_first_is_in_flight(api, store, path):
    with in_flight(path) as first:
        mismatch = post(api, f"{path}?gate=g", body={"name": "other"})
        assert_problem(mismatch, 422, "idempotency_key_mismatch")
    assert_executed(first.result())
    assert widgets() == 1


@TWO_FACES
def test_in_flight_is_409_with_retry_after(api, store, path):
    with in_flight(path) as first:
        conflict = post(api, f"{path}?gate=g")
        assert_problem(conflict, 409, "idempotency_key_in_use")
        assert conflict["Retry-After"] == "1"
    assert_executed(first.result())
    assert widgets() == 1
    assert is_replay(post(api, f"{path}?gate=g"))


@TWO_FACES
def test_retry_after_is_configurable(api, settings, store, path):
    configure(settings, RETRY_AFTER=7)
    with in_flight(path):
        assert post(api, f"{path}?gate=g")["Retry-After"] == "7"


@TWO_FACES
def test_in_flight_wait_mode_waits_for_the_first_and_replays_it(
    api, settings, store, path, monkeypatch
):
    configure(settings, IN_FLIGHT="wait", WAIT_TIMEOUT=20)
    polled = threading.Event()
    real_sleep = time.sleep

    def sleep(seconds):
        polled.set()  # the waiting request found the key in flight and is polling
        real_sleep(seconds)

    monkeypatch.setattr(core.time, "sleep", sleep)
    with in_flight(path) as first:
        waiting = Background(lambda client: post(client, f"{path}?gate=g"))
        assert polled.wait(timeout=20)
    original = first.result()
    replay = waiting.result()
    assert_executed(original)
    assert replay.status_code == 201
    assert is_replay(replay)
    assert replay.content == original.content
    assert widgets() == 1


@TWO_FACES
def test_in_flight_wait_mode_gives_up_with_409(api, settings, store, path):
    configure(settings, IN_FLIGHT="wait", WAIT_TIMEOUT=0.2)
    with in_flight(path):
        conflict = post(api, f"{path}?gate=g")
        assert_problem(conflict, 409, "idempotency_key_in_use")
    assert widgets() == 1


MALFORMED_KEYS = [
    "short",
    "x" * 1025,
    "with space inside",
    "ключ-1234567890",
    '"unterminated-1234567890',
    '"bad\\escape-1234567890"',
    "",  # an empty header is a malformed key, not no key
]


@TWO_FACES
def test_malformed_key_is_400(api, store, path):
    for key in MALFORMED_KEYS:
        assert_problem(post(api, path, key=key), 400, "idempotency_key_invalid")
    assert widgets() == 0
    assert stored_keys(store) == 0


@TWO_FACES
def test_both_headers_differing_is_400(api, store, path):
    response = post(api, path, HTTP_X_IDEMPOTENCY_KEY="key-0000000002")
    assert_problem(response, 400, "idempotency_key_invalid")
    assert widgets() == 0


@TWO_FACES
def test_both_headers_equal_is_one_key(api, store, path):
    assert_executed(post(api, path, HTTP_X_IDEMPOTENCY_KEY=KEY))
    assert is_replay(post(api, path, header="HTTP_X_IDEMPOTENCY_KEY"))
    assert widgets() == 1


@pytest.mark.parametrize("path", ["/stannp-widgets/", "/stannp-fn-widgets", "/widgets/strict/"])
def test_required_key_missing_is_400_per_view_option(api, store, path):
    response = post(api, path, key=None)
    assert_problem(response, 400, "idempotency_key_missing")
    assert widgets() == 0


@TWO_FACES
def test_required_key_missing_is_400_via_setting(api, settings, store, path):
    configure(settings, REQUIRED=True)
    assert_problem(post(api, path, key=None), 400, "idempotency_key_missing")
    assert widgets() == 0
    assert_executed(post(api, path))


def test_problem_bodies_are_json(api, store):
    response = post(api, MIXIN, key="short")
    assert response["Content-Type"] == PROBLEM_CONTENT_TYPE
    assert set(json.loads(response.content)) == {"type", "title", "status", "detail", "code"}


@pytest.mark.parametrize("exc", [Http404("gone"), PermissionDenied()], ids=["404", "403"])
def test_bug_django_http404_and_permission_denied_were_not_problem_details(exc: Exception) -> None:
    """Found while building the example project: problem_exception_handler passed over Django's
    own Http404 and PermissionDenied (DRF's handler converts them first), so they got no problem
    body."""
    response = problem_exception_handler(
        exc, {"view": None, "request": None, "args": (), "kwargs": {}}
    )
    assert response is not None
    assert response.content_type == PROBLEM_CONTENT_TYPE
    assert response.data["status"] == response.status_code


@pytest.mark.parametrize("path", [MIXIN, DECORATOR])
def test_anonymous_caller_with_a_key_is_refused_before_any_lookup(api, store, path):
    # IsAuthenticated answers first; the key is never looked at.
    response = post(api, path, user=None)
    assert response.status_code == 401
    assert stored_keys(store) == 0
