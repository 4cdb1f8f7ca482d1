"""The one implementation behind the mixin and the decorator.

The request flows one way: header parsing -> key validation -> scope + fingerprint -> store
claim -> view -> store outcome -> response.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, fields
from datetime import timedelta
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.db import transaction
from django.dispatch import receiver
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.template.response import SimpleTemplateResponse
from rest_framework.request import Request
from rest_framework.views import APIView

from idempotency_jobs.conf import (
    DURATION_FORMATS,
    SETTINGS_NAME,
    idempotency_settings,
    to_duration,
)
from idempotency_jobs.exceptions import (
    IdempotencyConfigurationError,
    IdempotencyError,
    IdempotencyKeyInUse,
    IdempotencyKeyMismatch,
    IdempotencyKeyMissing,
    IdempotencyKeyNotReplayable,
    IdempotencyLeaseLost,
    IdempotencyReplayNotAcceptable,
    IdempotencyScopeMissing,
    IdempotencyStoreUnavailable,
    problem_response,
)
from idempotency_jobs.keys.body import read_chunked_body
from idempotency_jobs.keys.headers import parse_key
from idempotency_jobs.keys.models import IdempotencyKey
from idempotency_jobs.keys.responses import StoredResponse, accepts
from idempotency_jobs.keys.stores import (
    Claim,
    Existing,
    LeaseLost,
    Store,
    StoreError,
    StoreUnavailable,
    get_store,
)
from idempotency_jobs.signals import key_outcome

__all__ = [
    "OPTION_NAMES",
    "UNSET",
    "IdempotencyOptions",
    "ResolvedOptions",
    "handle",
    "idempotency_claim",
]

logger = logging.getLogger(__name__)

UNSET: Any = object()
# Never stored, whatever STORE_4XX says: they depend on who asks and when, not on the request.
NEVER_STORED_STATUSES = frozenset({401, 403, 408, 429})
# Custom scope and fingerprint functions may return any string; the store's columns are bounded.
MAX_SCOPE_LENGTH: int = IdempotencyKey._meta.get_field("scope").max_length or 255
MAX_FINGERPRINT_LENGTH: int = IdempotencyKey._meta.get_field("fingerprint").max_length or 64
ScopeFunction = Callable[[Request], str | None]
FingerprintFunction = Callable[[Request], str]


@dataclass(frozen=True, slots=True)
class IdempotencyOptions:
    """A view's idempotency options: the one list of them (docs/configuration.md#per-view).

    The mixin reads each as ``idempotency_<name>`` on the view class, ``@idempotent`` takes them
    as keywords. ``UNSET`` falls back to ``IDEMPOTENCY_JOBS`` (``scope`` and ``fingerprint``:
    to the view's ``get_idempotency_scope`` / ``get_idempotency_fingerprint``, then to
    ``SCOPE_FUNCTION`` / ``FINGERPRINT_FUNCTION``). Checked when made, so a mistake is an error
    at import time, on either face; :meth:`resolve` gives the values a request uses.
    """

    required: bool = UNSET
    replay_status: int | None = UNSET
    ttl: timedelta = UNSET
    methods: Collection[str] = UNSET
    store_4xx: bool = UNSET
    scope: ScopeFunction = UNSET
    fingerprint: FingerprintFunction = UNSET

    def __post_init__(self) -> None:
        if self.methods is not UNSET:
            if isinstance(self.methods, str) or not self.methods:
                raise IdempotencyConfigurationError(
                    f"methods={self.methods!r}: give a list of HTTP methods, e.g. ['POST']."
                )
            object.__setattr__(self, "methods", frozenset(m.upper() for m in self.methods))
        if self.ttl is not UNSET:
            try:
                ttl = to_duration("ttl", self.ttl)
            except ImproperlyConfigured:
                raise IdempotencyConfigurationError(
                    f"ttl={self.ttl!r} must be {DURATION_FORMATS}."
                ) from None
            if ttl <= timedelta(0):
                raise IdempotencyConfigurationError(f"ttl={self.ttl!r} must be positive.")
            object.__setattr__(self, "ttl", ttl)
        for name in ("required", "store_4xx"):
            value = getattr(self, name)
            if value is not UNSET and not isinstance(value, bool):
                raise IdempotencyConfigurationError(f"{name}={value!r} must be True or False.")
        status = self.replay_status
        if status not in (UNSET, None) and (
            isinstance(status, bool) or not isinstance(status, int) or not 200 <= status < 600
        ):
            raise IdempotencyConfigurationError(
                f"replay_status={status!r} is not an HTTP status (an int from 200 to 599)."
            )
        for name in ("scope", "fingerprint"):
            value = getattr(self, name)
            if value is not UNSET and not callable(value):
                raise IdempotencyConfigurationError(
                    f"{name}={value!r} must be a function of the request."
                )

    @classmethod
    def from_keywords(cls, **options: Any) -> IdempotencyOptions:
        """``@idempotent``'s keywords: an unknown name is an error naming the known ones."""
        if unknown := sorted(set(options) - set(OPTION_NAMES)):
            raise IdempotencyConfigurationError(
                f"Unknown idempotency option(s) {unknown}; the options are "
                f"{', '.join(OPTION_NAMES)}."
            )
        return cls(**options)

    @classmethod
    def declared_by(cls, view_class: type) -> IdempotencyOptions:
        """The mixin's face: ``idempotency_<name>`` on ``view_class`` for every option."""
        try:
            return cls(
                **{name: getattr(view_class, f"idempotency_{name}") for name in OPTION_NAMES}
            )
        except IdempotencyConfigurationError as exc:
            raise IdempotencyConfigurationError(
                f"{view_class.__qualname__}.idempotency_{exc}"
            ) from None

    def resolve(self) -> ResolvedOptions:
        """These options over the current ``IDEMPOTENCY_JOBS``, nothing left unset (cached
        until the settings change)."""
        return _resolve(self)


OPTION_NAMES: tuple[str, ...] = tuple(f.name for f in fields(IdempotencyOptions))


@dataclass(frozen=True, slots=True)
class ResolvedOptions:
    """What one request uses. ``scope`` / ``fingerprint`` are ``None`` when the view did not
    choose one: the view's hook runs, else the setting's function."""

    required: bool
    replay_status: int | None
    ttl: timedelta
    methods: frozenset[str]
    store_4xx: bool
    scope: ScopeFunction | None
    fingerprint: FingerprintFunction | None

    def covers(self, method: str | None) -> bool:
        """Whether a request with ``method`` takes part: the one place this is decided."""
        return method is not None and method.upper() in self.methods


@functools.cache
def _resolve(options: IdempotencyOptions) -> ResolvedOptions:
    def pick(name: str) -> Any:
        value = getattr(options, name)
        return getattr(idempotency_settings, name.upper()) if value is UNSET else value

    return ResolvedOptions(
        required=bool(pick("required")),
        replay_status=pick("replay_status"),
        ttl=pick("ttl"),
        methods=frozenset(m.upper() for m in pick("methods")),
        store_4xx=bool(pick("store_4xx")),
        scope=None if options.scope is UNSET else options.scope,
        fingerprint=None if options.fingerprint is UNSET else options.fingerprint,
    )


@receiver(setting_changed)
def _forget_resolved(*, setting: str, **kwargs: Any) -> None:
    if setting == SETTINGS_NAME:
        _resolve.cache_clear()


CLAIM_ATTRIBUTE = "_idempotency_claim"


def idempotency_claim(request: Request | HttpRequest) -> Claim | None:
    """The claim ``request`` holds on its idempotency key while its view runs: its ``scope``,
    ``key``, ``fingerprint`` and owner ``token``; ``None`` for a request without a key (or
    outside an idempotent view). Job creation keeps ``key`` on the job it creates."""
    claim: Claim | None = getattr(request, CLAIM_ATTRIBUTE, None)
    return claim


def handle(
    view: APIView,
    request: Request,
    call_view: Callable[[], HttpResponseBase],
    options: ResolvedOptions,
) -> HttpResponseBase:
    """Run ``call_view`` at most once per caller and key, replaying its stored response."""
    if not options.covers(request.method) or idempotency_claim(request) is not None:
        return call_view()
    try:
        read_chunked_body(request)  # before anything reads the body, keyed or not
        key = parse_key(
            request,
            idempotency_settings.HEADERS,
            min_length=idempotency_settings.KEY_MIN_LENGTH,
            max_length=idempotency_settings.KEY_MAX_LENGTH,
        )
        if key is None:
            if options.required:
                raise IdempotencyKeyMissing()
            return call_view()
        scope = _scope_function(view, options)(request)
        if scope is None:
            raise IdempotencyScopeMissing()
        fingerprint = _fingerprint_function(view, options)(request)
        return IdempotentRequest(view, request, options, get_store()).run(
            _fit(scope, MAX_SCOPE_LENGTH),
            key,
            _fit(fingerprint, MAX_FINGERPRINT_LENGTH),
            call_view,
        )
    except IdempotencyError as exc:
        return problem_response(exc)
    except StoreError as exc:
        return problem_response(as_problem(exc))


def as_problem(exc: StoreError) -> IdempotencyError:
    """The client's answer to a store's error (the stores raise no DRF exceptions)."""
    if isinstance(exc, LeaseLost):
        problem: IdempotencyError = IdempotencyLeaseLost()
    else:
        problem = IdempotencyStoreUnavailable()
    problem.__cause__ = exc
    return problem


def _fit(value: str, max_length: int) -> str:
    """``value``, or its SHA-256 digest (64 characters) if the store could not keep it."""
    if len(value) <= max_length:
        return value
    return hashlib.sha256(value.encode()).hexdigest()


def _scope_function(view: APIView, options: ResolvedOptions) -> ScopeFunction:
    if options.scope is not None:
        return options.scope
    hook: ScopeFunction | None = getattr(view, "get_idempotency_scope", None)
    return hook or idempotency_settings.SCOPE_FUNCTION


def _fingerprint_function(view: APIView, options: ResolvedOptions) -> FingerprintFunction:
    if options.fingerprint is not None:
        return options.fingerprint
    hook: FingerprintFunction | None = getattr(view, "get_idempotency_fingerprint", None)
    return hook or idempotency_settings.FINGERPRINT_FUNCTION


class IdempotentRequest:
    """One keyed request: claim, run the view in a transaction, store or release."""

    def __init__(
        self, view: APIView, request: Request, options: ResolvedOptions, store: Store
    ) -> None:
        self.view = view
        self.request = request
        self.options = options
        self.store = store
        # Set by the first of the transaction's on_commit hooks: from then on nothing that
        # fails (another hook, a worker's timeout) may release the key or change its outcome.
        self.committed = False

    def run(
        self, scope: str, key: str, fingerprint: str, call_view: Callable[[], HttpResponseBase]
    ) -> HttpResponseBase:
        self.scope, self.key = scope, key
        found = self.claim(scope, key, fingerprint)
        if not isinstance(found, Claim):
            return found
        setattr(self.request, CLAIM_ATTRIBUTE, found)
        try:
            return self.execute(found, call_view)
        except LeaseLost as exc:  # storing a DRF error's answer: nothing to release
            return problem_response(self.reported("lease_lost", as_problem(exc)))
        except BaseException:
            if not self.committed:
                self.release(found)
            raise

    def claim(self, scope: str, key: str, fingerprint: str) -> Claim | HttpResponseBase:
        """Claim the key, or answer with the replay; waits for an in-flight twin if configured."""
        ttl, lease = self.options.ttl, idempotency_settings.LEASE
        wait = idempotency_settings.IN_FLIGHT == "wait"
        deadline = time.monotonic() + idempotency_settings.WAIT_TIMEOUT.total_seconds()
        pause = 0.02
        while True:
            found = self.store.claim(scope, key, fingerprint, ttl=ttl, lease=lease)
            if isinstance(found, Claim):
                return found
            last_try = not wait or time.monotonic() >= deadline
            replay = self.answer(found, fingerprint, last_try=last_try)
            if replay is not None:
                return replay
            time.sleep(pause)
            pause = min(pause * 2, 0.5)

    def answer(
        self, found: Existing, fingerprint: str, *, last_try: bool
    ) -> HttpResponseBase | None:
        """The replay for a request meeting ``found``; raises its error; ``None``: wait."""
        if found.fingerprint != fingerprint:
            raise self.reported("mismatch", IdempotencyKeyMismatch())
        if found.completed and found.response is not None:
            if not found.response.replayable:
                raise self.reported("not_replayable", IdempotencyKeyNotReplayable())
            content_type = found.response.content_type
            if content_type and not accepts(self.request.META.get("HTTP_ACCEPT"), content_type):
                raise self.reported(
                    "not_acceptable",
                    IdempotencyReplayNotAcceptable(
                        f"The request with this idempotency key completed with a {content_type} "
                        "response, which this request's Accept header excludes. It was not run "
                        "again."
                    ),
                )
            replay = found.response.to_response(status=self.options.replay_status)
            self.report("replayed", replay.status_code, response=replay)
            return replay
        if last_try:
            retry_after = str(idempotency_settings.RETRY_AFTER)
            raise self.reported("in_use", IdempotencyKeyInUse(headers={"Retry-After": retry_after}))
        return None

    def execute(self, claim: Claim, call_view: Callable[[], HttpResponseBase]) -> HttpResponseBase:
        """Run the view; its writes commit with the stored outcome, or not at all."""
        alias = self.store.database_alias
        outermost = not transaction.get_connection(alias).in_atomic_block
        outcome: list[StoredResponse] = []
        try:
            with transaction.atomic(using=alias):
                # Ahead of the view's hooks: the outcome is recorded before they run (or hang).
                transaction.on_commit(lambda: self.after_commit(claim, outcome), using=alias)
                response = self.render(call_view())
                if self.should_store(response):
                    outcome.append(self.capture(response))
                    if outermost:
                        self.store.complete_and_commit(claim, outcome[0])
                    else:
                        self.store.complete(claim, outcome[0])
                    return response
                transaction.set_rollback(True, using=alias)
        except LeaseLost as exc:
            return problem_response(self.reported("lease_lost", as_problem(exc)))
        except StoreUnavailable as exc:  # the view's writes rolled back; a retry runs them
            self.release(claim)
            return problem_response(as_problem(exc))
        except Exception as exc:
            if self.committed:
                raise  # a hook failed after the commit: the stored outcome stands
            # DRF turns its own exceptions into responses; anything else propagates (released).
            response = self.render(self.view.handle_exception(exc))
            if self.should_store(response):
                outcome.append(self.capture(response))
                self.store.complete(claim, outcome[0])
                transaction.on_commit(lambda: self.after_commit(claim, outcome), using=alias)
                return response
        self.release(claim)
        return response

    def after_commit(self, claim: Claim, outcome: list[StoredResponse]) -> None:
        """The view's transaction committed, with the outcome if there is one: let the store
        finish, then report the outcome (only now: a rolled-back one is never reported).
        Never raises: the view's own hooks still run. One hook for all of it: each hook a
        transaction keeps costs its bookkeeping (benchmark 8)."""
        self.committed = True
        if not outcome:
            return
        try:
            self.store.after_commit(claim, outcome[0])
        except Exception:
            logger.exception(
                "Could not record the outcome of idempotency key %r after its commit; the key "
                "stays in progress until its lease ends.",
                claim.key,
            )
        try:
            self.report("completed", outcome[0].status)
        except Exception:
            logger.exception("Could not report the outcome of idempotency key %r.", claim.key)

    def release(self, claim: Claim) -> None:
        try:
            self.store.release(claim)
        except Exception:  # the lease frees it later; never hide the original outcome
            logger.exception("Could not release idempotency key %r", claim.key)
        else:
            self.report("released", None)

    def report(self, outcome: str, status: int | None, **extra: Any) -> None:
        """The outcome's log line and signal (``signals.py``)."""
        key_outcome(
            outcome,
            view=self.view,
            request=self.request,
            scope=self.scope,
            key=self.key,
            status=status,
            **extra,
        )

    def reported[E: IdempotencyError](self, outcome: str, exc: E) -> E:
        self.report(outcome, exc.status_code)
        return exc

    def render(self, response: HttpResponseBase) -> HttpResponseBase:
        view = self.view
        response = view.finalize_response(
            self.request,
            response,  # type: ignore[arg-type]  # any HttpResponse is allowed at runtime
            *view.args,
            **view.kwargs,
        )
        if isinstance(response, SimpleTemplateResponse):
            response.render()
        return response

    def should_store(self, response: HttpResponseBase) -> bool:
        status = response.status_code
        if 200 <= status < 300:
            return True
        return (
            400 <= status < 500 and status not in NEVER_STORED_STATUSES and self.options.store_4xx
        )

    def capture(self, response: HttpResponseBase) -> StoredResponse:
        return StoredResponse.capture(
            response,
            max_body=idempotency_settings.MAX_STORED_BODY,
            extra_headers=idempotency_settings.REPLAY_HEADERS,
        )
