"""The two seed documents' curl examples, bodies verbatim, over real HTTP (live server).

Mailrith: the first call answers 202 with the job; a replay answers the same bytes, still 202.
Stannp: the first call answers 200 with ``{"success": true, "data": ...}``; a replay answers the
same bytes with 409. Either way exactly one job / letter exists. Both with the database and the
Redis key store (the ``store`` fixture).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from example_project.letters.models import Letter
from example_project.subscribers.models import Subscriber
from idempotency_jobs.models import Job
from tests.example.test_support import basic, export_media, http, make_key

__all__ = ["export_media", "make_key"]

pytestmark = pytest.mark.django_db(transaction=True)

# curl -X POST https://api.mailrith.com/v1/jobs/subscriber-imports \
#   -H "Authorization: Bearer mrk_example_secret_key" \
#   -H "Idempotency-Key: import-2026-04-11-website-signups" \
#   -H "Content-Type: application/json" \
#   -d '...'
MAILRITH_BODY = b"""{
    "csv_text": "Email,Name\\nada@example.com,Ada Lovelace",
    "mappings": [
      {
        "csv_column": "Email",
        "field": { "type": "email" }
      },
      {
        "csv_column": "Name",
        "field": { "type": "name" }
      }
    ]
  }"""

# curl "https://ca.stannp.com/api/v1/letters/create" -u {API_KEY}: \
#   -H "X-Idempotency-Key: e367c03e-3082-4c8e-b647-d6810761dcd4" -d ... -d ...
# curl joins its -d arguments with "&" and sends them as they are (no URL-encoding).
STANNP_FIELDS = [
    "test=true",
    "background=https://www.stannp.com/assets/samples/letter-heading.webp",
    "pages=Hello {firstname}, <br><br>This is my first letter.",
    "recipient[title]=Mr",
    "recipient[firstname]=John",
    "recipient[lastname]=Smith",
    "recipient[address1]=123 Sample Street",
    "recipient[address2]=Sampleland",
    "recipient[town]=Sampletown",
    "recipient[postcode]=AB12 3CD",
    "recipient[country]=CA",
]
STANNP_BODY = "&".join(STANNP_FIELDS).encode()


def mailrith_post(server: str, secret: str, body: bytes = MAILRITH_BODY) -> Any:
    return http(
        "POST",
        f"{server}/v1/jobs/subscriber-imports",
        body,
        {
            "Authorization": f"Bearer {secret}",
            "Idempotency-Key": "import-2026-04-11-website-signups",
            "Content-Type": "application/json",
        },
    )


def stannp_post(server: str, secret: str, body: bytes = STANNP_BODY) -> Any:
    return http(
        "POST",
        f"{server}/api/v1/letters/create",
        body,
        {
            "Authorization": basic(secret),  # curl -u {API_KEY}:
            "X-Idempotency-Key": "e367c03e-3082-4c8e-b647-d6810761dcd4",
            "Content-Type": "application/x-www-form-urlencoded",  # curl -d
        },
    )


def test_mailrith_import_with_idempotency_key(
    live_server: Any, make_key: Callable[..., str], store: str
) -> None:
    secret = make_key("demo")
    first = mailrith_post(live_server.url, secret)
    assert first.status == 202, first.body
    job = first.json()
    assert job["object"] == "subscriber_import_job" and job["status"] == "queued"
    assert first.headers["Location"].endswith(f"/v1/jobs/subscriber-imports/{job['id']}")

    replay = mailrith_post(live_server.url, secret)
    assert replay.status == 202
    assert replay.body == first.body
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.headers["Location"] == first.headers["Location"]
    assert Job.objects.count() == 1

    done = http("GET", first.headers["Location"], headers={"Authorization": f"Bearer {secret}"})
    assert done.status == 200
    assert done.json()["status"] == "succeeded"
    assert done.json()["result"]["created"] == 1
    assert list(Subscriber.objects.values_list("email", "name")) == [
        ("ada@example.com", "Ada Lovelace")
    ]

    # The same key with another payload is refused, and runs nothing.
    other = mailrith_post(live_server.url, secret, MAILRITH_BODY.replace(b"Ada", b"Grace"))
    assert other.status == 422
    assert other.headers["Content-Type"] == "application/problem+json"
    assert Job.objects.count() == 1


def test_stannp_letter_with_idempotency_key(
    live_server: Any, make_key: Callable[..., str], store: str
) -> None:
    secret = make_key("demo")
    first = stannp_post(live_server.url, secret)
    assert first.status == 200, first.body
    answer = first.json()
    assert answer["success"] is True
    assert set(answer["data"]) == {"pdf", "id", "created", "format", "cost", "status"}
    assert answer["data"]["status"] == "test" and answer["data"]["cost"] == "0.78"

    replay = stannp_post(live_server.url, secret)
    assert replay.status == 409
    assert replay.body == first.body
    assert replay.headers["Idempotent-Replayed"] == "true"

    letter = Letter.objects.get()
    assert str(letter.pk) == answer["data"]["id"]
    assert letter.pages == "Hello {firstname}, <br><br>This is my first letter."
    assert letter.recipient == {
        "title": "Mr",
        "firstname": "John",
        "lastname": "Smith",
        "address1": "123 Sample Street",
        "address2": "Sampleland",
        "town": "Sampletown",
        "postcode": "AB12 3CD",
        "country": "CA",
    }
    got = http(
        "GET",
        f"{live_server.url}/api/v1/letters/get/{letter.pk}",
        headers={"Authorization": basic(secret)},
    )
    assert got.json() == answer


def test_keys_are_per_workspace(live_server: Any, make_key: Callable[..., str]) -> None:
    """The same key from another workspace is another request: it runs, and replays nothing."""
    first = stannp_post(live_server.url, make_key("demo"))
    second = stannp_post(live_server.url, make_key("other"))
    assert (first.status, second.status) == (200, 200)
    assert first.json()["data"]["id"] != second.json()["data"]["id"]
    assert Letter.objects.count() == 2


def test_letter_validation_errors_are_problems(
    live_server: Any, make_key: Callable[..., str]
) -> None:
    body = STANNP_BODY.replace(b"&recipient[postcode]=AB12 3CD", b"")
    answer = stannp_post(live_server.url, make_key("demo"), body)
    assert answer.status == 400
    assert answer.headers["Content-Type"] == "application/problem+json"
    assert "postcode" in json.dumps(answer.json())
    assert not Letter.objects.exists()
