from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from django.conf import settings
from django.db import connection
from django.db.backends.signals import connection_created
from rest_framework.test import APIClient

from tests import redis_scope
from tests.redis_scope import delete_run_keys

REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES") == "1"


def _redis_reachable() -> bool:
    import redis

    try:
        redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1).ping()
    except redis.exceptions.RedisError:
        return False
    return True


def _commit_without_waiting_for_disk(sender: object, connection: object, **kwargs: object) -> None:
    """Tests need no durability across a PostgreSQL crash; waiting for each commit's flush to
    disk made the transactional tests several times slower. Visibility and locking are as usual.
    """
    if getattr(connection, "vendor", None) == "postgresql":
        with connection.cursor() as cursor:  # type: ignore[attr-defined]
            cursor.execute("SET synchronous_commit TO off")


connection_created.connect(
    _commit_without_waiting_for_disk, dispatch_uid="tests-synchronous-commit"
)


def _flush_core_tables_with_delete() -> None:
    """Between the core suite's transactional tests (``helpers.CORE_DB``) PostgreSQL empties its
    few small tables with DELETE instead of Django's TRUNCATE. Every other flush is Django's own.

    Why: a TransactionTestCase-style test ends with a flush, and with ``available_apps`` Django
    issues ``TRUNCATE ... CASCADE`` on the core tables; TRUNCATE gives each table new files
    (and the cascade reaches every table that references them), which costs about 0.4 s per
    test on PostgreSQL. Nothing fails without this patch, the PostgreSQL run only gets slower:
    tests/keys/test_callers.py and tests/keys/test_replay.py (170 tests) took 54-58 s with it
    and 120-132 s without it, measured side by side. SQLite is not patched (its flush is DELETE
    already).

    Why it is safe: it applies only when every table to flush is a core app's table and no
    sequence reset is asked for; Django's foreign keys on PostgreSQL are DEFERRABLE INITIALLY
    DEFERRED, so the DELETEs may run in any order inside flush's transaction.
    """
    from django.apps import apps
    from django.db.backends.postgresql.operations import DatabaseOperations

    from tests.helpers import CORE_APPS

    truncate = DatabaseOperations.sql_flush

    def sql_flush(
        self: DatabaseOperations,
        style: object,
        tables: list[str],
        *,
        reset_sequences: bool = False,
        allow_cascade: bool = False,
    ) -> list[str]:
        core_tables = {
            model._meta.db_table
            for name in CORE_APPS
            for model in apps.get_app_config(name.rpartition(".")[2]).get_models(
                include_auto_created=True
            )
        }
        if reset_sequences or not tables or not set(tables) <= core_tables:
            return truncate(
                self, style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade
            )
        # Inside flush's transaction: foreign keys are checked at commit, when all are gone.
        return [f"DELETE FROM {self.quote_name(table)};" for table in tables]  # noqa: S608

    DatabaseOperations.sql_flush = sql_flush  # type: ignore[method-assign]


def pytest_configure(config: pytest.Config) -> None:
    if settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        _flush_core_tables_with_delete()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    on_postgres = settings.DATABASES["default"]["ENGINE"].endswith("postgresql")
    redis_up = None
    for item in items:
        if "postgresql" in item.keywords and not on_postgres:
            item.add_marker(pytest.mark.skip(reason="needs PostgreSQL (set DATABASE_URL)"))
        if "redis" in item.keywords:
            if redis_up is None:
                redis_up = _redis_reachable()
                if not redis_up and REQUIRE_SERVICES:
                    raise pytest.UsageError(
                        f"REQUIRE_SERVICES=1 but Redis at {settings.REDIS_URL} is down"
                    )
            if not redis_up:
                item.add_marker(pytest.mark.skip(reason=f"needs Redis at {settings.REDIS_URL}"))


@pytest.fixture(scope="session", autouse=True)
def _redis_outside_the_run_untouched() -> Iterator[None]:
    """The run deletes only its own keys (tests/redis_scope.py), and by its end all of them:
    a key someone else keeps in the same Redis database is still there, unchanged."""
    if not _redis_reachable():
        yield
        return
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1)
    sentinel = f"ij-test-sentinel:{redis_scope.PREFIX}"  # not under the run's prefix
    client.set(sentinel, "untouched", ex=86400)
    yield
    delete_run_keys(client)
    try:
        assert redis_scope.run_keys(client) == [], "keys of this run were written after its end"
        assert client.get(sentinel) == b"untouched", "the run deleted a key it did not make"
    finally:
        client.delete(sentinel)
        client.close()


@pytest.fixture
def redis_client() -> Iterator[object]:
    """The test Redis, with none of this run's keys (and nobody else's deleted)."""
    from django_redis import get_redis_connection

    client = get_redis_connection("redis")
    delete_run_keys(client)
    yield client
    delete_run_keys(client)


@pytest.fixture(params=["database", pytest.param("redis", marks=pytest.mark.redis)])
def store(request: pytest.FixtureRequest, settings: object) -> str:
    """Run the test once per key store."""
    name: str = request.param
    settings.IDEMPOTENCY_JOBS = {**settings.IDEMPOTENCY_JOBS, "STORE": name, "CACHE_ALIAS": "redis"}
    if name == "redis":
        request.getfixturevalue("redis_client")
    return name


@pytest.fixture
def on_postgresql() -> bool:
    return connection.vendor == "postgresql"


@pytest.fixture
def api() -> APIClient:
    return APIClient()


@pytest.fixture(autouse=True)
def _fresh_throttles_and_gates() -> Iterator[None]:
    """Throttle counters live in the default (locmem) cache; gates in a class dict."""
    from django.core.cache import cache

    from tests.testapp.views import Failures, Gate

    cache.clear()
    Failures.armed.clear()
    yield
    Failures.armed.clear()
    for gate in Gate.waiting.values():
        gate.opened.set()
    Gate.waiting.clear()


@pytest.fixture
def atomic_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    """``ATOMIC_REQUESTS = True``: the connection reads the same settings dict."""
    monkeypatch.setitem(connection.settings_dict, "ATOMIC_REQUESTS", True)
    assert settings.DATABASES["default"]["ATOMIC_REQUESTS"] is True
