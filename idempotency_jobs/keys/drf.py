"""The public faces of idempotency: a viewset mixin and a view decorator, over one core."""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection
from datetime import timedelta
from typing import Any

from django.http.response import HttpResponseBase
from rest_framework.request import Request
from rest_framework.views import APIView

from idempotency_jobs.conf import idempotency_settings
from idempotency_jobs.exceptions import IdempotencyConfigurationError
from idempotency_jobs.keys.core import (
    UNSET,
    FingerprintFunction,
    IdempotencyOptions,
    ScopeFunction,
    handle,
    idempotency_claim,
)

__all__ = ["IdempotencyMixin", "idempotency_claim", "idempotent"]


class IdempotencyMixin:
    """Makes a DRF view's POST handlers idempotent (``IDEMPOTENCY_JOBS["METHODS"]``).

    Options are class attributes named ``idempotency_<option>`` (every name of
    :class:`~idempotency_jobs.keys.core.IdempotencyOptions`: ``idempotency_required``,
    ``idempotency_ttl``, ``idempotency_methods``, ``idempotency_scope``, ...), checked when the
    class is defined. Authentication, permissions and throttling run first (DRF's ``initial``),
    so a caller who may not call the view never reaches a stored response.
    """

    idempotency_required: bool = UNSET
    idempotency_replay_status: int | None = UNSET
    idempotency_ttl: timedelta = UNSET
    idempotency_methods: Collection[str] = UNSET
    idempotency_store_4xx: bool = UNSET
    idempotency_scope: ScopeFunction = UNSET
    idempotency_fingerprint: FingerprintFunction = UNSET
    _idempotency_options: IdempotencyOptions = IdempotencyOptions()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._idempotency_options = IdempotencyOptions.declared_by(cls)

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # type: ignore[misc]
        name = (request.method or "").lower()
        handler = getattr(self, name, None)
        if handler is None or getattr(handler, "idempotency_options", None) is not None:
            return  # not handled here, or an @idempotent handler with its own options
        options = self.get_idempotency_options().resolve()
        if not options.covers(request.method):
            return  # e.g. a GET: nothing to wrap

        view: Any = self

        def idempotent_handler(request: Request, *args: Any, **kwargs: Any) -> HttpResponseBase:
            return handle(view, request, lambda: handler(request, *args, **kwargs), options)

        # DRF's own viewsets bind handlers on the instance the same way (ViewSetMixin.as_view).
        # Not functools.wraps: nothing reads this per-request wrapper's name or docstring, and
        # copying them cost more than the wrapper (benchmark 8).
        setattr(self, name, idempotent_handler)

    def get_idempotency_options(self) -> IdempotencyOptions:
        """The class's ``idempotency_<option>`` attributes; override to choose per request."""
        return self._idempotency_options

    def get_idempotency_scope(self, request: Request) -> str | None:
        """Whose key this is; override to scope keys to e.g. a workspace."""
        scope: str | None = idempotency_settings.SCOPE_FUNCTION(request)
        return scope

    def get_idempotency_fingerprint(self, request: Request) -> str:
        """What makes two requests the same request."""
        fingerprint: str = idempotency_settings.FINGERPRINT_FUNCTION(request)
        return fingerprint


def idempotent[Handler: Callable[..., HttpResponseBase]](
    func: Handler | None = None, **options: Any
) -> Any:
    """Make an ``@api_view`` function, an ``APIView`` method or a viewset ``@action`` idempotent.

    Use bare (``@idempotent``) or with options (``@idempotent(required=True)``): the names of
    :class:`~idempotency_jobs.keys.core.IdempotencyOptions`, checked here. Place it below
    ``@api_view`` (above it is an error at import time), on either side of ``@action``.
    """
    declared = IdempotencyOptions.from_keywords(**options)

    def decorator(handler: Handler) -> Handler:
        _check_placement(handler)

        @functools.wraps(handler)
        def wrapper(*args: Any, **kwargs: Any) -> HttpResponseBase:
            view, request = _view_and_request(args)
            return handle(view, request, lambda: handler(*args, **kwargs), declared.resolve())

        wrapper.idempotency_options = declared  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorator(func) if func is not None else decorator


def _check_placement(handler: Callable[..., Any]) -> None:
    """A view made by ``as_view()`` (which ``@api_view`` returns) hands the decorator Django's
    request, not DRF's: refuse it at import time, naming the fix."""
    view_class = getattr(handler, "view_class", None)
    if view_class is None:
        return
    raise IdempotencyConfigurationError(
        f"@idempotent is above @api_view (or on a view made by as_view()) on "
        f"{view_class.__name__}: it must wrap the handler itself. Place it below @api_view: "
        f"@api_view([...]), then @idempotent, then the function. On a class-based view, "
        f"decorate its post() method or use IdempotencyMixin."
    )


def _view_and_request(args: tuple[Any, ...]) -> tuple[APIView, Request]:
    """Find the view and request among a function view's or a method's arguments."""
    if args and isinstance(args[0], Request):
        request = args[0]
        return request.parser_context["view"], request
    if len(args) >= 2 and isinstance(args[1], Request):
        return args[0], args[1]
    raise IdempotencyConfigurationError(
        "@idempotent wraps a DRF handler (an @api_view function, an APIView method or a viewset "
        "@action), placed below @api_view/@action; it was called without a DRF Request."
    )
