"""docs/semantics.md#identity and docs/semantics.md#what-is-stored as security properties of the
example service.

A workspace can neither replay, detect nor block another workspace's key, nor read its jobs or
exports; API keys are stored as hashes only and compared in constant time; stored responses
never keep cookies or auth headers, nor the caller's secret; purging leaves no stored body;
a 429 is never stored.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from example_project.workspaces.models import ApiKey, Workspace, hash_secret
from idempotency_jobs.jobs.tasks import execute_job
from idempotency_jobs.models import IdempotencyKey, Job
from tests.helpers import configure, redis_records, stored_keys
from tests.redis_scope import run_keys
from tests.reliability.test_support import IMPORT_URL, import_body, wait_for, workspace_secret

pytestmark = [pytest.mark.urls("tests.example.urls"), pytest.mark.django_db(transaction=True)]

KEY = "import-2026-04-11-website-signups"
EXPORTS = "/v1/jobs/subscriber-exports"
NEVER_STORED = {"set-cookie", "authorization", "www-authenticate", "proxy-authenticate"}


@pytest.fixture(autouse=True)
def quiet_tasks(settings: Any, tmp_path: Path) -> None:
    """Jobs are enqueued nowhere (tests run them by hand); exports go to a fresh directory."""
    settings.TASKS = {"default": {"BACKEND": "django.tasks.backends.dummy.DummyBackend"}}
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.RELIABILITY_HOLD_DIR = str(tmp_path)


def client(secret: str) -> APIClient:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return api


def create_import(
    api: APIClient, key: str | None = KEY, body: bytes | None = None, **extra: Any
) -> Any:
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    return api.post(
        IMPORT_URL, body or import_body(3), content_type="application/json", **headers, **extra
    )


def everything_stored(redis: Any = None) -> str:
    """Every value of every row of every table (and every Redis value of this run), as one text."""
    chunks: list[str] = []
    for model in apps.get_models():
        if not model._meta.managed or model._meta.proxy:
            continue
        for row in model._base_manager.values_list():
            for value in row:
                if isinstance(value, bytes | memoryview):
                    chunks.append(bytes(value).decode("latin-1"))
                else:
                    chunks.append(str(value))
    if redis is not None:
        for name in run_keys(redis):
            kind = redis.type(name)
            if kind == b"hash":
                chunks.extend(v.decode("latin-1") for v in redis.hgetall(name).values())
            elif kind == b"string":
                chunks.append(redis.get(name).decode("latin-1"))
    return "\n".join(chunks)


@pytest.fixture
def redis_or_none(request: pytest.FixtureRequest, store: str) -> Any:
    return request.getfixturevalue("redis_client") if store == "redis" else None


# One workspace cannot see or touch another's keys ----------------------------------------------


def shape(response: Any) -> tuple[int, list[str], list[str], str | None]:
    """What a caller can observe of an answer, apart from its own job's values."""
    return (
        response.status_code,
        sorted(name for name, _ in response.items()),
        sorted(response.json()),
        response.get("Idempotent-Replayed"),
    )


def test_the_same_key_in_two_workspaces_is_two_independent_jobs(
    store: str, redis_or_none: Any
) -> None:
    acme, globex = client(workspace_secret("acme")), client(workspace_secret("globex"))
    first = create_import(acme)
    second = create_import(globex)  # same key, same body, another workspace
    assert shape(first) == shape(second) == (202, *shape(first)[1:3], None)
    assert first.json()["id"] != second.json()["id"]
    assert second.get("Idempotent-Replayed") is None
    # Another body under the same key is that workspace's own new request, not a 422.
    third = create_import(client(workspace_secret("initech")), body=import_body(5, prefix="x"))
    assert shape(third) == shape(first)
    assert Job.objects.count() == 3
    assert sorted(Job.objects.values_list("owner", flat=True)) == sorted(
        Workspace.objects.get(name=name).scope for name in ("acme", "globex", "initech")
    )
    assert stored_keys(store) == 3
    # Each replays only its own.
    assert create_import(acme).content == first.content
    assert create_import(globex).content == second.content


@pytest.mark.postgresql
def test_a_workspace_cannot_block_or_detect_a_key_in_flight_elsewhere(
    store: str, redis_or_none: Any, tmp_path: Path
) -> None:
    acme, globex = client(workspace_secret("acme")), client(workspace_secret("globex"))
    answers: dict[str, Any] = {}
    held = threading.Thread(
        target=lambda: answers.update(acme=create_import(acme, HTTP_X_TEST_HOLD="acme")),
        daemon=True,
    )
    held.start()
    try:
        wait_for((tmp_path / "acme.held").exists, what="acme's request to be in flight")
        same = create_import(globex)
        other_body = create_import(globex, key=KEY, body=import_body(4, prefix="g"))
        own_twin = create_import(acme)  # acme itself does meet its own request in flight
    finally:
        (tmp_path / "acme.release").touch()
        held.join(timeout=60)
    assert same.status_code == 202 and same.get("Idempotent-Replayed") is None  # not a 409
    assert other_body.status_code == 422  # globex's own key, reused with another body
    assert own_twin.status_code == 409
    assert answers["acme"].status_code == 202
    assert shape(answers["acme"]) == shape(same)
    assert Job.objects.count() == 2


def test_another_workspaces_jobs_and_exports_are_404_like_missing_ones() -> None:
    acme, globex = client(workspace_secret("acme")), client(workspace_secret("globex"))
    export = acme.post(EXPORTS, {}, format="json", HTTP_IDEMPOTENCY_KEY="export-2026-04-11")
    assert export.status_code == 202
    assert execute_job(export.json()["id"]) == "succeeded"
    imported = create_import(acme)
    job_id, import_id = export.json()["id"], imported.json()["id"]
    missing = "00000000-0000-4000-8000-000000000000"

    assert acme.get(f"{EXPORTS}/{job_id}/file").status_code == 200
    for path in (
        f"{EXPORTS}/{job_id}",
        f"{EXPORTS}/{job_id}/file",
        f"{IMPORT_URL}/{import_id}",
    ):
        theirs = globex.get(path)
        nobody = globex.get(path.replace(job_id, missing).replace(import_id, missing))
        assert theirs.status_code == nobody.status_code == 404
        assert theirs.content == nobody.content  # nothing tells "not yours" from "not there"
        assert theirs["Content-Type"] == "application/problem+json"


# API keys ---------------------------------------------------------------------------------------


def test_api_keys_are_stored_only_as_hashes(store: str, redis_or_none: Any) -> None:
    out = io.StringIO()
    call_command("create_api_key", "acme", stdout=out, stderr=io.StringIO())
    secret = out.getvalue().strip()
    key = ApiKey.objects.get()
    assert key.secret_hash == hashlib.sha256(secret.encode()).hexdigest() == hash_secret(secret)
    # The secret travels through an idempotent request, replayed and all.
    api = client(secret)
    assert create_import(api).status_code == 202
    assert create_import(api).get("Idempotent-Replayed") == "true"

    stored = everything_stored(redis_or_none)
    random_part = secret.split("_", 2)[2]  # mrk_<id>_<random>; the random part may hold "_"
    assert secret not in stored
    assert random_part not in stored
    assert key.secret_hash in stored  # the scan does see that table


def test_api_keys_are_compared_in_constant_time_never_in_sql(monkeypatch: Any) -> None:
    secret = workspace_secret("acme")
    prefix = ApiKey.objects.get().prefix
    forged = f"mrk_{prefix}_{'A' * 43}"  # the right prefix, a wrong secret
    calls: list[tuple[Any, Any]] = []
    compare_digest = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return compare_digest(a, b)

    monkeypatch.setattr("example_project.workspaces.models.hmac.compare_digest", spy)
    with CaptureQueriesContext(connection) as queries:
        assert client(forged).get("/v1/subscribers").status_code == 401
    assert calls == [(ApiKey.objects.get().secret_hash, hash_secret(forged))]
    assert not any(hash_secret(forged) in query["sql"] for query in queries.captured_queries)

    calls.clear()
    assert client(secret).get("/v1/subscribers").status_code == 200
    assert calls == [(hash_secret(secret), hash_secret(secret))]


# What is stored -----------------------------------------------------------------------------


def test_stored_responses_never_keep_cookies_auth_headers_or_the_secret(
    settings: Any, store: str, redis_or_none: Any
) -> None:
    # Even a project that asks for them to be replayed does not get them stored.
    configure(
        settings,
        REPLAY_HEADERS=[
            "Set-Cookie",
            "Authorization",
            "WWW-Authenticate",
            "Proxy-Authenticate",
            "X-Request-Echo",
        ],
    )
    secret = workspace_secret("acme")
    api = client(secret)
    first = create_import(api, HTTP_X_TEST_LEAKY_HEADERS="1")
    assert first.status_code == 202
    assert "sessionid" in first.cookies and first.has_header("WWW-Authenticate")  # sent once

    if store == "redis":
        (name,) = redis_records(redis_or_none)
        headers = json.loads(redis_or_none.hget(name, "headers"))
        body = redis_or_none.hget(name, "body")
    else:
        row = IdempotencyKey.objects.get()
        headers, body = row.response_headers, bytes(row.response_body)
    stored_names = {header_name.lower() for header_name, _ in headers}
    assert stored_names == {"content-type", "location", "x-request-echo"}
    assert body == first.content

    replay = create_import(api)
    assert replay.get("Idempotent-Replayed") == "true"
    assert not NEVER_STORED & {header_name.lower() for header_name, _ in replay.items()}
    assert "sessionid" not in replay.cookies
    everything = everything_stored(redis_or_none)
    for leaked in (secret, "leaky-session-cookie", "leaky-authorization", 'realm="leaky"'):
        assert leaked not in everything


def test_purged_keys_leave_no_stored_body_behind(settings: Any) -> None:
    api = client(workspace_secret("acme"))
    bodies = [create_import(api, key=f"purge-key-{n:04d}").content for n in range(3)]
    assert all(body.decode() in everything_stored() for body in bodies)
    IdempotencyKey.objects.update(expires_at=timezone.now())  # their 24 hours are over

    out = io.StringIO()
    call_command("purge_idempotency_keys", stdout=out)
    assert "Deleted 3" in out.getvalue()
    assert IdempotencyKey.objects.count() == 0
    everything = everything_stored()
    assert not any(body.decode() in everything for body in bodies)
    assert Job.objects.count() == 3  # the jobs themselves stay, with the key's text only
    assert sorted(Job.objects.values_list("idempotency_key", flat=True)) == [
        f"purge-key-{n:04d}" for n in range(3)
    ]


@pytest.mark.redis
def test_redis_keys_expire_with_their_bodies(settings: Any, redis_client: Any) -> None:
    configure(settings, STORE="redis", CACHE_ALIAS="redis", TTL=1)
    api = client(workspace_secret("acme"))
    body = create_import(api).content
    (name,) = redis_records(redis_client)
    assert redis_client.hget(name, "body") == body
    assert 0 < redis_client.pttl(name) <= 1000
    wait_for(lambda: not redis_client.exists(name), what="the Redis record to expire")
    assert redis_records(redis_client) == []


# Throttling ---------------------------------------------------------------------------------


@pytest.fixture
def fresh_throttle() -> Iterator[None]:
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


def test_429_is_never_stored_nor_replaced_by_a_replay(
    store: str, redis_or_none: Any, fresh_throttle: None
) -> None:
    from django.core.cache import cache

    api = client(workspace_secret("acme"))

    def throttled(key: str) -> Any:
        return api.post(
            "/test/throttled-imports",
            import_body(2),
            content_type="application/json",
            HTTP_IDEMPOTENCY_KEY=key,
        )

    first = throttled("throttle-key-0001")
    assert first.status_code == 202
    for key in ("throttle-key-0002", "throttle-key-0002", "throttle-key-0001"):
        refused = throttled(key)
        assert refused.status_code == 429  # even the completed key gets the 429, no replay
        assert refused.get("Idempotent-Replayed") is None
    assert stored_keys(store) == 1
    assert Job.objects.count() == 1

    cache.clear()  # the hour is over
    second = throttled("throttle-key-0002")
    assert second.status_code == 202 and second.get("Idempotent-Replayed") is None
    assert Job.objects.count() == 2
    assert stored_keys(store) == 2
