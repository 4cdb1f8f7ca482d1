"""Keys in the project's database, completed in the same transaction as the view's writes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from functools import cache
from typing import Any, cast

from django.db import IntegrityError, connections, transaction
from django.db.utils import InterfaceError, OperationalError
from django.utils import timezone

from ..exceptions import IdempotencyLeaseLost, IdempotencyStoreUnavailable
from ..models import IdempotencyKey
from ..responses import StoredResponse
from .base import Claim, Existing, Store, new_token

__all__ = ["DatabaseStore"]

State = IdempotencyKey.State
# A claim that keeps losing races to takeovers and purges gives up rather than spin.
CLAIM_ATTEMPTS = 5


@contextmanager
def unavailable_on_error() -> Iterator[None]:
    try:
        yield
    except (OperationalError, InterfaceError) as exc:
        raise IdempotencyStoreUnavailable() from exc


FIELDS = {field.name: field for field in IdempotencyKey._meta.concrete_fields}


@cache
def _insert_sql(alias: str, names: tuple[str, ...], async_commit: bool) -> str:
    """The claim's INSERT, built once per database and column list."""
    connection = connections[alias]
    quote = connection.ops.quote_name
    meta = IdempotencyKey._meta
    columns = ", ".join(quote(cast(str, FIELDS[name].column)) for name in names)
    placeholders = ", ".join(["%s"] * len(names))
    rows = f"VALUES ({placeholders})"
    if async_commit:
        rows = f"SELECT {placeholders} WHERE set_config('synchronous_commit', 'off', true) = 'off'"
    return (
        f"INSERT INTO {quote(meta.db_table)} ({columns}) {rows} "
        f"ON CONFLICT ({quote('scope')}, {quote('key')}) DO NOTHING "
        f"RETURNING {quote(cast(str, meta.pk.column))}"
    )


@cache
def _complete_sql(alias: str, names: tuple[str, ...]) -> str:
    """The completion's compare-and-set UPDATE, built once per database and column list."""
    quote = connections[alias].ops.quote_name
    assignments = ", ".join(f"{quote(name)} = %s" for name in names)
    where = " AND ".join(f"{quote(name)} = %s" for name in ("id", "owner_token", "state"))
    return f"UPDATE {quote(IdempotencyKey._meta.db_table)} SET {assignments} WHERE {where}"  # noqa: S608


class DatabaseStore(Store):
    def __init__(self, database_alias: str = "default") -> None:
        self.database_alias = database_alias

    @classmethod
    def from_settings(cls, settings: Any) -> DatabaseStore:
        return cls(settings.DATABASE_ALIAS)

    @property
    def keys(self) -> Any:
        return IdempotencyKey.objects.using(self.database_alias)

    def claim(
        self, scope: str, key: str, fingerprint: str, *, ttl: timedelta, lease: timedelta
    ) -> Claim | Existing:
        with unavailable_on_error():
            for _ in range(CLAIM_ATTEMPTS):
                now = timezone.now()
                token = new_token()
                claim = Claim(scope, key, fingerprint, token)
                record_id = self._insert(claim, now=now, ttl=ttl, lease=lease)
                if record_id is not None:
                    return Claim(scope, key, fingerprint, token, record_id)
                try:
                    row = self.keys.get(scope=scope, key=key)
                except IdempotencyKey.DoesNotExist:
                    continue  # released or purged since the insert: try again
                if row.is_expired(now):
                    taken = self._take_over(row, claim, now=now, lease=lease, ttl=ttl)
                elif row.state == State.IN_PROGRESS and row.lease_expired(now):
                    if row.fingerprint != fingerprint:
                        return Existing(row.fingerprint, completed=False)
                    taken = self._take_over(row, claim, now=now, lease=lease)
                else:
                    return self._existing(row)
                if taken:
                    return Claim(scope, key, fingerprint, token, row.pk)
        return Existing(fingerprint, completed=False)

    def complete(self, claim: Claim, response: StoredResponse) -> None:
        # One UPDATE written out: building it through the ORM took longer than running it.
        connection = connections[self.database_alias]
        changes = {
            "state": State.COMPLETED,
            "lease_expires_at": None,
            "response_status": response.status,
            "response_headers": [list(header) for header in response.headers],
            "response_body": response.body,
            "replayable": response.replayable,
        }
        params = [
            FIELDS[name].get_db_prep_save(value, connection) for name, value in changes.items()
        ]
        with connection.cursor() as cursor:
            cursor.execute(
                _complete_sql(self.database_alias, tuple(changes)),
                [*params, claim.record_id, claim.token, State.IN_PROGRESS],
            )
            updated = cursor.rowcount
        if not updated:
            raise IdempotencyLeaseLost()

    def release(self, claim: Claim) -> None:
        self.keys.filter(pk=claim.record_id, owner_token=claim.token).delete()

    def _insert(
        self, claim: Claim, *, now: datetime, ttl: timedelta, lease: timedelta
    ) -> int | None:
        """INSERT the claim unless the key exists; the new row's id, or ``None``."""
        values = {
            "scope": claim.scope,
            "key": claim.key,
            "fingerprint": claim.fingerprint,
            "state": State.IN_PROGRESS,
            "owner_token": claim.token,
            "lease_expires_at": now + lease,
            "created_at": now,
            "expires_at": now + ttl,
            "response_status": None,
            "response_headers": [],
            "response_body": None,
            "replayable": True,
        }
        connection = connections[self.database_alias]
        if connection.vendor not in ("postgresql", "sqlite"):
            return self._insert_portably(values)
        # The claim's own commit need not wait for its flush to disk: the view's commit flushes
        # the log up to and past it, and a claim lost in a crash loses nothing but the claim, as
        # its view had not committed. Never inside a transaction (ATOMIC_REQUESTS), whose commit
        # must stay synchronous.
        async_commit = connection.vendor == "postgresql" and not connection.in_atomic_block
        params = [
            FIELDS[name].get_db_prep_save(value, connection) for name, value in values.items()
        ]
        with connection.cursor() as cursor:
            cursor.execute(_insert_sql(self.database_alias, tuple(values), async_commit), params)
            row = cursor.fetchone()
        return row[0] if row else None

    def _insert_portably(self, values: dict[str, Any]) -> int | None:
        try:
            with transaction.atomic(using=self.database_alias):
                return self.keys.create(**values).pk
        except IntegrityError:
            return None

    def _take_over(
        self,
        row: IdempotencyKey,
        claim: Claim,
        *,
        now: datetime,
        lease: timedelta,
        ttl: timedelta | None = None,
    ) -> bool:
        """Compare-and-set the owner token: only one of many racing takers wins."""
        changes: dict[str, Any] = {
            "owner_token": claim.token,
            "state": State.IN_PROGRESS,
            "lease_expires_at": now + lease,
        }
        if ttl is not None:  # the key expired: it starts a new life as a new request
            changes |= {
                "fingerprint": claim.fingerprint,
                "created_at": now,
                "expires_at": now + ttl,
                "response_status": None,
                "response_headers": [],
                "response_body": None,
                "replayable": True,
            }
        # The state too: an owner completing between our read and this write keeps the key.
        taken = self.keys.filter(pk=row.pk, owner_token=row.owner_token, state=row.state)
        return bool(taken.update(**changes))

    @staticmethod
    def _existing(row: IdempotencyKey) -> Existing:
        if row.state != State.COMPLETED:
            return Existing(row.fingerprint, completed=False)
        body = row.response_body
        return Existing(
            row.fingerprint,
            completed=True,
            response=StoredResponse(
                status=row.response_status or 200,
                body=bytes(body) if body is not None else b"",
                headers=[(name, value) for name, value in row.response_headers],
                replayable=row.replayable,
            ),
        )
