"""Asynchronous jobs behind idempotent POSTs: kinds and what a handler sees (``kinds``), the
viewset (``views``), the task and what a worker does (``tasks``), and recovery (``recovery``).

A worker imports ``tasks`` and ``kinds`` only, never DRF's views or the idempotency mixin.
"""
