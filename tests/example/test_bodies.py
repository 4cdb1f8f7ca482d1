"""How the example service reads a keyed request's body (docs/semantics.md#identity): in its
declared charset, repeated form fields in their order, chunked bodies whole, and never more than its
size limit.

In-process through the example's views, and over HTTP to gunicorn, which hands a chunked body
on without a length.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from rest_framework.test import APIClient

from example_project import settings as example_settings
from example_project.letters.models import Letter
from idempotency_jobs.models import Job
from tests.example.test_support import export_media, make_key, workspace_client
from tests.helpers import stored_keys
from tests.reliability.test_support import (
    Answer,
    Service,
    assert_problem,
    service,
    workspace_secret,
)

__all__ = ["export_media", "make_key", "service", "workspace_client"]

LETTERS = "/api/v1/letters/create"
EXPORTS = "/v1/jobs/subscriber-exports"
LETTER = [
    "test=true",
    "pages=Hello",
    "recipient[lastname]=Smith",
    "recipient[address1]=1 Sample Street",
    "recipient[town]=Sampletown",
    "recipient[postcode]=AB12 3CD",
    "recipient[country]=GB",
]
LATIN_1_FORM = "application/x-www-form-urlencoded; charset=iso-8859-1"


def letter(api: APIClient, *fields: str, content_type: str = LATIN_1_FORM) -> Any:
    body = "&".join([*LETTER, *fields])
    return api.post(
        LETTERS, body, content_type=content_type, HTTP_X_IDEMPOTENCY_KEY="letter-key-000001"
    )


@pytest.mark.django_db(transaction=True)
def test_letters_in_a_declared_charset_differ_by_their_text(
    workspace_client: Callable[..., APIClient], store: str
) -> None:
    api = workspace_client("charset")
    first = letter(api, "recipient[firstname]=Ren%E9")
    assert first.status_code == 200, first.content
    other = letter(api, "recipient[firstname]=Ren%E8")
    assert other.status_code == 422, other.content
    assert other.json()["code"] == "idempotency_key_mismatch"
    # The same text in UTF-8 is the same letter: Stannp's replay, 409 with the original body.
    replay = letter(
        api, "recipient[firstname]=Ren%C3%A9", content_type="application/x-www-form-urlencoded"
    )
    assert replay.status_code == 409 and replay.content == first.content
    assert [item.recipient["firstname"] for item in Letter.objects.all()] == ["René"]


@pytest.mark.django_db(transaction=True)
def test_letters_with_repeated_fields_in_another_order_are_another_letter(
    workspace_client: Callable[..., APIClient], store: str
) -> None:
    api = workspace_client("tags")
    first = letter(api, "recipient[firstname]=Ada", "tags=a", "tags=b")
    assert first.status_code == 200, first.content
    other = letter(api, "recipient[firstname]=Ada", "tags=b", "tags=a")
    assert other.status_code == 422, other.content
    assert [item.tags for item in Letter.objects.all()] == ["b"]  # the last one is read


def test_the_example_body_limit_covers_the_import_limit() -> None:
    # A JSON body costs Python up to about 25 times its size (see docs/deployment.md): the
    # limit is what an import of the largest CSV needs, not more.
    from example_project.conf import DEFAULTS

    limit = example_settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    assert DEFAULTS["SUBSCRIBER_IMPORT_MAX_BYTES"] < limit <= 24 * 1024 * 1024


# Over HTTP --------------------------------------------------------------------------------------


def chunks(body: bytes, size: int = 1000) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


def chunked_post(server: Service, path: str, body: bytes, headers: dict[str, str]) -> Answer:
    """A POST whose body goes ``Transfer-Encoding: chunked``, without a Content-Length."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        conn.request(
            "POST",
            path,
            body=chunks(body),
            headers={"Content-Type": "application/json", **headers},
            encode_chunked=True,
        )
        response = conn.getresponse()
        return Answer(
            response.status,
            {name.lower(): value for name, value in response.getheaders()},
            response.read(),
        )
    finally:
        conn.close()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_chunked_body_under_gunicorn_is_read_whole(
    service: Callable[..., Service], store: str
) -> None:
    server = service(workers=1, IDEMPOTENCY_STORE=store, TASKS_BACKEND="immediate")
    auth = {"Authorization": f"Bearer {workspace_secret('chunked')}"}
    keyed = {**auth, "Idempotency-Key": "chunked-export-0001"}
    body = json.dumps({"fields": ["email"]}).encode()

    first = chunked_post(server, EXPORTS, body, keyed)
    assert first.status == 202, first.body
    job = server.request("GET", first.header("Location") or "", headers=auth).json()
    assert job["result"]["fields"] == ["email"]  # not the default fields of an empty body
    other = chunked_post(server, EXPORTS, json.dumps({"fields": ["name"]}).encode(), keyed)
    assert_problem(other, 422, "idempotency_key_mismatch")
    replay = server.request("POST", EXPORTS, body, headers=keyed)  # with a Content-Length
    assert replay.replayed and replay.body == first.body
    assert Job.objects.count() == 1

    # Beyond the service's body limit: refused while reading, never parsed or stored.
    limit = example_settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    padding = "x" * (limit + 1)
    large = json.dumps({"fields": ["email"], "padding": padding}).encode()
    too_large = chunked_post(server, EXPORTS, large, {**auth, "Idempotency-Key": "chunked-0002"})
    assert_problem(too_large, 413, "request_too_large")
    assert Job.objects.count() == 1
    assert stored_keys(store) == 1
