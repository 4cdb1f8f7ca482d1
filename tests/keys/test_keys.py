"""docs/semantics.md#which-requests-take-part: which requests take part, and how the key is read
from the headers."""

import pytest
from django.test import RequestFactory
from hypothesis import given
from hypothesis import strategies as st

from idempotency_jobs.exceptions import IdempotencyKeyInvalid
from idempotency_jobs.keys.headers import parse_key
from tests.helpers import (
    CORE_DB,
    DECORATOR,
    KEY,
    MIXIN,
    TWO_FACES,
    assert_executed,
    assert_problem,
    configure,
    is_replay,
    post,
    stored_keys,
    widgets,
)

HEADERS = ("Idempotency-Key", "X-Idempotency-Key")
VISIBLE = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=10, max_size=1024)
# A leading quote makes a key an sf-string, which must then be well formed.
BARE = VISIBLE.filter(lambda key: not key.startswith('"'))


def parse(value, *, header="HTTP_IDEMPOTENCY_KEY", low=10, high=1024):
    request = RequestFactory().post("/", **{header: value})
    return parse_key(request, HEADERS, min_length=low, max_length=high)


def sf_string(key: str) -> str:
    return '"' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'


# Which requests take part -----------------------------------------------------------------

pytestmark_db = CORE_DB


@pytestmark_db
@pytest.mark.parametrize("method", ["get", "head", "options"])
@pytest.mark.parametrize("path", ["/listed-widgets/", "/methods-fn-widgets"])
def test_safe_methods_with_a_key_are_handled_normally_and_store_nothing(api, store, method, path):
    for _ in range(2):
        response = getattr(api, method)(path, HTTP_X_USER="alice", HTTP_IDEMPOTENCY_KEY=KEY)
        assert response.status_code == 200
        assert not is_replay(response)
    assert stored_keys(store) == 0


@pytestmark_db
@TWO_FACES
def test_post_without_a_key_runs_normally_every_time(api, store, path):
    assert_executed(post(api, path, key=None))
    assert_executed(post(api, path, key=None))
    assert widgets() == 2
    assert stored_keys(store) == 0


@pytestmark_db
def test_patch_takes_part_when_the_methods_setting_says_so(api, settings, store):
    patch = {"method": "patch", "path": "/listed-widgets/1/"}
    assert_executed(post(api, **patch), 201)
    assert_executed(post(api, **patch), 201)  # PATCH is not in METHODS by default
    assert widgets() == 2
    configure(settings, METHODS=["POST", "PATCH"])
    first = post(api, key="key-patch-0001", **patch)
    replay = post(api, key="key-patch-0001", **patch)
    assert_executed(first)
    assert is_replay(replay)
    assert replay.content == first.content
    assert widgets() == 3


@pytestmark_db
def test_patch_takes_part_with_the_decorators_methods_option(api, store):
    patch = {"method": "patch", "path": "/methods-fn-widgets"}
    first = post(api, **patch)
    replay = post(api, **patch)
    assert_executed(first)
    assert is_replay(replay)
    assert widgets() == 1


@pytestmark_db
def test_methods_setting_can_leave_post_out(api, settings, store):
    configure(settings, METHODS=["PATCH"])
    assert_executed(post(api, MIXIN))
    assert_executed(post(api, MIXIN))
    assert widgets() == 2
    assert stored_keys(store) == 0


# Header names --------------------------------------------------------------------------------


@pytestmark_db
@TWO_FACES
@pytest.mark.parametrize("header", ["HTTP_IDEMPOTENCY_KEY", "HTTP_X_IDEMPOTENCY_KEY"])
def test_both_header_names_are_accepted(api, store, path, header):
    first = post(api, path, header=header)
    assert_executed(first)
    other = "HTTP_X_IDEMPOTENCY_KEY" if header == "HTTP_IDEMPOTENCY_KEY" else "HTTP_IDEMPOTENCY_KEY"
    replay = post(api, path, header=other)  # the same key under the other name
    assert is_replay(replay)
    assert widgets() == 1


@pytestmark_db
@TWO_FACES
def test_header_names_are_configurable(api, settings, store, path):
    configure(settings, HEADERS=["Request-Id"])
    assert_executed(post(api, path))  # Idempotency-Key is no longer read
    assert_executed(post(api, path))
    assert_executed(post(api, path, header="HTTP_REQUEST_ID"))
    assert is_replay(post(api, path, header="HTTP_REQUEST_ID"))
    assert widgets() == 3


@pytestmark_db
@TWO_FACES
def test_sf_string_key_is_the_same_key_unquoted(api, store, path):
    assert_executed(post(api, path, key=f'"{KEY}"'))
    assert is_replay(post(api, path, key=KEY))
    assert widgets() == 1


# Key bounds ----------------------------------------------------------------------------------


@pytestmark_db
@TWO_FACES
def test_key_bounds_are_10_to_1024_by_default(api, store, path):
    assert_problem(post(api, path, key="k" * 9), 400, "idempotency_key_invalid")
    assert_executed(post(api, path, key="k" * 10))
    assert_executed(post(api, path, key="k" * 1024))
    assert_problem(post(api, path, key="k" * 1025), 400, "idempotency_key_invalid")
    assert widgets() == 2


@pytestmark_db
@TWO_FACES
def test_key_bounds_are_configurable(api, settings, store, path):
    configure(settings, KEY_MIN_LENGTH=4, KEY_MAX_LENGTH=12)
    assert_executed(post(api, path, key="abcd"))
    assert_problem(post(api, path, key="abc"), 400, "idempotency_key_invalid")
    assert_problem(post(api, path, key="k" * 13), 400, "idempotency_key_invalid")
    assert_problem(post(api, path, key=KEY + "xx"), 400, "idempotency_key_invalid")


@pytestmark_db
@TWO_FACES
@pytest.mark.parametrize("key", ["ключ-идемпотентности", "key-\u00e9-1234567890", "ké" * 8])
def test_unicode_key_is_400(api, store, path, key):
    assert_problem(post(api, path, key=key), 400, "idempotency_key_invalid")
    assert widgets() == 0


@pytestmark_db
@pytest.mark.parametrize("path", [MIXIN, DECORATOR])
def test_one_megabyte_key_is_400(api, store, path):
    assert_problem(post(api, path, key="k" * 1024 * 1024), 400, "idempotency_key_invalid")
    assert widgets() == 0
    assert stored_keys(store) == 0


# parse_key, property-tested --------------------------------------------------------------------


def test_no_header_is_no_key():
    assert parse_key(RequestFactory().post("/"), HEADERS, min_length=10, max_length=1024) is None


@given(BARE)
def test_any_visible_ascii_key_in_bounds_is_accepted_as_is(key):
    assert parse(key) == key
    assert parse(key, header="HTTP_X_IDEMPOTENCY_KEY") == key


@given(VISIBLE)
def test_sf_string_unquotes_to_the_bare_key(key):
    assert parse(sf_string(key)) == key


@given(
    st.text(min_size=10, max_size=40).filter(
        lambda k: any(not 0x21 <= ord(c) <= 0x7E for c in k.strip(" \t"))
    )
)
def test_any_key_with_an_invisible_or_non_ascii_character_is_rejected(key):
    try:
        request = RequestFactory().post("/", HTTP_IDEMPOTENCY_KEY=key)
    except ValueError:  # a header value the test client refuses to build
        return
    with pytest.raises(IdempotencyKeyInvalid):
        parse_key(request, HEADERS, min_length=10, max_length=1024)


@given(st.integers(min_value=1, max_value=64), st.integers(min_value=0, max_value=70))
def test_length_bounds(low, length):
    high = low + 8
    key = "k" * length
    if low <= length <= high:
        assert parse(key, low=low, high=high) == key
    else:
        with pytest.raises(IdempotencyKeyInvalid):
            parse(key, low=low, high=high)


@given(BARE, BARE)
def test_two_headers_with_different_keys_are_rejected(one, other):
    request = RequestFactory().post("/", HTTP_IDEMPOTENCY_KEY=one, HTTP_X_IDEMPOTENCY_KEY=other)
    if one == other:
        assert parse_key(request, HEADERS, min_length=10, max_length=1024) == one
    else:
        with pytest.raises(IdempotencyKeyInvalid):
            parse_key(request, HEADERS, min_length=10, max_length=1024)
