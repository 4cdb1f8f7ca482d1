"""A small Mailrith-like and Stannp-like service built on idempotency_jobs' public API."""
