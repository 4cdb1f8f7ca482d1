"""Settings for idempotency_jobs, read from the ``IDEMPOTENCY_JOBS`` dict.

``idempotency_settings.TTL`` returns the project's value or the default below. The cache is
cleared on ``setting_changed``, so ``override_settings(IDEMPOTENCY_JOBS=...)`` works in tests.
Durations are a ``timedelta``, a number of seconds, or a string such as ``"24h"``.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

__all__ = ["DEFAULTS", "idempotency_settings", "parse_duration"]

SETTINGS_NAME = "IDEMPOTENCY_JOBS"

DEFAULTS: dict[str, Any] = {
    # Where keys live: "database" (transactional with the view) or "redis".
    "STORE": "database",
    "DATABASE_ALIAS": "default",
    "CACHE_ALIAS": "default",
    "REDIS_KEY_PREFIX": "idempotency",
    # Which requests take part.
    "METHODS": ("POST",),
    "HEADERS": ("Idempotency-Key", "X-Idempotency-Key"),
    "REQUIRED": False,
    "KEY_MIN_LENGTH": 10,
    "KEY_MAX_LENGTH": 1024,
    # Identity of a request.
    "SCOPE_FUNCTION": "idempotency_jobs.keys.scope.default_scope",
    "FINGERPRINT_FUNCTION": "idempotency_jobs.keys.fingerprint.default_fingerprint",
    # Lifecycle.
    "TTL": timedelta(hours=24),
    "LEASE": timedelta(minutes=5),
    # Answers.
    "REPLAY_STATUS": None,
    "STORE_4XX": False,
    "MAX_STORED_BODY": 1024 * 1024,
    "REPLAY_HEADERS": (),
    "IN_FLIGHT": "conflict",
    "WAIT_TIMEOUT": timedelta(seconds=10),
    "RETRY_AFTER": 1,
    # A problem's ``type``: None, "about:blank"; else this + "#" + its code (docs/problems.md).
    "PROBLEM_TYPE_BASE": None,
    # Jobs.
    "JOB_TASK_BACKEND": "default",
    "JOB_QUEUE_NAME": "default",
    "JOB_STALE_AFTER": timedelta(minutes=2),
    "JOB_HEARTBEAT_LEASE": timedelta(minutes=2),
    "JOB_MAX_ATTEMPTS": 3,
    # Least time between two progress writes of a running job (each also renews its lease).
    "JOB_PROGRESS_INTERVAL": timedelta(seconds=0.5),
}

IMPORT_STRINGS = frozenset({"SCOPE_FUNCTION", "FINGERPRINT_FUNCTION"})
DURATIONS = frozenset(
    {
        "TTL",
        "LEASE",
        "WAIT_TIMEOUT",
        "JOB_STALE_AFTER",
        "JOB_HEARTBEAT_LEASE",
        "JOB_PROGRESS_INTERVAL",
    }
)

DURATION = re.compile(r"(?P<amount>\d+)(?P<unit>[smhd])")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
DURATION_FORMATS = "a timedelta, a number of seconds, or a string such as 90s, 30m, 24h or 7d"


def parse_duration(value: str) -> timedelta:
    """``90s``, ``30m``, ``24h`` or ``7d``: for duration settings and ``--older-than`` alike."""
    match = DURATION.fullmatch(value.strip())
    if match is None:
        raise ValueError(f"Invalid duration {value!r}: use e.g. 90s, 30m, 24h or 7d.")
    return timedelta(**{UNITS[match["unit"]]: int(match["amount"])})


def to_duration(name: str, value: Any) -> timedelta:
    """The setting ``name`` as a timedelta; ``ImproperlyConfigured`` if it is none of the three
    forms (whether it is long enough is for the system checks to say)."""
    try:
        if isinstance(value, timedelta):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return timedelta(seconds=value)
        if isinstance(value, str):
            return parse_duration(value)
    except (ValueError, OverflowError):
        pass
    raise ImproperlyConfigured(
        f"{SETTINGS_NAME}[{name!r}] must be {DURATION_FORMATS}; it is {value!r}."
    )


class IdempotencySettings:
    """Lazy view of the project's ``IDEMPOTENCY_JOBS`` over :data:`DEFAULTS`.

    A setting is read and checked on first use, then kept as an attribute of its own (as DRF's
    ``api_settings`` does): a request reads several, and each is then a plain attribute
    lookup. :meth:`reload` (on ``setting_changed``) forgets them.
    """

    def __init__(self, defaults: dict[str, Any]) -> None:
        self.defaults = defaults
        self._cached: set[str] = set()

    @property
    def user_settings(self) -> dict[str, Any]:
        return getattr(settings, SETTINGS_NAME, {}) or {}

    def __getattr__(self, name: str) -> Any:
        if name not in self.defaults:
            raise AttributeError(f"Invalid {SETTINGS_NAME} setting: {name!r}")
        value = self._coerce(name, self.user_settings.get(name, self.defaults[name]))
        setattr(self, name, value)
        self._cached.add(name)
        return value

    def _coerce(self, name: str, value: Any) -> Any:
        if name in IMPORT_STRINGS and isinstance(value, str):
            try:
                return import_string(value)
            except ImportError as exc:
                raise ImproperlyConfigured(f"{SETTINGS_NAME}[{name!r}]: {exc}") from exc
        if name in DURATIONS:
            return to_duration(name, value)
        return value

    def reload(self) -> None:
        for name in list(self._cached):
            self.__dict__.pop(name, None)
        self._cached.clear()


idempotency_settings = IdempotencySettings(DEFAULTS)


@receiver(setting_changed)
def _reload(*, setting: str, **kwargs: Any) -> None:
    if setting == SETTINGS_NAME:
        idempotency_settings.reload()
