"""Idempotency keys: the request flow (``core``), its DRF faces (``drf``: ``IdempotencyMixin``,
``idempotent``, ``idempotency_claim``), and the stores that hold claims (``stores``).

Nothing here imports :mod:`idempotency_jobs.jobs`: jobs build on keys, never the reverse.
"""
