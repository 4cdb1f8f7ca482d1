"""Benchmark-only settings: the test app's Widget behind the views of benchmarks/views.py.

Environment: ``BENCH_DATABASE_URL``, ``BENCH_STORE`` (``database`` or ``redis``),
``BENCH_CONN_MAX_AGE`` (seconds; persistent connections by default, as production runs),
``BENCH_PEERS=1`` to wire the peer packages (only installed in benchmarks/.venv-peers).
"""

import os

import dj_database_url

from benchmarks.harness import REDIS_PREFIX, REDIS_URL

SECRET_KEY = "benchmarks-only-not-secret"  # noqa: S105
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
USE_TZ = True
ROOT_URLCONF = "benchmarks.urls"
WSGI_APPLICATION = "benchmarks.wsgi.application"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

DATABASES = {
    "default": dj_database_url.parse(
        os.environ["BENCH_DATABASE_URL"],
        conn_max_age=int(os.environ.get("BENCH_CONN_MAX_AGE", "600")),
    )
}
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "redis": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": f"{REDIS_PREFIX}:cache",
    },
}

PEERS = os.environ.get("BENCH_PEERS") == "1"

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "rest_framework",
    "idempotency_jobs",
    "tests.testapp",
    *(["drf_idempotency"] if PEERS else []),
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    *(
        [
            # drf-idempotency's decorator breaks DRF views (it renders the response before
            # DRF sets its renderer), so its middleware, limited to its own path.
            "benchmarks.views.DrfIdempotencyMiddleware",
            # Opt-in per view (@idempotency_key); the other views pass through untouched.
            "idempotency_key.middleware.ExemptIdempotencyKeyMiddleware",
        ]
        if PEERS
        else []
    ),
]

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["tests.testapp.auth.HeaderUserAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "UNAUTHENTICATED_USER": None,
}

IDEMPOTENCY_JOBS = {
    "STORE": os.environ.get("BENCH_STORE", "database"),
    "CACHE_ALIAS": "redis",
    "REDIS_KEY_PREFIX": f"{REDIS_PREFIX}:idempotency",
}

# drf-idempotency: its database backend, keys kept 24 h like ours.
IDEMPOTENCY = {"BACKEND": "drf_idempotency.backends.database.DatabaseBackend"}

# How long a claim holds before a retry may take it over (default: each package's own).
if "BENCH_LEASE_SECONDS" in os.environ:
    IDEMPOTENCY_JOBS["LEASE"] = int(os.environ["BENCH_LEASE_SECONDS"])
    IDEMPOTENCY["LOCK_TTL_SECONDS"] = int(os.environ["BENCH_LEASE_SECONDS"])

# django-idempotency-key: its documented multi-process setup (a shared cache and a Redis lock);
# the default in-memory storage would not even be shared between gunicorn workers.
IDEMPOTENCY_KEY = {
    "CONFLICT_STATUS_CODE": None,  # replay the original status, as the others do
    "STORAGE": {"CLASS": "idempotency_key.storage.CacheKeyStorage", "CACHE_NAME": "redis"},
    "LOCK": {
        "CLASS": "idempotency_key.locks.redis.MultiProcessRedisLock",
        "LOCATION": REDIS_URL,
        "NAME": f"{REDIS_PREFIX}:lock",
    },
}
