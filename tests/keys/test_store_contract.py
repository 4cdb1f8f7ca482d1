"""The store contract (idempotency_jobs/keys/stores/base.py): a third-party store is one class.

``MemoryStore`` below is such a store, written against the contract alone and named by dotted
path in ``STORE``: the request flow, the checks and the purge command use it without knowing it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from io import StringIO
from typing import Any, ClassVar

import pytest
from django.core.checks import CheckMessage, Warning
from django.core.management import call_command
from django.utils import timezone

from idempotency_jobs.checks import check_settings
from idempotency_jobs.keys.responses import StoredResponse
from idempotency_jobs.keys.stores import (
    Claim,
    Existing,
    LeaseLost,
    Store,
    StoreUnavailable,
    get_store,
    store_class,
)
from idempotency_jobs.keys.stores.database import DatabaseStore
from idempotency_jobs.keys.stores.redis import RedisStore
from idempotency_jobs.models import IdempotencyKey
from tests.helpers import BODY, FACES, configure, post, widgets

pytestmark = pytest.mark.django_db(transaction=True)

HERE = __name__


class MemoryStore(Store):
    """Keys in this process's memory: the state machine of ``Store``, nothing more."""

    completes_in_view_transaction = False
    records: ClassVar[dict[tuple[str, str], dict[str, Any]]] = {}
    lock = threading.Lock()
    # What the next call of a method raises, for the error-mapping tests.
    failures: ClassVar[dict[str, Exception]] = {}
    purged: ClassVar[list[dict[str, Any]]] = []

    @classmethod
    def from_settings(cls, settings: Any) -> MemoryStore:
        return cls()

    @classmethod
    def check(cls, settings: Any) -> list[CheckMessage]:
        return [Warning("Keys live in one process's memory.", id="memorystore.W001")]

    def _fail(self, method: str) -> None:
        if failure := self.failures.pop(method, None):
            raise failure

    def claim(
        self, scope: str, key: str, fingerprint: str, *, ttl: timedelta, lease: timedelta
    ) -> Claim | Existing:
        self._fail("claim")
        from idempotency_jobs.keys.stores.base import new_token

        now = timezone.now()
        with self.lock:
            record = self.records.get((scope, key))
            if record is None or record["expires"] <= now:
                token = new_token()
                self.records[(scope, key)] = {
                    "state": "in_progress",
                    "fingerprint": fingerprint,
                    "token": token,
                    "lease": now + lease,
                    "expires": now + ttl,
                }
                return Claim(scope, key, fingerprint, token)
            if record["state"] == "completed":
                return Existing(record["fingerprint"], True, record["response"])
            if record["lease"] <= now and record["fingerprint"] == fingerprint:
                record["token"], record["lease"] = new_token(), now + lease
                return Claim(scope, key, fingerprint, record["token"])
            return Existing(record["fingerprint"], completed=False)

    def _mine(self, claim: Claim) -> dict[str, Any] | None:
        record = self.records.get((claim.scope, claim.key))
        if record and record["token"] == claim.token and record["state"] == "in_progress":
            return record
        return None

    def complete(self, claim: Claim, response: StoredResponse) -> None:
        self._fail("complete")
        if self._mine(claim) is None:
            raise LeaseLost(claim.key)

    def after_commit(self, claim: Claim, response: StoredResponse) -> None:
        with self.lock:
            if record := self._mine(claim):
                record.update(state="completed", response=response)

    def release(self, claim: Claim) -> None:
        with self.lock:
            if self._mine(claim):
                del self.records[(claim.scope, claim.key)]

    def purge(
        self, *, older_than: timedelta | None, now: datetime, batch_size: int, dry_run: bool = False
    ) -> Iterator[int]:
        self.purged.append({"older_than": older_than, "batch_size": batch_size, "dry": dry_run})
        yield 7


class ExpiringMemoryStore(MemoryStore):
    expires_natively = True

    def purge(self, **kwargs: Any) -> Iterator[int]:
        raise AssertionError("a store that expires natively is never asked to purge")


@pytest.fixture
def memory_store(settings: Any) -> type[MemoryStore]:
    configure(settings, STORE=f"{HERE}.MemoryStore")
    MemoryStore.records.clear()
    MemoryStore.failures.clear()
    MemoryStore.purged.clear()
    yield MemoryStore
    MemoryStore.records.clear()
    MemoryStore.failures.clear()


def test_a_dotted_path_names_the_store_class(memory_store):
    assert store_class() is MemoryStore
    assert isinstance(get_store(), MemoryStore)


@FACES
def test_a_third_party_store_gives_replay_conflict_and_mismatch(api, memory_store, path):
    first = post(api, path)
    assert first.status_code == 201
    again = post(api, path)
    assert (again.status_code, again.content) == (201, first.content)
    assert again.headers["Idempotent-Replayed"] == "true"
    other = post(api, path, body={**BODY, "name": "other"})
    assert other.status_code == 422
    assert other.json()["code"] == "idempotency_key_mismatch"
    assert widgets() == 1
    assert next(iter(memory_store.records.values()))["state"] == "completed"


def test_a_third_party_store_answers_an_in_flight_twin_with_409(api, memory_store):
    first = post(api, key="in-flight-key-1")
    assert first.status_code == 201
    scope = next(scope for scope, key in memory_store.records if key == "in-flight-key-1")
    record = memory_store.records[(scope, "in-flight-key-1")]
    record.update(state="in_progress", lease=timezone.now() + timedelta(hours=1))
    twin = post(api, key="in-flight-key-1")
    assert twin.status_code == 409
    assert twin.json()["code"] == "idempotency_key_in_use"
    assert widgets() == 1


def test_a_third_party_store_frees_the_key_after_a_5xx(api, memory_store):
    failed = post(api, "/widgets/?status=503")
    assert failed.status_code == 503
    assert memory_store.records == {}  # released: the retry runs for real
    assert widgets() == 0  # a 5xx's writes roll back with it
    assert post(api, "/widgets/").status_code == 201
    assert widgets() == 1


def test_a_store_unavailable_on_claim_is_a_503_problem_and_nothing_runs(api, memory_store):
    memory_store.failures["claim"] = StoreUnavailable("connection refused")
    response = post(api)
    assert response.status_code == 503
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "idempotency_store_unavailable"
    assert widgets() == 0


def test_a_store_unavailable_on_completion_is_a_503_and_the_views_writes_roll_back(
    api, memory_store
):
    memory_store.failures["complete"] = StoreUnavailable("timed out")
    response = post(api)
    assert response.status_code == 503
    assert response.json()["code"] == "idempotency_store_unavailable"
    assert widgets() == 0
    assert memory_store.records == {}  # released
    assert post(api).status_code == 201


def test_a_lease_lost_on_completion_is_a_409_problem_and_the_views_writes_roll_back(
    api, memory_store
):
    memory_store.failures["complete"] = LeaseLost("taken over")
    response = post(api)
    assert response.status_code == 409
    assert response.json()["code"] == "idempotency_lease_lost"
    assert widgets() == 0


def test_the_stores_own_checks_are_collected(memory_store):
    assert [message.id for message in check_settings()] == ["memorystore.W001"]


def test_a_store_setting_naming_no_store_class_is_check_error_e010(settings):
    configure(settings, STORE="tests.test_store_contract.KEY")
    errors = check_settings()
    assert [error.id for error in errors] == ["idempotency_jobs.E010"]
    assert "dotted path of a Store subclass" in errors[0].msg
    configure(settings, STORE="no.such.Store")
    assert [error.id for error in check_settings()] == ["idempotency_jobs.E010"]


def test_the_builtin_stores_check_their_own_configuration(settings):
    configure(settings, DATABASE_ALIAS="nope")
    from idempotency_jobs.conf import idempotency_settings

    assert [m.id for m in DatabaseStore.check(idempotency_settings)] == ["idempotency_jobs.E002"]
    configure(settings, DATABASE_ALIAS="default", CACHE_ALIAS="default")
    assert [m.id for m in RedisStore.check(idempotency_settings)] == ["idempotency_jobs.E003"]
    configure(settings, CACHE_ALIAS="redis")
    assert RedisStore.check(idempotency_settings) == []
    assert DatabaseStore.check(idempotency_settings) == []


def test_capabilities_are_declared_by_each_store():
    assert (DatabaseStore.completes_in_view_transaction, DatabaseStore.expires_natively) == (
        True,
        False,
    )
    assert (RedisStore.completes_in_view_transaction, RedisStore.expires_natively) == (
        False,
        True,
    )


def test_the_purge_command_asks_the_store_to_purge(memory_store):
    out = StringIO()
    call_command("purge_idempotency_keys", "--older-than", "2h", "--batch-size", "10", stdout=out)
    assert memory_store.purged == [
        {"older_than": timedelta(hours=2), "batch_size": 10, "dry": False}
    ]
    assert "Deleted 7 idempotency keys." in out.getvalue()
    call_command("purge_idempotency_keys", "--dry-run", stdout=out)
    assert memory_store.purged[-1]["dry"] is True
    assert "Would delete 7 idempotency keys." in out.getvalue()


def test_a_store_that_expires_natively_is_not_asked_and_the_database_is_checked(settings):
    configure(settings, STORE=f"{HERE}.ExpiringMemoryStore")
    now = timezone.now()
    IdempotencyKey.objects.create(
        scope="s",
        key="left-by-a-database-store",
        fingerprint="f",
        state=IdempotencyKey.State.COMPLETED,
        created_at=now - timedelta(days=3),
        expires_at=now - timedelta(days=2),
    )
    out = StringIO()
    call_command("purge_idempotency_keys", stdout=out)
    assert "expires keys by itself; checking the database too" in out.getvalue()
    assert "Deleted 1 idempotency keys." in out.getvalue()
    assert not IdempotencyKey.objects.exists()
