"""Every supported Django (README.md#supported-versions-and-install): one code base on Django 5.2
(the django-tasks backport), 6.0 and 6.1.

The whole suite runs on each series (tox.ini); these tests pin what differs between them: the
tasks framework's location, its two ``Task`` classes, statuses compared by value, which backend
can tell a waiting task from a lost one, the guard on the backport under django-tasks-rq, and
migrations that match the models whatever Django writes them.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from io import StringIO
from pathlib import Path
from typing import Any

import django
import pytest
from django.core.management import call_command

from idempotency_jobs.jobs import rq, tasks_compat
from idempotency_jobs.jobs.tasks import run_job
from idempotency_jobs.jobs.tasks_compat import (
    TaskResultStatus,
    is_task,
    reports_waiting,
    same_status,
    task_backends,
)

ROOT = Path(__file__).resolve().parents[2]


def example_task() -> None:
    """Module level, as tasks must be."""


def test_the_framework_is_djangos_own_from_6_0_and_the_backport_before() -> None:
    assert tasks_compat.BUILTIN is (django.VERSION >= (6, 0))
    assert (tasks_compat.MODULE, tasks_compat.BUILTIN) in {
        ("django.tasks", True),
        ("django_tasks", False),
    }
    framework = importlib.import_module(tasks_compat.MODULE)
    assert framework.task_backends is task_backends
    assert type(run_job) is tasks_compat.Task
    assert run_job.get_backend() is task_backends["default"]


def test_both_task_classes_are_tasks() -> None:
    backport = importlib.import_module("django_tasks.base")  # installed with django-tasks-rq
    task = backport.Task(
        priority=0, func=example_task, backend="rq-stock", queue_name="ij-jobs-rq", run_after=None
    )

    assert is_task(task) and is_task(run_job)
    assert not is_task(example_task)
    assert backport.Task in tasks_compat.TASK_CLASSES


def test_statuses_of_both_frameworks_compare_by_value() -> None:
    backport = importlib.import_module("django_tasks").TaskResultStatus
    for status in TaskResultStatus:
        assert same_status(backport[status.name], status)
        assert same_status(status.value, status)
    assert not same_status(backport.READY, TaskResultStatus.SUCCESSFUL)
    if tasks_compat.BUILTIN:
        assert backport.READY is not TaskResultStatus.READY  # never compare by identity


@pytest.mark.parametrize(
    "alias, tells",
    [
        ("db", True),  # the task's row
        ("rq", True),  # the job's hash in Redis
        ("rq-stock", True),
        ("default", False),  # ImmediateBackend keeps no results
        pytest.param("celery", False, id="celery"),  # PENDING for any id
    ],
)
def test_which_backends_tell_a_waiting_task_from_a_lost_one(
    alias: str, tells: bool, settings: Any
) -> None:
    if alias not in settings.TASKS:
        pytest.skip("django-tasks-celery needs Django 6.0 or newer")
    assert reports_waiting(task_backends[alias]) is tells


def test_the_rq_backend_refuses_an_untested_backport(monkeypatch: pytest.MonkeyPatch) -> None:
    """django-tasks-rq runs on the backport even on Django 6, and the backport's next release
    is to drop Django 6: a backport outside the tested series is a system check error, not a
    surprise in a worker."""
    backend = task_backends["rq"]
    assert [m.id for m in backend.check() if m.id.startswith("idempotency_jobs")] == []

    monkeypatch.setattr(rq, "backport_version", lambda: (0, 13, 0))
    errors = [m for m in backend.check() if m.id == "idempotency_jobs.E101"]
    assert len(errors) == 1
    assert "0.13.0" in errors[0].msg and "0.12.x" in errors[0].msg


def test_the_installed_backport_is_the_tested_series() -> None:
    assert rq.backport_version()[:2] == rq.BACKPORT_TESTED


@pytest.mark.skipif(tasks_compat.BUILTIN, reason="Django 6.0 and newer include django.tasks")
def test_without_the_backport_django_5_2_says_what_to_install() -> None:
    code = (
        "import sys; sys.modules['django_tasks'] = None\n"
        "import django; from django.conf import settings; settings.configure(); django.setup()\n"
        "import idempotency_jobs.jobs.tasks_compat\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert run.returncode != 0
    assert "ImproperlyConfigured" in run.stderr
    assert "idempotency-jobs[compat]" in run.stderr


@pytest.mark.django_db
def test_migrations_match_the_models() -> None:
    """The migrations were written once; every Django series must find nothing to add."""
    out = StringIO()
    call_command("makemigrations", "idempotency_jobs", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()
