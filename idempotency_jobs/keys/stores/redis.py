"""Keys in Redis (through a django-redis cache): atomic Lua scripts, native expiry.

Claims are visible to every process at once, whatever the database transaction does. The
completion is written after the view's database transaction commits.
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import timedelta
from typing import Any

from django.conf import settings as django_settings
from django.core.checks import CheckMessage, Error
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from idempotency_jobs.exceptions import IdempotencyConfigurationError
from idempotency_jobs.keys.responses import StoredResponse
from idempotency_jobs.keys.stores.base import (
    Claim,
    Existing,
    LeaseLost,
    Store,
    new_token,
    unavailable_on,
)

__all__ = ["RedisStore"]

logger = logging.getLogger(__name__)

# The claim state machine of stores/base.py's Store, in Lua: each script runs atomically.
# KEYS[1]: the record. ARGV: fingerprint, token, ttl ms, lease ms, scope, key.
# Redis's own clock decides leases, so app servers' clocks need not agree; PEXPIRE is the TTL.
CLAIM = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HGET', KEYS[1], 'state')
if not state then
  redis.call('HSET', KEYS[1], 'state', 'in_progress', 'fp', ARGV[1], 'token', ARGV[2],
             'lease', now + tonumber(ARGV[4]), 'scope', ARGV[5], 'key', ARGV[6])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return {'claimed'}
end
local fp = redis.call('HGET', KEYS[1], 'fp')
if state == 'in_progress' then
  local lease = tonumber(redis.call('HGET', KEYS[1], 'lease'))
  if lease <= now and fp == ARGV[1] then
    redis.call('HSET', KEYS[1], 'token', ARGV[2], 'lease', now + tonumber(ARGV[4]))
    return {'claimed'}
  end
  return {'in_progress', fp}
end
local stored = redis.call('HMGET', KEYS[1], 'status', 'headers', 'body', 'replayable')
return {'completed', fp, stored[1], stored[2], stored[3], stored[4]}
"""

# KEYS[1]: the record. ARGV: token, status, headers JSON, body, replayable ("1"/"0").
COMPLETE = """
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1]
   or redis.call('HGET', KEYS[1], 'state') ~= 'in_progress' then
  return 0
end
redis.call('HSET', KEYS[1], 'state', 'completed', 'status', ARGV[2], 'headers', ARGV[3],
           'body', ARGV[4], 'replayable', ARGV[5])
redis.call('HDEL', KEYS[1], 'lease')
return 1
"""

# KEYS[1]: the record. ARGV: token. A completed record is never freed, even by its owner.
RELEASE = """
if redis.call('HGET', KEYS[1], 'token') == ARGV[1]
   and redis.call('HGET', KEYS[1], 'state') == 'in_progress' then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# What the Redis client raises when the server cannot be reached or gave up waiting.
UNREACHABLE = (RedisConnectionError, RedisTimeoutError)


class RedisStore(Store):
    """Keys in Redis: visible to every process at once, expired by Redis itself; the outcome is
    written once the view's database transaction has committed."""

    completes_in_view_transaction = False
    expires_natively = True

    def __init__(
        self,
        cache_alias: str = "default",
        *,
        prefix: str = "idempotency",
        database_alias: str = "default",
    ) -> None:
        try:
            from django_redis import get_redis_connection
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise IdempotencyConfigurationError(
                "The redis store needs django-redis: pip install 'idempotency-jobs[redis]'."
            ) from exc
        try:
            self.client = get_redis_connection(cache_alias)
        except (NotImplementedError, AttributeError) as exc:
            raise IdempotencyConfigurationError(
                f"CACHES[{cache_alias!r}] is not a django-redis cache."
            ) from exc
        self.prefix = prefix
        self.database_alias = database_alias
        self._claim = self.client.register_script(CLAIM)
        self._complete = self.client.register_script(COMPLETE)
        self._release = self.client.register_script(RELEASE)

    @classmethod
    def from_settings(cls, settings: Any) -> RedisStore:
        return cls(
            settings.CACHE_ALIAS,
            prefix=settings.REDIS_KEY_PREFIX,
            database_alias=settings.DATABASE_ALIAS,
        )

    @classmethod
    def check(cls, settings: Any) -> list[CheckMessage]:
        alias = settings.CACHE_ALIAS
        caches: dict[str, Any] = django_settings.CACHES
        backend = str(caches.get(alias, {}).get("BACKEND", ""))
        if not backend.startswith("django_redis."):
            return [
                Error(
                    f"The redis store needs CACHES[{alias!r}] to be a django-redis cache; "
                    f"it is {backend or 'missing'!r}.",
                    hint="A per-process cache (locmem) cannot give exactly-once across processes.",
                    id="idempotency_jobs.E003",
                )
            ]
        return []

    def record_key(self, scope: str, key: str) -> str:
        digest = hashlib.sha256(f"{scope}\x00{key}".encode()).hexdigest()
        return f"{self.prefix}:{digest}"

    def claim(
        self, scope: str, key: str, fingerprint: str, *, ttl: timedelta, lease: timedelta
    ) -> Claim | Existing:
        token = new_token()
        args = [fingerprint, token, _ms(ttl), _ms(lease), scope, key]
        with unavailable_on(*UNREACHABLE):
            reply = self._claim(keys=[self.record_key(scope, key)], args=args)
        state = _text(reply[0])
        if state == "claimed":
            return Claim(scope, key, fingerprint, token)
        stored_fingerprint = _text(reply[1])
        if state == "in_progress":
            return Existing(stored_fingerprint, completed=False)
        status, headers, body, replayable = reply[2:6]
        return Existing(
            stored_fingerprint,
            completed=True,
            response=StoredResponse(
                status=int(status),
                body=bytes(body or b""),
                headers=[(name, value) for name, value in json.loads(headers)],
                replayable=_text(replayable) == "1",
            ),
        )

    def complete(self, claim: Claim, response: StoredResponse) -> None:
        """Check that the claim is still ours; ``after_commit`` records the outcome.

        A claim already taken over raises here, inside the view's transaction, so its writes
        roll back instead of committing beside the new owner's.
        """
        with unavailable_on(*UNREACHABLE):
            owner, state = self.client.hmget(
                self.record_key(claim.scope, claim.key), ["token", "state"]
            )
        if owner is None or _text(owner) != claim.token or _text(state) != "in_progress":
            raise LeaseLost(f"idempotency key {claim.key!r} was taken over")

    def release(self, claim: Claim) -> None:
        with unavailable_on(*UNREACHABLE):
            self._release(keys=[self.record_key(claim.scope, claim.key)], args=[claim.token])

    def after_commit(self, claim: Claim, response: StoredResponse) -> None:
        """Record the outcome: the view's database writes have committed."""
        args = [
            claim.token,
            response.status,
            json.dumps(response.headers),
            response.body,
            "1" if response.replayable else "0",
        ]
        done = self._complete(keys=[self.record_key(claim.scope, claim.key)], args=args)
        if not done:
            logger.error(
                "Idempotency key %r was taken over before its response could be stored.",
                claim.key,
            )


def _ms(duration: timedelta) -> int:
    return int(duration.total_seconds() * 1000)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
