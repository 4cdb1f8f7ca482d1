"""SPEC §2: what makes two requests "the same request", and replacing that function."""

import hashlib
import json
from urllib.parse import urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from idempotency_jobs.fingerprint import default_fingerprint
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
    widgets,
)

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
PARSERS = [JSONParser(), FormParser(), MultiPartParser()]


def fingerprint(body, content_type=JSON, path="/widgets/", method="post", **headers):
    factory = APIRequestFactory()
    if isinstance(body, str | bytes):
        django_request = getattr(factory, method)(
            path, data=body, content_type=content_type, **headers
        )
    else:  # multipart
        django_request = getattr(factory, method)(path, data=body, format="multipart", **headers)
    return default_fingerprint(Request(django_request, parsers=PARSERS))


# JSON -----------------------------------------------------------------------------------------


def test_json_key_order_and_whitespace_do_not_matter():
    one = fingerprint('{"name": "w", "payload": {"a": 1, "b": [1, 2]}}')
    other = fingerprint('{\n  "payload" : { "b":[1,2], "a":1 },\n\t"name":"w"\n}\n')
    assert one == other


@pytest.mark.parametrize(
    "value, other",
    [
        ("1", "1.0"),
        ("1", '"1"'),
        ("1", "true"),
        ("1.0", '"1"'),
        ("true", '"true"'),
        ("0", "false"),
        ("null", '""'),
        ("null", "0"),
        ("[1, 2]", "[2, 1]"),
        ('{"a": 1}', '{"a": 1, "b": null}'),
    ],
)
def test_json_values_and_types_matter(value, other):
    assert fingerprint(f'{{"x": {value}}}') != fingerprint(f'{{"x": {other}}}')


def test_json_with_charset_parameter_is_the_same_media_type():
    body = '{"a": 1}'
    assert fingerprint(body) == fingerprint(body, content_type="application/json; charset=utf-8")


def test_vendor_json_media_types_compare_as_json():
    one = fingerprint('{"a": 1, "b": 2}', content_type="application/vnd.api+json")
    other = fingerprint('{"b":2,"a":1}', content_type="application/vnd.api+json")
    assert one == other


def test_invalid_json_compares_as_raw_bytes():
    assert fingerprint('{"a": 1') == fingerprint('{"a": 1')
    assert fingerprint('{"a": 1') != fingerprint('{"a":  1')


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)


def shuffled(value, rng):
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {key: shuffled(item, rng) for key, item in items}
    if isinstance(value, list):
        return [shuffled(item, rng) for item in value]
    return value


@given(st.dictionaries(st.text(max_size=6), json_values, max_size=6), st.randoms())
def test_json_equivalence_property(data, rng):
    compact = json.dumps(data, separators=(",", ":"))
    spread = json.dumps(shuffled(data, rng), indent=rng.choice([None, 1, 4]), ensure_ascii=False)
    assert fingerprint(compact) == fingerprint(spread)


@given(st.dictionaries(st.text(max_size=6), json_values, min_size=1, max_size=6), json_values)
def test_json_different_data_property(data, new_value):
    key = next(iter(data))
    changed = {**data, key: new_value}
    same = json.dumps(changed[key]) == json.dumps(data[key])
    assert (fingerprint(json.dumps(data)) == fingerprint(json.dumps(changed))) == same


# Forms ----------------------------------------------------------------------------------------


def test_form_bodies_compare_as_a_sorted_multiset():
    assert fingerprint("a=1&b=2&a=3", FORM) == fingerprint("b=2&a=3&a=1", FORM)
    assert fingerprint("a=1", FORM) != fingerprint("a=1&a=1", FORM)
    assert fingerprint("a=1&b=2", FORM) != fingerprint("a=1&b=3", FORM)
    assert fingerprint("a=%20x", FORM) == fingerprint("a=+x", FORM)


@given(st.lists(st.tuples(st.text(max_size=5), st.text(max_size=5)), max_size=6), st.randoms())
def test_form_multiset_property(fields, rng):
    reordered = list(fields)
    rng.shuffle(reordered)
    assert fingerprint(urlencode(fields), FORM) == fingerprint(urlencode(reordered), FORM)


def test_multipart_compares_fields_and_files_not_boundaries():
    from django.core.files.uploadedfile import SimpleUploadedFile

    def upload(content=b"col\n1\n"):
        return SimpleUploadedFile("data.csv", content, content_type="text/csv")

    one = fingerprint({"a": "1", "file": upload()})
    assert one == fingerprint({"a": "1", "file": upload()})
    assert one != fingerprint({"a": "2", "file": upload()})
    assert one != fingerprint({"a": "1", "file": upload(b"col\n2\n")})


# Other bodies, query, path, method, headers ---------------------------------------------------


def test_other_bodies_compare_as_raw_bytes():
    assert fingerprint("a b", "text/plain") == fingerprint("a b", "text/plain")
    assert fingerprint("a b", "text/plain") != fingerprint("a  b", "text/plain")
    assert fingerprint(b"\x00\xff", "application/octet-stream") != fingerprint(
        b"\x00\xfe", "application/octet-stream"
    )


def test_media_type_is_part_of_it():
    assert fingerprint("a=1", FORM) != fingerprint("a=1", "text/plain")


def test_query_string_path_and_method_are_part_of_it():
    body = '{"a": 1}'
    base = fingerprint(body, path="/widgets/?x=1")
    assert base != fingerprint(body, path="/widgets/?x=2")
    assert base != fingerprint(body, path="/widgets/")
    assert base != fingerprint(body, path="/other/?x=1")
    assert base != fingerprint(body, path="/widgets/?x=1", method="patch")
    assert fingerprint(body, path="/w/?a=1&b=2") == fingerprint(body, path="/w/?b=2&a=1")


@pytest.mark.parametrize(
    ("path", "query"),
    [("/widgets/", b"[]"), ("/widgets/?b=2&a=1&a=", b'[["a",""],["a","1"],["b","2"]]')],
)
def test_it_is_the_digest_of_its_parts_in_canonical_form(path, query):
    # Stored keys outlive upgrades: other bytes for the same request would answer an honest
    # retry with 422. Written out from the recipe, with and without a query string.
    parts = [b"POST", b"/widgets/", query, JSON.encode(), b'json:{"a":"x","b":[1,2]}']
    expected = hashlib.sha256(b"".join(part + b"\x00" for part in parts)).hexdigest()
    assert fingerprint('{"b": [1, 2],  "a": "x"}', path=path) == expected


def test_other_headers_are_not_part_of_it():
    body = '{"a": 1}'
    assert fingerprint(body) == fingerprint(
        body, HTTP_X_TRACE="abc", HTTP_USER_AGENT="other", HTTP_ACCEPT="text/html"
    )


# Through the views ----------------------------------------------------------------------------

db = CORE_DB


@db
@TWO_FACES
def test_reordered_json_is_replayed(api, store, path):
    first = post(api, path, body={"name": "w", "payload": {"a": 1, "b": 2}})
    replay = api.post(
        path,
        '{"payload": {"b": 2, "a": 1},   "name": "w"}',
        content_type=JSON,
        HTTP_X_USER="alice",
        HTTP_IDEMPOTENCY_KEY=KEY,
    )
    assert is_replay(replay)
    assert replay.content == first.content
    assert widgets() == 1


@db
@TWO_FACES
@pytest.mark.parametrize("value", [1.0, "1", True])
def test_same_value_of_another_type_is_422(api, store, path, value):
    assert_executed(post(api, path, body={"name": "w", "payload": {"a": 1}}))
    other = post(api, path, body={"name": "w", "payload": {"a": value}})
    assert_problem(other, 422, "idempotency_key_mismatch")
    assert widgets() == 1


@db
@TWO_FACES
def test_form_fields_in_another_order_are_replayed(api, store, path):
    headers = {"HTTP_X_USER": "alice", "HTTP_IDEMPOTENCY_KEY": KEY}
    first = api.post(path, "name=w&payload=%7B%7D", content_type=FORM, **headers)
    assert_executed(first)
    assert is_replay(api.post(path, "payload=%7B%7D&name=w", content_type=FORM, **headers))
    assert_problem(
        api.post(path, "name=v&payload=%7B%7D", content_type=FORM, **headers),
        422,
        "idempotency_key_mismatch",
    )
    assert widgets() == 1


@db
@TWO_FACES
def test_another_query_string_is_422(api, store, path):
    assert_executed(post(api, f"{path}?x=1"))
    assert_problem(post(api, f"{path}?x=2"), 422, "idempotency_key_mismatch")
    assert is_replay(post(api, f"{path}?x=1"))


@db
def test_another_path_with_the_same_key_is_422(api, store):
    assert_executed(post(api, MIXIN))
    assert_problem(post(api, DECORATOR), 422, "idempotency_key_mismatch")
    assert widgets() == 1


@db
@TWO_FACES
def test_other_headers_do_not_change_the_request(api, store, path):
    post(api, path, HTTP_X_TRACE="one", HTTP_USER_AGENT="a")
    assert is_replay(post(api, path, HTTP_X_TRACE="two", HTTP_USER_AGENT="b"))


@db
@TWO_FACES
def test_body_read_by_a_permission_before_the_view_is_still_fingerprinted(api, store, path):
    path = "/peeking-widgets/" if path == MIXIN else "/peeking-fn-widgets"
    assert_executed(post(api, path))
    assert_problem(post(api, path, body={"name": "other"}), 422, "idempotency_key_mismatch")
    assert is_replay(post(api, path))
    assert widgets() == 1


# Replaceable fingerprint and scope -------------------------------------------------------------


@db
@TWO_FACES
def test_fingerprint_function_setting(api, settings, store, path):
    configure(settings, FINGERPRINT_FUNCTION="tests.testapp.views.path_only_fingerprint")
    first = post(api, path)
    replay = post(api, path, body={"name": "another body"})
    assert is_replay(replay)
    assert replay.content == first.content
    assert widgets() == 1


@db
@TWO_FACES
def test_scope_function_setting(api, settings, store, path):
    configure(settings, SCOPE_FUNCTION="tests.testapp.views.team_scope")
    first = post(api, path, user="alice", HTTP_X_TEAM="red")
    replay = post(api, path, user="bob", HTTP_X_TEAM="red")  # same team: same key owner
    assert is_replay(replay)
    assert replay.content == first.content
    assert_executed(post(api, path, user="alice", HTTP_X_TEAM="blue"))
    assert_problem(post(api, path, user="alice"), 400, "idempotency_key_unscoped")
    assert widgets() == 2


@db
@pytest.mark.parametrize("path", ["/hooked-widgets/", "/hooked-fn-widgets"])
def test_mixin_hooks_and_decorator_options(api, store, path):
    first = post(api, path, user="alice", HTTP_X_TEAM="red")
    replay = post(api, path, user="bob", body={"name": "ignored"}, HTTP_X_TEAM="red")
    assert is_replay(replay)
    assert replay.content == first.content
    assert_executed(post(api, path, user="alice", HTTP_X_TEAM="blue"))
    assert widgets() == 2


@db
@TWO_FACES
def test_fingerprint_and_scope_functions_may_return_long_strings(api, settings, store, path):
    configure(
        settings,
        FINGERPRINT_FUNCTION="tests.testapp.views.verbose_fingerprint",
        SCOPE_FUNCTION="tests.testapp.views.verbose_scope",
    )
    first = post(api, path)
    assert_executed(first)
    assert is_replay(post(api, path))
    assert_problem(post(api, path, body={"name": "x"}), 422, "idempotency_key_mismatch")
    assert_executed(post(api, path, user="bob"))
    assert widgets() == 2
