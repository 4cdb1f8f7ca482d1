"""Settings for the example service, from the environment.

DATABASE_URL       default sqlite:///var/example.sqlite3 (in the repository)
DATABASE_STATEMENT_TIMEOUT  PostgreSQL's statement_timeout, default 5s (0: none)
REDIS_URL          optional; needed by IDEMPOTENCY_STORE=redis and TASKS_BACKEND=rq or celery
IDEMPOTENCY_STORE  database (default) | redis
TASKS_BACKEND      db (default: django-tasks-db, run `manage.py db_worker`) | rq | celery
                   (Django 6.0+, run `celery -A example_project worker`) | immediate
CELERY_BROKER_URL  default REDIS_URL (e.g. amqp://guest:guest@127.0.0.1:5672// for RabbitMQ)
MEDIA_ROOT         default var/media (export files)
SECRET_KEY, DEBUG, ALLOWED_HOSTS, PUBLIC_BASE_URL
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dj_database_url
import django
from django.core.exceptions import ImproperlyConfigured

from example_project.openapi_settings import OPENAPI_SETTINGS

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"


def env_flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    return default if value is None else value.strip().lower() in {"1", "true", "yes", "on"}


SECRET_KEY = os.environ.get("SECRET_KEY", "example-project-local-only-not-secret")
# Off by default so that every error, even an unknown URL, is problem+json; DEBUG=1 for pages.
DEBUG = env_flag("DEBUG", False)
ALLOWED_HOSTS = os.environ.get("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]").split(",")
USE_TZ = True
TIME_ZONE = "UTC"

if "DATABASE_URL" not in os.environ:
    VAR_DIR.mkdir(exist_ok=True)  # the default SQLite file lives there
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'example.sqlite3'}"),
        conn_max_age=int(os.environ.get("CONN_MAX_AGE", "0")),
    )
}
# A PostgreSQL that accepts connections and answers nothing (a hung server, a network that
# drops packets) costs a request seconds and a 503, not the worker's timeout
# (docs/deployment.md): libpq gives up connecting after 5 s, and an open connection whose data
# goes unacknowledged for 9 s, or whose idle peer stops answering keepalives; the server cancels
# a statement (a lock wait included) after DATABASE_STATEMENT_TIMEOUT.
POSTGRES_TIMEOUTS: dict[str, Any] = {
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 2,
    "tcp_user_timeout": 9000,
    "options": f"-c statement_timeout={os.environ.get('DATABASE_STATEMENT_TIMEOUT', '5s')}",
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Web and worker processes share the file: wait for the other writer instead of failing.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
elif DATABASES["default"]["ENGINE"].endswith("postgresql"):
    # Options in DATABASE_URL's query string (sslmode=…) win.
    DATABASES["default"]["OPTIONS"] = {
        **POSTGRES_TIMEOUTS,
        **DATABASES["default"].get("OPTIONS", {}),
    }

REDIS_URL = os.environ.get("REDIS_URL", "")
CACHES: dict[str, Any] = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
if REDIS_URL:
    CACHES["redis"] = {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 1, "SOCKET_TIMEOUT": 2},
    }

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_tasks_db",
    "idempotency_jobs",
    "example_project.workspaces",
    "example_project.subscribers",
    "example_project.letters",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "example_project.urls"
WSGI_APPLICATION = "example_project.wsgi.application"
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

STATIC_URL = "static/"
MEDIA_ROOT = os.environ.get("MEDIA_ROOT", str(VAR_DIR / "media"))
MEDIA_URL = "media/"  # never served: exports are downloaded through the API, per workspace
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# Large CSV imports arrive as JSON: room for the largest (EXAMPLE_SUBSCRIBER_IMPORT_MAX_BYTES,
# 20 MiB) and its JSON escaping, no more. Parsing JSON costs Python up to ~25 times the body's
# size, so this bounds a request's memory (docs/deployment.md); beyond it, 413.
DATA_UPLOAD_MAX_MEMORY_SIZE = 24 * 1024 * 1024

# The API's authentication, permission, exception handler (problem details) and idempotency
# scope (the workspace) are stated once, by the class every API view lists first:
# example_project/workspaces/api.py (WorkspaceAPIMixin). A DRF view without it is closed.
REST_FRAMEWORK = {
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAdminUser"],
    "DEFAULT_PARSER_CLASSES": [
        "example_project.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    # Documents the idempotency headers and problem answers, @extend_schema operations included.
    "DEFAULT_SCHEMA_CLASS": "idempotency_jobs.schema.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = OPENAPI_SETTINGS  # example_project/openapi_settings.py

IDEMPOTENCY_STORE = os.environ.get("IDEMPOTENCY_STORE", "database")
if IDEMPOTENCY_STORE not in {"database", "redis"}:
    raise ImproperlyConfigured("IDEMPOTENCY_STORE must be 'database' or 'redis'.")
if IDEMPOTENCY_STORE == "redis" and not REDIS_URL:
    raise ImproperlyConfigured("IDEMPOTENCY_STORE=redis needs REDIS_URL.")
IDEMPOTENCY_JOBS: dict[str, Any] = {
    "STORE": IDEMPOTENCY_STORE,
    "CACHE_ALIAS": "redis" if IDEMPOTENCY_STORE == "redis" else "default",
    # Each problem's ``type`` is /problems/#<code>: docs/problems.md, served by urls.py.
    "PROBLEM_TYPE_BASE": "/problems/",
}

# Django 6.0 and newer include the tasks framework (django.tasks); on Django 5.2 it is the
# django-tasks backport (pip install "idempotency-jobs[compat]"), an app of its own.
TASKS_MODULE = "django.tasks" if django.VERSION >= (6, 0) else "django_tasks"
if TASKS_MODULE == "django_tasks":
    INSTALLED_APPS.insert(INSTALLED_APPS.index("django_tasks_db"), "django_tasks")

TASKS_BACKEND = os.environ.get("TASKS_BACKEND", "db")
TASK_BACKENDS = {
    "db": "django_tasks_db.DatabaseBackend",
    "rq": "idempotency_jobs.jobs.rq.RQBackend",  # django-tasks-rq, adapted to django.tasks
    "celery": "django_tasks_celery.CeleryBackend",
    "immediate": f"{TASKS_MODULE}.backends.immediate.ImmediateBackend",
}
if TASKS_BACKEND not in TASK_BACKENDS:
    raise ImproperlyConfigured(f"TASKS_BACKEND must be one of {', '.join(TASK_BACKENDS)}.")
TASKS: dict[str, Any] = {"default": {"BACKEND": TASK_BACKENDS[TASKS_BACKEND]}}
if TASKS_BACKEND in ("rq", "celery") and not REDIS_URL:
    raise ImproperlyConfigured(f"TASKS_BACKEND={TASKS_BACKEND} needs REDIS_URL.")
if TASKS_BACKEND == "rq":
    INSTALLED_APPS.append("django_rq")
    RQ_QUEUES = {"default": {"URL": REDIS_URL}}
if TASKS_BACKEND == "celery":
    if TASKS_MODULE != "django.tasks":
        raise ImproperlyConfigured("TASKS_BACKEND=celery needs Django 6.0 or newer.")
    TASKS["default"]["OPTIONS"] = {"CELERY_APP": "example_project.celery.app"}
    CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", REDIS_URL)
    CELERY_RESULT_BACKEND = REDIS_URL
    CELERY_RESULT_EXTENDED = True  # django-tasks-celery's get_result() needs it

EXAMPLE_PUBLIC_BASE_URL = os.environ.get("PUBLIC_BASE_URL", "")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django": {"handlers": [], "propagate": True}},  # once, through the root
}
