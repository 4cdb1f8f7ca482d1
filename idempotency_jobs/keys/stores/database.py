"""Keys in the project's database, completed in the same transaction as the view's writes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from functools import cache
from typing import Any, cast

from django.conf import settings as django_settings
from django.core.checks import CheckMessage, Error
from django.db import IntegrityError, connections, transaction
from django.db.utils import DataError, InterfaceError, OperationalError
from django.utils import timezone

from idempotency_jobs.conf import SETTINGS_NAME
from idempotency_jobs.keys.models import IdempotencyKey
from idempotency_jobs.keys.responses import StoredResponse
from idempotency_jobs.keys.stores.base import (
    Claim,
    Existing,
    LeaseLost,
    Store,
    new_token,
    unavailable_on,
)

__all__ = ["DatabaseStore"]

State = IdempotencyKey.State
# A claim that keeps losing races to takeovers and purges gives up rather than spin.
CLAIM_ATTEMPTS = 5

# What the database's client raises when it cannot be reached or gave up waiting.
UNREACHABLE = (OperationalError, InterfaceError)


FIELDS = {field.name: field for field in IdempotencyKey._meta.concrete_fields}
# The columns a claim reads back when the key exists, in the model's order (``from_db``): what
# deciding the answer needs (not the scope and key it was looked up by, nor its creation time).
ROW_FIELDS = tuple(
    field
    for field in IdempotencyKey._meta.concrete_fields
    if field.name not in ("scope", "key", "created_at")
)
ROW_NAMES = [field.attname for field in ROW_FIELDS]
TOKEN_INDEX = ROW_NAMES.index("owner_token")
# What a claim binds; every other column starts from a constant written into the SQL.
CLAIM_PARAMS = (
    "scope",
    "key",
    "fingerprint",
    "owner_token",
    "lease_expires_at",
    "created_at",
    "expires_at",
)


def _quoted(alias: str) -> tuple[str, Callable[[str], str]]:
    quote = connections[alias].ops.quote_name
    return quote(IdempotencyKey._meta.db_table), lambda name: quote(cast(str, FIELDS[name].column))


def _json_literal(alias: str, text: str) -> str:
    return f"CAST('{text}' AS jsonb)" if connections[alias].vendor == "postgresql" else f"'{text}'"


@cache
def _insert_sql(alias: str, async_commit: bool) -> str:
    """The claim's INSERT, built once per database: the new row's id, no row if the key
    exists."""
    table, column = _quoted(alias)
    constants = {
        "state": f"'{State.IN_PROGRESS}'",
        "response_status": "NULL",
        "response_headers": _json_literal(alias, "[]"),
        "response_body": "NULL",
        "replayable": "TRUE",
    }
    columns = ", ".join(column(name) for name in (*CLAIM_PARAMS, *constants))
    values = ", ".join(["%s"] * len(CLAIM_PARAMS) + list(constants.values()))
    rows = f"VALUES ({values})"
    if async_commit:
        rows = f"SELECT {values} WHERE set_config('synchronous_commit', 'off', true) = 'off'"
    return (
        f"INSERT INTO {table} ({columns}) {rows} "
        f"ON CONFLICT ({column('scope')}, {column('key')}) DO NOTHING "
        f"RETURNING {column('id')}"
    )


@cache
def _claim_sql(alias: str, async_commit: bool) -> str:
    """The claim and, when the key exists, the row that holds it, in one round trip; built
    once per database. Where it cannot be one round trip, the INSERT alone (the row is then
    read by a second query).

    PostgreSQL: the INSERT, then in the same query string a SELECT of the row unless it is the
    one just inserted (another owner token), which runs with a snapshot of its own, so it also
    sees a row committed while the INSERT waited on it. Two statements in one query string need
    psycopg 3 binding client-side (Django's default), which returns each statement's rows
    (:func:`_reads_every_result`). A CTE around the INSERT would be one statement, but planning
    it cost a new key more than the SELECT does (benchmarks/RESULTS.md, issue 14).

    SQLite: an upsert that rewrites the row with itself, so that ``RETURNING`` gives the row
    either way; whose it is (our new owner token or not) tells a claim from a key found.
    """
    table, column = _quoted(alias)
    columns = ", ".join(column(field.name) for field in ROW_FIELDS)
    insert = _insert_sql(alias, async_commit)
    vendor = connections[alias].vendor
    if vendor == "sqlite":
        keep = f"{column('scope')} = excluded.{column('scope')}"
        return insert.replace(" DO NOTHING ", f" DO UPDATE SET {keep} ").replace(
            f"RETURNING {column('id')}", f"RETURNING {columns}"
        )
    return (
        f"{insert}; SELECT {columns} FROM {table} "  # noqa: S608
        f"WHERE {column('scope')} = %s AND {column('key')} = %s "
        f"AND {column('owner_token')} <> %s"
    )


def _reads_every_result(raw: Any) -> bool:
    """Whether a query string of several statements gives back each one's rows: psycopg 3
    binding client-side (psycopg 2 returns only the last statement's)."""
    return not type(raw).__module__.startswith("psycopg2") and _is_client_cursor(raw.cursor_factory)


@cache
def _row_converters(alias: str) -> tuple[tuple[Any, list[Any]], ...]:
    """Per column of a row the claim read back, the expression and the converters the ORM
    would apply to it (datetimes from SQLite's text, JSON...)."""
    connection = connections[alias]
    found = []
    for field in ROW_FIELDS:
        expression = field.get_col(IdempotencyKey._meta.db_table)
        converters = connection.ops.get_db_converters(expression)
        found.append((expression, [*converters, *field.get_db_converters(connection)]))
    return tuple(found)


def _row(alias: str, values: Any) -> IdempotencyKey:
    """The model instance of a row read back by the claim, as the ORM would build it."""
    connection = connections[alias]
    converted = []
    for value, (expression, converters) in zip(values, _row_converters(alias), strict=True):
        for converter in converters:
            value = converter(value, expression, connection)
        converted.append(value)
    return IdempotencyKey.from_db(alias, ROW_NAMES, converted)


@cache
def _complete_sql(alias: str) -> str:
    """The completion's compare-and-set UPDATE, built once per database."""
    table, column = _quoted(alias)
    return (
        f"UPDATE {table} SET {column('state')} = '{State.COMPLETED}', "  # noqa: S608
        f"{column('lease_expires_at')} = NULL, {column('response_status')} = %s, "
        f"{column('response_headers')} = %s, {column('response_body')} = %s, "
        f"{column('replayable')} = %s "
        f"WHERE {column('id')} = %s AND {column('owner_token')} = %s "
        f"AND {column('state')} = '{State.IN_PROGRESS}'"
    )


LEASE_LOST = "idempotency lease lost"


@cache
def _complete_and_commit_sql(alias: str) -> str:
    update = _complete_sql(alias)
    return (
        f"WITH done AS ({update} RETURNING 1) "  # noqa: S608
        f"SELECT CAST(CASE WHEN count(*) = 1 THEN '1' ELSE '{LEASE_LOST}' END AS integer) "
        "FROM done; COMMIT"
    )


def _complete_params(connection: Any, claim: Claim, response: StoredResponse) -> tuple[Any, ...]:
    return (
        response.status,
        connection.ops.adapt_json_value([list(header) for header in response.headers], None),
        response.body,
        response.replayable,
        claim.record_id,
        claim.token,
    )


def _can_commit_along(connection: Any) -> bool:
    """Whether the COMMIT may ride with our UPDATE: PostgreSQL with client-side binding (a
    query string may then hold two statements), in the outermost ``atomic`` block."""
    return (
        connection.vendor == "postgresql"
        and connection.in_atomic_block
        and not connection.savepoint_ids
        and _binds_client_side(connection.connection)
    )


def _binds_client_side(raw: Any) -> bool:
    if type(raw).__module__.startswith("psycopg2"):
        return True  # psycopg2 always does
    return _is_client_cursor(raw.cursor_factory)


@cache
def _is_client_cursor(cursor_factory: type) -> bool:
    from psycopg import ClientCursor

    return issubclass(cursor_factory, ClientCursor)


class DatabaseStore(Store):
    """Keys in a table of the project's database (``DATABASE_ALIAS``): the outcome commits in
    the view's own transaction, with its writes or not at all."""

    completes_in_view_transaction = True
    expires_natively = False

    def __init__(self, database_alias: str = "default") -> None:
        self.database_alias = database_alias

    @classmethod
    def from_settings(cls, settings: Any) -> DatabaseStore:
        return cls(settings.DATABASE_ALIAS)

    @classmethod
    def check(cls, settings: Any) -> list[CheckMessage]:
        if settings.DATABASE_ALIAS not in django_settings.DATABASES:
            return [
                Error(
                    f"{SETTINGS_NAME}['DATABASE_ALIAS'] names no database in DATABASES.",
                    id="idempotency_jobs.E002",
                )
            ]
        return []

    @property
    def keys(self) -> Any:
        return IdempotencyKey.objects.using(self.database_alias)

    def claim(
        self, scope: str, key: str, fingerprint: str, *, ttl: timedelta, lease: timedelta
    ) -> Claim | Existing:
        with unavailable_on(*UNREACHABLE):
            for _ in range(CLAIM_ATTEMPTS):
                now = timezone.now()
                token = new_token()
                claim = Claim(scope, key, fingerprint, token)
                record_id, row = self._claim_or_read(claim, now=now, ttl=ttl, lease=lease)
                if record_id is not None:
                    return Claim(scope, key, fingerprint, token, record_id)
                if row is None:
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
        params = _complete_params(connection, claim, response)
        with connection.cursor() as cursor:
            cursor.execute(_complete_sql(self.database_alias), params)
            updated = cursor.rowcount
        if not updated:
            raise LeaseLost(f"idempotency key {claim.key!r} was taken over")

    def complete_and_commit(self, claim: Claim, response: StoredResponse) -> bool:
        """The completion and the view's COMMIT in one round trip, where the connection allows
        it (PostgreSQL binding client-side, the outermost ``atomic`` block); else
        :meth:`complete`.

        The statement fails when the compare-and-set matched no row, and a failing statement
        stops the rest of the query string: the COMMIT never runs, the transaction rolls back.
        """
        connection = connections[self.database_alias]
        if not _can_commit_along(connection):
            self.complete(claim, response)
            return False
        params = _complete_params(connection, claim, response)
        try:
            with connection.cursor() as cursor:
                cursor.execute(_complete_and_commit_sql(self.database_alias), params)
        except DataError as exc:
            if LEASE_LOST in str(exc):
                raise LeaseLost(f"idempotency key {claim.key!r} was taken over") from None
            raise
        return True

    def after_commit(self, claim: Claim, response: StoredResponse) -> None:
        """Nothing left to do: the outcome committed with the view's writes."""

    def release(self, claim: Claim) -> None:
        mine = self.keys.filter(pk=claim.record_id, owner_token=claim.token)
        with unavailable_on(*UNREACHABLE):
            mine.filter(state=State.IN_PROGRESS).delete()

    def purge(
        self,
        *,
        older_than: timedelta | None,
        now: datetime,
        batch_size: int,
        dry_run: bool = False,
    ) -> Iterator[int]:
        if dry_run:
            yield self.keys.purgeable(older_than=older_than, now=now).count()
            return
        deleted = 0
        # Each batch is its own short transaction: never a long lock on the key table.
        while count := self.keys.purgeable(older_than=older_than, now=now).delete_batch(batch_size):
            deleted += count
            yield deleted

    def _claim_or_read(
        self, claim: Claim, *, now: datetime, ttl: timedelta, lease: timedelta
    ) -> tuple[int | None, IdempotencyKey | None]:
        """INSERT the claim unless the key exists, and read the row that holds it in the same
        round trip (``_claim_sql``): the new row's id, or the row found (``None`` if it could
        not be read along)."""
        connection = connections[self.database_alias]
        if connection.vendor not in ("postgresql", "sqlite"):
            return self._insert_portably(claim, now=now, ttl=ttl, lease=lease), None
        # The claim's own commit need not wait for its flush to disk: the view's commit flushes
        # the log up to and past it, and a claim lost in a crash loses nothing but the claim, as
        # its view had not committed. Never inside a transaction (ATOMIC_REQUESTS), whose commit
        # must stay synchronous.
        async_commit = connection.vendor == "postgresql" and not connection.in_atomic_block
        stamp = connection.ops.adapt_datetimefield_value
        params: tuple[Any, ...] = (
            claim.scope,
            claim.key,
            claim.fingerprint,
            claim.token,
            stamp(now + lease),
            stamp(now),
            stamp(now + ttl),
        )
        alias = self.database_alias
        with connection.cursor() as cursor:
            if connection.vendor == "sqlite":
                cursor.execute(_claim_sql(alias, async_commit), params)
                row = cursor.fetchone()
                if row[TOKEN_INDEX] == claim.token:
                    return row[0], None
                return None, _row(alias, row)
            if not _reads_every_result(connection.connection):
                cursor.execute(_insert_sql(alias, async_commit), params)
                inserted = cursor.fetchone()
                return (inserted[0] if inserted else None), None
            cursor.execute(
                _claim_sql(alias, async_commit), (*params, claim.scope, claim.key, claim.token)
            )
            inserted = cursor.fetchone()
            if inserted:
                return inserted[0], None
            cursor.nextset()
            found = cursor.fetchone()
        return None, (_row(alias, found) if found else None)

    def _insert_portably(
        self, claim: Claim, *, now: datetime, ttl: timedelta, lease: timedelta
    ) -> int | None:
        try:
            with transaction.atomic(using=self.database_alias):
                return self.keys.create(
                    scope=claim.scope,
                    key=claim.key,
                    fingerprint=claim.fingerprint,
                    owner_token=claim.token,
                    lease_expires_at=now + lease,
                    created_at=now,
                    expires_at=now + ttl,
                ).pk
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
