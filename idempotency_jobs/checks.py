"""System checks: configuration mistakes surface at startup, not on the first retried POST."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured

from idempotency_jobs.conf import DEFAULTS, DURATIONS, SETTINGS_NAME, idempotency_settings
from idempotency_jobs.exceptions import IdempotencyConfigurationError
from idempotency_jobs.keys.models import IdempotencyKey
from idempotency_jobs.keys.stores import store_class

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
MAX_KEY_COLUMN = IdempotencyKey._meta.get_field("key").max_length
# Zero is a meaning of its own here: no least gap, every progress report is written.
MAY_BE_ZERO = frozenset({"JOB_PROGRESS_INTERVAL"})
# An absolute URI or an absolute path, without a fragment: each problem's code becomes one.
PROBLEM_TYPE_BASE = re.compile(r"(?:[A-Za-z][A-Za-z0-9+.-]*:|/)[^\s#]*")


@register(Tags.compatibility)
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    user_settings = getattr(settings, SETTINGS_NAME, {}) or {}
    for name in sorted(set(user_settings) - set(DEFAULTS)):
        errors.append(
            Error(
                f"Unknown setting {SETTINGS_NAME}[{name!r}].",
                hint="See docs/configuration.md for the settings and their defaults.",
                id="idempotency_jobs.E001",
            )
        )
    errors += _check_store()
    errors += _check_keys()
    errors += _check_problem_type_base()
    duration_errors, bad_durations = _check_durations()
    errors += duration_errors
    methods = {method.upper() for method in idempotency_settings.METHODS}
    if safe := sorted(methods & SAFE_METHODS):
        errors.append(
            Error(
                f"{SETTINGS_NAME}['METHODS'] includes safe methods {safe}.",
                hint="Only unsafe methods (POST, PATCH, PUT, DELETE) take part.",
                id="idempotency_jobs.E005",
            )
        )
    if idempotency_settings.IN_FLIGHT not in ("conflict", "wait"):
        errors.append(
            Error(
                f"{SETTINGS_NAME}['IN_FLIGHT'] must be 'conflict' or 'wait'.",
                id="idempotency_jobs.E006",
            )
        )
    if (
        not {"LEASE", "TTL"} & bad_durations
        and idempotency_settings.LEASE >= idempotency_settings.TTL
    ):
        errors.append(
            Warning(
                f"{SETTINGS_NAME}['LEASE'] is not shorter than 'TTL'.",
                hint="A crashed request would then block its key until the key expires.",
                id="idempotency_jobs.W002",
            )
        )
    return errors


def _check_durations() -> tuple[list[CheckMessage], set[str]]:
    """Each duration setting readable (E008) and longer than zero (E009); and those that are
    not, so that no other check compares them."""
    errors: list[CheckMessage] = []
    bad: set[str] = set()
    for name in sorted(DURATIONS):
        try:
            value: timedelta = getattr(idempotency_settings, name)
        except ImproperlyConfigured as exc:
            errors.append(Error(str(exc), id="idempotency_jobs.E008"))
            bad.add(name)
            continue
        if value < timedelta(0) or (not value and name not in MAY_BE_ZERO):
            errors.append(
                Error(
                    f"{SETTINGS_NAME}[{name!r}] must be longer than zero; "
                    f"it is {value.total_seconds():g} seconds.",
                    id="idempotency_jobs.E009",
                )
            )
            bad.add(name)
    return errors, bad


def _check_store() -> list[CheckMessage]:
    """The store's own checks (``Store.check``), once ``STORE`` names a store."""
    try:
        found = store_class()
    except IdempotencyConfigurationError as exc:
        return [Error(str(exc), id="idempotency_jobs.E010")]
    return found.check(idempotency_settings)


def _check_problem_type_base() -> list[CheckMessage]:
    base = idempotency_settings.PROBLEM_TYPE_BASE
    if base is None or (isinstance(base, str) and PROBLEM_TYPE_BASE.fullmatch(base)):
        return []
    return [
        Error(
            f"{SETTINGS_NAME}['PROBLEM_TYPE_BASE'] must be None or a URI without a fragment; "
            f"it is {base!r}.",
            hint="E.g. 'https://docs.example.com/problems/' or '/problems/': each problem's "
            "type is then that address + '#' + its code.",
            id="idempotency_jobs.E011",
        )
    ]


def _check_keys() -> list[CheckMessage]:
    low, high = idempotency_settings.KEY_MIN_LENGTH, idempotency_settings.KEY_MAX_LENGTH
    if not 1 <= low <= high <= MAX_KEY_COLUMN:
        return [
            Error(
                f"Key lengths must satisfy 1 <= KEY_MIN_LENGTH <= KEY_MAX_LENGTH <= "
                f"{MAX_KEY_COLUMN}; they are {low} and {high}.",
                id="idempotency_jobs.E004",
            )
        ]
    if not idempotency_settings.HEADERS:
        return [Error(f"{SETTINGS_NAME}['HEADERS'] is empty.", id="idempotency_jobs.E007")]
    return []
