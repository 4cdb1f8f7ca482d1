"""The IdempotencyKey and Job admins: read-only, searchable, filterable by state; deleting keys
keeps their jobs (which keep the key's text); the operators' actions (release, retry, cancel)
are permission-checked and audited."""

from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.admin.models import CHANGE, DELETION, LogEntry
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.utils import timezone

from idempotency_jobs.jobs.tasks import execute_job
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


# --- operators' actions: release a stuck key, retry a failed job, cancel a queued one ----------

JOBS_CHANGELIST = "/admin/idempotency_jobs/job/"
NAMES = ["a", "b"]


def run_action(client, changelist, action, objects):
    return client.post(
        changelist,
        {"action": action, "_selected_action": [obj.pk for obj in objects]},
        follow=True,
    )


def log_entries(obj=None):
    entries = LogEntry.objects.order_by("pk")
    if obj is not None:
        entries = entries.filter(object_id=str(obj.pk))
    return list(entries.values_list("object_id", "action_flag", "change_message"))


def make_job(status, **fields):
    job = Job.objects.create(kind="widget_batch", owner="auth.user:1", params={"names": NAMES})
    Job.objects.filter(pk=job.pk).update(status=status, **fields)
    job.refresh_from_db()
    return job


def operator(django_user_model, model, *codenames):
    """A staff user holding ``<codename>_<model>`` for each codename."""
    user = django_user_model.objects.create_user(
        username="ops-" + "-".join(codenames), password="pw", is_staff=True
    )
    names = [f"{codename}_{model._meta.model_name}" for codename in codenames]
    user.user_permissions.set(Permission.objects.filter(codename__in=names))
    return user


def test_release_frees_only_in_progress_keys_and_logs_each(admin_client, keys, admin_user):
    completed, in_progress = keys
    page = run_action(admin_client, CHANGELIST, "release_keys", keys)
    assert page.status_code == 200
    assert b"Released 1 in-progress key; 1 was not in progress and was left alone." in page.content
    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == [completed.key]
    [(object_id, flag, message)] = log_entries()
    assert (object_id, flag) == (str(in_progress.pk), DELETION)
    assert message == "Released the in-progress claim."
    assert LogEntry.objects.get().user == admin_user


def test_release_is_a_compare_and_delete_on_the_state(keys):
    """A key completed since the operator's page was read is never released."""
    stale = IdempotencyKey.objects.get(state="in_progress")
    IdempotencyKey.objects.filter(pk=stale.pk).update(state="completed", response_status=201)
    assert not stale.release()
    assert IdempotencyKey.objects.filter(pk=stale.pk, state="completed").exists()
    taken_over = keys[1]  # in progress, but another request holds it now
    IdempotencyKey.objects.filter(pk=taken_over.pk).update(
        state="in_progress", owner_token="n" * 32
    )
    assert not taken_over.release()  # not the claim the operator saw: left for its owner


def test_a_released_key_runs_the_next_request_for_real(admin_client, api):
    from tests.helpers import KEY, assert_executed, post, widgets

    assert_executed(post(api))
    key = IdempotencyKey.objects.get()
    IdempotencyKey.objects.filter(pk=key.pk).update(state="in_progress")  # as if stuck
    run_action(admin_client, CHANGELIST, "release_keys", [key])
    assert not IdempotencyKey.objects.filter(key=KEY).exists()
    assert_executed(post(api))
    assert widgets() == 2


@pytest.mark.django_db(transaction=True)
def test_retry_requeues_a_failed_job_and_a_worker_completes_it(admin_client, settings):
    from django_tasks_db.models import DBTaskResult

    from tests.helpers import configure

    configure(settings, JOB_TASK_BACKEND="db", JOB_QUEUE_NAME="ij-jobs-db")
    job = make_job(
        "failed",
        attempts=3,
        error={"code": "job_crashed", "message": "x", "details": {}},
        finished_at=timezone.now(),
    )
    page = run_action(admin_client, JOBS_CHANGELIST, "retry_jobs", [job])
    assert b"Re-queued 1 failed job." in page.content
    job.refresh_from_db()
    assert (job.status, job.attempts, job.error, job.finished_at) == ("queued", 0, None, None)
    assert DBTaskResult.objects.count() == 1  # through the usual enqueue
    assert job.task_id == str(DBTaskResult.objects.get().pk)
    [(_, flag, message)] = log_entries(job)
    assert (flag, message) == (CHANGE, "Re-queued the failed job (attempts reset).")

    call_command(
        "db_worker",
        "--backend=db",
        "--queue-name=ij-jobs-db",
        "--batch",
        "--no-startup-delay",
        stdout=StringIO(),
        stderr=StringIO(),
    )
    job.refresh_from_db()
    assert (job.status, job.attempts, job.error) == ("succeeded", 1, None)
    assert job.result == {"created": 2, "updated": 0}


@pytest.mark.parametrize("status", ["queued", "running", "succeeded"])
def test_retry_leaves_a_job_that_has_not_failed_alone(admin_client, status, settings):
    from tests.helpers import configure

    configure(settings, JOB_TASK_BACKEND="db", JOB_QUEUE_NAME="ij-jobs-db")
    job = make_job(status, attempts=1)
    page = run_action(admin_client, JOBS_CHANGELIST, "retry_jobs", [job])
    assert b"Re-queued 0 failed jobs; 1 had not failed and was left alone." in page.content
    job.refresh_from_db()
    assert (job.status, job.attempts) == (status, 1)
    assert log_entries() == []


def test_cancel_fails_a_queued_job_and_never_a_running_one(admin_client):
    queued, running = make_job("queued"), make_job("running", attempts=1, worker_token="w" * 32)
    page = run_action(admin_client, JOBS_CHANGELIST, "cancel_jobs", [queued, running])
    assert b"Cancelled 1 queued job; 1 was not queued and was left alone." in page.content
    queued.refresh_from_db()
    running.refresh_from_db()
    assert queued.status == "failed" and queued.finished_at is not None
    assert queued.error["code"] == "job_cancelled"
    assert running.status == "running" and running.error is None
    [(object_id, flag, message)] = log_entries()
    assert (object_id, flag, message) == (str(queued.pk), CHANGE, "Cancelled the queued job.")
    assert execute_job(str(queued.pk)) == "skipped"  # a delivery already in the queue


@pytest.mark.parametrize(
    "model, changelist, action, make",
    [
        (IdempotencyKey, CHANGELIST, "release_keys", lambda keys: keys[1]),
        (Job, JOBS_CHANGELIST, "retry_jobs", lambda keys: make_job("failed", attempts=1)),
        (Job, JOBS_CHANGELIST, "cancel_jobs", lambda keys: make_job("queued")),
    ],
)
def test_actions_need_the_change_permission(
    client, django_user_model, keys, model, changelist, action, make
):
    target = make(keys)
    before = model.objects.filter(pk=target.pk).values().get()

    client.force_login(operator(django_user_model, model, "view"))
    page = client.get(changelist)
    assert page.status_code == 200
    assert f'value="{action}"'.encode() not in page.content
    run_action(client, changelist, action, [target])
    assert model.objects.filter(pk=target.pk).values().get() == before
    assert log_entries() == []

    client.force_login(operator(django_user_model, model, "change"))
    assert f'value="{action}"'.encode() in client.get(changelist).content
    run_action(client, changelist, action, [target])
    assert model.objects.filter(pk=target.pk).values().first() != before
    assert len(log_entries()) == 1


def test_operators_still_cannot_edit_records(client, django_user_model, keys):
    client.force_login(operator(django_user_model, IdempotencyKey, "change"))
    page = client.get(f"{CHANGELIST}{keys[0].pk}/change/")
    assert page.status_code == 200
    assert b'name="_save"' not in page.content
