"""The app's models, defined with the subsystem that owns each: keys and jobs."""

from idempotency_jobs.jobs.models import Job
from idempotency_jobs.keys.models import IdempotencyKey

__all__ = ["IdempotencyKey", "Job"]
