"""The test settings for a real server process: the key store comes from the environment."""

import os

from tests.settings import *  # noqa: F403
from tests.settings import IDEMPOTENCY_JOBS

IDEMPOTENCY_JOBS = {
    **IDEMPOTENCY_JOBS,
    "STORE": os.environ.get("IDEMPOTENCY_STORE", "database"),
    "CACHE_ALIAS": "redis",
}
