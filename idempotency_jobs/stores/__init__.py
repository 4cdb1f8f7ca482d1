"""Key stores: ``database`` (the default) and ``redis``."""

from __future__ import annotations

from functools import cache
from typing import Any

from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

from ..conf import SETTINGS_NAME, idempotency_settings
from ..exceptions import IdempotencyConfigurationError
from .base import Claim, Existing, Store

__all__ = ["Claim", "Existing", "Store", "get_store"]

STORES = {
    "database": "idempotency_jobs.stores.database.DatabaseStore",
    "redis": "idempotency_jobs.stores.redis.RedisStore",
}


@cache
def get_store() -> Store:
    """The configured store, built once per configuration."""
    name = idempotency_settings.STORE
    try:
        store_class = import_string(STORES.get(name, name))
    except ImportError as exc:
        raise IdempotencyConfigurationError(
            f"{SETTINGS_NAME}['STORE'] = {name!r} is neither 'database', 'redis' "
            "nor the dotted path of a Store class."
        ) from exc
    store: Store = store_class.from_settings(idempotency_settings)
    return store


@receiver(setting_changed)
def _reset(*, setting: str, **kwargs: Any) -> None:
    if setting in (SETTINGS_NAME, "CACHES", "DATABASES"):
        get_store.cache_clear()
