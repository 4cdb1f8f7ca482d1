from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from django.conf import settings
from django.db import connection
from rest_framework.test import APIClient

REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES") == "1"


def _redis_reachable() -> bool:
    import redis

    try:
        redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1).ping()
    except redis.exceptions.RedisError:
        return False
    return True


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


@pytest.fixture
def redis_client() -> Iterator[object]:
    from django_redis import get_redis_connection

    client = get_redis_connection("redis")
    client.flushdb()
    yield client
    client.flushdb()


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
