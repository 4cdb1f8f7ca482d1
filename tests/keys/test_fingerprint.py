"""docs/semantics.md#identity: what makes two requests "the same request", and replacing that
function."""

import hashlib
import io
import json
import tracemalloc
from contextlib import suppress
from unittest.mock import patch
from urllib.parse import urlencode

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from rest_framework.exceptions import ParseError
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from idempotency_jobs.keys import fingerprint as fingerprint_module
from idempotency_jobs.keys.fingerprint import default_fingerprint
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


def test_form_fields_compare_sorted_by_name_with_repeated_names_in_their_order():
    # Django's QueryDict and DRF read the last value of a repeated name: its order matters.
    assert fingerprint("a=1&b=2&a=3", FORM) == fingerprint("b=2&a=1&a=3", FORM)
    assert fingerprint("a=1&b=2&a=3", FORM) != fingerprint("b=2&a=3&a=1", FORM)
    assert fingerprint("tags=a&tags=b", FORM) != fingerprint("tags=b&tags=a", FORM)
    assert fingerprint("a=1", FORM) != fingerprint("a=1&a=1", FORM)
    assert fingerprint("a=1&b=2", FORM) != fingerprint("a=1&b=3", FORM)
    assert fingerprint("a=%20x", FORM) == fingerprint("a=+x", FORM)


def interleaved(fields, rng):
    """``fields`` in another order that keeps the values of each name in their order."""
    queues = {}
    for name, value in fields:
        queues.setdefault(name, []).append(value)
    names = [name for name, _ in fields]
    rng.shuffle(names)
    return [(name, queues[name].pop(0)) for name in names]


@given(st.lists(st.tuples(st.text(max_size=5), st.text(max_size=5)), max_size=6), st.randoms())
def test_form_fields_property(fields, rng):
    reordered = interleaved(fields, rng)
    assert fingerprint(urlencode(fields), FORM) == fingerprint(urlencode(reordered), FORM)


@given(st.text(max_size=5), st.text(max_size=5), st.text(max_size=5))
def test_form_values_of_a_repeated_name_in_another_order_differ(name, one, other):
    assume(one != other)
    assert fingerprint(urlencode([(name, one), (name, other)]), FORM) != fingerprint(
        urlencode([(name, other), (name, one)]), FORM
    )


def test_multipart_compares_fields_and_files_not_boundaries():
    from django.core.files.uploadedfile import SimpleUploadedFile

    def upload(content=b"col\n1\n"):
        return SimpleUploadedFile("data.csv", content, content_type="text/csv")

    one = fingerprint({"a": "1", "file": upload()})
    assert one == fingerprint({"a": "1", "file": upload()})
    assert one != fingerprint({"a": "2", "file": upload()})
    assert one != fingerprint({"a": "1", "file": upload(b"col\n2\n")})


def test_multipart_repeated_fields_keep_their_order():
    assert fingerprint({"tags": ["a", "b"], "x": "1"}) == fingerprint(
        {"x": "1", "tags": ["a", "b"]}
    )
    assert fingerprint({"tags": ["a", "b"]}) != fingerprint({"tags": ["b", "a"]})


# Declared charsets ----------------------------------------------------------------------------

LATIN_1_FORM = f"{FORM}; charset=iso-8859-1"


def test_form_body_is_read_with_its_declared_charset():
    # %E9 is é and %E8 is è in ISO-8859-1; read as UTF-8 both are U+FFFD.
    assert fingerprint("n=Ren%E9", LATIN_1_FORM) != fingerprint("n=Ren%E8", LATIN_1_FORM)
    # The same text is the same request, whichever charset spells it.
    assert fingerprint("n=Ren%E9", LATIN_1_FORM) == fingerprint("n=Ren%C3%A9", FORM)
    assert fingerprint(b"n=Ren\xe9", LATIN_1_FORM) == fingerprint("n=Ren%E9", LATIN_1_FORM)
    assert fingerprint("n=Ren%C3%A9", LATIN_1_FORM) != fingerprint("n=Ren%C3%A9", FORM)


def test_json_body_is_read_with_its_declared_charset():
    latin_1 = "application/json; charset=latin-1"
    utf_8 = "application/json; charset=utf-8"
    # The same bytes are other text: "RenÃ©" in Latin-1, "René" in UTF-8.
    assert fingerprint('{"n": "René"}'.encode(), latin_1) != fingerprint(
        '{"n": "René"}'.encode(), utf_8
    )
    # Compared as parsed data in any charset: key order and whitespace don't matter.
    assert fingerprint(b'{"n": "Ren\xe9", "a": 1}', latin_1) == fingerprint(
        b'{"a":1,"n":"Ren\xe9"}', latin_1
    )
    assert fingerprint(b'{"n": "Ren\xe9"}', latin_1) != fingerprint(b'{"n": "Ren\xe8"}', latin_1)
    assert fingerprint(b'{"n": "Ren\xe9"}', latin_1) == fingerprint('{"n": "René"}'.encode())


def test_other_bodies_with_another_declared_charset_are_other_requests():
    body = "René".encode()
    assert fingerprint(body, "text/plain; charset=latin-1") != fingerprint(body, "text/plain")
    assert fingerprint(body, "text/plain; charset=utf-8") == fingerprint(body, "text/plain")


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


def recipe(media_type, body):
    parts = [b"POST", b"/widgets/", b"[]", media_type.encode(), body]
    return hashlib.sha256(b"".join(part + b"\x00" for part in parts)).hexdigest()


@pytest.mark.parametrize(
    ("content_type", "body", "canonical"),
    [
        (FORM, "b=2&a=1", b'form:[["a","1"],["b","2"]]'),
        (FORM, "b=&a=%C3%A9", 'form:[["a","é"],["b",""]]'.encode()),
        (JSON, '{"a": "é"}', 'json:{"a":"é"}'.encode()),
        (JSON, '{"a": 1', b'raw:{"a": 1'),
        (JSON, '{"a": "\\ud800"}', b'raw:{"a": "\\ud800"}'),  # a lone surrogate: not UTF-8
        (JSON, "", b""),
        ("text/plain", "a b", b"raw:a b"),
        ("text/plain; charset=utf-8", "é", "raw:é".encode()),
    ],
)
def test_bodies_are_digested_in_canonical_form(content_type, body, canonical):
    # Unchanged since the first release: each of these requests keeps its stored keys.
    assert fingerprint(body, content_type) == recipe(content_type.split(";")[0], canonical)


@pytest.mark.parametrize("lone", ["\\udfff", "\\uD800"])
def test_a_large_json_body_is_digested_as_a_small_one(settings, lone):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = None
    text = "x" * (2 * 1024 * 1024)
    body = json.dumps({"b": [text, {"c": text}], "a": text})
    assert fingerprint(body) == recipe(JSON, b"json:" + canonical_dumps(json.loads(body)))
    with_surrogate = body.replace('"a": "x', f'"a": "{lone}x', 1)
    assert fingerprint(with_surrogate) == recipe(JSON, b"raw:" + with_surrogate.encode())


def canonical_dumps(data):
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def test_multipart_bodies_are_digested_in_canonical_form():
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("data.csv", b"col\n1\n", content_type="text/csv")
    digest = hashlib.sha256(b"col\n1\n").hexdigest()
    canonical = f'data:[[["a","1"],["b","2"]],[["file","data.csv","text/csv","{digest}"]]]'
    body = {"b": "2", "file": upload, "a": "1"}
    assert fingerprint(body) == recipe("multipart/form-data", canonical.encode())


@pytest.mark.parametrize(
    ("content_type", "body", "canonical"),
    [
        # Repeated names: in their order (was: sorted by value too).
        (FORM, "tags=b&a=1&tags=a", b'form:[["a","1"],["tags","b"],["tags","a"]]'),
        # Declared non-UTF-8 charsets: read as the parser reads them (was: as UTF-8).
        (LATIN_1_FORM, "n=Ren%E9", 'form:[["n","René"]]'.encode()),
        ("application/json; charset=latin-1", b'{"n": "Ren\xe9"}', 'json:{"n":"René"}'.encode()),
        ("text/plain; charset=latin-1", b"Ren\xe9", b"raw;charset=iso8859-1:Ren\xe9"),
    ],
)
def test_repeated_names_and_declared_charsets_have_a_new_digest(content_type, body, canonical):
    assert fingerprint(body, content_type) == recipe(content_type.split(";")[0], canonical)


def test_other_headers_are_not_part_of_it():
    body = '{"a": 1}'
    assert fingerprint(body) == fingerprint(
        body, HTTP_X_TRACE="abc", HTTP_USER_AGENT="other", HTTP_ACCEPT="text/html"
    )


# Memory ---------------------------------------------------------------------------------------

LARGE = 8 * 1024 * 1024


def peak_allocated(action):
    """The most memory Python held at once during ``action()``, above what it held before."""
    tracemalloc.start()
    try:
        action()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def parse(request):
    with suppress(ParseError):
        request.data  # noqa: B018


def body_read(body, content_type):
    """A request whose body the server has read, as it is when the fingerprint runs."""
    django_request = APIRequestFactory().post("/widgets/", body, content_type=content_type)
    assert django_request.body == body
    return Request(django_request, parsers=PARSERS)


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        (
            JSON,
            json.dumps({"csv_text": "Email,Name\nsomeone@example.com,Someone\n" * (LARGE // 40)}),
        ),
        (JSON, json.dumps([{"a": [1, "b"]}] * (LARGE // 64))),
        (FORM, "csv_text=" + "someone%40example.com%2CSomeone%0A" * (LARGE // 34)),
        (JSON, "\xff" + "0" * LARGE),  # not JSON, not UTF-8: compared as raw bytes
    ],
    ids=["json-text", "json-objects", "form", "not-json"],
)
def test_fingerprinting_a_large_body_costs_no_more_memory_than_parsing_it(
    settings, content_type, body
):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = None
    body = body.encode("latin-1" if body.startswith("\xff") else "utf-8")
    fingerprinted, parsed = body_read(body, content_type), body_read(body, content_type)
    fingerprint_peak = peak_allocated(lambda: default_fingerprint(fingerprinted))
    parse_peak = peak_allocated(lambda: parse(parsed))
    # Both hold the parsed data at their peak; the fingerprint holds no copy of the body on top.
    assert fingerprint_peak < parse_peak + len(body) // 4, (fingerprint_peak, parse_peak)


@pytest.mark.parametrize("content_type", ["application/octet-stream", "text/plain"])
def test_fingerprinting_large_raw_bytes_copies_none_of_them(settings, content_type):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = None
    body = b"\xff" + b"0" * LARGE
    request = body_read(body, content_type)
    assert peak_allocated(lambda: default_fingerprint(request)) < len(body) // 4


any_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=40),
    lambda children: (
        st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=6), children, max_size=6)
    ),
    max_leaves=40,
)


@given(any_json, st.sampled_from([1, 7, 64]))
def test_the_text_written_in_pieces_is_json_dumps_text(data, chunk):
    # Small chunks walk every container and slice every string, as a large body does.
    with patch.object(fingerprint_module, "_CHUNK", chunk):
        pieces = "".join(fingerprint_module._json_pieces(data))
    assert pieces == fingerprint_module._dumps_text(data)


def test_a_large_body_nested_deeply_is_written_without_recursion():
    data = ["x" * 100]
    for _ in range(5000):
        data = [data, 1]
    with patch.object(fingerprint_module, "_CHUNK", 16):
        pieces = "".join(fingerprint_module._json_pieces(data))
    assert pieces == "[" * 5001 + '"' + "x" * 100 + '"]' + ",1]" * 5000


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
def test_repeated_form_fields_in_another_order_are_another_request(api, store, path):
    headers = {"HTTP_X_USER": "alice", "HTTP_IDEMPOTENCY_KEY": KEY}
    first = api.post(path, "name=a&name=b&payload=1", content_type=FORM, **headers)
    assert_executed(first)
    assert first.json()["name"] == "b"  # the view reads the last one
    assert_problem(
        api.post(path, "name=b&name=a&payload=1", content_type=FORM, **headers),
        422,
        "idempotency_key_mismatch",
    )
    assert is_replay(api.post(path, "payload=1&name=a&name=b", content_type=FORM, **headers))
    assert widgets() == 1


@db
@TWO_FACES
def test_repeated_multipart_fields_in_another_order_are_another_request(api, store, path):
    headers = {"HTTP_X_USER": "alice", "HTTP_IDEMPOTENCY_KEY": KEY}
    first = api.post(path, {"name": ["a", "b"], "payload": "1"}, format="multipart", **headers)
    assert_executed(first)
    assert first.json()["name"] == "b"
    other = api.post(path, {"name": ["b", "a"], "payload": "1"}, format="multipart", **headers)
    assert_problem(other, 422, "idempotency_key_mismatch")
    assert widgets() == 1


@db
@TWO_FACES
def test_form_body_in_a_declared_charset_is_compared_as_its_text(api, store, path):
    headers = {"HTTP_X_USER": "alice", "HTTP_IDEMPOTENCY_KEY": KEY}
    first = api.post(path, "name=Ren%E9&payload=1", content_type=LATIN_1_FORM, **headers)
    assert_executed(first)
    assert first.json()["name"] == "René"
    assert_problem(
        api.post(path, "name=Ren%E8&payload=1", content_type=LATIN_1_FORM, **headers),
        422,
        "idempotency_key_mismatch",
    )
    assert is_replay(api.post(path, "name=Ren%C3%A9&payload=1", content_type=FORM, **headers))
    assert widgets() == 1


@db
@TWO_FACES
def test_json_body_in_a_declared_charset_is_compared_as_its_text(api, store, path):
    headers = {"HTTP_X_USER": "alice", "HTTP_IDEMPOTENCY_KEY": KEY}
    body = '{"name": "René", "payload": 1}'.encode()
    first = api.post(path, body, content_type="application/json; charset=utf-8", **headers)
    assert_executed(first)
    assert first.json()["name"] == "René"
    # The same bytes in Latin-1 are "RenÃ©": another request.
    latin_1 = api.post(path, body, content_type="application/json; charset=latin-1", **headers)
    assert_problem(latin_1, 422, "idempotency_key_mismatch")
    same_text = b'{"payload": 1, "name": "Ren\xe9"}'
    replay = api.post(path, same_text, content_type="application/json; charset=latin-1", **headers)
    assert is_replay(replay)
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


# Chunked bodies -------------------------------------------------------------------------------


def chunked(api, path, body, *, terminated, **headers):
    """A POST whose body comes ``Transfer-Encoding: chunked``, without a Content-Length, as
    gunicorn hands it on (``terminated``: the server says the input ends with the body)."""
    environ = {
        "CONTENT_LENGTH": "",
        "HTTP_TRANSFER_ENCODING": "chunked",
        "wsgi.input": io.BytesIO(body),
        "HTTP_X_USER": "alice",
    }
    if terminated:
        environ["wsgi.input_terminated"] = True
    return api.post(path, body, content_type=JSON, **environ, **headers)


@db
@TWO_FACES
def test_chunked_body_from_a_server_that_terminates_input_is_read_whole(api, store, path):
    body = json.dumps({"name": "chunked", "payload": {"a": 1}}).encode()
    first = chunked(api, path, body, terminated=True, HTTP_IDEMPOTENCY_KEY=KEY)
    assert_executed(first)
    assert first.json()["name"] == "chunked"
    other = json.dumps({"name": "other", "payload": {"a": 1}}).encode()
    assert_problem(
        chunked(api, path, other, terminated=True, HTTP_IDEMPOTENCY_KEY=KEY),
        422,
        "idempotency_key_mismatch",
    )
    replay = post(api, path, body={"payload": {"a": 1}, "name": "chunked"})  # with a length
    assert is_replay(replay)
    assert replay.content == first.content
    assert widgets() == 1


@db
@TWO_FACES
def test_chunked_body_read_by_a_permission_first_is_still_read_whole(api, store, path):
    path = "/peeking-widgets/" if path == MIXIN else "/peeking-fn-widgets"
    body = json.dumps({"name": "chunked", "payload": {}}).encode()
    first = chunked(api, path, body, terminated=True, HTTP_IDEMPOTENCY_KEY=KEY)
    assert_executed(first)
    assert first.json()["name"] == "chunked"


@db
@TWO_FACES
@pytest.mark.parametrize("key", [KEY, None], ids=["keyed", "unkeyed"])
def test_chunked_body_the_server_cannot_end_is_411_and_runs_nothing(api, store, path, key):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    body = json.dumps({"name": "chunked", "payload": {}}).encode()
    assert_problem(
        chunked(api, path, body, terminated=False, **headers), 411, "idempotency_length_required"
    )
    assert widgets() == 0
    assert stored_keys(store) == 0


def test_a_body_without_a_length_under_asgi_is_given_its_length():
    from django.core.handlers.asgi import ASGIRequest

    from idempotency_jobs.keys.body import read_chunked_body

    body = b'{"name": "w", "payload": {"a": 1}}'
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/widgets/",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json")],  # HTTP/2: no length, not chunked
    }
    request = Request(ASGIRequest(scope, io.BytesIO(body)), parsers=PARSERS)
    read_chunked_body(request)
    assert request.data == {"name": "w", "payload": {"a": 1}}
    assert default_fingerprint(request) == fingerprint(body.decode())


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
