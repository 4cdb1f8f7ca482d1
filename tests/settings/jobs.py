"""The jobs suite's settings: the keys suite's, and the task backends that job tests switch
between with ``IDEMPOTENCY_JOBS["JOB_TASK_BACKEND"]``; worker subprocesses get their job settings
as JSON in IJ_JOBS_SETTINGS (tests/jobs/test_workers.py)."""

import json
import os
import secrets
from importlib.util import find_spec

import django

from tests.settings.keys import *  # noqa: F403
from tests.settings.keys import IDEMPOTENCY_JOBS, INSTALLED_APPS, REDIS_URL, TASKS

INSTALLED_APPS = [*INSTALLED_APPS, "django_rq"]
TASKS = {
    **TASKS,
    "db": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["ij-jobs-db"]},
    "rq": {"BACKEND": "idempotency_jobs.jobs.rq.RQBackend", "QUEUES": ["ij-jobs-rq"]},
    "rq-stock": {"BACKEND": "django_tasks_rq.RQBackend", "QUEUES": ["ij-jobs-rq"]},
}
RQ_QUEUES = {"ij-jobs-rq": {"URL": REDIS_URL}}
if django.VERSION >= (6, 0) and find_spec("django_tasks_celery"):
    # Celery (Django 6.0 and newer) on the suite's Redis, under names of this run's own (worker
    # subprocesses inherit it), which the tests delete.
    CELERY_RUN = os.environ.setdefault("IJ_TEST_CELERY_RUN", secrets.token_hex(4))
    CELERY_QUEUE = f"ij-jobs-celery-{CELERY_RUN}"
    TASKS["celery"] = {
        "BACKEND": "django_tasks_celery.CeleryBackend",
        "QUEUES": [CELERY_QUEUE],
        "OPTIONS": {"CELERY_APP": "example_project.celery.app"},
    }
    CELERY_BROKER_URL = CELERY_RESULT_BACKEND = REDIS_URL
    CELERY_RESULT_EXTENDED = True
    CELERY_BROKER_TRANSPORT_OPTIONS = {"global_keyprefix": f"ij-test-celery-{CELERY_RUN}:"}
    CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = CELERY_BROKER_TRANSPORT_OPTIONS
IDEMPOTENCY_JOBS = {**IDEMPOTENCY_JOBS, **json.loads(os.environ.get("IJ_JOBS_SETTINGS", "{}"))}
