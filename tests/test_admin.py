"""The IdempotencyKey admin: read-only, searchable, filterable by state; deleting keys keeps
their jobs (which keep the key's text)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from idempotency_jobs.models import IdempotencyKey, Job

CHANGELIST = "/admin/idempotency_jobs/idempotencykey/"


@pytest.fixture
def keys(db):
    now = timezone.now()

    def make(key, scope, state):
        return IdempotencyKey.objects.create(
            scope=scope,
            key=key,
            fingerprint="f" * 64,
            state=state,
            owner_token="t" * 32,
            lease_expires_at=now + timedelta(minutes=5) if state == "in_progress" else None,
            created_at=now,
            expires_at=now + timedelta(hours=24),
            response_status=201 if state == "completed" else None,
            response_headers=[["Content-Type", "application/json"]],
            response_body=b'{"id": 1}',
        )

    return [
        make("import-2026-04-11-signups", "auth.user:1", "completed"),
        make("export-2026-04-12-everyone", "auth.user:2", "in_progress"),
    ]


def test_changelist_loads(admin_client, keys):
    response = admin_client.get(CHANGELIST)
    assert response.status_code == 200
    assert b"import-2026-04-11-signups" in response.content
    assert b"export-2026-04-12-everyone" in response.content


@pytest.mark.parametrize(
    "query, shown, hidden",
    [
        ("?q=import-2026", "import-2026-04-11-signups", "export-2026-04-12-everyone"),
        ("?q=auth.user:2", "export-2026-04-12-everyone", "import-2026-04-11-signups"),
        ("?state__exact=completed", "import-2026-04-11-signups", "export-2026-04-12-everyone"),
        ("?state__exact=in_progress", "export-2026-04-12-everyone", "import-2026-04-11-signups"),
    ],
)
def test_changelist_search_and_state_filter(admin_client, keys, query, shown, hidden):
    response = admin_client.get(CHANGELIST + query)
    assert response.status_code == 200
    assert shown.encode() in response.content
    assert hidden.encode() not in response.content


def test_change_page_is_read_only(admin_client, keys):
    response = admin_client.get(f"{CHANGELIST}{keys[0].pk}/change/")
    assert response.status_code == 200
    assert b"owner_token" not in response.content
    assert b'name="_save"' not in response.content
    assert admin_client.get(CHANGELIST + "add/").status_code == 403


@pytest.mark.parametrize("how", ["delete page", "delete selected"])
def test_deleting_a_key_keeps_its_job_and_the_keys_text(admin_client, keys, how):
    job = Job.objects.create(kind="widget_batch", owner="auth.user:1", idempotency_key=keys[0].key)
    if how == "delete page":
        response = admin_client.post(f"{CHANGELIST}{keys[0].pk}/delete/", {"post": "yes"})
    else:
        action = {"action": "delete_selected", "_selected_action": [keys[0].pk], "post": "yes"}
        response = admin_client.post(CHANGELIST, action)
    assert response.status_code == 302
    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == [keys[1].key]
    job.refresh_from_db()
    assert job.idempotency_key == "import-2026-04-11-signups"
    page = admin_client.get(f"/admin/idempotency_jobs/job/{job.pk}/change/")
    assert page.status_code == 200
    assert b"import-2026-04-11-signups" in page.content
