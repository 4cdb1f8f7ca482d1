"""Test settings: SQLite by default, PostgreSQL via DATABASE_URL, Redis via REDIS_URL."""

import os
import secrets
import tempfile
from importlib.util import find_spec

import dj_database_url
import django

# Every Redis key of this run starts with one prefix unique to the run (RQ's too): the suite
# shares a Redis database without touching other keys in it. Before anything imports rq.
from tests.redis_scope import CACHE_PREFIX, STORE_PREFIX

SECRET_KEY = "tests-only-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ALLOWED_HOSTS = ["*"]

DATABASE_URL = os.environ.get("DATABASE_URL", "sqlite:///test-db.sqlite3")
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0)}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Threads in tests share the database: wait for the writer instead of failing at once.
    DATABASES["default"]["OPTIONS"] = {"timeout": 20}
    DATABASES["default"]["TEST"] = {"NAME": os.environ.get("SQLITE_TEST_NAME", "test-db.sqlite3")}

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15")
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "redis": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": CACHE_PREFIX,
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 1, "SOCKET_TIMEOUT": 2},
    },
}

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "rest_framework",
    "django_tasks_db",
    "idempotency_jobs",
    "tests.testapp",
]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "tests.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.request",
            ]
        },
    }
]

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["tests.testapp.auth.HeaderUserAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "UNAUTHENTICATED_USER": None,
}

# Django 5.2 has no django.tasks: the django-tasks backport (an app of its own) is the framework.
TASKS_MODULE = "django.tasks" if django.VERSION >= (6, 0) else "django_tasks"
if TASKS_MODULE == "django_tasks":
    INSTALLED_APPS.insert(INSTALLED_APPS.index("django_tasks_db"), "django_tasks")
TASKS = {"default": {"BACKEND": f"{TASKS_MODULE}.backends.immediate.ImmediateBackend"}}

IDEMPOTENCY_JOBS: dict[str, object] = {"REDIS_KEY_PREFIX": STORE_PREFIX}

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Added for the example project's tests (tests/example/).
INSTALLED_APPS += [
    "django.contrib.staticfiles",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "example_project.workspaces",
    "example_project.subscribers",
    "example_project.letters",
]
STATIC_URL = "static/"
# What the example service stores (import CSVs, export files) never lands in the checkout;
# tests that read those files set their own (tests/example/test_support.py: export_media).
MEDIA_ROOT = os.path.join(tempfile.gettempdir(), "idempotency-jobs-tests-media")
SPECTACULAR_SETTINGS = {
    "TITLE": "idempotency_jobs example service",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}
REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"] = "drf_spectacular.openapi.AutoSchema"

# Added for the jobs test suite: the task backends job tests switch between with
# IDEMPOTENCY_JOBS["JOB_TASK_BACKEND"], and job settings for worker subprocesses.
INSTALLED_APPS += ["django_rq"]
TASKS = {
    **TASKS,
    "db": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["ij-jobs-db"]},
    "rq": {"BACKEND": "idempotency_jobs.rq.RQBackend", "QUEUES": ["ij-jobs-rq"]},
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
if os.environ.get("IJ_JOBS_SETTINGS"):
    import json

    IDEMPOTENCY_JOBS.update(json.loads(os.environ["IJ_JOBS_SETTINGS"]))
