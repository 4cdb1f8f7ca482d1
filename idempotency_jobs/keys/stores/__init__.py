"""Key stores: ``database`` (the default), ``redis``, or any :class:`Store` subclass by dotted
path. The contract is ``base.py``'s :class:`Store` (docs/stores.md)."""

from __future__ import annotations

from functools import cache
from typing import Any

from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

from idempotency_jobs.conf import SETTINGS_NAME, idempotency_settings
from idempotency_jobs.exceptions import IdempotencyConfigurationError
from idempotency_jobs.keys.stores.base import (
    Claim,
    Existing,
    LeaseLost,
    Store,
    StoreError,
    StoreUnavailable,
)

__all__ = [
    "Claim",
    "Existing",
    "LeaseLost",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "get_store",
    "store_class",
]

STORES = {
    "database": "idempotency_jobs.keys.stores.database.DatabaseStore",
    "redis": "idempotency_jobs.keys.stores.redis.RedisStore",
}


def store_class() -> type[Store]:
    """The class ``STORE`` names. Raises ``IdempotencyConfigurationError``."""
    name = idempotency_settings.STORE
    try:
        found = import_string(STORES.get(name, name))
    except ImportError:
        found = None
    if not (isinstance(found, type) and issubclass(found, Store)):
        raise IdempotencyConfigurationError(
            f"{SETTINGS_NAME}['STORE'] = {name!r} is neither 'database', 'redis' "
            "nor the dotted path of a Store subclass."
        )
    return found


@cache
def get_store() -> Store:
    """The configured store, built once per configuration."""
    return store_class().from_settings(idempotency_settings)


@receiver(setting_changed)
def _reset(*, setting: str, **kwargs: Any) -> None:
    if setting in (SETTINGS_NAME, "CACHES", "DATABASES"):
        get_store.cache_clear()
