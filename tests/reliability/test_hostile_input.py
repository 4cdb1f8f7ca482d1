"""Hostile requests to the example service: every one gets a 4xx with a problem body (where the
application answers at all), never a 5xx, and nothing runs or is stored.

In-process requests go through the example's URLconf and error handlers; the raw-socket ones go
to gunicorn, which refuses some malformed heads itself before the application sees them.
"""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.request import Request
from rest_framework.test import APIClient, APIRequestFactory

from example_project.letters.models import Letter
from idempotency_jobs.exceptions import PROBLEM_CONTENT_TYPE
from idempotency_jobs.keys.fingerprint import default_fingerprint
from idempotency_jobs.models import Job
from tests.helpers import stored_keys
from tests.reliability.test_support import (
    IMPORT_URL,
    MAPPINGS,
    Service,
    import_body,
    service,
    workspace_secret,
)

__all__ = ["service"]

LETTERS = "/api/v1/letters/create"
KEY = "hostile-input-key-0001"
DEEP = b"[" * 100_000 + b"]" * 100_000
DEEP_OBJECT = b'{"a":' * 50_000 + b"1" + b"}" * 50_000


@pytest.fixture
def api() -> APIClient:
    client = APIClient(raise_request_exception=False)  # a crash is a 500 answer, as in a server
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {workspace_secret('hostile')}")
    return client


def problem(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.content[:300])
    assert response["Content-Type"] == PROBLEM_CONTENT_TYPE, response["Content-Type"]
    body: dict[str, Any] = json.loads(response.content)
    assert body["status"] == status
    assert body["title"] and body["detail"] and body["type"] and body["code"]
    if code is not None:
        assert body["code"] == code, body
    return body


def nothing_happened(store: str) -> None:
    assert Job.objects.count() == 0
    assert Letter.objects.count() == 0
    assert stored_keys(store) == 0


KEYED = pytest.mark.parametrize("key", [None, KEY], ids=["unkeyed", "keyed"])
PATHS = pytest.mark.parametrize("path", [IMPORT_URL, LETTERS])
pytestmark = [pytest.mark.urls("tests.example.urls")]


# Bodies -------------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [DEEP, DEEP_OBJECT], ids=["array", "object"])
def test_json_too_deep_to_parse_is_fingerprinted_as_its_bytes(body: bytes) -> None:
    """Python's json recurses per level; the fingerprint must not crash on 100 000 levels (a
    keyed request would be a 500 before its view could refuse it). Over HTTP below."""

    def fingerprint(raw: bytes) -> str:
        request = APIRequestFactory().post(IMPORT_URL, raw, content_type="application/json")
        return default_fingerprint(Request(request))

    assert fingerprint(body) == fingerprint(body)
    assert fingerprint(body) != fingerprint(body[1:-1])


@pytest.mark.django_db
@KEYED
@PATHS
def test_a_body_over_the_servers_limit_is_a_413_problem(
    api: APIClient, settings: Any, store: str, key: str | None, path: str
) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100_000
    body = json.dumps({"csv_text": "x" * 200_000, "mappings": MAPPINGS})
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    problem(api.post(path, body, content_type="application/json", **headers), 413)
    nothing_happened(store)


@pytest.mark.django_db
@KEYED
@PATHS
def test_too_many_form_fields_is_a_400_problem(
    api: APIClient, store: str, key: str | None, path: str
) -> None:
    body = "&".join(f"field{n}=1" for n in range(2_000))
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    response = api.post(path, body, content_type="application/x-www-form-urlencoded", **headers)
    problem(response, 400)
    nothing_happened(store)


@pytest.mark.django_db
@KEYED
@PATHS
@pytest.mark.parametrize(
    "content_type, body",
    [
        ("multipart/form-data", b"no boundary at all"),
        ("multipart/form-data; boundary=x", b"--x\r\nContent-Disposition: nonsense\r\n\r\n"),
        ("application/json", b'{"csv_text": "\xff\xfe\xfd", "mappings": []}'),
        ("application/json", b'{"csv_text": NaN, "mappings": 1e999}'),
        ("application/json", b'{"csv_text": "\\ud800", "mappings": []}'),
        ("application/json", b"\xef\xbb\xbf{}"),
        ("application/json", b"[1, 2]"),
        ("application/x-www-form-urlencoded", b"csv_text=%ff%fe&mappings=%00"),
        ("text/csv", b"Email\nada@example.com\n"),
    ],
    ids=[
        "multipart-no-boundary",
        "multipart-broken",
        "json-invalid-utf8",
        "json-nan",
        "json-lone-surrogate",
        "json-bom",
        "json-list",
        "form-invalid-utf8",
        "unsupported-media-type",
    ],
)
def test_malformed_bodies_are_4xx_problems(
    api: APIClient, store: str, key: str | None, path: str, content_type: str, body: bytes
) -> None:
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    response = api.post(path, body, content_type=content_type, **headers)
    assert 400 <= response.status_code < 500, (response.status_code, response.content[:300])
    problem(response, response.status_code)
    nothing_happened(store)
    # Not stored: the same request again is refused again, never replayed or held as in flight.
    again = api.post(path, body, content_type=content_type, **headers)
    assert again.status_code == response.status_code
    assert again.get("Idempotent-Replayed") is None


@pytest.mark.django_db
@KEYED
@pytest.mark.parametrize("template", [2**31, 2**63, 10**22, -1, 0])
def test_numbers_the_database_cannot_hold_are_400_problems(
    api: APIClient, store: str, key: str | None, template: int
) -> None:
    # Found by the schema fuzzer: 10**22 as a letter's template reached the INSERT (500).
    body = {
        "template": template,
        "recipient": {"address1": "1 High St", "town": "Leeds", "postcode": "LS1", "country": "GB"},
    }
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    response = api.post(LETTERS, body, format="json", **headers)
    problem(response, 400)
    nothing_happened(store)


@pytest.mark.django_db
def test_the_largest_template_number_the_column_holds_is_accepted(api: APIClient) -> None:
    body = {
        "template": 2**31 - 1,
        "recipient": {"address1": "1 High St", "town": "Leeds", "postcode": "LS1", "country": "GB"},
    }
    response = api.post(LETTERS, body, format="json")
    assert response.status_code < 300, response.content
    assert Letter.objects.get().template == 2**31 - 1


# Keys ---------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("header", ["HTTP_IDEMPOTENCY_KEY", "HTTP_X_IDEMPOTENCY_KEY"])
@PATHS
@pytest.mark.parametrize(
    "key",
    [
        "abcdefghijkl\r\nSet-Cookie: sessionid=stolen",
        "abcdefghijkl\nX-Injected: 1",
        "abcdefghijkl\rX-Injected: 1",
        "abcdefghijkl\x00tail",
        "k" * (1024 * 1024),
        "ключ-ключ-ключ",
        "café-café-café",
        "emoji-key-\U0001f600\U0001f600",
        "\u202eabcdefghijkl",
        '"unterminated-quoted-key',
        "short",
    ],
    ids=["crlf", "lf", "cr", "nul", "1mb", "cyrillic", "latin1", "emoji", "bidi", "quote", "short"],
)
def test_hostile_keys_are_400_problems_and_never_echoed(
    api: APIClient, header: str, path: str, key: str
) -> None:
    body = import_body(1) if path == IMPORT_URL else b"{}"
    response = api.post(path, body, content_type="application/json", **{header: key})
    problem(response, 400, "idempotency_key_invalid")
    assert not response.has_header("Set-Cookie")
    assert not response.has_header("X-Injected")
    assert all(key not in str(value) for _, value in response.items())
    nothing_happened("database")


# NUL and other control bytes where the database would see them ----------------------------

CONTROL_BYTES = ["\x00", "a\x00b", "\x01", "\x1f", "\x7f", "\r\n", "\t"]
ENDPOINTS = [
    ("get", "/v1/subscribers"),
    ("post", IMPORT_URL),
    ("get", f"{IMPORT_URL}/00000000-0000-0000-0000-000000000000"),
    ("get", "/v1/jobs/subscriber-exports/00000000-0000-0000-0000-000000000000/file"),
    ("post", LETTERS),
    ("get", "/api/v1/letters/get/1"),
]


def basic_credentials(user: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:".encode()).decode()


@pytest.mark.django_db
@pytest.mark.parametrize("method, path", ENDPOINTS, ids=[f"{m}-{p}" for m, p in ENDPOINTS])
@pytest.mark.parametrize(
    "credentials",
    [
        *(basic_credentials(f"mrk_{c}_secret") for c in CONTROL_BYTES),
        basic_credentials("mrk_abc_sec\x00ret"),
        basic_credentials("\x00"),
        "Bearer mrk_a\x00b_c",
        "Bearer mrk_a\x01b_c",
    ],
    ids=[
        *(f"basic-prefix-{c!r}" for c in CONTROL_BYTES),
        "basic-secret",
        "basic-nul",
        "bearer-nul",
        "bearer-control",
    ],
)
def test_control_bytes_in_an_api_key_are_401_problems(
    method: str, path: str, credentials: str
) -> None:
    """The key's prefix is looked up in the database: PostgreSQL refuses text with a NUL (a
    500 unless the key is refused first). A key is visible ASCII, like every issued one."""
    client = APIClient(raise_request_exception=False)
    answer = getattr(client, method)(path, HTTP_AUTHORIZATION=credentials)
    problem(answer, 401, "invalid_api_key")
    nothing_happened("database")


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["email", "status"])
@pytest.mark.parametrize("value", [*CONTROL_BYTES, "ada\x00@example.com"])
def test_control_bytes_in_the_subscriber_filters_are_400_problems_or_match_nothing(
    api: APIClient, name: str, value: str
) -> None:
    """A NUL never reaches the database (400); other control bytes match no subscriber."""
    answer = api.get("/v1/subscribers", {name: value})
    if "\x00" in value or name == "status":
        body = problem(answer, 400, "invalid")
        assert name in body["errors"], body
    else:
        assert answer.status_code == 200, answer.content[:300]
        assert answer.json()["count"] == 0


@pytest.mark.django_db
def test_an_unknown_subscriber_status_is_a_400_problem_naming_the_choices(api: APIClient) -> None:
    body = problem(api.get("/v1/subscribers", {"status": "gone"}), 400, "invalid")
    assert "active" in str(body["errors"]["status"])


# Over HTTP, to gunicorn ---------------------------------------------------------------------

RAW_KEY_LINES = {
    "valid": b"Idempotency-Key: raw-socket-key-0001\r\n",
    "bare-cr": b"Idempotency-Key: abcdefghijkl\rSet-Cookie: a=b\r\n",
    "bare-lf": b"Idempotency-Key: abcdefghijkl\nSet-Cookie: a=b\r\n",
    "obs-fold": b"Idempotency-Key: abcdefghijkl\r\n Set-Cookie: a=b\r\n",
    "nul": b"Idempotency-Key: abc\x00defghijkl\r\n",
    "del": b"Idempotency-Key: \x7fabcdefghijkl\r\n",
    "utf8": "Idempotency-Key: ключ-ключ-ключ\r\n".encode(),
    "latin1": b"Idempotency-Key: caf\xe9-caf\xe9-caf\xe9\r\n",
    "8kb": b"Idempotency-Key: " + b"k" * 8_000 + b"\r\n",
    "1mb": b"Idempotency-Key: " + b"k" * (1024 * 1024) + b"\r\n",
    "two-names": b"Idempotency-Key: abcdefghijkl\r\nX-Idempotency-Key: abcdefghijkm\r\n",
}
# What answers: gunicorn refuses malformed heads itself (plain HTML, before any application
# code); everything it lets through reaches the service, which answers problem details.
EXPECTED = {
    "valid": (202, None),
    "bare-cr": (400, "gunicorn"),
    "bare-lf": (400, "gunicorn"),
    "obs-fold": (400, "gunicorn"),
    "nul": (400, "gunicorn"),
    "del": (400, "gunicorn"),
    "utf8": (400, "idempotency_key_invalid"),
    "latin1": (400, "idempotency_key_invalid"),
    "8kb": (400, "idempotency_key_invalid"),
    "1mb": (431, "gunicorn"),
    "two-names": (400, "idempotency_key_invalid"),
}


def send_raw(port: int, head: bytes, body: bytes) -> tuple[int, dict[str, str], bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
        raw.sendall(head + body)
        data = b""
        while chunk := raw.recv(65536):
            data += chunk
    head_bytes, _, content = data.partition(b"\r\n\r\n")
    status_line, *lines = head_bytes.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, content


def http_post(
    port: int, secret: str, key_line: bytes, body: bytes, path: str = IMPORT_URL
) -> tuple[int, dict[str, str], bytes]:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {secret}\r\n".encode()
        + key_line
        + f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n".encode()
        + b"Connection: close\r\n\r\n"
    )
    return send_raw(port, head, body)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_hostile_requests_over_http_are_4xx_never_5xx(service: Callable[..., Service]) -> None:
    server = service(workers=1)
    secret = workspace_secret("raw")
    body = import_body(1)
    for name, key_line in RAW_KEY_LINES.items():
        status, headers, content = http_post(server.port, secret, key_line, body)
        expected_status, answer = EXPECTED[name]
        assert status == expected_status, (name, status, content[:200])
        assert "set-cookie" not in headers, name
        if answer not in (None, "gunicorn"):
            assert headers["content-type"] == PROBLEM_CONTENT_TYPE, name
            assert json.loads(content)["code"] == answer, name
    assert Job.objects.count() == 1  # the valid one only

    # JSON nested 100 000 deep, with and without a key, to both kinds of endpoint.
    for path in (IMPORT_URL, LETTERS):
        for deep in (DEEP, DEEP_OBJECT):
            for key_line in (b"", b"X-Idempotency-Key: deep-json-key-0001\r\n"):
                status, headers, content = http_post(server.port, secret, key_line, deep, path)
                assert status == 400, (path, key_line, status, content[:200])
                assert headers["content-type"] == PROBLEM_CONTENT_TYPE
                assert json.loads(content)["code"] == "parse_error"
    assert Job.objects.count() == 1
    assert Letter.objects.count() == 0
