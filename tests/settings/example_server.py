"""The example service's own settings, plus knobs that only the reliability tests turn.

Used by the server processes (gunicorn, workers) that tests/reliability/ start. Nothing
here changes what a request without the test-only ``X-Test-*`` headers gets.

IJ_TEST_HOLD_DIR           where held requests report (see tests/example/urls.py)
IJ_TEST_KEYS_DATABASE_URL  a second database alias, ``keys``, as the key store
IJ_TEST_IDEMPOTENCY_JOBS   JSON merged into IDEMPOTENCY_JOBS (e.g. a short LEASE)
IJ_TEST_EXAMPLE            JSON of EXAMPLE_* settings (e.g. small import batches)
IJ_TEST_RUN_PREFIX         the test run's Redis key prefix (tests/redis_scope.py)
IJ_TEST_CELERY_PREFIX      with TASKS_BACKEND=celery, the prefix of every Redis key Celery makes
"""

import json
import os

import dj_database_url

from example_project.settings import *  # noqa: F403
from example_project.settings import CACHES, DATABASES, IDEMPOTENCY_JOBS, POSTGRES_TIMEOUTS
from tests.redis_scope import CACHE_PREFIX, STORE_PREFIX

ROOT_URLCONF = "tests.example.urls"
RELIABILITY_HOLD_DIR = os.environ.get("IJ_TEST_HOLD_DIR", "")

if os.environ.get("IJ_TEST_KEYS_DATABASE_URL"):
    DATABASES["keys"] = dj_database_url.parse(
        os.environ["IJ_TEST_KEYS_DATABASE_URL"], conn_max_age=0
    )
    if DATABASES["keys"]["ENGINE"].endswith("postgresql"):
        DATABASES["keys"]["OPTIONS"] = POSTGRES_TIMEOUTS
    IDEMPOTENCY_JOBS["DATABASE_ALIAS"] = "keys"

IDEMPOTENCY_JOBS["REDIS_KEY_PREFIX"] = STORE_PREFIX
if "redis" in CACHES:
    CACHES["redis"]["KEY_PREFIX"] = CACHE_PREFIX
IDEMPOTENCY_JOBS.update(json.loads(os.environ.get("IJ_TEST_IDEMPOTENCY_JOBS", "{}")))

for _name, _value in json.loads(os.environ.get("IJ_TEST_EXAMPLE", "{}")).items():
    globals()[f"EXAMPLE_{_name}"] = _value

if os.environ.get("IJ_TEST_CELERY_PREFIX"):
    CELERY_BROKER_TRANSPORT_OPTIONS = {"global_keyprefix": os.environ["IJ_TEST_CELERY_PREFIX"]}
    CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = CELERY_BROKER_TRANSPORT_OPTIONS
